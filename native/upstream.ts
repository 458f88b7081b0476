// Typed face of the native upstream client (native/src/upstream.cc): keep-alive HTTP/1.1
// pools to backends on this thread's event loop, one call per request and one callback
// per small response. There is no TypeScript fallback here: the router's own client on
// `net` sockets (router/proxy) is the fallback when the addon is not built.
//
// How a uWS front uses it (bench/upstream-proxy.ts is a complete example):
// - One Upstream per thread, `transientBodies: true`, request ids from RequestIds; keep the
//   HttpResponse in an array indexed by id; `res.onAborted` → `abort(id)`.
// - onResponse with COMPLETE: `res.cork(() => { res.writeStatus(head); res.end(body ?? undefined) })`
//   (uWS adds Content-Length; with NO_BODY use `endWithoutBody(length)` when length ≥ 0).
// - Otherwise stream: `tryEnd(chunk, length)` when length ≥ 0, else `write(chunk)`; on
//   backpressure `pause(id)`, keep a copy of the unsent rest, `resume(id)` from onWritable.
// - Request bodies: `write(id, chunk)` false → stop reading the client until onDrain(id).
import { NativeError } from "./errors.js";
import { binding } from "./index.js";

/** Failure codes of `onError` (and of `request`'s return value for the synchronous ones). */
export const UpstreamError = {
  CONNECT_REFUSED: 1,
  CONNECT_TIMEOUT: 2,
  CONNECT_FAILED: 3,
  SEND_FAILED: 4,
  CLOSED_BEFORE_RESPONSE: 5,
  RESPONSE_TIMEOUT: 6,
  BAD_RESPONSE: 7,
  RESPONSE_TRUNCATED: 8,
  POOL_FULL: 9,
  BAD_ADDRESS: 10,
  CLOSED: 11,
  /**
   * A pooled connection closed before any response byte and before any streamed body byte,
   * and the request could not be resent: it may have reached the backend, and it is not
   * idempotent or has a body (RFC 9110 §9.2.2). An idempotent request without a body is
   * resent once on a new connection instead.
   */
  STALE_CONNECTION: 12,
} as const;
export type UpstreamErrorCode = (typeof UpstreamError)[keyof typeof UpstreamError];

export interface UpstreamErrorInfo {
  name: keyof typeof UpstreamError;
  /** True when no request byte can have reached the backend: another endpoint may be tried. */
  retriable: boolean;
  /** Status the router answers with when the response has not started yet. */
  status: number;
}

/** The router's failure classes, indexed by code (one table, as gorouter classifies). */
export const upstreamErrors: readonly (UpstreamErrorInfo | undefined)[] = [
  undefined,
  { name: "CONNECT_REFUSED", retriable: true, status: 502 },
  { name: "CONNECT_TIMEOUT", retriable: true, status: 502 },
  { name: "CONNECT_FAILED", retriable: true, status: 502 },
  // A write failed on a new connection: part of the request may have gone out, so, like a
  // stale pooled connection, the router sends it again only when idempotent and bodiless.
  { name: "SEND_FAILED", retriable: false, status: 502 },
  { name: "CLOSED_BEFORE_RESPONSE", retriable: false, status: 502 },
  { name: "RESPONSE_TIMEOUT", retriable: false, status: 504 },
  { name: "BAD_RESPONSE", retriable: false, status: 502 },
  { name: "RESPONSE_TRUNCATED", retriable: false, status: 502 },
  { name: "POOL_FULL", retriable: false, status: 503 },
  { name: "BAD_ADDRESS", retriable: true, status: 502 },
  { name: "CLOSED", retriable: false, status: 503 },
  { name: "STALE_CONNECTION", retriable: false, status: 502 },
];

/** Flags of `request`. */
export const RequestFlag = {
  /** The method is HEAD: the response has no body whatever its headers say. */
  HEAD: 1,
  /** The request is complete with this call (no write/end follows). */
  END: 2,
  /** The head says `Transfer-Encoding: chunked`: write/end chunks are framed natively. */
  CHUNKED: 4,
  /** Close the connection after this exchange instead of pooling it. */
  CLOSE: 8,
} as const;

/** Flags of `onResponse`. */
export const ResponseFlag = {
  /** The body passed to onResponse is the whole body; no onData follows. */
  COMPLETE: 1,
  /** The backend used chunked coding (length is -1; onData carries decoded bytes). */
  CHUNKED: 2,
  /** The header block holds at least one Set-Cookie field. */
  SET_COOKIE: 4,
  /** The request went over a pooled connection. */
  REUSED: 8,
  /** The connection is not kept (backend said close, HTTP/1.0, close-delimited body…). */
  CLOSE: 16,
  /** The header block holds obs-text bytes (0x80–0xFF); write it as latin1 bytes, not a string. */
  NON_ASCII: 32,
  /** HEAD, 204 or 304: no body; `length` is the declared Content-Length, if any. */
  NO_BODY: 64,
} as const;

export interface UpstreamOptions {
  /** TCP connect timeout (default 5000 ms). */
  connectTimeoutMs?: number;
  /** From the end of the request to the end of the response head (default 60000 ms; 0 = none). */
  headerTimeoutMs?: number;
  /** Longest silence inside a response body while not paused (default 60000 ms; 0 = none). */
  bodyTimeoutMs?: number;
  /** How long a pooled connection may stay idle (default 30000 ms). */
  idleTimeoutMs?: number;
  /** Idle connections kept per backend (default 64). */
  maxIdle?: number;
  /** Connections per backend, 0 = unlimited (default); over it `request` returns POOL_FULL. */
  maxConnections?: number;
  /** Largest response head accepted (default 64 KiB). */
  maxHeaderBytes?: number;
  /** A Content-Length body up to this size is gathered and delivered with the head (default 64 KiB). */
  bufferLimit?: number;
  /** Queued request-body bytes above which `write` returns false (default 64 KiB). */
  highWater?: number;
  /**
   * Bodies handed to onResponse/onData are views of the client's read buffer, valid only
   * until the callback returns (copy to keep them). Saves an allocation and a copy per
   * response; uWS `end`/`tryEnd`/`write` copy what they keep, so the router can use it.
   */
  transientBodies?: boolean;
  /** Leave the backend's Date field out of the head block (a uWS front writes its own). */
  dropDate?: boolean;
}

export interface UpstreamHandlers {
  /**
   * The final response head. `head` is "<status> <reason>" followed by "\r\nName: value" for
   * every validated field except hop-by-hop ones, Content-Length and Transfer-Encoding:
   * it can be passed to uWS `res.writeStatus` as is. `body` is the body so far (the whole
   * body when flags has COMPLETE), `length` the Content-Length or -1.
   */
  onResponse(
    id: number,
    status: number,
    head: string,
    body: Buffer | null,
    flags: number,
    length: number,
  ): void;
  /** More body (decoded when chunked); `last` ends the exchange. */
  onData(id: number, chunk: Uint8Array | null, last: boolean): void;
  /** The exchange failed; `code` is an UpstreamError code. Nothing follows for this id. */
  onError(id: number, code: number): void;
  /** The request body queue fell below highWater after `write` returned false. */
  onDrain(id: number): void;
}

export interface UpstreamStats {
  pools: number;
  connections: number;
  idle: number;
  active: number;
  /** Requests sent again on a new connection after a stale pooled one, so far. */
  resent: number;
}

/** The native object: every method takes the caller's request id (a small integer < 2^24). */
export interface Upstream {
  /**
   * Starts a request to host:port (an IP address). `head` is the whole request head
   * ("GET / HTTP/1.1\r\n…\r\n\r\n"); `body` optional bytes sent right after it.
   * Returns 0, or POOL_FULL / BAD_ADDRESS / CLOSED with no callback to follow.
   * Throws when `id` is still in use.
   */
  request(
    id: number,
    host: string,
    port: number,
    head: string | Uint8Array | ArrayBuffer,
    body: Uint8Array | ArrayBuffer | null,
    flags: number,
  ): number;
  /** Streams request body bytes; false means wait for onDrain(id). */
  write(id: number, chunk: Uint8Array | ArrayBuffer): boolean;
  /** Ends the request body (with an optional last chunk). */
  end(id: number, chunk?: Uint8Array | ArrayBuffer | null): void;
  /** Stops reading the response (client backpressure). */
  pause(id: number): void;
  resume(id: number): void;
  /** Drops the exchange and its connection; no callback follows. */
  abort(id: number): void;
  /** Closes every connection; no callback follows for any request. */
  close(): void;
  stats(): UpstreamStats;
}

type UpstreamCtor = new (
  options: UpstreamOptions,
  onResponse: UpstreamHandlers["onResponse"],
  onData: UpstreamHandlers["onData"],
  onError: UpstreamHandlers["onError"],
  onDrain: UpstreamHandlers["onDrain"],
) => Upstream;

/** True when this thread has the native client. */
export const upstreamAvailable: boolean = typeof binding?.Upstream === "function";

/** A native upstream client on this thread's loop; throws when the addon is not built. */
export function createUpstream(options: UpstreamOptions, handlers: UpstreamHandlers): Upstream {
  const ctor = binding?.Upstream;
  if (typeof ctor !== "function") {
    throw new NativeError("KILN_NATIVE_REQUIRED", "the native upstream client needs the built addon");
  }
  return new (ctor as UpstreamCtor)(
    options,
    handlers.onResponse,
    handlers.onData,
    handlers.onError,
    handlers.onDrain,
  );
}

/** Small-integer request ids for `Upstream` (most recently freed first, so slots stay dense). */
export class RequestIds {
  private free: number[] = [];
  private next = 0;

  acquire(): number {
    const id = this.free.pop();
    return id === undefined ? this.next++ : id;
  }

  release(id: number): void {
    this.free.push(id);
  }
}
