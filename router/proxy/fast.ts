// The JavaScript side of the router's native request path (native/fastpath, native/src/
// fast_backend.cc). The common request is served in C++ inside uWS's handler; this thread
// gives it the router's settings and the access log's descriptor (it writes the same lines
// itself), and every second, and whenever /metrics asks, adds what it counted (as
// WorkerCounters counts) into this worker's counters: one crossing and work per host seen,
// none per request.
import { binding } from "../../native/index.js";
import { flushEveryMs } from "../access-log.js";
import { failureClasses, Upstream } from "../errors.js";
import { latencyBuckets } from "../metrics/counters.js";
import type { ProxyContext } from "./context.js";
import { kindOf, nativeUpstreamOptions } from "./native-exchange.js";

/** The addon's FastBackend object (native/src/fast_backend.cc). */
interface FastBackend {
  /** Its address, for uWS app.kilnAny(). */
  address(): bigint;
  /** Writes the counts since the last call into `dst`: their bytes, 0 for none, -needed when dst is too small. */
  take(dst: Buffer): number;
  inFlight(): number;
  /** Drops cached endpoint details (after a prune). */
  invalidate(): void;
  /** Writes the access log lines buffered on the native side. */
  flushLog(): void;
  /** Access log lines the native side dropped because the target would not take them. */
  accessLogDropped(): number;
  /** Closes its upstream connections; call after the uWS app has closed. */
  close(): void;
}

type FastBackendCtor = new (tableId: number, upstreamOptions: object, settings: object) => FastBackend;

/**
 * Counts are read this often, and also right before every /metrics snapshot (worker.ts), so
 * a scrape never sees stale counts. A read costs work per host counted since the last one:
 * with 1000 hosts requested, reading every 100 ms was 20k host merges a second across two
 * workers, about 0.2 µs per request (perf: the merge's Map lookups and host strings).
 */
const readEveryMs = 1000;

export class FastPath {
  private readonly backend: FastBackend;
  private readonly timer: NodeJS.Timeout;
  /** Flushes the native side's access log lines as often as the JavaScript path flushes its own. */
  private readonly logTimer: NodeJS.Timeout | null;
  /**
   * Counts are read into this buffer, grown when a read needs more and kept. It starts
   * smaller than any read, so the growing path runs in every router test too.
   */
  private buf = Buffer.allocUnsafe(256);

  constructor(
    private readonly ctx: ProxyContext,
    tableId: number,
  ) {
    const ctor = binding?.FastBackend as FastBackendCtor | undefined;
    if (typeof ctor !== "function") throw new Error("the native request path needs the built addon");
    const cfg = ctx.cfg;
    // Not transientBodies: that mode hands bodies to JavaScript, and this client's go to C++.
    this.backend = new ctor(tableId, nativeUpstreamOptions(cfg), {
      forwardedProto: cfg.forwardedProto,
      trustedProxies: ctx.trustedNets,
      maxHeaderBytes: cfg.maxHeaderBytes,
      maxAttempts: cfg.maxAttempts,
      latencyBuckets,
      // Hosts whose counts are kept between reads (those not seen since the last read are
      // dropped past this). Tests lower it to exercise the dropping.
      maxHosts: Number(process.env.KILN_ROUTER_FAST_MAX_HOSTS ?? 10_000),
      failedEndpointSkipMs: cfg.failedEndpointSkipMs,
      stickyCookies: cfg.stickyCookies,
      accessLogFd: ctx.accessLog === null ? -1 : ctx.accessLog.fd,
      // Codes without a kind (holes) are read as bad_response on the native side, as here.
      kindOfCode: kindOf,
      classes: failureClasses.map((fc) => ({
        retriable: fc.retriable,
        idempotentOnly: fc.idempotentOnly,
        markFailed: fc.markFailed,
        status: fc.refusal.status,
        cause: fc.refusal.cause,
        body: fc.refusal.body,
      })),
      kindResponseTimeout: Upstream.ResponseTimeout,
      kindBodyInterrupted: Upstream.BodyInterrupted,
      kindClientAborted: Upstream.ClientAborted,
      kindConnectError: Upstream.ConnectError,
      kindBadResponse: Upstream.BadResponse,
    });
    this.timer = setInterval(() => this.read(), readEveryMs);
    this.timer.unref();
    this.logTimer = ctx.accessLog === null ? null : setInterval(() => this.backend.flushLog(), flushEveryMs);
    this.logTimer?.unref();
  }

  address(): bigint {
    return this.backend.address();
  }

  inFlight(): number {
    return this.backend.inFlight();
  }

  /** Access log lines this worker's native path dropped (the target would not take them). */
  accessLogDropped(): number {
    return this.backend.accessLogDropped();
  }

  invalidate(): void {
    this.backend.invalidate();
  }

  /** Adds what the native path counted since the last read to this worker's counters. */
  read(): void {
    let n = this.backend.take(this.buf);
    if (n < 0) {
      this.buf = Buffer.allocUnsafe(-n * 2);
      n = this.backend.take(this.buf);
    }
    if (n > 0) this.apply(this.buf);
  }

  /** Layout: native/src/fast_backend.cc (take). */
  private apply(b: Buffer): void {
    const c = this.ctx.counters;
    let o = 0;
    const f64 = (): number => {
      const v = b.readDoubleLE(o);
      o += 8;
      return v;
    };
    c.native += f64();
    c.retries += f64();
    c.resent(f64());
    c.latencySum += f64();
    c.latencyCount += f64();
    c.bytesOut += f64();
    addInto(c.statusClass, 6, f64);
    addInto(c.latency, c.latency.length, f64);
    const kinds = f64();
    for (let k = 0; k < kinds; k++) {
      const v = f64();
      if (v > 0) c.upstreamErrors[k] = (c.upstreamErrors[k] ?? 0) + v;
    }
    const hosts = f64();
    for (let h = 0; h < hosts; h++) {
      const len = b.readUInt32LE(o);
      const host = b.toString("utf8", o + 4, o + 4 + len);
      o += 4 + len;
      addInto(c.route(host), 6, f64);
    }
  }

  /** After the uWS app has closed: the last counts read, upstream connections closed. */
  close(): void {
    clearInterval(this.timer);
    if (this.logTimer !== null) clearInterval(this.logTimer);
    this.read();
    this.backend.close();
  }
}

function addInto(into: number[], n: number, next: () => number): void {
  for (let i = 0; i < n; i++) into[i] = (into[i] ?? 0) + next();
}
