// One load run against one target with autocannon, in this process: responses, latency
// percentiles, and every failed request counted by kind (status class, timeout, socket error).
import type { LiveLine } from "../output/progress.js";
import { LatencyHistogram } from "./histogram.js";

export interface LoadSettings {
  connections: number;
  durationS: number;
  /** Requests per second over all connections; undefined runs as fast as the target answers. */
  rate: number | undefined;
  method: string;
  body: string | undefined;
  /** Lower-case names; a `host` entry overrides the URL's. */
  headers: Record<string, string>;
}

/** Where the load goes: the URL connected to, and the Host header when it differs from the URL's. */
export interface Target {
  /** As the user named it: an app NAME or the URL given. */
  name: string;
  url: string;
  host: string | undefined;
}

export interface Errors {
  /** Every request that did not get a 2xx answer. */
  total: number;
  non_2xx: { "1xx": number; "3xx": number; "4xx": number; "5xx": number };
  /** Non-2xx answers by exact status. */
  status_codes: Record<string, number>;
  timeouts: number;
  /** Socket errors by code: ECONNRESET, ECONNREFUSED, EPIPE, … (`other` when none was given). */
  connection: Record<string, number>;
}

export interface RunResult {
  /** Answers received (any status). */
  requests: number;
  duration_s: number;
  req_per_s: number;
  latency_ms: { mean: number; p50: number; p90: number; p99: number; max: number };
  errors: Errors;
}

type Autocannon = typeof import("autocannon").default;

/** autocannon is loaded on the first run only: it is heavy (a WebAssembly histogram) and no other command needs it. */
let loaded: Autocannon | undefined;
async function autocannon(): Promise<Autocannon> {
  loaded ??= (await import("autocannon")).default;
  return loaded;
}

/** Microseconds are the histogram's resolution; more digits would be noise. */
const round3 = (ms: number) => Math.round(ms * 1000) / 1000;

export interface RunControl {
  /** Set by SIGINT: the run in progress ends early and no further run starts. */
  stopped: boolean;
}

export async function runLoad(
  target: Target,
  settings: LoadSettings,
  line: LiveLine,
  label: string,
  control: RunControl,
): Promise<RunResult> {
  const run = await autocannon();
  const headers = { ...settings.headers };
  if (target.host !== undefined && headers.host === undefined) headers.host = target.host;
  const instance = run({
    url: target.url,
    connections: settings.connections,
    duration: settings.durationS,
    overallRate: settings.rate,
    method: settings.method,
    body: settings.body,
    headers,
  });
  const connection: Record<string, number> = {};
  const latency = new LatencyHistogram();
  let failures = 0;
  // Each answer's own time, any status (as autocannon counts them), without autocannon's
  // coordinated-omission correction under -R: what the requests sent actually waited.
  instance.on("response", (_client: unknown, _status: number, _bytes: number, ms: number) => {
    latency.recordMs(ms);
  });
  instance.on("reqError", (err: unknown) => {
    failures++;
    const code = (err as { code?: unknown } | null)?.code;
    // A timeout comes as an error without a code; autocannon counts those itself.
    if (typeof code === "string") connection[code] = (connection[code] ?? 0) + 1;
  });
  const started = Date.now();
  const draw = () => {
    const s = (Date.now() - started) / 1000;
    const answers = latency.count;
    const rps = s > 0 ? Math.round(answers / s) : 0;
    const errs = failures > 0 ? `, ${failures} errors` : "";
    line.show(`${label}${rps} req/s, ${answers} requests${errs}, ${s.toFixed(1)}s of ${settings.durationS}s`);
  };
  const timer = setInterval(draw, 250);
  const stop = () => {
    control.stopped = true;
    instance.stop();
  };
  process.once("SIGINT", stop);
  try {
    const r = await instance;
    draw();
    const coded = Object.values(connection).reduce((a, b) => a + b, 0);
    const other = r.errors - r.timeouts - coded;
    if (other > 0) connection.other = other;
    const statusCodes: Record<string, number> = {};
    for (const [status, { count }] of Object.entries(r.statusCodeStats)) {
      if (!status.startsWith("2")) statusCodes[status] = count;
    }
    return {
      requests: r.requests.total,
      duration_s: r.duration,
      req_per_s: r.duration > 0 ? r.requests.total / r.duration : 0,
      latency_ms: {
        mean: round3(latency.meanMs()),
        p50: round3(latency.percentileMs(0.5)),
        p90: round3(latency.percentileMs(0.9)),
        p99: round3(latency.percentileMs(0.99)),
        max: round3(latency.maxMs()),
      },
      errors: {
        total: r.non2xx + r.errors,
        non_2xx: { "1xx": r["1xx"], "3xx": r["3xx"], "4xx": r["4xx"], "5xx": r["5xx"] },
        status_codes: statusCodes,
        timeouts: r.timeouts,
        connection,
      },
    };
  } finally {
    clearInterval(timer);
    process.removeListener("SIGINT", stop);
    line.done();
  }
}
