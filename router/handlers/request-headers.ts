// Reads a client request's headers once (uWS forEach) into the head sent upstream:
// hop-by-hop headers dropped (RFC 9110 7.6.1), X-Forwarded-*, X-Vcap-Request-Id,
// traceparent and the X-CF-* headers replaced, and the body's framing taken out so the
// router declares it itself (framingLine). The native request path does the same in
// native/fastpath/fast_path.cc (Handle, Forwarded); test/router/smuggling.ts runs one table
// of requests through both.
import { randomBytes, randomUUID } from "node:crypto";
import type { RouteTable } from "../../native/types.js";
import type { HttpRequest } from "../uws.js";

/**
 * Scratch state of the request being read. One per thread: uWS calls the handler and
 * forEach synchronously, so a module-level object avoids a closure per request.
 */
export class RequestScan {
  head = "";
  bytes = 0;
  xff = "";
  xfp = "";
  vcapId = "";
  traceparent = "";
  cookie = "";
  appInstance = "";
  /** The Content-Length uWS's parser accepted (digits only: it refuses anything else), or "". */
  contentLength = "";
  /** The Transfer-Encoding uWS's parser accepted ("chunked" in some letter case), or "". */
  transferEncoding = "";
  host = "";
  connection = "";

  reset(): void {
    this.head = "";
    this.bytes = 0;
    this.xff = "";
    this.xfp = "";
    this.vcapId = "";
    this.traceparent = "";
    this.cookie = "";
    this.appInstance = "";
    this.contentLength = "";
    this.transferEncoding = "";
    this.host = "";
    this.connection = "";
  }

  /**
   * Drops the extra hop-by-hop names a Connection header lists (rare) once all headers are
   * read. A listed name never removes what the router needs or writes itself: Host, the
   * body's framing, X-Forwarded-*, X-Request-Start, X-Vcap-Request-Id, X-CF-*, traceparent
   * (`Connection: content-length` would otherwise send a body with no length, read upstream
   * as the next request).
   */
  finish(): void {
    const c = this.connection;
    if (c === "") return;
    const lower = c.toLowerCase();
    if (lower === "keep-alive" || lower === "close" || lower === "upgrade") return;
    const extra: string[] = [];
    for (const t of lower.split(",")) {
      const n = t.trim();
      if (n !== "" && n !== "keep-alive" && n !== "close" && n !== "upgrade" && !keptFromConnection(n))
        extra.push(n);
    }
    if (extra.length === 0) return;
    this.head = this.head
      .split("\r\n")
      .filter((line) => !extra.includes(line.slice(0, line.indexOf(":"))))
      .join("\r\n");
  }
}

export const scan = new RequestScan();

/** Names a Connection header cannot make hop-by-hop (RequestScan.finish). */
const neverHopByHop = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-request-start",
  "x-vcap-request-id",
  "traceparent",
]);

export function keptFromConnection(lowerName: string): boolean {
  return neverHopByHop.has(lowerName) || lowerName.startsWith("x-cf-");
}

/** How the client sends a request body: none, with a Content-Length, or chunked. */
export const ReqBody = { None: 0, Length: 1, Chunked: 2 } as const;

/** The body framing uWS's parser accepted for the request just scanned. */
export function bodyOf(s: RequestScan): number {
  return s.transferEncoding !== ""
    ? ReqBody.Chunked
    : s.contentLength !== "" && s.contentLength !== "0"
      ? ReqBody.Length
      : ReqBody.None;
}

/**
 * The framing line of the upstream head, written by the router from what the parser
 * accepted, never copied from the client: `content-length: n` (0 included, when the client
 * declared it), `transfer-encoding: chunked` (the body is re-chunked), or nothing.
 */
export function framingLine(s: RequestScan, reqBody: number): string {
  if (reqBody === ReqBody.Chunked) return "transfer-encoding: chunked\r\n";
  return s.contentLength === "" ? "" : `content-length: ${s.contentLength}\r\n`;
}

/** uWS forEach callback (keys arrive lower-cased); a plain function so nothing is allocated. */
export function collectHeader(k: string, v: string): void {
  const s = scan;
  s.bytes += k.length + v.length + 4;
  switch (k) {
    case "host":
      s.host = v;
      break;
    case "connection":
      s.connection = s.connection === "" ? v : `${s.connection}, ${v}`;
      return;
    case "keep-alive":
    case "proxy-connection":
    case "te":
    case "trailer":
    case "upgrade":
    case "expect": // uWS answers 100-continue itself; the body follows right away
    case "x-request-start":
    case "x-cf-applicationid":
    case "x-cf-instanceindex":
    case "x-cf-instanceid":
      return;
    case "transfer-encoding":
      s.transferEncoding = v;
      return;
    case "x-forwarded-for":
      s.xff = s.xff === "" ? v : `${s.xff}, ${v}`;
      return;
    case "x-forwarded-proto":
      if (s.xfp === "") s.xfp = v;
      return;
    case "x-vcap-request-id":
      s.vcapId = v;
      return;
    case "traceparent":
      s.traceparent = v;
      return;
    case "x-cf-app-instance":
      s.appInstance = v;
      return;
    case "content-length":
      s.contentLength = v;
      return;
    case "cookie":
      s.cookie = s.cookie === "" ? v : `${s.cookie}; ${v}`;
      break;
  }
  s.head += `${k}: ${v}\r\n`;
}

function isDigits(s: string): boolean {
  if (s.length === 0 || s.length > 15) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

const spanPrefix = randomBytes(4).toString("hex");
let spanCounter = 0;

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const traceRe = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** The client's X-Vcap-Request-Id when it is a UUID, else a new one. */
export function requestIdFor(given: string): string {
  return given.length === 36 && uuidRe.test(given) ? given : randomUUID();
}

/** The client's traceparent when valid (W3C trace-context), else a new sampled one. */
export function traceparentFor(given: string, requestId: string): string {
  if (given.length === 55) {
    const m = traceRe.exec(given);
    if (
      m !== null &&
      given.slice(0, 2) !== "ff" &&
      !/^0+$/.test(m[1] as string) &&
      !/^0+$/.test(m[2] as string)
    )
      return given;
  }
  // The request id is a random UUID: its hex digits are the trace id. Span ids only need to
  // be unique: a random per-thread prefix and a counter cost no random bytes per request.
  // A client's request id may be upper case; trace ids are lower-case hex.
  const r = requestId.toLowerCase();
  spanCounter = (spanCounter + 1) >>> 0;
  const count = spanCounter.toString(16);
  return `00-${r.slice(0, 8)}${r.slice(9, 13)}${r.slice(14, 18)}${r.slice(19, 23)}${r.slice(24)}-${spanPrefix}${"00000000".slice(count.length)}${count}-01`;
}

/**
 * The key a hash-balanced route hashes this request on: its hash header's value, or, when the
 * request has none, the client address (router/handlers/forwarded.ts), so one client keeps
 * reaching one instance.
 */
export function hashKeyFor(
  table: RouteTable,
  host: string,
  url: string,
  req: HttpRequest,
  client: string,
): string {
  const name = table.hashHeader(host, url);
  const key = name === "" ? "" : req.getHeader(name.toLowerCase());
  return key !== "" ? key : client;
}

/** The `__VCAP_ID__` value in a Cookie header, or "". */
export function stickyIdFrom(cookie: string): string {
  if (cookie === "") return "";
  let from = 0;
  for (;;) {
    const i = cookie.indexOf("__VCAP_ID__=", from);
    if (i < 0) return "";
    if (i === 0 || cookie.charCodeAt(i - 1) === 32 || cookie.charCodeAt(i - 1) === 59) {
      const start = i + 12;
      let end = cookie.indexOf(";", start);
      if (end < 0) end = cookie.length;
      return cookie.slice(start, end).trim();
    }
    from = i + 12;
  }
}

/** Parses `X-CF-APP-INSTANCE: <app guid>:<index>`; null when malformed. */
export function parseAppInstance(v: string): { app: string; index: string } | null {
  const colon = v.indexOf(":");
  if (colon <= 0 || colon === v.length - 1) return null;
  const app = v.slice(0, colon).trim();
  const index = v.slice(colon + 1).trim();
  if (app === "" || !isDigits(index) || /[\s:]/.test(app)) return null;
  return { app, index };
}
