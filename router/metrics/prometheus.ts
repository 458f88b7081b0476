// Renders the router's counters (summed over workers) as Prometheus text for /metrics.
import { failureClasses } from "../errors.js";
import { type CountersSnapshot, latencyBuckets } from "./counters.js";

export interface RouterGauges {
  routes: number;
  endpoints: number;
  natsState: string;
  draining: boolean;
  workers: number;
  registry: Record<string, number>;
}

const classes = ["aborted", "1xx", "2xx", "3xx", "4xx", "5xx"];
const natsStates = ["connecting", "connected", "disconnected", "reconnecting", "closed"];

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Adds worker snapshots together. */
export function sumSnapshots(list: readonly CountersSnapshot[]): CountersSnapshot {
  const out: CountersSnapshot = {
    statusClass: [0, 0, 0, 0, 0, 0],
    byRoute: {},
    latencyBuckets: new Array<number>(latencyBuckets.length + 1).fill(0),
    latencySum: 0,
    latencyCount: 0,
    upstreamErrors: new Array<number>(failureClasses.length).fill(0),
    retries: 0,
    native: 0,
    inFlight: 0,
    wsOpen: 0,
    wsTotal: 0,
    bytesOut: 0,
    accessLogDropped: 0,
  };
  const add = (a: number[], b: number[]): void => {
    for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) + (b[i] ?? 0);
  };
  for (const s of list) {
    add(out.statusClass, s.statusClass);
    add(out.latencyBuckets, s.latencyBuckets);
    add(out.upstreamErrors, s.upstreamErrors);
    for (const [route, counts] of Object.entries(s.byRoute)) {
      const key = route.toLowerCase().replace(/:\d+$/, "");
      const held = out.byRoute[key];
      if (held === undefined) out.byRoute[key] = [...counts];
      else add(held, counts);
    }
    out.latencySum += s.latencySum;
    out.latencyCount += s.latencyCount;
    out.retries += s.retries;
    out.native += s.native;
    out.inFlight += s.inFlight;
    out.wsOpen += s.wsOpen;
    out.wsTotal += s.wsTotal;
    out.bytesOut += s.bytesOut;
    out.accessLogDropped += s.accessLogDropped;
  }
  return out;
}

export function renderMetrics(s: CountersSnapshot, g: RouterGauges): string {
  const L: string[] = [];
  L.push("# HELP kiln_router_requests_total Requests answered, by status class.");
  L.push("# TYPE kiln_router_requests_total counter");
  for (let i = 0; i < classes.length; i++)
    L.push(`kiln_router_requests_total{class="${classes[i]}"} ${s.statusClass[i] ?? 0}`);
  L.push("# HELP kiln_router_route_requests_total Requests by route (host) and status class.");
  L.push("# TYPE kiln_router_route_requests_total counter");
  for (const [route, counts] of Object.entries(s.byRoute))
    for (let i = 0; i < classes.length; i++)
      if ((counts[i] ?? 0) > 0)
        L.push(`kiln_router_route_requests_total{route="${esc(route)}",class="${classes[i]}"} ${counts[i]}`);
  L.push("# HELP kiln_router_request_duration_seconds Time from request to the end of the response.");
  L.push("# TYPE kiln_router_request_duration_seconds histogram");
  let cum = 0;
  for (let i = 0; i < latencyBuckets.length; i++) {
    cum += s.latencyBuckets[i] ?? 0;
    L.push(`kiln_router_request_duration_seconds_bucket{le="${latencyBuckets[i]}"} ${cum}`);
  }
  cum += s.latencyBuckets[latencyBuckets.length] ?? 0;
  L.push(`kiln_router_request_duration_seconds_bucket{le="+Inf"} ${cum}`);
  L.push(`kiln_router_request_duration_seconds_sum ${s.latencySum}`);
  L.push(`kiln_router_request_duration_seconds_count ${s.latencyCount}`);
  L.push("# HELP kiln_router_upstream_errors_total Backend failures, by cause.");
  L.push("# TYPE kiln_router_upstream_errors_total counter");
  for (let i = 0; i < failureClasses.length; i++)
    L.push(
      `kiln_router_upstream_errors_total{cause="${failureClasses[i]?.cause}"} ${s.upstreamErrors[i] ?? 0}`,
    );
  L.push("# TYPE kiln_router_retries_total counter");
  L.push(`kiln_router_retries_total ${s.retries}`);
  L.push(
    "# HELP kiln_router_native_requests_total Requests served by the native request path (no JavaScript call).",
  );
  L.push("# TYPE kiln_router_native_requests_total counter");
  L.push(`kiln_router_native_requests_total ${s.native}`);
  L.push("# TYPE kiln_router_requests_in_flight gauge");
  L.push(`kiln_router_requests_in_flight ${s.inFlight}`);
  L.push("# TYPE kiln_router_websockets_open gauge");
  L.push(`kiln_router_websockets_open ${s.wsOpen}`);
  L.push("# TYPE kiln_router_websockets_total counter");
  L.push(`kiln_router_websockets_total ${s.wsTotal}`);
  L.push("# TYPE kiln_router_response_bytes_total counter");
  L.push(`kiln_router_response_bytes_total ${s.bytesOut}`);
  L.push(
    "# HELP kiln_router_access_log_dropped_lines_total Access log lines dropped while the log target took no bytes.",
  );
  L.push("# TYPE kiln_router_access_log_dropped_lines_total counter");
  L.push(`kiln_router_access_log_dropped_lines_total ${s.accessLogDropped}`);
  L.push("# HELP kiln_router_routes Routes in the table.");
  L.push("# TYPE kiln_router_routes gauge");
  L.push(`kiln_router_routes ${g.routes}`);
  L.push("# TYPE kiln_router_endpoints gauge");
  L.push(`kiln_router_endpoints ${g.endpoints}`);
  L.push("# HELP kiln_router_nats_state 1 for the NATS connection's current state.");
  L.push("# TYPE kiln_router_nats_state gauge");
  for (const st of natsStates) L.push(`kiln_router_nats_state{state="${st}"} ${st === g.natsState ? 1 : 0}`);
  L.push("# TYPE kiln_router_draining gauge");
  L.push(`kiln_router_draining ${g.draining ? 1 : 0}`);
  L.push("# TYPE kiln_router_worker_threads gauge");
  L.push(`kiln_router_worker_threads ${g.workers}`);
  for (const [k, v] of Object.entries(g.registry)) {
    const name = `kiln_router_registry_${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`;
    L.push(`# TYPE ${name} counter`);
    L.push(`${name} ${v}`);
  }
  return `${L.join("\n")}\n`;
}
