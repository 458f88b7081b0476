// What every request through the router holds whichever upstream client forwards it
// (the JavaScript one in exchange.ts, the native one in native-exchange.ts): the request
// as the worker parsed it, the router's own error answer, and the one way a request ends
// (endpoint released, counters, access log line).

import { type Refusal, replaySafe } from "../errors.js";
import { ReqBody } from "../handlers/request-headers.js";
import type { HttpResponse } from "../uws.js";
import type { EndpointEntry, ProxyContext } from "./context.js";

export { ReqBody };

export abstract class ExchangeBase {
  protected readonly ctx: ProxyContext;
  protected res: HttpResponse | null;
  // Request.
  protected readonly method: string;
  protected readonly isHead: boolean;
  protected readonly host: string;
  protected readonly path: string;
  protected readonly target: string;
  protected readonly headText: string;
  protected readonly reqBody: number;
  protected readonly stickyId: string;
  protected readonly hashKey: string;
  protected readonly pinned: boolean;
  /** An idempotent request without a body: it may go again after a stale pooled connection. */
  protected readonly replaySafe: boolean;
  protected readonly requestId: string;
  /** The client's address (a trusted proxy's X-Forwarded-For entry, else the peer), for the access log. */
  protected readonly client: string;
  protected readonly startMs: number;
  protected readonly startHr: number;
  protected reqEnded: boolean;
  // Upstream and response.
  protected handle: number;
  protected ep: EndpointEntry | null = null;
  protected responded = false;
  protected status = 0;
  protected bytesOut = 0;
  protected refusal: Refusal | null = null;
  protected finished = false;
  /**
   * Route services (router/handlers/route-service.ts), set before start(): `via` is the service
   * the request goes to instead of an endpoint (handle -1, never retried); `routeServiceDone`
   * says the service's callback was checked, so retries may pick the route's endpoints.
   */
  via: EndpointEntry | null = null;
  routeServiceDone = false;

  constructor(
    ctx: ProxyContext,
    res: HttpResponse,
    handle: number,
    method: string,
    host: string,
    path: string,
    target: string,
    headText: string,
    reqBody: number,
    stickyId: string,
    hashKey: string,
    pinned: boolean,
    requestId: string,
    client: string,
    startMs: number,
    startHr: number,
  ) {
    this.ctx = ctx;
    this.res = res;
    this.handle = handle;
    this.method = method;
    this.isHead = method === "HEAD";
    this.host = host;
    this.path = path;
    this.target = target;
    this.headText = headText;
    this.reqBody = reqBody;
    this.stickyId = stickyId;
    this.hashKey = hashKey;
    this.pinned = pinned;
    this.replaySafe = replaySafe(method, reqBody !== ReqBody.None);
    this.requestId = requestId;
    this.client = client;
    this.startMs = startMs;
    this.startHr = startHr;
    this.reqEnded = reqBody === ReqBody.None;
    ctx.requestStarted();
  }

  /** Writes the pending refusal (status, X-Kiln-Router-Error, short body); called inside cork. */
  writeRefusal(): void {
    const res = this.res;
    const r = this.refusal;
    if (res === null || r === null) return;
    this.responded = true;
    this.status = Number(r.status.slice(0, 3));
    res
      .writeStatus(r.status)
      .writeHeader("X-Kiln-Router-Error", r.cause)
      .writeHeader("Content-Type", "text/plain; charset=utf-8");
    // A HEAD answer has the body's length and no body (RFC 9110 9.3.2): a body after it would
    // be read as the start of the next response.
    if (this.isHead) res.endWithoutBody(r.body.length, !this.reqEnded);
    else {
      res.end(r.body, !this.reqEnded);
      this.bytesOut += r.body.length;
    }
    this.clientDone();
  }

  /** The whole response was handed to uWS. */
  protected clientDone(): void {
    this.res = null;
    this.finish(this.status);
  }

  /** Ends the request once: endpoint released, counters, access log line. */
  protected finish(status: number): void {
    if (this.finished) return;
    this.finished = true;
    const ctx = this.ctx;
    if (this.handle >= 0) {
      ctx.table.release(this.handle);
      this.handle = -1;
    }
    const seconds = (performance.now() - this.startHr) / 1000;
    ctx.counters.request(this.host, status, seconds, this.bytesOut);
    const log = ctx.accessLog;
    if (log !== null)
      log.line(
        this.startMs,
        this.host,
        this.method,
        this.target,
        status,
        this.bytesOut,
        seconds * 1000,
        this.ep === null ? "" : this.ep.label,
        this.requestId,
        this.client,
      );
    ctx.requestEnded();
  }
}
