// WebSocket pass-through: the client's upgrade is sent to the chosen backend on its own
// connection; once the backend answers 101 the client side is upgraded by uWS and
// messages flow both ways (backend side framed by ws/frames.ts), closes forwarded.
import { connect, type Socket } from "node:net";
import { SelectError } from "../../native/types.js";
import { failureClasses, type Refusal, Refusals, Upstream } from "../errors.js";
import { requestClient } from "../handlers/forwarded.js";
import {
  bodyOf,
  collectHeader,
  hashKeyFor,
  parseAppInstance,
  ReqBody,
  requestIdFor,
  scan,
  stickyIdFrom,
  traceparentFor,
} from "../handlers/request-headers.js";
import { Step } from "../handlers/route-service.js";
import type { EndpointEntry, ProxyContext } from "../proxy/context.js";
import { refusalFor } from "../proxy/exchange.js";
import {
  CHUNKED_MORE,
  ChunkedDecoder,
  HEAD_INCOMPLETE,
  HEAD_MALFORMED,
  parseResponseHead,
  ResponseHead,
  relayedHeader,
} from "../proxy/response-head.js";
import type {
  HttpRequest,
  HttpResponse,
  Uws,
  us_socket_context_t,
  WebSocket,
  WebSocketBehavior,
} from "../uws.js";
import { encodeClose, encodeFrame, FrameReader, type FrameSink, Op } from "./frames.js";

export interface WsData {
  tunnel: Tunnel;
}

const maxHead = 64 * 1024;
/** Client-to-backend bytes queued on a backend socket before the client is closed. */
const maxBackendQueue = 8 * 1024 * 1024;

/** What a tunnel needs to pick another endpoint when one cannot be reached. */
interface Target {
  host: string;
  url: string;
  /** The key a hash-balanced route was asked with ("" for other routes). */
  hashKey: string;
  /** X-CF-APP-INSTANCE named the instance: no other one will do. */
  pinned: boolean;
  /** The upgrade request head up to the endpoint's own X-CF-* headers. */
  headBase: string;
}

class Tunnel implements FrameSink {
  private readonly ctx: ProxyContext;
  private res: HttpResponse | null;
  private readonly context: us_socket_context_t;
  private readonly key: string;
  private handle: number;
  private sock: Socket;
  private readonly target: Target;
  private attempts = 1;
  private headBuf: Buffer | null = null;
  private early: Buffer | null = null;
  private ws: WebSocket<WsData> | null = null;
  private readonly reader: FrameReader;
  private clientClosed = false;
  private backendClosing = false;
  private opened = false;
  private connected = false;
  private errno: string | undefined = undefined;
  /** Date.now() by which the backend's answer to the upgrade must be in (set once it is sent). */
  private headDeadline = 0;
  private readonly startHr = performance.now();

  constructor(
    ctx: ProxyContext,
    res: HttpResponse,
    context: us_socket_context_t,
    key: string,
    handle: number,
    ep: EndpointEntry,
    target: Target,
  ) {
    this.ctx = ctx;
    this.res = res;
    this.context = context;
    this.key = key;
    this.handle = handle;
    this.target = target;
    this.reader = new FrameReader(ctx.cfg.wsMaxMessageBytes);
    ctx.requestStarted();
    this.sock = this.dial(ep);
  }

  /** Connects to `ep` and sends it the upgrade; events of a socket given up on are ignored. */
  private dial(ep: EndpointEntry): Socket {
    const ctx = this.ctx;
    const head = `${this.target.headBase}${ep.headerBlock}\r\n`;
    const s = connect({ host: ep.info.host, port: ep.info.port, noDelay: true });
    s.setTimeout(ctx.cfg.connectTimeoutMs);
    s.on("connect", () => {
      if (s !== this.sock) return;
      this.connected = true;
      this.headDeadline = Date.now() + ctx.cfg.responseHeaderTimeoutMs;
      s.setTimeout(ctx.cfg.responseHeaderTimeoutMs);
      s.write(head);
    });
    s.on("data", (d: Buffer) => {
      if (s === this.sock) this.onData(d);
    });
    s.on("timeout", () => {
      if (s === this.sock) this.onTimeout();
    });
    s.on("error", (err: Error & { code?: string }) => {
      if (s === this.sock) this.errno = err.code;
    });
    s.on("close", () => {
      if (s === this.sock) this.onBackendClose();
    });
    return s;
  }

  /**
   * After a connect failure (nothing sent), another endpoint while attempts remain, as for
   * plain requests; true when one is being tried.
   */
  private retry(kind: number): boolean {
    const ctx = this.ctx;
    const fc = failureClasses[kind];
    if (fc === undefined || !fc.retriable || this.connected || this.target.pinned) return false;
    if (this.res === null || this.attempts >= ctx.cfg.maxAttempts) return false;
    const failed = this.handle;
    ctx.table.release(failed);
    const t = this.target;
    this.handle = ctx.table.select(t.host, t.url, "", t.hashKey, Date.now());
    // When every endpoint failed the balancer still offers one; the one that just failed is not tried again.
    const ep = this.handle >= 0 && this.handle !== failed ? ctx.endpoint(this.handle) : null;
    if (ep === null) return false;
    this.attempts++;
    ctx.counters.retries++;
    this.errno = undefined;
    this.sock = this.dial(ep);
    return true;
  }

  readonly onAborted = (): void => {
    this.res = null;
    if (!this.opened) {
      this.sock.destroy();
      this.done(0);
    }
  };

  private onTimeout(): void {
    if (!this.opened) {
      const kind = !this.connected ? Upstream.ConnectTimeout : Upstream.ResponseTimeout;
      this.failHandshake(kind, (failureClasses[kind] as (typeof failureClasses)[number]).refusal);
    }
  }

  private failHandshake(kind: number, r: Refusal): void {
    this.ctx.counters.upstreamError(kind);
    if (
      kind === Upstream.ConnectRefused ||
      kind === Upstream.ConnectTimeout ||
      kind === Upstream.ConnectError
    )
      this.ctx.table.markFailed(this.handle, Date.now() + this.ctx.cfg.failedEndpointSkipMs);
    this.sock.destroy();
    if (this.retry(kind)) return;
    const res = this.res;
    if (res === null) return;
    this.res = null;
    res.cork(() => {
      res
        .writeStatus(r.status)
        .writeHeader("X-Kiln-Router-Error", r.cause)
        .writeHeader("Content-Type", "text/plain; charset=utf-8")
        .end(r.body, true);
    });
    this.done(Number(r.status.slice(0, 3)));
  }

  private onData(d: Buffer): void {
    if (this.opened) {
      if (this.ws !== null) this.reader.push(d, this);
      else this.early = this.early === null ? d : Buffer.concat([this.early, d]);
      return;
    }
    const res = this.res;
    if (res === null) return;
    const buf = this.headBuf === null ? d : Buffer.concat([this.headBuf, d]);
    const head = new ResponseHead();
    const n = parseResponseHead(buf, head);
    if (n === HEAD_INCOMPLETE) {
      if (buf.length > maxHead)
        this.failHandshake(
          Upstream.BadResponse,
          (failureClasses[Upstream.BadResponse] as (typeof failureClasses)[number]).refusal,
        );
      else {
        this.headBuf = buf;
        // The socket's timer counts inactivity: cut it to what is left of the deadline, so
        // a backend trickling its answer still times out (as plain requests do).
        const left = this.headDeadline - Date.now();
        if (left > 0) this.sock.setTimeout(left);
        else this.onTimeout();
      }
      return;
    }
    if (n === HEAD_MALFORMED) {
      this.failHandshake(
        Upstream.BadResponse,
        (failureClasses[Upstream.BadResponse] as (typeof failureClasses)[number]).refusal,
      );
      return;
    }
    this.headBuf = null;
    const rest = buf.subarray(n);
    if (head.status !== 101) {
      // The backend refused the upgrade: relay its answer as a plain response.
      this.relayRefusal(res, head, rest);
      return;
    }
    let protocol = "";
    for (let i = 0; i < head.lower.length; i++)
      if (head.lower[i] === "sec-websocket-protocol") protocol = head.values[i] as string;
    this.opened = true;
    this.sock.setTimeout(0);
    if (rest.length > 0) this.early = Buffer.from(rest);
    this.res = null;
    res.cork(() => {
      res.upgrade<WsData>({ tunnel: this }, this.key, protocol, "", this.context);
    });
  }

  private relayRefusal(res: HttpResponse, head: ResponseHead, rest: Buffer): void {
    if (head.chunked) {
      this.relayChunkedRefusal(res, head, rest);
      return;
    }
    let body = rest;
    const finish = (): void =>
      this.sendRefusal(res, head, head.contentLength >= 0 ? body.subarray(0, head.contentLength) : body);
    if (head.contentLength >= 0 && body.length >= head.contentLength) {
      finish();
      return;
    }
    this.sock.removeAllListeners("data");
    this.sock.on("data", (d: Buffer) => {
      body = Buffer.concat([body, d]);
      if ((head.contentLength >= 0 && body.length >= head.contentLength) || body.length > maxHead) finish();
    });
    this.sock.removeAllListeners("close");
    this.sock.on("close", () => {
      if (this.res !== null) finish();
    });
  }

  /** Sends the backend's refusal of the upgrade with `body`, without its hop-by-hop headers. */
  private sendRefusal(res: HttpResponse, head: ResponseHead, body: Buffer): void {
    this.res = null;
    this.sock.destroy();
    res.cork(() => {
      res.writeStatus(head.statusLine);
      for (let i = 0; i < head.names.length; i++) {
        const l = head.lower[i] as string;
        if (!relayedHeader(head, l)) continue;
        res.writeHeader(head.names[i] as string, head.values[i] as string);
      }
      res.end(body, true);
    });
    this.done(head.status);
  }

  /**
   * A refusal with a chunked body: decoded (up to maxHead bytes, the rest cut) and relayed
   * with its length, since its Transfer-Encoding is hop-by-hop and not passed on.
   */
  private relayChunkedRefusal(res: HttpResponse, head: ResponseHead, rest: Buffer): void {
    const pieces: Buffer[] = [];
    let size = 0;
    const decoder = new ChunkedDecoder();
    const sink = {
      onBodyPiece: (piece: Buffer): void => {
        if (size >= maxHead) return;
        const keep = piece.subarray(0, maxHead - size);
        pieces.push(Buffer.from(keep));
        size += keep.length;
      },
    };
    const finish = (): void => {
      if (this.res !== null) this.sendRefusal(res, head, Buffer.concat(pieces, size));
    };
    const feed = (d: Buffer): void => {
      const n = decoder.decode(d, 0, sink);
      // The end of the body, a framing error or enough of it: what there is goes out.
      if (n !== CHUNKED_MORE || size >= maxHead) finish();
    };
    this.sock.removeAllListeners("data");
    this.sock.on("data", feed);
    this.sock.removeAllListeners("close");
    this.sock.on("close", finish);
    if (rest.length > 0) feed(rest);
  }

  /** uWS opened the client side. */
  attach(ws: WebSocket<WsData>): void {
    this.ws = ws;
    this.ctx.counters.wsOpen++;
    this.ctx.counters.wsTotal++;
    const early = this.early;
    this.early = null;
    if (early !== null) this.reader.push(early, this);
  }

  // Backend -> client.
  onMessage(payload: Buffer, binary: boolean): void {
    const ws = this.ws;
    if (ws === null || this.clientClosed) return;
    if (ws.send(payload, binary) === 0) this.sock.pause();
  }

  onPing(payload: Buffer): void {
    this.sock.write(encodeFrame(Op.Pong, payload));
  }

  onClose(code: number, reason: Buffer): void {
    this.backendClosing = true;
    this.sock.end(encodeClose(code, reason));
    const ws = this.ws;
    if (ws !== null && !this.clientClosed) {
      this.clientClosed = true;
      ws.end(code === 1005 ? 1000 : code, reason);
    }
  }

  onProtocolError(): void {
    this.backendClosing = true;
    this.sock.destroy();
    const ws = this.ws;
    if (ws !== null && !this.clientClosed) {
      this.clientClosed = true;
      ws.end(1002, "backend protocol error");
    }
  }

  /** uWS drained the client side. */
  drained(): void {
    if (this.sock.isPaused()) this.sock.resume();
  }

  // Client -> backend.
  fromClient(message: ArrayBuffer, binary: boolean): void {
    if (this.backendClosing) return;
    this.sock.write(encodeFrame(binary ? Op.Binary : Op.Text, new Uint8Array(message)));
    // uWS cannot pause a WebSocket's reads: a backend that stops reading gets the client closed.
    const ws = this.ws;
    if (this.sock.writableLength > maxBackendQueue && ws !== null && !this.clientClosed) {
      this.clientClosed = true;
      ws.end(1013, "backend is not reading");
    }
  }

  clientClose(code: number, message: ArrayBuffer): void {
    const wasOpen = !this.clientClosed;
    this.clientClosed = true;
    this.ws = null;
    this.ctx.counters.wsOpen--;
    if (!this.backendClosing) {
      this.backendClosing = true;
      if (wasOpen) this.sock.end(encodeClose(code, new Uint8Array(message)));
      else this.sock.end();
      // A backend that never closes its side does not keep the socket forever.
      setTimeout(() => this.sock.destroy(), 5000).unref();
    }
    this.done(101);
  }

  private onBackendClose(): void {
    if (!this.opened) {
      if (this.res !== null) {
        const kind = this.connected
          ? Upstream.BackendClosed
          : this.errno === "ECONNREFUSED"
            ? Upstream.ConnectRefused
            : Upstream.ConnectError;
        this.failHandshake(kind, (failureClasses[kind] as (typeof failureClasses)[number]).refusal);
      }
      return;
    }
    const ws = this.ws;
    if (ws !== null && !this.clientClosed) {
      this.clientClosed = true;
      ws.end(1001, "backend went away");
    }
  }

  private finished = false;
  private done(status: number): void {
    if (this.finished) return;
    this.finished = true;
    if (this.handle >= 0) {
      this.ctx.table.release(this.handle);
      this.handle = -1;
    }
    this.ctx.counters.request(this.target.host, status, (performance.now() - this.startHr) / 1000, 0);
    this.ctx.requestEnded();
  }
}

function refuse(res: HttpResponse, r: Refusal): void {
  res
    .writeStatus(r.status)
    .writeHeader("X-Kiln-Router-Error", r.cause)
    .writeHeader("Content-Type", "text/plain; charset=utf-8")
    .end(r.body, true);
}

/** The uWS WebSocket behaviour of a router worker. */
export function wsBehavior(ctx: ProxyContext, uWS: Uws): WebSocketBehavior<WsData> {
  return {
    compression: uWS.DISABLED,
    maxPayloadLength: ctx.cfg.wsMaxMessageBytes,
    maxBackpressure: 4 * 1024 * 1024,
    idleTimeout: 0,
    upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
      const now = Date.now();
      const s = scan;
      s.reset();
      req.forEach(collectHeader);
      s.finish();
      const key = req.getHeader("sec-websocket-key");
      const url = req.getUrl();
      const query = req.getQuery() as string | undefined;
      const target = query === undefined || query === "" ? url : `${url}?${query}`;
      const host = s.host;
      if (s.bytes > ctx.cfg.maxHeaderBytes) {
        refuse(res, Refusals.headersTooLarge);
        return;
      }
      // An upgrade carries no body: one that declares one is refused rather than forwarded
      // with bytes the tunnel would send on as WebSocket frames (or not at all).
      if (bodyOf(s) !== ReqBody.None) {
        refuse(res, Refusals.badRequest);
        return;
      }
      const who = requestClient;
      who.read(ctx.trustedNets, res.getRemoteAddress(), s.xff);
      const peer = who.peer;
      const client = who.client;
      let handle: number;
      let hashKey = "";
      if (s.appInstance !== "") {
        const t = parseAppInstance(s.appInstance);
        if (t === null) {
          refuse(res, Refusals.badInstanceHeader);
          return;
        }
        handle = ctx.table.selectInstance(host, url, t.app, t.index, now);
      } else {
        const sticky = stickyIdFrom(s.cookie);
        handle = ctx.table.select(host, url, sticky, "", now);
        if (handle === SelectError.NeedHashKey) {
          hashKey = hashKeyFor(ctx.table, host, url, req, client);
          handle = ctx.table.select(host, url, sticky, hashKey, now);
        }
      }
      // A route service's checked callback may upgrade to the app; nothing else on such a route.
      const rs = handle === SelectError.RouteService ? ctx.routeServices : null;
      if (rs !== null) {
        const sig = req.getHeader("x-cf-proxy-signature");
        const kind = rs.step(host, url, target, s.head, sig, req.getHeader("x-cf-proxy-metadata"), now);
        if (kind !== Step.App) {
          refuse(res, kind === Step.Refused ? (rs.refusal as Refusal) : Refusals.routeServiceUpgrade);
          return;
        }
        handle = rs.selectApp(s.appInstance, stickyIdFrom(s.cookie), req, client, host, url, now);
        hashKey = rs.hashKey;
      }
      if (handle < 0) {
        refuse(res, refusalFor(handle, Refusals));
        return;
      }
      const ep = ctx.endpoint(handle);
      if (ep === null) {
        ctx.table.release(handle);
        refuse(res, Refusals.noEndpoints);
        return;
      }
      const requestId = requestIdFor(s.vcapId);
      // Extensions are not negotiated: uWS frames the client side without compression.
      const forwarded = (rs === null ? s.head : rs.head).replace(/^sec-websocket-extensions: .*\r\n/m, "");
      const headBase =
        `GET ${target} HTTP/1.1\r\n${forwarded}connection: Upgrade\r\nupgrade: websocket\r\n` +
        `x-forwarded-for: ${s.xff === "" ? peer : `${s.xff}, ${peer}`}\r\n` +
        `x-forwarded-proto: ${who.trusted && s.xfp !== "" ? s.xfp : ctx.cfg.forwardedProto}\r\n` +
        `x-request-start: ${now}\r\nx-vcap-request-id: ${requestId}\r\n` +
        `traceparent: ${traceparentFor(s.traceparent, requestId)}\r\n`;
      const tunnel = new Tunnel(ctx, res, context, key, handle, ep, {
        host,
        url,
        hashKey,
        // Retries select without routeServiceDone: a route service's callback is not retried.
        pinned: s.appInstance !== "" || rs !== null,
        headBase,
      });
      res.onAborted(tunnel.onAborted);
    },
    open(ws: WebSocket<WsData>): void {
      ws.getUserData().tunnel.attach(ws);
    },
    message(ws: WebSocket<WsData>, message: ArrayBuffer, isBinary: boolean): void {
      ws.getUserData().tunnel.fromClient(message, isBinary);
    },
    drain(ws: WebSocket<WsData>): void {
      ws.getUserData().tunnel.drained();
    },
    close(ws: WebSocket<WsData>, code: number, message: ArrayBuffer): void {
      ws.getUserData().tunnel.clientClose(code, message);
    },
  };
}
