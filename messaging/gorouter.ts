// The gorouter-compatible JSON of router.register / router.unregister / router.start /
// router.greet: wire types, one validating decoder per subject, encoders, and the
// conversion of a register message into the route table's types (native/types.ts).
// Decoding runs for every register message (thousands per second): one JSON.parse and
// straight-line checks over its output, no schema library, no per-field closures.
import type { EndpointSpec, LoadBalancing, PoolOptions } from "../native/types.js";
import { MessagingError } from "./errors.js";

/** A router.* payload above this is refused before it is parsed. */
export const MAX_ROUTER_PAYLOAD_BYTES = 64 * 1024;
/** gorouter's default: endpoints not refreshed for this long are pruned. */
export const DEFAULT_STALE_THRESHOLD_SEC = 120;
export const DEFAULT_LOAD_BALANCING: LoadBalancing = "round-robin";

// ---------------------------------------------------------------------------------------
// Wire shapes (exactly what travels on NATS; documentation for publishers in other languages).

/** `options` of a register message. */
export interface GorouterRouteOptionsJson {
  loadbalancing?: string;
  hash_header?: string;
  /** A number or a numeric string. */
  hash_balance?: number | string;
  /** Kiln extension: max in-flight requests per endpoint (0 = unlimited). */
  max_conns_per_backend?: number;
}

/** router.register / router.unregister. Unknown fields are ignored. */
export interface GorouterRegistryJson {
  host: string;
  port: number;
  uris: string[];
  app?: string;
  private_instance_id?: string;
  private_instance_index?: string;
  tags?: Record<string, string>;
  stale_threshold_in_seconds?: number;
  route_service_url?: string;
  options?: GorouterRouteOptionsJson;
  endpoint_updated_at_ns?: number;
  availability_zone?: string;
  isolation_segment?: string;
  server_cert_domain_san?: string;
  tls_port?: number;
  protocol?: string;
}

/** router.start (router → all) and the reply to router.greet. Same field names as gorouter. */
export interface RouterStart {
  id: string;
  hosts: string[];
  minimumRegisterIntervalInSeconds: number;
  pruneThresholdInSeconds: number;
}

// ---------------------------------------------------------------------------------------
// Decoded register message: every field set; "" / 0 / null mean "not announced".

export interface RouteOptions {
  /** null when the message did not choose (the router's default applies). */
  loadBalancing: LoadBalancing | null;
  hashHeader: string;
  hashBalance: number;
  maxConnsPerBackend: number;
}

export interface RegistryMessage {
  host: string;
  port: number;
  uris: string[];
  app: string;
  privateInstanceId: string;
  privateInstanceIndex: string;
  tags: Record<string, string>;
  /** 0 when absent (the default threshold applies). */
  staleThresholdInSeconds: number;
  routeServiceUrl: string;
  options: RouteOptions;
  /** 0n when absent. */
  endpointUpdatedAtNs: bigint;
  availabilityZone: string;
  isolationSegment: string;
  serverCertDomainSan: string;
  /** 0 when absent. */
  tlsPort: number;
  protocol: string;
}

/** What `encodeRegistryMessage` takes: host, port and uris, the rest optional. */
export type RegistryMessageInput = Pick<RegistryMessage, "host" | "port" | "uris"> &
  Partial<Omit<RegistryMessage, "host" | "port" | "uris" | "options">> & { options?: Partial<RouteOptions> };

// ---------------------------------------------------------------------------------------
// Decoding.

function fail(code: ConstructorParameters<typeof MessagingError>[0], subject: string, why: string): never {
  throw new MessagingError(code, `${subject}: ${why}`);
}

/** Payload → text, enforcing the size limit before any decoding. */
function payloadText(payload: Uint8Array | string, subject: string): string {
  if (typeof payload === "string") {
    // length counts UTF-16 units; a UTF-8 byte count is only needed when it could exceed the limit.
    if (
      payload.length > MAX_ROUTER_PAYLOAD_BYTES ||
      (payload.length * 3 > MAX_ROUTER_PAYLOAD_BYTES && Buffer.byteLength(payload) > MAX_ROUTER_PAYLOAD_BYTES)
    ) {
      fail("KILN_MSG_TOO_LARGE", subject, `payload exceeds ${MAX_ROUTER_PAYLOAD_BYTES} bytes`);
    }
    return payload;
  }
  if (payload.byteLength > MAX_ROUTER_PAYLOAD_BYTES) {
    fail(
      "KILN_MSG_TOO_LARGE",
      subject,
      `payload of ${payload.byteLength} bytes exceeds ${MAX_ROUTER_PAYLOAD_BYTES} bytes`,
    );
  }
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("utf8");
}

/** Text → parsed JSON object. */
function parseObject(text: string, subject: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    fail("KILN_MSG_NOT_JSON", subject, "payload is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    fail("KILN_MSG_NOT_JSON", subject, "payload is not a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/** An optional string field: absent/null → "", a string as is, anything else refused. */
function optString(o: Record<string, unknown>, key: string, subject: string): string {
  const v = o[key];
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") fail("KILN_MSG_INVALID_FIELD", subject, `${key} must be a string`);
  return v;
}

function isPort(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;
}

const DECIMAL = /^\d+(\.\d+)?$/;

/** Longest app guid or private_instance_id accepted (a UUID is 36; gorouter sets no limit). */
export const MAX_ID_LENGTH = 128;
/** Longest private_instance_index accepted, in digits. */
export const MAX_INDEX_DIGITS = 10;

// RFC 9110 tchar: visible ASCII without separators. The values end up in X-CF-ApplicationID,
// X-CF-InstanceID, X-CF-InstanceIndex and `Set-Cookie: __VCAP_ID__=` (RFC 6265 cookie-octet
// is wider), so nothing in them can end a line, split a list or a cookie, or quote.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DIGITS = /^[0-9]+$/;

/** app / private_instance_id: absent or "" (not announced), else a token of at most MAX_ID_LENGTH. */
function headerToken(o: Record<string, unknown>, key: string, subject: string): string {
  const v = optString(o, key, subject);
  if (v === "") return v;
  if (v.length > MAX_ID_LENGTH) {
    fail("KILN_MSG_BAD_HEADER_VALUE", subject, `${key} is longer than ${MAX_ID_LENGTH} characters`);
  }
  if (!TOKEN.test(v)) {
    fail(
      "KILN_MSG_BAD_HEADER_VALUE",
      subject,
      `${key} must be visible ASCII without spaces, quotes or separators (got ${JSON.stringify(v)})`,
    );
  }
  return v;
}

/** private_instance_index: absent/null/"" (not announced), a string of digits, or a non-negative integer. */
function instanceIndex(v: unknown, subject: string): string {
  if (v === undefined || v === null || v === "") return "";
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return String(v);
  if (typeof v !== "string")
    fail("KILN_MSG_INVALID_FIELD", subject, "private_instance_index must be a string");
  if (v.length > MAX_INDEX_DIGITS || !DIGITS.test(v)) {
    fail(
      "KILN_MSG_BAD_HEADER_VALUE",
      subject,
      `private_instance_index must be at most ${MAX_INDEX_DIGITS} digits (got ${JSON.stringify(v)})`,
    );
  }
  return v;
}

/** Longest route_service_url accepted. */
export const MAX_ROUTE_SERVICE_URL_LENGTH = 2048;
// Visible ASCII only: the URL's path goes into a request line and its host into a Host header.
const URL_CHARS = /^[!-~]+$/;

/** route_service_url: absent or "", else an absolute http(s) URL of visible ASCII with a host. */
function routeServiceUrl(o: Record<string, unknown>, subject: string): string {
  const v = optString(o, "route_service_url", subject);
  if (v === "") return v;
  let ok = v.length <= MAX_ROUTE_SERVICE_URL_LENGTH && URL_CHARS.test(v);
  if (ok) {
    try {
      const u = new URL(v);
      ok = (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "" && u.username === "";
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    fail(
      "KILN_MSG_BAD_ROUTE_SERVICE_URL",
      subject,
      `route_service_url must be an absolute http(s) URL of visible ASCII, at most ${MAX_ROUTE_SERVICE_URL_LENGTH} characters, without user info`,
    );
  }
  return v;
}

function decodeOptions(v: unknown, subject: string): RouteOptions {
  if (v === undefined || v === null) {
    return { loadBalancing: null, hashHeader: "", hashBalance: 0, maxConnsPerBackend: 0 };
  }
  if (typeof v !== "object" || Array.isArray(v))
    fail("KILN_MSG_BAD_OPTIONS", subject, "options must be an object");
  const o = v as Record<string, unknown>;

  let loadBalancing: LoadBalancing | null = null;
  const lb = o.loadbalancing;
  if (lb !== undefined && lb !== null && lb !== "") {
    if (lb === "round-robin" || lb === "least-connection" || lb === "hash") loadBalancing = lb;
    else {
      fail(
        "KILN_MSG_BAD_OPTIONS",
        subject,
        `options.loadbalancing must be round-robin, least-connection or hash (got ${JSON.stringify(lb)})`,
      );
    }
  }

  const hh = o.hash_header;
  let hashHeader = "";
  if (hh !== undefined && hh !== null) {
    if (typeof hh !== "string") fail("KILN_MSG_BAD_OPTIONS", subject, "options.hash_header must be a string");
    hashHeader = hh;
  }
  if (loadBalancing === "hash" && hashHeader.length === 0) {
    fail("KILN_MSG_BAD_OPTIONS", subject, "options.hash_header is required with loadbalancing hash");
  }

  let hashBalance = 0;
  const hb = o.hash_balance;
  if (hb !== undefined && hb !== null && hb !== "") {
    // gorouter accepts a JSON number or a string holding one.
    hashBalance =
      typeof hb === "number" ? hb : typeof hb === "string" && DECIMAL.test(hb) ? Number(hb) : Number.NaN;
    if (!Number.isFinite(hashBalance) || hashBalance < 0) {
      fail(
        "KILN_MSG_BAD_OPTIONS",
        subject,
        `options.hash_balance must be a non-negative number (got ${JSON.stringify(hb)})`,
      );
    }
  }

  let maxConnsPerBackend = 0;
  const mc = o.max_conns_per_backend;
  if (mc !== undefined && mc !== null) {
    if (typeof mc !== "number" || !Number.isSafeInteger(mc) || mc < 0) {
      fail("KILN_MSG_BAD_OPTIONS", subject, "options.max_conns_per_backend must be a non-negative integer");
    }
    maxConnsPerBackend = mc;
  }
  return { loadBalancing, hashHeader, hashBalance, maxConnsPerBackend };
}

const NS_KEY = '"endpoint_updated_at_ns"';
const NS_KEY_ALL = /"endpoint_updated_at_ns"\s*:\s*(\d+)/g;

/** The digits of the JSON number after `"endpoint_updated_at_ns":` at `at`, or "". */
function digitsAfterKey(text: string, at: number): string {
  let i = at + NS_KEY.length;
  while (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09 || text.charCodeAt(i) === 0x0a) i++;
  if (text.charCodeAt(i) !== 0x3a) return "";
  i++;
  while (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09 || text.charCodeAt(i) === 0x0a) i++;
  const start = i;
  for (let c = text.charCodeAt(i); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i));
  return text.slice(start, i);
}

/**
 * endpoint_updated_at_ns as an exact bigint. Current times in ns exceed 2^53, so JSON.parse
 * rounds them; the digits are then read from the text: the last occurrence of the key (the
 * one JSON.parse keeps), else any occurrence whose digits round to the parsed value.
 */
function updatedAtNs(v: unknown, text: string, subject: string): bigint {
  if (v === undefined || v === null) return 0n;
  if (typeof v === "string" && /^\d{1,20}$/.test(v)) return BigInt(v);
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    fail("KILN_MSG_INVALID_FIELD", subject, "endpoint_updated_at_ns must be a non-negative integer");
  }
  if (Number.isSafeInteger(v)) return BigInt(v);
  const last = digitsAfterKey(text, text.lastIndexOf(NS_KEY));
  if (last.length > 0 && Number(last) === v) return BigInt(last);
  NS_KEY_ALL.lastIndex = 0;
  let exact: bigint | null = null;
  for (let m = NS_KEY_ALL.exec(text); m !== null; m = NS_KEY_ALL.exec(text)) {
    if (Number(m[1]) === v) exact = BigInt(m[1] as string);
  }
  return exact ?? BigInt(v);
}

function decodeRegistry(payload: Uint8Array | string, subject: string): RegistryMessage {
  const text = payloadText(payload, subject);
  const o = parseObject(text, subject);

  const host = o.host;
  if (typeof host !== "string" || host.length === 0) {
    fail("KILN_MSG_MISSING_HOST", subject, "host must be a non-empty string");
  }
  const port = o.port;
  if (!isPort(port)) {
    fail("KILN_MSG_BAD_PORT", subject, `port must be an integer in 1..65535 (got ${JSON.stringify(port)})`);
  }
  const uris = o.uris;
  if (!Array.isArray(uris) || uris.length === 0) {
    fail("KILN_MSG_BAD_URIS", subject, "uris must be a non-empty array of strings");
  }
  for (let i = 0; i < uris.length; i++) {
    const u = uris[i];
    if (typeof u !== "string" || u.length === 0) {
      fail("KILN_MSG_BAD_URIS", subject, `uris[${i}] must be a non-empty string`);
    }
  }

  let tags: Record<string, string> = {};
  const t = o.tags;
  if (t !== undefined && t !== null) {
    if (typeof t !== "object" || Array.isArray(t))
      fail("KILN_MSG_INVALID_FIELD", subject, "tags must be an object");
    for (const k in t) {
      if (typeof (t as Record<string, unknown>)[k] !== "string") {
        fail("KILN_MSG_INVALID_FIELD", subject, `tags.${k} must be a string`);
      }
    }
    tags = t as Record<string, string>;
  }

  const privateInstanceIndex = instanceIndex(o.private_instance_index, subject);

  let staleThresholdInSeconds = 0;
  const st = o.stale_threshold_in_seconds;
  if (st !== undefined && st !== null) {
    if (typeof st !== "number" || !Number.isSafeInteger(st) || st < 0) {
      fail("KILN_MSG_INVALID_FIELD", subject, "stale_threshold_in_seconds must be a non-negative integer");
    }
    staleThresholdInSeconds = st;
  }

  let tlsPort = 0;
  const tp = o.tls_port;
  if (tp !== undefined && tp !== null && tp !== 0) {
    if (!isPort(tp)) {
      fail(
        "KILN_MSG_BAD_PORT",
        subject,
        `tls_port must be an integer in 1..65535 (got ${JSON.stringify(tp)})`,
      );
    }
    tlsPort = tp;
  }

  return {
    host,
    port,
    uris: uris as string[],
    app: headerToken(o, "app", subject),
    privateInstanceId: headerToken(o, "private_instance_id", subject),
    privateInstanceIndex,
    tags,
    staleThresholdInSeconds,
    routeServiceUrl: routeServiceUrl(o, subject),
    options: decodeOptions(o.options, subject),
    endpointUpdatedAtNs: updatedAtNs(o.endpoint_updated_at_ns, text, subject),
    availabilityZone: optString(o, "availability_zone", subject),
    isolationSegment: optString(o, "isolation_segment", subject),
    serverCertDomainSan: optString(o, "server_cert_domain_san", subject),
    tlsPort,
    protocol: optString(o, "protocol", subject),
  };
}

/** Decodes and validates a router.register payload; throws MessagingError. */
export function decodeRegister(payload: Uint8Array | string): RegistryMessage {
  return decodeRegistry(payload, "router.register");
}

/** Decodes and validates a router.unregister payload (same shape as register); throws MessagingError. */
export function decodeUnregister(payload: Uint8Array | string): RegistryMessage {
  return decodeRegistry(payload, "router.unregister");
}

function positiveInt(o: Record<string, unknown>, key: string, subject: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    fail("KILN_MSG_INVALID_FIELD", subject, `${key} must be a positive integer`);
  }
  return v;
}

/** Decodes and validates a router.start payload or a router.greet reply; throws MessagingError. */
export function decodeRouterStart(payload: Uint8Array | string, subject = "router.start"): RouterStart {
  const o = parseObject(payloadText(payload, subject), subject);
  const id = o.id;
  if (typeof id !== "string" || id.length === 0)
    fail("KILN_MSG_INVALID_FIELD", subject, "id must be a non-empty string");
  let hosts: string[] = [];
  const h = o.hosts;
  if (h !== undefined && h !== null) {
    if (!Array.isArray(h)) fail("KILN_MSG_INVALID_FIELD", subject, "hosts must be an array of strings");
    for (let i = 0; i < h.length; i++) {
      if (typeof h[i] !== "string") fail("KILN_MSG_INVALID_FIELD", subject, `hosts[${i}] must be a string`);
    }
    hosts = h as string[];
  }
  return {
    id,
    hosts,
    minimumRegisterIntervalInSeconds: positiveInt(o, "minimumRegisterIntervalInSeconds", subject),
    pruneThresholdInSeconds: positiveInt(o, "pruneThresholdInSeconds", subject),
  };
}

// ---------------------------------------------------------------------------------------
// Encoding.

const encoder = new TextEncoder();

/** A register/unregister message as gorouter JSON (empty optional fields left out). */
export function encodeRegistryMessage(msg: RegistryMessageInput): Uint8Array {
  const json: Record<string, unknown> = { host: msg.host, port: msg.port, uris: msg.uris };
  if (msg.app) json.app = msg.app;
  if (msg.privateInstanceId) json.private_instance_id = msg.privateInstanceId;
  if (msg.privateInstanceIndex) json.private_instance_index = msg.privateInstanceIndex;
  if (msg.tags !== undefined && Object.keys(msg.tags).length > 0) json.tags = msg.tags;
  if (msg.staleThresholdInSeconds) json.stale_threshold_in_seconds = msg.staleThresholdInSeconds;
  if (msg.routeServiceUrl) json.route_service_url = msg.routeServiceUrl;
  const o = msg.options;
  if (o !== undefined) {
    const opts: GorouterRouteOptionsJson = {};
    if (o.loadBalancing) opts.loadbalancing = o.loadBalancing;
    if (o.hashHeader) opts.hash_header = o.hashHeader;
    if (o.hashBalance) opts.hash_balance = o.hashBalance;
    if (o.maxConnsPerBackend) opts.max_conns_per_backend = o.maxConnsPerBackend;
    if (Object.keys(opts).length > 0) json.options = opts;
  }
  if (msg.availabilityZone) json.availability_zone = msg.availabilityZone;
  if (msg.isolationSegment) json.isolation_segment = msg.isolationSegment;
  if (msg.serverCertDomainSan) json.server_cert_domain_san = msg.serverCertDomainSan;
  if (msg.tlsPort) json.tls_port = msg.tlsPort;
  if (msg.protocol) json.protocol = msg.protocol;
  let text = JSON.stringify(json);
  // JSON.stringify has no bigint: splice the exact digits in as a JSON number.
  if (msg.endpointUpdatedAtNs !== undefined && msg.endpointUpdatedAtNs !== 0n) {
    text = `${text.slice(0, -1)},"endpoint_updated_at_ns":${msg.endpointUpdatedAtNs.toString()}}`;
  }
  return encoder.encode(text);
}

/** A router.start payload (also the reply to router.greet). */
export function encodeRouterStart(msg: RouterStart): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      id: msg.id,
      hosts: msg.hosts,
      minimumRegisterIntervalInSeconds: msg.minimumRegisterIntervalInSeconds,
      pruneThresholdInSeconds: msg.pruneThresholdInSeconds,
    }),
  );
}

// ---------------------------------------------------------------------------------------
// Conversion to the route table's types.

/** The endpoint a register/unregister message announces, with gorouter's defaults applied. */
export function toEndpointSpec(
  msg: RegistryMessage,
  defaultStaleThresholdSec = DEFAULT_STALE_THRESHOLD_SEC,
): EndpointSpec {
  return {
    host: msg.host,
    port: msg.port,
    app: msg.app,
    instanceId: msg.privateInstanceId,
    instanceIndex: msg.privateInstanceIndex,
    tags: msg.tags,
    availabilityZone: msg.availabilityZone,
    staleThresholdSec:
      msg.staleThresholdInSeconds > 0 ? msg.staleThresholdInSeconds : defaultStaleThresholdSec,
    serverCertDomainSan: msg.serverCertDomainSan,
    tlsPort: msg.tlsPort,
    protocol: msg.protocol,
    updatedAtNs: msg.endpointUpdatedAtNs,
  };
}

/** The pool options a register message asks for, defaults filled in. */
export function toPoolOptions(
  msg: RegistryMessage,
  defaultLoadBalancing: LoadBalancing = DEFAULT_LOAD_BALANCING,
): PoolOptions {
  const o = msg.options;
  return {
    loadBalancing: o.loadBalancing ?? defaultLoadBalancing,
    hashHeader: o.hashHeader,
    hashBalance: o.hashBalance,
    maxConnsPerBackend: o.maxConnsPerBackend,
    routeServiceUrl: msg.routeServiceUrl,
  };
}
