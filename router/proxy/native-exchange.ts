// One client request forwarded through the native upstream client (native/upstream.ts:
// keep-alive pools and response parsing in C++ on this thread's libuv loop). One call
// starts the request, one callback usually delivers the whole small response; the JS
// client in exchange.ts is used when the addon is not built (or --upstream js).

import {
  createUpstream,
  type Upstream as NativeUpstream,
  RequestFlag,
  RequestIds,
  ResponseFlag,
  UpstreamError,
  type UpstreamOptions,
} from "../../native/upstream.js";
import type { RouterConfig } from "../config.js";
import { failureClasses, type Refusal, Upstream } from "../errors.js";
import {
  defaultVcapAttributes,
  setCookieAttributes,
  setCookieName,
  VCAP_COOKIE,
  vcapCookie,
} from "../handlers/sticky.js";
import type { WorkerCounters } from "../metrics/counters.js";
import type { HttpResponse } from "../uws.js";
import type { EndpointEntry, ProxyContext } from "./context.js";
import { ExchangeBase, ReqBody } from "./exchange-base.js";

/** Native failure code → the router's failure kind (index into failureClasses). */
export const kindOf: number[] = [];
kindOf[UpstreamError.CONNECT_REFUSED] = Upstream.ConnectRefused;
kindOf[UpstreamError.CONNECT_TIMEOUT] = Upstream.ConnectTimeout;
kindOf[UpstreamError.CONNECT_FAILED] = Upstream.ConnectError;
kindOf[UpstreamError.SEND_FAILED] = Upstream.StaleConnection;
kindOf[UpstreamError.STALE_CONNECTION] = Upstream.StaleConnection;
kindOf[UpstreamError.CLOSED_BEFORE_RESPONSE] = Upstream.BackendClosed;
kindOf[UpstreamError.RESPONSE_TIMEOUT] = Upstream.ResponseTimeout;
kindOf[UpstreamError.BAD_RESPONSE] = Upstream.BadResponse;
kindOf[UpstreamError.RESPONSE_TRUNCATED] = Upstream.BodyInterrupted;
kindOf[UpstreamError.POOL_FULL] = Upstream.ConnectError;
kindOf[UpstreamError.BAD_ADDRESS] = Upstream.ConnectError;
kindOf[UpstreamError.CLOSED] = Upstream.ConnectError;

const EMPTY = new Uint8Array(0);
/** Request bodies up to this size are kept until the response starts, so they can be retried. */
const maxReplay = 64 * 1024;

// Trampolines for res.cork (uWS runs the callback synchronously): no closure per response.
let cEx: NativeExchange | null = null;
let cStatus = 0;
let cHead = "";
let cBody: Uint8Array | null = null;
let cFlags = 0;
let cLength = 0;
let cLast = false;
function corkedResponse(): void {
  (cEx as NativeExchange).writeResponse(cStatus, cHead, cBody, cFlags, cLength);
}
function corkedData(): void {
  (cEx as NativeExchange).writeData(cBody, cLast);
}
function corkedRefusal(): void {
  (cEx as NativeExchange).writeRefusal();
}

/**
 * The head as uWS must write it: with obs-text (NON_ASCII) its latin1 string goes as those
 * bytes, since uWS would send the characters as UTF-8. Rare, so the copy is fine.
 */
function headBytes(head: string, flags: number): string | Buffer {
  return (flags & ResponseFlag.NON_ASCII) !== 0 ? Buffer.from(head, "latin1") : head;
}

/** The native client's options from the router's settings (the native request path's client too). */
export function nativeUpstreamOptions(cfg: RouterConfig): UpstreamOptions {
  return {
    connectTimeoutMs: cfg.connectTimeoutMs,
    headerTimeoutMs: cfg.responseHeaderTimeoutMs,
    bodyTimeoutMs: cfg.idleTimeoutMs,
    idleTimeoutMs: cfg.poolIdleTimeoutMs,
    maxIdle: cfg.maxIdlePerBackend,
    dropDate: true,
  };
}

/** The native client of one worker thread and the exchanges it carries, by request id. */
export class NativeSide {
  readonly up: NativeUpstream;
  readonly ids = new RequestIds();
  readonly slots: (NativeExchange | undefined)[] = [];
  private resentCounted = 0;

  constructor(ctx: ProxyContext) {
    this.up = createUpstream(
      { ...nativeUpstreamOptions(ctx.cfg), transientBodies: true },
      {
        onResponse: (id, status, head, body, flags, length) =>
          this.slots[id]?.onResponse(status, head, body, flags, length),
        onData: (id, chunk, last) => this.slots[id]?.onData(chunk, last),
        onError: (id, code) => this.slots[id]?.onError(code),
        onDrain: (id) => this.slots[id]?.onDrain(),
      },
    );
  }

  /** Adds the client's own resends since the last call to `counters` (no event tells of them). */
  countResent(counters: WorkerCounters): void {
    const n = this.up.stats().resent - this.resentCounted;
    this.resentCounted += n;
    if (n > 0) counters.resent(n);
  }

  acquire(ex: NativeExchange): number {
    const id = this.ids.acquire();
    this.slots[id] = ex;
    return id;
  }

  release(id: number): void {
    this.slots[id] = undefined;
    this.ids.release(id);
  }
}

export class NativeExchange extends ExchangeBase {
  /** This worker's native client (the worker sets ctx.native before any request). */
  private readonly side = this.ctx.native as NativeSide;
  private id = -1;
  private attempts = 1;
  private bodyStarted = false;
  /** Copies of the body so far while it is small, so a connect failure can go to another endpoint. */
  private replay: Buffer[] | null = this.reqBody === ReqBody.None ? null : [];
  private replayBytes = 0;
  private clientPaused = false;
  private total = -1;
  private stash: Buffer | null = null;
  private stashOffset = 0;
  private upstreamPaused = false;
  private writableHooked = false;

  readonly onAbortedBound = (): void => this.onAborted();

  /** The uWS onData handler; made only for requests with a body. */
  dataHandler(): (ab: ArrayBuffer, isLast: boolean) => void {
    return (ab, isLast) => this.onClientData(ab, isLast);
  }

  start(): void {
    const ep = this.via ?? this.ctx.endpoint(this.handle);
    if (ep === null) {
      this.fail(Upstream.ConnectError);
      return;
    }
    this.ep = ep;
    let head = this.headText + ep.headerBlock;
    let flags = this.isHead ? RequestFlag.HEAD : 0;
    // The head declares the framing already (worker.ts framingLine); the client frames the chunks.
    if (this.reqBody === ReqBody.Chunked) flags |= RequestFlag.CHUNKED;
    const replay = this.replay;
    const replaying = replay !== null && replay.length > 0;
    if (this.reqEnded && !replaying) flags |= RequestFlag.END;
    head += "\r\n";
    const side = this.side;
    const id = side.acquire(this);
    this.id = id;
    const code = side.up.request(id, ep.info.host, ep.info.port, head, null, flags);
    if (code !== 0) {
      side.release(id);
      this.id = -1;
      this.fail(kindOf[code] ?? Upstream.ConnectError);
      return;
    }
    if (replaying) {
      // A retry: the body read so far (at most maxReplay bytes) goes again, to this endpoint.
      for (let i = 0; i < replay.length; i++) side.up.write(id, replay[i] as Buffer);
      if (this.reqEnded) side.up.end(id, null);
    }
  }

  private onClientData(ab: ArrayBuffer, isLast: boolean): void {
    if (this.finished || this.reqEnded) return;
    const id = this.id;
    if (isLast) this.reqEnded = true;
    if (id < 0) return;
    // The addon copies what it cannot send at once, so uWS's buffer can be handed over as is.
    if (ab.byteLength > 0) {
      this.bodyStarted = true;
      const replay = this.replay;
      if (replay !== null) {
        if (this.replayBytes + ab.byteLength <= maxReplay) {
          replay.push(Buffer.from(ab.slice(0)));
          this.replayBytes += ab.byteLength;
        } else this.replay = null;
      }
    }
    if (isLast) {
      this.side.up.end(id, ab.byteLength > 0 ? ab : null);
      return;
    }
    if (ab.byteLength > 0 && !this.side.up.write(id, ab) && !this.clientPaused && this.res !== null) {
      this.clientPaused = true;
      this.res.pause();
    }
  }

  onDrain(): void {
    if (this.clientPaused && this.res !== null) {
      this.clientPaused = false;
      this.res.resume();
    }
  }

  onResponse(status: number, head: string, body: Uint8Array | null, flags: number, length: number): void {
    this.replay = null;
    const res = this.res;
    if (res === null) return;
    if ((flags & ResponseFlag.COMPLETE) !== 0 || (flags & ResponseFlag.NO_BODY) !== 0) this.releaseId();
    // The common case, a whole response with no sticky cookie to add: one call, corked in C++.
    if (
      (flags & (ResponseFlag.COMPLETE | ResponseFlag.NO_BODY)) === ResponseFlag.COMPLETE &&
      !this.needsStickyCookie(flags)
    ) {
      const b = body ?? EMPTY;
      this.status = status;
      this.responded = true;
      res.endWhole(headBytes(head, flags), b);
      this.bytesOut = b.length;
      this.clientDone();
      return;
    }
    cEx = this;
    cStatus = status;
    cHead = head;
    cBody = body;
    cFlags = flags;
    cLength = length;
    res.cork(corkedResponse);
    cEx = null;
    cBody = null;
  }

  writeResponse(status: number, head: string, body: Uint8Array | null, flags: number, length: number): void {
    const res = this.res as HttpResponse;
    this.status = status;
    this.responded = true;
    res.writeStatus(headBytes(head, flags));
    if (this.needsStickyCookie(flags))
      this.stickyCookie(res, head, (this.ep as EndpointEntry).info.instanceId);
    if ((flags & ResponseFlag.NO_BODY) !== 0) {
      if (this.isHead && length >= 0) res.endWithoutBody(length);
      else res.endWithoutBody();
      this.clientDone();
      return;
    }
    if ((flags & ResponseFlag.COMPLETE) !== 0) {
      const b = body ?? EMPTY;
      res.end(b);
      this.bytesOut = b.length;
      this.clientDone();
      return;
    }
    this.total = length;
    if (body !== null && body.length > 0) this.relay(res, body);
  }

  /** Whether the response may need __VCAP_ID__ (the backend set a cookie, or the client sent a sticky id). */
  private needsStickyCookie(flags: number): boolean {
    return (
      (this.ep as EndpointEntry).info.instanceId !== "" &&
      ((flags & ResponseFlag.SET_COOKIE) !== 0 || this.stickyId !== "")
    );
  }

  /** Adds __VCAP_ID__ next to a session cookie, or replaces a stale one. */
  private stickyCookie(res: HttpResponse, head: string, id: string): void {
    let sessionAttrs: string | null = null;
    let vcapSet = false;
    if (head.length > 0) {
      const lines = head.split("\r\n");
      for (let i = 1; i < lines.length; i++) {
        const line = lines[i] as string;
        if (
          line.length < 11 ||
          line.charCodeAt(10) !== 58 ||
          line.slice(0, 10).toLowerCase() !== "set-cookie"
        )
          continue;
        const v = line.slice(11).trim();
        const name = setCookieName(v);
        if (name === VCAP_COOKIE) vcapSet = true;
        else if (this.ctx.cfg.stickyCookies.includes(name)) sessionAttrs = setCookieAttributes(v);
      }
    }
    if (vcapSet) return;
    if (sessionAttrs !== null) res.writeHeader("Set-Cookie", vcapCookie(id, sessionAttrs));
    else if (this.stickyId !== "" && this.stickyId !== id)
      res.writeHeader("Set-Cookie", vcapCookie(id, defaultVcapAttributes));
  }

  onData(chunk: Uint8Array | null, last: boolean): void {
    if (last) this.releaseId();
    const res = this.res;
    if (res === null) return;
    cEx = this;
    cBody = chunk;
    cLast = last;
    res.cork(corkedData);
    cEx = null;
    cBody = null;
  }

  writeData(chunk: Uint8Array | null, last: boolean): void {
    const res = this.res as HttpResponse;
    if (chunk !== null && chunk.length > 0) this.relay(res, chunk);
    if (last && this.total < 0 && this.res !== null) {
      res.end();
      this.clientDone();
    }
  }

  private relay(res: HttpResponse, piece: Uint8Array): void {
    this.bytesOut += piece.length;
    if (this.total >= 0) {
      const before = res.getWriteOffset();
      const [ok, done] = res.tryEnd(piece, this.total);
      if (done) this.clientDone();
      else if (!ok) {
        // The piece is a view of the addon's read buffer: keep a copy for onWritable.
        this.stash = Buffer.from(piece);
        this.stashOffset = before;
        this.pauseUpstream();
        this.hookWritable();
      }
      return;
    }
    if (!res.write(piece)) {
      this.pauseUpstream();
      this.hookWritable();
    }
  }

  private pauseUpstream(): void {
    if (!this.upstreamPaused && this.id >= 0) {
      this.upstreamPaused = true;
      this.side.up.pause(this.id);
    }
  }

  private hookWritable(): void {
    if (this.writableHooked || this.res === null) return;
    this.writableHooked = true;
    this.res.onWritable((offset) => this.onWritable(offset));
  }

  private onWritable(offset: number): boolean {
    const res = this.res;
    if (res === null) return true;
    const stash = this.stash;
    let ok = true;
    if (stash !== null) {
      const r = res.tryEnd(stash.subarray(offset - this.stashOffset), this.total);
      ok = r[0];
      if (r[1]) {
        this.stash = null;
        this.clientDone();
        return true;
      }
      if (ok) this.stash = null;
    }
    if (ok && this.upstreamPaused) {
      this.upstreamPaused = false;
      if (this.id >= 0) this.side.up.resume(this.id);
    }
    return ok;
  }

  onError(code: number): void {
    this.releaseId();
    const kind = kindOf[code] ?? Upstream.BadResponse;
    if (this.responded) this.interrupt(kind === Upstream.ResponseTimeout ? Upstream.BodyInterrupted : kind);
    else this.fail(kind);
  }

  private releaseId(): void {
    if (this.id >= 0) {
      this.side.release(this.id);
      this.id = -1;
    }
  }

  private fail(kind: number): void {
    const fc =
      failureClasses[kind] ?? (failureClasses[Upstream.BadResponse] as (typeof failureClasses)[number]);
    const ctx = this.ctx;
    ctx.counters.upstreamError(kind);
    if (this.res === null || this.finished) return;
    const now = Date.now();
    if (fc.markFailed && this.handle >= 0)
      ctx.table.markFailed(this.handle, now + ctx.cfg.failedEndpointSkipMs);
    if (
      fc.retriable &&
      (!fc.idempotentOnly || this.replaySafe) &&
      (!this.bodyStarted || this.replay !== null) &&
      !this.pinned &&
      this.via === null &&
      this.attempts < ctx.cfg.maxAttempts
    ) {
      this.attempts++;
      const failed = this.handle;
      if (failed >= 0) ctx.table.release(failed);
      // Like gorouter, the sticky instance is asked for on the first attempt only.
      this.handle = ctx.table.select(this.host, this.path, "", this.hashKey, now, this.routeServiceDone);
      if (this.handle >= 0 && !(this.handle === failed && fc.markFailed)) {
        ctx.counters.retries++; // counted only when another attempt goes out
        this.start();
        return;
      }
    }
    this.respondRefusal(fc.refusal);
  }

  private interrupt(kind: number): void {
    this.ctx.counters.upstreamError(kind);
    const res = this.res;
    if (res === null) return;
    this.res = null;
    res.close();
    this.finish(this.status);
  }

  private respondRefusal(r: Refusal): void {
    const res = this.res;
    if (res === null) return;
    this.refusal = r;
    cEx = this;
    res.cork(corkedRefusal);
    cEx = null;
  }

  private onAborted(): void {
    this.res = null;
    if (this.id >= 0) {
      this.side.up.abort(this.id);
      this.releaseId();
      this.ctx.counters.upstreamError(Upstream.ClientAborted);
    }
    this.finish(0);
  }
}
