// The part of autocannon's programmatic API Kiln uses (`kiln bench`, and bench/lib/loadgen for
// the project's own benchmarks); the package ships no types.
declare module "autocannon" {
  import type { EventEmitter } from "node:events";

  interface AutocannonRequest {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
  }
  interface AutocannonOptions {
    url: string;
    connections?: number;
    workers?: number | undefined;
    duration?: number;
    timeout?: number;
    overallRate?: number | undefined;
    method?: string;
    body?: string | undefined;
    headers?: Record<string, string>;
    requests?: AutocannonRequest[];
  }
  interface Histogram {
    average: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
  }
  interface AutocannonResult {
    duration: number;
    /** Connection errors and timeouts together. */
    errors: number;
    timeouts: number;
    non2xx: number;
    "1xx": number;
    "2xx": number;
    "3xx": number;
    "4xx": number;
    "5xx": number;
    statusCodeStats: Record<string, { count: number }>;
    requests: Histogram & { total: number };
    latency: Histogram;
    throughput: Histogram & { total: number };
  }
  /** A running load: events `response` (client, status, bytes, ms) and `reqError` (error), and a promise. */
  interface Instance extends EventEmitter, PromiseLike<AutocannonResult> {
    stop(): void;
  }
  function autocannon(opts: AutocannonOptions): Instance;
  export default autocannon;
}
