// The JavaScript side of the router's native request path (native/fastpath, native/src/
// fast_backend.cc). The common request is served in C++ inside uWS's handler; this thread
// gives it the router's settings and the access log's descriptor (it writes the same lines
// itself), and reads what it finished in batches into the counters the JavaScript path
// feeds (one crossing per batch, not per request).
import { binding } from "../../native/index.js";
import { UpstreamError } from "../../native/upstream.js";
import { failureClasses, Upstream } from "../errors.js";
import type { ProxyContext } from "./context.js";
import { kindOf } from "./native-exchange.js";

/** The addon's FastBackend object (native/src/fast_backend.cc). */
interface FastBackend {
  /** Its address, for uWS app.kilnAny(). */
  address(): bigint;
  /** Records since the last call (layout in fast_backend.cc), or null. */
  take(): Buffer | null;
  inFlight(): number;
  /** Drops cached endpoint details (after a prune). */
  invalidate(): void;
  /** Closes its upstream connections; call after the uWS app has closed. */
  close(): void;
}

type FastBackendCtor = new (tableId: number, upstreamOptions: object, settings: object) => FastBackend;

/** Records are read at least this often (the access log flushes every 250 ms). */
const readEveryMs = 100;

export class FastPath {
  private readonly backend: FastBackend;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ctx: ProxyContext,
    tableId: number,
  ) {
    const ctor = binding?.FastBackend as FastBackendCtor | undefined;
    if (typeof ctor !== "function") throw new Error("the native request path needs the built addon");
    const cfg = ctx.cfg;
    const codes = Object.values(UpstreamError);
    const kindOfCode: number[] = [];
    for (const c of codes) kindOfCode[c] = kindOf[c] ?? Upstream.BadResponse;
    for (let i = 0; i < kindOfCode.length; i++) kindOfCode[i] ??= Upstream.BadResponse;
    this.backend = new ctor(
      tableId,
      {
        connectTimeoutMs: cfg.connectTimeoutMs,
        headerTimeoutMs: cfg.responseHeaderTimeoutMs,
        bodyTimeoutMs: cfg.idleTimeoutMs,
        idleTimeoutMs: cfg.poolIdleTimeoutMs,
        maxIdle: cfg.maxIdlePerBackend,
        dropDate: true,
      },
      {
        forwardedProto: cfg.forwardedProto,
        maxHeaderBytes: cfg.maxHeaderBytes,
        maxAttempts: cfg.maxAttempts,
        failedEndpointSkipMs: cfg.failedEndpointSkipMs,
        stickyCookies: cfg.stickyCookies,
        accessLogFd: ctx.accessLog === null ? -1 : ctx.accessLog.fd,
        kindOfCode,
        classes: failureClasses.map((fc) => ({
          retriable: fc.retriable,
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
      },
    );
    this.timer = setInterval(() => this.read(), readEveryMs);
    this.timer.unref();
  }

  address(): bigint {
    return this.backend.address();
  }

  inFlight(): number {
    return this.backend.inFlight();
  }

  invalidate(): void {
    this.backend.invalidate();
  }

  /** Counts and logs what the native path finished since the last read. */
  read(): void {
    const b = this.backend.take();
    if (b === null) return;
    const counters = this.ctx.counters;
    let o = 0;
    while (o < b.length) {
      const type = b[o++];
      if (type === 1) {
        const status = b.readUInt16LE(o);
        const hostLen = b.readUInt32LE(o + 2);
        const durationMs = b.readDoubleLE(o + 6);
        const bytes = b.readDoubleLE(o + 14);
        const hostAt = o + 22;
        o = hostAt + hostLen;
        counters.request(b.toString("utf8", hostAt, o), status, durationMs / 1000, bytes);
        counters.native++;
      } else if (type === 2) {
        counters.upstreamError(b[o++] as number);
      } else if (type === 3) {
        counters.retries++;
      } else break;
    }
  }

  /** After the uWS app has closed: the last records read, upstream connections closed. */
  close(): void {
    clearInterval(this.timer);
    this.read();
    this.backend.close();
  }
}
