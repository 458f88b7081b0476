// The load generator contract: one HTTP/1.1 keep-alive load run against one address.

export interface LoadSpec {
  /** Port on 127.0.0.1. */
  port: number;
  path: string;
  /** Host header values; one fixed host, or several picked at random per request. */
  hosts: readonly string[];
  connections: number;
  threads: number;
  durationS: number;
  /** Per-request timeout (seconds). */
  timeoutS: number;
}

export interface LatencyMs {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LoadResult {
  generator: string;
  requests: number;
  durationS: number;
  rps: number;
  latencyMs: LatencyMs;
  /** Socket errors: connect, read, write and timeouts. */
  errors: number;
  /** Responses that were not 2xx/3xx. */
  non2xx: number;
  bytes: number;
}

export interface LoadGenerator {
  readonly name: "wrk" | "autocannon";
  /** Version line for reports. */
  readonly version: string;
  run(spec: LoadSpec): Promise<LoadResult>;
  /** Process ids of a run in progress are not counted; nothing to expose. */
}
