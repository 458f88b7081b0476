// Per-worker counters in plain numbers (no locks, no allocation per request); the main
// thread asks each worker for a snapshot and adds them up for /metrics.
import { failureClasses, Upstream } from "../errors.js";

/** Latency histogram bucket bounds, seconds. */
export const latencyBuckets = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Most routes given their own label; the rest are counted under "other". */
const maxRouteLabels = 1000;

export interface CountersSnapshot {
  /** Index 0: requests the client aborted; 1..5: 1xx..5xx. */
  statusClass: number[];
  byRoute: Record<string, number[]>;
  latencyBuckets: number[];
  latencySum: number;
  latencyCount: number;
  upstreamErrors: number[];
  retries: number;
  /** Requests served whole by the native request path (router/proxy/fast.ts). */
  native: number;
  inFlight: number;
  wsOpen: number;
  wsTotal: number;
  bytesOut: number;
  /** Access log lines dropped because the log target would not take them (router/access-log.ts). */
  accessLogDropped: number;
}

export class WorkerCounters {
  readonly statusClass = [0, 0, 0, 0, 0, 0];
  readonly byRoute = new Map<string, number[]>();
  readonly latency = new Array<number>(latencyBuckets.length + 1).fill(0);
  latencySum = 0;
  latencyCount = 0;
  readonly upstreamErrors = new Array<number>(failureClasses.length).fill(0);
  retries = 0;
  native = 0;
  inFlight = 0;
  wsOpen = 0;
  wsTotal = 0;
  bytesOut = 0;

  /** Counts one finished request: `status` 0 when the client aborted. */
  request(route: string, status: number, seconds: number, bytes: number): void {
    const cls = status === 0 ? 0 : (status / 100) | 0;
    const idx = cls >= 1 && cls <= 5 ? cls : 0;
    (this.statusClass as number[])[idx] = (this.statusClass[idx] as number) + 1;
    const r = this.route(route);
    r[idx] = (r[idx] as number) + 1;
    let b = 0;
    while (b < latencyBuckets.length && seconds > (latencyBuckets[b] as number)) b++;
    this.latency[b] = (this.latency[b] as number) + 1;
    this.latencySum += seconds;
    this.latencyCount++;
    this.bytesOut += bytes;
  }

  /** The counts by status class of one route label (past maxRouteLabels labels, "other"'s). */
  route(route: string): number[] {
    let r = this.byRoute.get(route);
    if (r === undefined) {
      if (this.byRoute.size >= maxRouteLabels) route = "other";
      r = this.byRoute.get(route);
      if (r === undefined) {
        r = [0, 0, 0, 0, 0, 0];
        this.byRoute.set(route, r);
      }
    }
    return r;
  }

  upstreamError(kind: number): void {
    this.upstreamErrors[kind] = (this.upstreamErrors[kind] as number) + 1;
  }

  /**
   * Counts `n` requests the native client sent again on its own after a stale pooled
   * connection: a stale connection and a retry each, as the JavaScript path counts one
   * (router/proxy/exchange.ts fail).
   */
  resent(n: number): void {
    const k = Upstream.StaleConnection;
    this.upstreamErrors[k] = (this.upstreamErrors[k] as number) + n;
    this.retries += n;
  }

  snapshot(): CountersSnapshot {
    return {
      statusClass: [...this.statusClass],
      byRoute: Object.fromEntries(this.byRoute),
      latencyBuckets: [...this.latency],
      latencySum: this.latencySum,
      latencyCount: this.latencyCount,
      upstreamErrors: [...this.upstreamErrors],
      retries: this.retries,
      native: this.native,
      inFlight: this.inFlight,
      wsOpen: this.wsOpen,
      wsTotal: this.wsTotal,
      bytesOut: this.bytesOut,
      accessLogDropped: 0,
    };
  }
}
