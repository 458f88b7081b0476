// What `kiln bench` reports: one side's runs folded into one line (medians over rounds), the
// ratio of target to reference, and the table printed off --json.
import { formatTable } from "../output/table.js";
import type { Errors, RunResult, Target } from "./load.js";

export interface Side {
  name: string;
  url: string;
  host?: string;
  /** Medians over the rounds for rates and percentiles; sums for counts; the highest max. */
  summary: RunResult;
  rounds: RunResult[];
}

export interface Ratio {
  /** target ÷ reference: above 1, the target serves more requests per second. */
  req_per_s: number | null;
  /** target ÷ reference: below 1, the target answers faster. */
  latency_p50: number | null;
  latency_p99: number | null;
}

function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  if (v.length === 0) return 0;
  return v.length % 2 === 1 ? (v[mid] ?? 0) : ((v[mid - 1] ?? 0) + (v[mid] ?? 0)) / 2;
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
}

function sumErrors(all: readonly Errors[]): Errors {
  const out: Errors = {
    total: 0,
    non_2xx: { "1xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 },
    status_codes: {},
    timeouts: 0,
    connection: {},
  };
  for (const e of all) {
    out.total += e.total;
    out.timeouts += e.timeouts;
    addCounts(out.non_2xx, e.non_2xx);
    addCounts(out.status_codes, e.status_codes);
    addCounts(out.connection, e.connection);
  }
  return out;
}

export function side(target: Target, rounds: RunResult[]): Side {
  const pick = (f: (r: RunResult) => number) => median(rounds.map(f));
  const summary: RunResult = {
    requests: sum(rounds.map((r) => r.requests)),
    duration_s: sum(rounds.map((r) => r.duration_s)),
    req_per_s: pick((r) => r.req_per_s),
    latency_ms: {
      mean: pick((r) => r.latency_ms.mean),
      p50: pick((r) => r.latency_ms.p50),
      p90: pick((r) => r.latency_ms.p90),
      p99: pick((r) => r.latency_ms.p99),
      max: Math.max(0, ...rounds.map((r) => r.latency_ms.max)),
    },
    errors: sumErrors(rounds.map((r) => r.errors)),
  };
  const out: Side = { name: target.name, url: target.url, summary, rounds };
  if (target.host !== undefined) out.host = target.host;
  return out;
}

/** null where the reference measured 0 (no answers at all). */
const over = (a: number, b: number) => (b > 0 ? a / b : null);

export function ratio(target: Side, reference: Side): Ratio {
  return {
    req_per_s: over(target.summary.req_per_s, reference.summary.req_per_s),
    latency_p50: over(target.summary.latency_ms.p50, reference.summary.latency_ms.p50),
    latency_p99: over(target.summary.latency_ms.p99, reference.summary.latency_ms.p99),
  };
}

/** `5xx 12, 503 x12` style: each non-zero kind, or "none". */
export function errorText(e: Errors): string {
  const parts: string[] = [];
  for (const [cls, n] of Object.entries(e.non_2xx)) if (n > 0) parts.push(`${cls} ${n}`);
  if (e.timeouts > 0) parts.push(`timeouts ${e.timeouts}`);
  for (const [code, n] of Object.entries(e.connection)) if (n > 0) parts.push(`${code} ${n}`);
  return parts.length === 0 ? "none" : parts.join(", ");
}

const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const times = (n: number | null) => (n === null ? "n/a" : `${n.toPrecision(3)}x`);

export function formatReport(sides: readonly Side[], r: Ratio | undefined): string {
  const rows = sides.map((s) => [
    s.name,
    Math.round(s.summary.req_per_s),
    ms(s.summary.latency_ms.p50),
    ms(s.summary.latency_ms.p90),
    ms(s.summary.latency_ms.p99),
    ms(s.summary.latency_ms.max),
    s.summary.requests,
    errorText(s.summary.errors),
  ]);
  if (r !== undefined)
    rows.push(["ratio", times(r.req_per_s), times(r.latency_p50), "", times(r.latency_p99), "", "", ""]);
  return formatTable(["target", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "requests", "errors"], rows);
}
