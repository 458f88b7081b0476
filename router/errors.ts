// The router's coded errors and the one table that classifies upstream failures
// (retry on another endpoint / skip the endpoint for a while / fail the request),
// in the manner of gorouter's proxy/fails/classifier_group.go.
import { defineCodes, KilnError } from "../kernel/errors.js";

export const RouterCodes = defineCodes("router", {
  KILN_ROUTER_NO_ROUTE: { status: 404, summary: "No route is registered for this host and path." },
  KILN_ROUTER_NO_ENDPOINTS: {
    status: 503,
    summary: "The route exists but has no usable endpoint right now.",
  },
  KILN_ROUTER_BACKEND_FULL: {
    status: 503,
    summary: "Every endpoint of the route is at its connection limit (route option max connections).",
  },
  KILN_ROUTER_BAD_GATEWAY: {
    status: 502,
    summary: "The backend could not be reached or answered with a broken response; see the log's cause.",
  },
  KILN_ROUTER_TIMEOUT: { status: 504, summary: "The backend did not answer within the response timeout." },
  KILN_ROUTER_BAD_INSTANCE_HEADER: {
    status: 400,
    summary: "X-CF-APP-INSTANCE must be <app guid>:<instance index>.",
  },
  KILN_ROUTER_UNKNOWN_INSTANCE: {
    status: 404,
    summary: "X-CF-APP-INSTANCE names an app instance that is not registered on this route.",
  },
  KILN_ROUTER_BAD_REQUEST: {
    status: 400,
    summary: "The request is malformed (conflicting Content-Length / Transfer-Encoding, bad framing).",
  },
  KILN_ROUTER_HEADERS_TOO_LARGE: {
    status: 431,
    summary: "The request headers exceed the router's limit (maxHeaderBytes).",
  },
  KILN_ROUTER_ROUTE_SERVICE_SIGNATURE: {
    status: 400,
    summary:
      "A request to a route with a route service carried an X-CF-Proxy-Signature that does not decrypt under the router's routeServiceKey or was made for another URL.",
  },
  KILN_ROUTER_ROUTE_SERVICE_EXPIRED: {
    status: 400,
    summary:
      "A route service called back with a signature older than routeServiceMaxAgeSec (or dated in the future); the client should retry from the start.",
  },
  KILN_ROUTER_ROUTE_SERVICE_UPGRADE: {
    status: 501,
    summary: "WebSocket upgrades are not sent through route services; the route has one.",
  },
  KILN_ROUTER_ROUTE_SERVICE_REFUSED: {
    summary:
      "A router.register with route_service_url was refused: no routeServiceKey is configured, or the URL is not http:// to an IP address.",
  },
  KILN_ROUTER_CONFIG: {
    summary: "A router option is invalid; check the flag or environment variable named.",
  },
  KILN_ROUTER_STATUS_UNAUTHORIZED: {
    status: 401,
    summary:
      "/routes and /metrics need the status port's basic-auth user and password (statusUser, statusPass; `kiln up` keeps them in <data dir>/router/status-credentials.json).",
  },
  KILN_ROUTER_LISTEN_FAILED: { summary: "The router could not listen on its port; is it already taken?" },
  KILN_ROUTER_WORKER_FAILED: {
    summary: "A router worker thread failed; the router stops so it can be restarted.",
  },
  KILN_ROUTER_UWS_UNAVAILABLE: {
    summary:
      "The uWebSockets.js binary for this Node.js version could not be loaded (no slow fallback is used).",
  },
});

export type RouterCode = keyof typeof RouterCodes;

export class RouterError extends KilnError {
  constructor(code: RouterCode, message: string, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = "RouterError";
  }
}

/** What the router answers for each refusal it makes itself (cause goes in X-Kiln-Router-Error). */
export interface Refusal {
  code: RouterCode;
  status: string;
  cause: string;
  body: string;
}

function refusal(code: RouterCode, status: string, cause: string, text: string): Refusal {
  return { code, status, cause, body: `${status.slice(4)}: ${text} (${code})\n` };
}

export const Refusals = {
  noRoute: refusal("KILN_ROUTER_NO_ROUTE", "404 Not Found", "unknown_route", "no route for this host"),
  noEndpoints: refusal("KILN_ROUTER_NO_ENDPOINTS", "503 Service Unavailable", "no_endpoints", "no endpoints"),
  backendFull: refusal(
    "KILN_ROUTER_BACKEND_FULL",
    "503 Service Unavailable",
    "backend_full",
    "every backend is at its connection limit",
  ),
  badInstanceHeader: refusal(
    "KILN_ROUTER_BAD_INSTANCE_HEADER",
    "400 Bad Request",
    "bad_instance_header",
    "X-CF-APP-INSTANCE must be <app guid>:<index>",
  ),
  unknownInstance: refusal(
    "KILN_ROUTER_UNKNOWN_INSTANCE",
    "404 Not Found",
    "unknown_instance",
    "no such app instance on this route",
  ),
  badRequest: refusal("KILN_ROUTER_BAD_REQUEST", "400 Bad Request", "bad_request", "malformed request"),
  routeServiceSignature: refusal(
    "KILN_ROUTER_ROUTE_SERVICE_SIGNATURE",
    "400 Bad Request",
    "route_service_signature",
    "invalid route service signature",
  ),
  routeServiceExpired: refusal(
    "KILN_ROUTER_ROUTE_SERVICE_EXPIRED",
    "400 Bad Request",
    "route_service_expired",
    "route service signature expired",
  ),
  routeServiceUpgrade: refusal(
    "KILN_ROUTER_ROUTE_SERVICE_UPGRADE",
    "501 Not Implemented",
    "route_service_upgrade",
    "WebSocket upgrades do not go through route services",
  ),
  headersTooLarge: refusal(
    "KILN_ROUTER_HEADERS_TOO_LARGE",
    "431 Request Header Fields Too Large",
    "headers_too_large",
    "request headers too large",
  ),
} as const;

/** Upstream failures, indexed by number so the hot path and the metrics use plain arrays. */
export const Upstream = {
  ConnectRefused: 0,
  ConnectTimeout: 1,
  ConnectError: 2,
  /**
   * A reused keep-alive connection closed before answering and before any body byte went:
   * most often the backend's idle timeout, but the request may have reached the application.
   */
  StaleConnection: 3,
  /** Closed or reset after the request was sent and before a response head. */
  BackendClosed: 4,
  BadResponse: 5,
  ResponseTimeout: 6,
  /** Closed, reset or silent (idle timeout) in the middle of the response body. */
  BodyInterrupted: 7,
  /** The client went away; the upstream exchange is abandoned. */
  ClientAborted: 8,
} as const;
export type Upstream = (typeof Upstream)[keyof typeof Upstream];

export interface FailureClass {
  /** Label in metrics and the X-Kiln-Router-Error header. */
  cause: string;
  /** Another endpoint may be tried (only while no request body byte has left the router). */
  retriable: boolean;
  /**
   * The request may have reached the backend: it is tried again only when that is harmless,
   * an idempotent method with no body (RFC 9110 §9.2.2, as Go's http.Transport does).
   */
  idempotentOnly: boolean;
  /** The endpoint is skipped by the balancer for failedEndpointSkipMs. */
  markFailed: boolean;
  /** What the client gets when it cannot be retried and no response has started. */
  refusal: Refusal;
}

const badGateway = (cause: string, text: string): Refusal =>
  refusal("KILN_ROUTER_BAD_GATEWAY", "502 Bad Gateway", cause, text);

/** The classification table: one row per Upstream value, in order. */
export const failureClasses: readonly FailureClass[] = [
  {
    cause: "connect_refused",
    retriable: true,
    idempotentOnly: false,
    markFailed: true,
    refusal: badGateway("connect_refused", "backend refused the connection"),
  },
  {
    cause: "connect_timeout",
    retriable: true,
    idempotentOnly: false,
    markFailed: true,
    refusal: badGateway("connect_timeout", "backend did not accept the connection in time"),
  },
  {
    cause: "connect_error",
    retriable: true,
    idempotentOnly: false,
    markFailed: true,
    refusal: badGateway("connect_error", "backend could not be reached"),
  },
  {
    cause: "stale_connection",
    retriable: true,
    idempotentOnly: true,
    markFailed: false,
    refusal: badGateway("stale_connection", "backend closed an idle connection"),
  },
  {
    // The backend closed (or reset) with the request on it and no answer: an instance killed
    // mid-request, the common case when apps crash or are moved. A GET, HEAD, OPTIONS… without a
    // body goes to another endpoint, as gorouter retries an idempotent request on EOF; anything
    // else may have had its effect and is not sent again. A request that itself crashes every
    // backend thus reaches at most maxAttempts of them.
    cause: "backend_closed",
    retriable: true,
    idempotentOnly: true,
    markFailed: false,
    refusal: badGateway("backend_closed", "backend closed the connection without answering"),
  },
  {
    cause: "bad_response",
    retriable: false,
    idempotentOnly: false,
    markFailed: false,
    refusal: badGateway("bad_response", "backend sent a malformed response"),
  },
  {
    cause: "response_timeout",
    retriable: false,
    idempotentOnly: false,
    markFailed: false,
    refusal: refusal(
      "KILN_ROUTER_TIMEOUT",
      "504 Gateway Timeout",
      "response_timeout",
      "backend did not answer in time",
    ),
  },
  {
    cause: "body_interrupted",
    retriable: false,
    idempotentOnly: false,
    markFailed: false,
    refusal: badGateway("body_interrupted", "backend stopped in the middle of its response"),
  },
  {
    cause: "client_aborted",
    retriable: false,
    idempotentOnly: false,
    markFailed: false,
    refusal: badGateway("client_aborted", "client went away"),
  },
];

/**
 * Whether a request may be sent again after it could have reached the backend: an idempotent
 * method (RFC 9110 §9.2.2; methods are case-sensitive) and no body.
 */
export function replaySafe(method: string, hasBody: boolean): boolean {
  if (hasBody) return false;
  switch (method) {
    case "GET":
    case "HEAD":
    case "OPTIONS":
    case "TRACE":
    case "PUT":
    case "DELETE":
      return true;
    default:
      return false;
  }
}

/** Maps a socket error code seen while connecting to its failure. */
export function classifyConnectError(errno: string | undefined): Upstream {
  if (errno === "ECONNREFUSED") return Upstream.ConnectRefused;
  if (errno === "ETIMEDOUT") return Upstream.ConnectTimeout;
  return Upstream.ConnectError;
}
