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
  /** Moves whole records (layout in fast_backend.cc) into `dst`; returns their bytes, 0 when none are left. */
  take(dst: Buffer): number;
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
  /** Records are read into this one buffer (no allocation per read). */
  private readonly buf = Buffer.allocUnsafe(256 * 1024);
  /** Host names by the ids the native side gave them (records name hosts by id). */
  private readonly hosts: string[] = [];

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
        // Hosts named by id at a time (the native side forgets them all past this; the
        // metrics keep their own label limit). Lowered by tests to exercise the forgetting.
        maxHostIds: Number(process.env.KILN_ROUTER_FAST_MAX_HOST_IDS ?? 10_000),
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

  /** Counts what the native path finished since the last read. */
  read(): void {
    const b = this.buf;
    for (;;) {
      const n = this.backend.take(b);
      if (n === 0) return;
      this.apply(b, n);
    }
  }

  private apply(b: Buffer, n: number): void {
    const counters = this.ctx.counters;
    const hosts = this.hosts;
    let o = 0;
    while (o < n) {
      const type = b[o++];
      if (type === 1) {
        const label = hosts[b.readUInt32LE(o + 2)] ?? "";
        counters.request(label, b.readUInt16LE(o), b.readDoubleLE(o + 6) / 1000, b.readDoubleLE(o + 14));
        counters.native++;
        o += 22;
      } else if (type === 2) {
        counters.upstreamError(b[o++] as number);
      } else if (type === 3) {
        counters.retries++;
      } else if (type === 4) {
        const id = b.readUInt32LE(o);
        const len = b.readUInt32LE(o + 4);
        hosts[id] = b.toString("utf8", o + 8, o + 8 + len);
        o += 8 + len;
      } else if (type === 5) {
        hosts.length = 0;
      } else return;
    }
  }

  /** After the uWS app has closed: the last records read, upstream connections closed. */
  close(): void {
    clearInterval(this.timer);
    this.read();
    this.backend.close();
  }
}
