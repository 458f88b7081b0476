// One client request forwarded to a backend: connects or reuses a pooled connection,
// writes the head in one buffer, streams the body both ways with backpressure
// (uWS onData/onWritable <-> socket pause/resume), retries another endpoint while no
// body byte has left, and turns upstream failures into coded 502/504 answers.

import { SelectError } from "../../native/types.js";
import { failureClasses, type Refusal, Upstream } from "../errors.js";
import {
  defaultVcapAttributes,
  setCookieAttributes,
  setCookieName,
  VCAP_COOKIE,
  vcapCookie,
} from "../handlers/sticky.js";
import type { HttpResponse } from "../uws.js";
import type { EndpointEntry } from "./context.js";
import { ExchangeBase, ReqBody } from "./exchange-base.js";
import type { ConnOwner, UpConn } from "./pool.js";
import {
  CHUNKED_ERROR,
  CHUNKED_MORE,
  ChunkedDecoder,
  type ChunkSink,
  HEAD_INCOMPLETE,
  HEAD_MALFORMED,
  MAX_RESPONSE_HEAD,
  parseResponseHead,
  ResponseHead,
  relayedHeader,
} from "./response-head.js";

export { ReqBody };

const P_CONNECTING = 0;
const P_SENT = 1;
const P_BODY = 2;
const P_DONE = 3;

const M_NONE = 0;
const M_LENGTH = 1;
const M_CHUNKED = 2;
const M_CLOSE = 3;

/** Client body bytes held while no backend connection is ready; above this the client is paused. */
const maxPendingBody = 256 * 1024;

const CHUNK_END = Buffer.from("0\r\n\r\n");
const CRLF = Buffer.from("\r\n");

// Trampolines for res.cork: uWS runs the callback synchronously, so a module-level
// "current" pair avoids allocating a closure per response write.
let corkEx: Exchange | null = null;
let corkBuf: Buffer | null = null;
let corked = false;
function corkedData(): void {
  corked = true;
  (corkEx as Exchange).handleUpstreamData(corkBuf as Buffer);
  corked = false;
}
function corkedRefusal(): void {
  corked = true;
  (corkEx as Exchange).writeRefusal();
  corked = false;
}

const discard: ChunkSink = { onBodyPiece() {} };

export class Exchange extends ExchangeBase implements ConnOwner, ChunkSink {
  // Request.
  private pending: Buffer[] | null = null;
  private pendingBytes = 0;
  private bodySent = 0;
  private clientPaused = false;
  // Upstream.
  private conn: UpConn | null = null;
  private attempts = 1;
  private headWritten = false;
  private phase = P_CONNECTING;
  /** Date.now() by which the response head must be in; 0 until the whole request has gone. */
  private headDeadline = 0;
  // Response.
  private readonly head = new ResponseHead();
  private headBuf: Buffer | null = null;
  private mode = M_NONE;
  private remaining = 0;
  private total = 0;
  private decoder: ChunkedDecoder | null = null;
  private keepConn = true;
  private stash: Buffer | null = null;
  private stashOffset = 0;
  private upstreamPaused = false;
  private writableHooked = false;

  readonly onAbortedBound = (): void => this.onAborted();
  readonly onDataBound = (ab: ArrayBuffer, isLast: boolean): void => this.onClientData(ab, isLast);

  dataHandler(): (ab: ArrayBuffer, isLast: boolean) => void {
    return this.onDataBound;
  }
  private readonly onWritableBound = (offset: number): boolean => this.onWritable(offset);

  /** Starts the first attempt (called from the uWS handler after onAborted/onData are set). */
  start(): void {
    this.connect();
  }

  private connect(): void {
    const ep = this.via ?? this.ctx.endpoint(this.handle);
    if (ep === null) {
      this.fail(Upstream.ConnectError);
      return;
    }
    this.ep = ep;
    this.phase = P_CONNECTING;
    this.headWritten = false;
    const conn = ep.pool.acquire(this);
    this.conn = conn;
    if (conn.connected) this.sendHead(conn);
  }

  onConnected(conn: UpConn): void {
    if (conn !== this.conn) return;
    this.sendHead(conn);
  }

  private sendHead(conn: UpConn): void {
    const sock = conn.socket;
    const ep = this.ep as EndpointEntry;
    const text = `${this.headText}${ep.headerBlock}\r\n`;
    this.headWritten = true;
    this.phase = P_SENT;
    const pending = this.pending;
    if (pending === null) {
      sock.write(text);
    } else {
      this.pending = null;
      this.pendingBytes = 0;
      sock.cork();
      sock.write(text);
      for (let i = 0; i < pending.length; i++) this.writeBody(sock, pending[i] as Buffer);
      sock.uncork();
    }
    if (this.reqEnded) {
      if (this.reqBody === ReqBody.Chunked) sock.write(CHUNK_END);
      this.startHeadTimer(sock);
    } else {
      this.headDeadline = 0;
      sock.setTimeout(this.ctx.cfg.idleTimeoutMs);
    }
    if (this.clientPaused && this.res !== null && sock.writableLength === 0) {
      this.clientPaused = false;
      this.res.resume();
    }
  }

  /** The whole request has gone: the response head is due within the response timeout from now. */
  private startHeadTimer(sock: UpConn["socket"]): void {
    const ms = this.ctx.cfg.responseHeaderTimeoutMs;
    this.headDeadline = Date.now() + ms;
    sock.setTimeout(ms);
  }

  /**
   * Part of the head (or a 1xx answer) arrived. The socket's timer counts inactivity and has
   * just restarted, so it is cut to what is left of the deadline: a backend trickling its
   * head a byte at a time still gets its 504 on time, as on the native client.
   */
  private holdHeadDeadline(): void {
    if (this.headDeadline === 0) return;
    const left = this.headDeadline - Date.now();
    if (left <= 0) {
      this.fail(Upstream.ResponseTimeout);
      return;
    }
    (this.conn as UpConn).socket.setTimeout(left);
  }

  private writeBody(sock: UpConn["socket"], chunk: Buffer): void {
    this.bodySent += chunk.length;
    let ok: boolean;
    if (this.reqBody === ReqBody.Chunked) {
      sock.write(`${chunk.length.toString(16)}\r\n`);
      sock.write(chunk);
      ok = sock.write(CRLF);
    } else ok = sock.write(chunk);
    if (!ok && !this.clientPaused && this.res !== null) {
      this.clientPaused = true;
      this.res.pause();
    }
  }

  private onClientData(ab: ArrayBuffer, isLast: boolean): void {
    if (this.finished || this.reqEnded) return;
    if (ab.byteLength > 0) {
      // uWS neuters the ArrayBuffer when this returns: copy it.
      const chunk = Buffer.from(ab.slice(0));
      const conn = this.conn;
      if (this.headWritten && conn !== null) this.writeBody(conn.socket, chunk);
      else if (this.phase !== P_DONE) {
        if (this.pending === null) this.pending = [];
        this.pending.push(chunk);
        this.pendingBytes += chunk.length;
        if (this.pendingBytes > maxPendingBody && !this.clientPaused && this.res !== null) {
          this.clientPaused = true;
          this.res.pause();
        }
      }
    }
    if (isLast) {
      this.reqEnded = true;
      const conn = this.conn;
      if (this.headWritten && conn !== null) {
        if (this.reqBody === ReqBody.Chunked) conn.socket.write(CHUNK_END);
        if (this.phase === P_SENT) this.startHeadTimer(conn.socket);
      }
    }
  }

  onUpstreamDrain(conn: UpConn): void {
    if (conn !== this.conn) return;
    if (this.clientPaused && this.res !== null) {
      this.clientPaused = false;
      this.res.resume();
    }
  }

  onUpstreamData(conn: UpConn, data: Buffer): void {
    if (conn !== this.conn || this.res === null) return;
    if (corked) {
      this.handleUpstreamData(data);
      return;
    }
    corkEx = this;
    corkBuf = data;
    this.res.cork(corkedData);
    corkEx = null;
    corkBuf = null;
  }

  /** Runs corked: parses the response head, then relays body bytes. */
  handleUpstreamData(data: Buffer): void {
    let buf = data;
    if (this.phase === P_SENT) {
      if (this.headBuf !== null) {
        buf = Buffer.concat([this.headBuf, data]);
        this.headBuf = null;
      }
      for (;;) {
        const n = parseResponseHead(buf, this.head);
        if (n === HEAD_INCOMPLETE) {
          if (buf.length > MAX_RESPONSE_HEAD) this.fail(Upstream.BadResponse);
          else {
            this.headBuf = buf;
            this.holdHeadDeadline();
          }
          return;
        }
        if (n === HEAD_MALFORMED || n > MAX_RESPONSE_HEAD) {
          this.fail(Upstream.BadResponse);
          return;
        }
        buf = buf.subarray(n);
        const st = this.head.status;
        if (st >= 200) break;
        if (st === 101) {
          this.fail(Upstream.BadResponse);
          return;
        }
        // 1xx interim answers (100 Continue, 103 Early Hints): uWS already told the client to go on.
        if (buf.length === 0) {
          this.holdHeadDeadline();
          return;
        }
      }
      if (this.head.chunked && !this.chunkedFramingHolds(buf)) {
        this.fail(Upstream.BadResponse);
        return;
      }
      this.startResponse();
      // The body's inactivity timer is the idle timeout, not the head's (a stream may pause
      // longer than that); a body that is all here already needs none.
      if ((this.phase as number) === P_BODY && !this.fitsInOne(buf))
        (this.conn as UpConn).socket.setTimeout(this.ctx.cfg.idleTimeoutMs);
      if ((this.phase as number) !== P_BODY || buf.length === 0) {
        if (buf.length > 0) this.keepConn = false;
        return;
      }
    } else if (this.phase !== P_BODY) {
      this.keepConn = false;
      return;
    }
    this.relayBody(buf);
  }

  /**
   * Whether the chunked body bytes that came with the head decode (a dry run): a framing
   * error among them is a 502 before the head goes out, as the native client does, which
   * decodes them before it hands the head on. Later bytes can only cut the response.
   */
  private chunkedFramingHolds(buf: Buffer): boolean {
    if (buf.length === 0 || this.isHead) return true;
    const st = this.head.status;
    if (st === 204 || st === 304) return true;
    this.decoder ??= new ChunkedDecoder();
    const r = this.decoder.decode(buf, 0, discard);
    this.decoder.reset();
    return r !== CHUNKED_ERROR;
  }

  /** Whether `buf` completes a Content-Length body (then no idle timer is needed). */
  private fitsInOne(buf: Buffer): boolean {
    return this.mode === M_LENGTH && buf.length >= this.remaining;
  }

  private startResponse(): void {
    const res = this.res as HttpResponse;
    const h = this.head;
    const ep = this.ep as EndpointEntry;
    this.status = h.status;
    this.responded = true;
    // obs-text goes out as the bytes it came as (rare: only then a Buffer per field).
    const latin1 = h.nonAscii;
    res.writeStatus(latin1 ? Buffer.from(h.statusLine, "latin1") : h.statusLine);
    const sticky = this.ctx.cfg.stickyCookies;
    let sessionAttrs: string | null = null;
    let vcapSet = false;
    const names = h.names;
    const lower = h.lower;
    const values = h.values;
    for (let i = 0; i < names.length; i++) {
      const l = lower[i] as string;
      if (!relayedHeader(h, l)) continue;
      if (l === "set-cookie") {
        const v = values[i] as string;
        const name = setCookieName(v);
        if (name === VCAP_COOKIE) vcapSet = true;
        else if (sticky.includes(name)) sessionAttrs = setCookieAttributes(v);
      }
      const v = values[i] as string;
      res.writeHeader(names[i] as string, latin1 ? Buffer.from(v, "latin1") : v);
    }
    const id = ep.info.instanceId;
    if (!vcapSet && id !== "") {
      if (sessionAttrs !== null) res.writeHeader("Set-Cookie", vcapCookie(id, sessionAttrs));
      else if (this.stickyId !== "" && this.stickyId !== id)
        res.writeHeader("Set-Cookie", vcapCookie(id, defaultVcapAttributes));
    }
    this.keepConn = !h.close;
    const st = h.status;
    if (this.isHead || st === 204 || st === 304) {
      this.mode = M_NONE;
      if (this.isHead && h.contentLength >= 0) res.endWithoutBody(h.contentLength);
      else res.endWithoutBody();
      this.upstreamDone();
      this.clientDone();
    } else if (h.chunked) {
      this.mode = M_CHUNKED;
      this.decoder ??= new ChunkedDecoder();
      this.phase = P_BODY;
    } else if (h.contentLength >= 0) {
      this.mode = M_LENGTH;
      this.remaining = h.contentLength;
      this.total = h.contentLength;
      if (this.total === 0) {
        res.end();
        this.upstreamDone();
        this.clientDone();
      } else this.phase = P_BODY;
    } else {
      this.mode = M_CLOSE;
      this.keepConn = false;
      this.phase = P_BODY;
    }
  }

  private relayBody(buf: Buffer): void {
    const res = this.res as HttpResponse;
    switch (this.mode) {
      case M_LENGTH: {
        let piece = buf;
        if (buf.length > this.remaining) {
          piece = buf.subarray(0, this.remaining);
          this.keepConn = false;
        }
        this.remaining -= piece.length;
        const before = res.getWriteOffset();
        const [ok, done] = res.tryEnd(piece, this.total);
        this.bytesOut += piece.length;
        if (this.remaining === 0) this.upstreamDone();
        if (done) this.clientDone();
        else if (!ok) {
          this.stash = piece;
          this.stashOffset = before;
          this.pauseUpstream();
          this.hookWritable();
        }
        return;
      }
      case M_CHUNKED: {
        const r = (this.decoder as ChunkedDecoder).decode(buf, 0, this);
        if (r === CHUNKED_MORE) return;
        if (r === CHUNKED_ERROR) {
          this.interrupt(Upstream.BadResponse);
          return;
        }
        if (r < buf.length) this.keepConn = false;
        res.end();
        this.upstreamDone();
        this.clientDone();
        return;
      }
      case M_CLOSE:
        this.onBodyPiece(buf);
        return;
    }
  }

  /** A decoded body piece (chunked or close-delimited): uWS re-chunks it for the client. */
  onBodyPiece(piece: Buffer): void {
    if (this.res === null || piece.length === 0) return;
    this.bytesOut += piece.length;
    if (!this.res.write(piece)) {
      this.pauseUpstream();
      this.hookWritable();
    }
  }

  private pauseUpstream(): void {
    const conn = this.conn;
    if (conn !== null && !this.upstreamPaused) {
      this.upstreamPaused = true;
      conn.socket.pause();
    }
  }

  private resumeUpstream(): void {
    const conn = this.conn;
    if (this.upstreamPaused) {
      this.upstreamPaused = false;
      if (conn !== null) conn.socket.resume();
    }
  }

  private hookWritable(): void {
    if (this.writableHooked || this.res === null) return;
    this.writableHooked = true;
    this.res.onWritable(this.onWritableBound);
  }

  private onWritable(offset: number): boolean {
    const res = this.res;
    if (res === null) return true;
    const stash = this.stash;
    if (stash === null) {
      this.resumeUpstream();
      return true;
    }
    const [ok, done] = res.tryEnd(stash.subarray(offset - this.stashOffset), this.total);
    if (done) {
      this.stash = null;
      this.clientDone();
    } else if (ok) {
      this.stash = null;
      this.resumeUpstream();
    }
    return ok;
  }

  /** The backend finished its response: give the connection back (or close it). */
  private upstreamDone(): void {
    this.phase = P_DONE;
    const conn = this.conn;
    if (conn === null) return;
    this.conn = null;
    if (this.upstreamPaused) {
      this.upstreamPaused = false;
      conn.socket.resume();
    }
    conn.pool.release(conn, this.keepConn && this.reqEnded);
  }

  onUpstreamClose(conn: UpConn, errno: string | undefined): void {
    if (conn !== this.conn) return;
    this.conn = null;
    switch (this.phase) {
      case P_CONNECTING:
        this.fail(
          conn.connected
            ? conn.reused
              ? Upstream.StaleConnection
              : Upstream.BackendClosed
            : errno === "ECONNREFUSED"
              ? Upstream.ConnectRefused
              : errno === "ETIMEDOUT"
                ? Upstream.ConnectTimeout
                : Upstream.ConnectError,
        );
        return;
      case P_SENT:
        this.fail(
          this.headBuf === null && conn.reused && this.bodySent === 0
            ? Upstream.StaleConnection
            : this.headBuf === null
              ? Upstream.BackendClosed
              : Upstream.BadResponse,
        );
        return;
      case P_BODY:
        if (this.mode === M_CLOSE && this.res !== null) {
          this.phase = P_DONE;
          const res = this.res;
          if (corked) res.end();
          else res.cork(() => res.end());
          this.clientDone();
        } else this.interrupt(Upstream.BodyInterrupted);
        return;
    }
  }

  onUpstreamTimeout(conn: UpConn): void {
    if (conn !== this.conn) return;
    this.conn = null;
    conn.owner = null;
    conn.destroy();
    if (this.phase === P_CONNECTING)
      this.fail(conn.connected ? Upstream.BackendClosed : Upstream.ConnectTimeout);
    else if (this.phase === P_SENT) this.fail(Upstream.ResponseTimeout);
    else this.interrupt(Upstream.BodyInterrupted);
  }

  /** A failure before the response began: retry elsewhere when allowed, else answer 502/504. */
  private fail(kind: number): void {
    const fc =
      failureClasses[kind] ?? (failureClasses[Upstream.BadResponse] as (typeof failureClasses)[number]);
    const ctx = this.ctx;
    ctx.counters.upstreamError(kind);
    const conn = this.conn;
    if (conn !== null) {
      this.conn = null;
      conn.owner = null;
      conn.destroy();
    }
    if (this.res === null || this.finished) return;
    const now = Date.now();
    if (fc.markFailed && this.handle >= 0)
      ctx.table.markFailed(this.handle, now + ctx.cfg.failedEndpointSkipMs);
    if (
      fc.retriable &&
      (!fc.idempotentOnly || this.replaySafe) &&
      this.bodySent === 0 &&
      !this.pinned &&
      this.via === null &&
      this.attempts < ctx.cfg.maxAttempts
    ) {
      this.attempts++;
      const failed = this.handle;
      if (failed >= 0) ctx.table.release(failed);
      // Like gorouter, the sticky instance is asked for on the first attempt only.
      this.handle = ctx.table.select(this.host, this.path, "", this.hashKey, now, this.routeServiceDone);
      // When every endpoint failed the balancer still offers one; trying the same dead one again is pointless.
      if (this.handle >= 0 && this.handle === failed && fc.markFailed) {
        this.respondRefusal(fc.refusal);
        return;
      }
      if (this.handle >= 0) {
        ctx.counters.retries++; // counted only when another attempt goes out
        this.headBuf = null;
        this.connect();
        return;
      }
    }
    this.respondRefusal(fc.refusal);
  }

  /** A failure after the response head went out: the client connection is cut. */
  private interrupt(kind: number): void {
    this.ctx.counters.upstreamError(kind);
    const conn = this.conn;
    if (conn !== null) {
      this.conn = null;
      conn.owner = null;
      conn.destroy();
    }
    const res = this.res;
    if (res === null) return;
    this.res = null;
    res.close();
    this.finish(this.status);
  }

  /** Answers with one of the router's own errors (status, X-Kiln-Router-Error, short body). */
  respondRefusal(r: Refusal): void {
    const res = this.res;
    if (res === null) return;
    if (this.responded) {
      this.interrupt(Upstream.BodyInterrupted);
      return;
    }
    this.refusal = r;
    if (corked) this.writeRefusal();
    else {
      corkEx = this;
      res.cork(corkedRefusal);
      corkEx = null;
    }
  }

  private onAborted(): void {
    this.res = null;
    const conn = this.conn;
    if (conn !== null) {
      this.conn = null;
      conn.owner = null;
      conn.destroy();
      this.ctx.counters.upstreamError(Upstream.ClientAborted);
    }
    this.finish(0);
  }

  protected override finish(status: number): void {
    this.pending = null;
    super.finish(status);
  }
}

/** Maps a negative select result to the router's answer. */
export function refusalFor(
  result: number,
  refusals: {
    noRoute: Refusal;
    noEndpoints: Refusal;
    backendFull: Refusal;
    unknownInstance: Refusal;
  },
): Refusal {
  switch (result) {
    case SelectError.NoRoute:
      return refusals.noRoute;
    case SelectError.AllFull:
      return refusals.backendFull;
    case SelectError.UnknownInstance:
      return refusals.unknownInstance;
    default:
      return refusals.noEndpoints;
  }
}
