// Runs one autocannon load in its own process (so the bench's event loop never throttles it)
// and prints one JSON line with the result. Argument: the LoadSpec as JSON.
import autocannon from "autocannon";
import type { LoadResult, LoadSpec } from "./types.js";

const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;

// Per connection autocannon walks this list in order, so the hosts are spread evenly.
const requests = spec.hosts.map((h) => ({ method: "GET" as const, path: spec.path, headers: { host: h } }));

const result = await autocannon({
  url: `http://127.0.0.1:${spec.port}`,
  connections: spec.connections,
  workers: spec.threads > 1 ? spec.threads : undefined,
  duration: spec.durationS,
  timeout: spec.timeoutS,
  requests,
});

const out: LoadResult = {
  generator: "autocannon",
  requests: result.requests.total,
  durationS: result.duration,
  rps: result.duration > 0 ? result.requests.total / result.duration : 0,
  latencyMs: {
    mean: result.latency.average,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
  },
  errors: result.errors + result.timeouts,
  non2xx: result.non2xx,
  bytes: result.throughput.total,
};
process.stdout.write(`AUTOCANNON_JSON ${JSON.stringify(out)}\n`);
