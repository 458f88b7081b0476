// Route and endpoint rules shared by the native wrapper (native/table.ts) and the fallback:
// both tables receive exactly the same normalised registration, so they cannot disagree on it.
import { NativeError } from "../errors.js";
import type { EndpointSpec, LoadBalancing, PoolOptions } from "../types.js";

/** Hosts of this many characters or more are never routable (native/src/route_table.cc kHostMax). */
export const HOST_MAX = 512;
const PATH_MAX = 4096;

export const LB_CODE: Record<LoadBalancing, number> = { "round-robin": 0, "least-connection": 1, hash: 2 };
export const LB_NAME: readonly LoadBalancing[] = ["round-robin", "least-connection", "hash"];

export interface RouteKey {
  host: string;
  /** "" or "/a/b": lowercase, no trailing "/", no query. */
  path: string;
}

// Labels of [a-z0-9_-], "*." only in front; one regex test instead of a split per registration.
const HOST_RE = /^(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
const BAD_PATH_RE = /[\s\u0000-\u001f\u007f]/;
const PORT_RE = /^[0-9]{1,5}$/;

/**
 * gorouter's route key: the whole uri lowercased, query dropped, trailing "/" dropped;
 * a `:port` on the host is ignored. `*.` is allowed only as the first label.
 */
export function parseRouteUri(uri: string): RouteKey {
  if (typeof uri !== "string") throw badRoute(uri, "not a string");
  let s = uri.toLowerCase();
  const q = s.search(/[?#]/);
  if (q >= 0) s = s.slice(0, q);
  const slash = s.indexOf("/");
  let host = slash < 0 ? s : s.slice(0, slash);
  let path = slash < 0 ? "" : s.slice(slash);
  while (path.endsWith("/")) path = path.slice(0, -1);
  const colon = host.indexOf(":");
  if (colon >= 0) {
    if (!PORT_RE.test(host.slice(colon + 1))) throw badRoute(uri, "the host has a bad port");
    host = host.slice(0, colon);
  }
  if (host.length === 0) throw badRoute(uri, "the host is empty");
  if (host.length >= HOST_MAX) throw badRoute(uri, "the host is too long");
  if (!HOST_RE.test(host)) throw badRoute(uri, "the host must be dot-separated labels of a-z 0-9 _ -");
  if (path.length > PATH_MAX) throw badRoute(uri, "the path is too long");
  if (BAD_PATH_RE.test(path)) throw badRoute(uri, "the path has spaces or control characters");
  return { host, path };
}

function badRoute(uri: unknown, why: string): NativeError {
  return new NativeError("KILN_TABLE_BAD_ROUTE", `bad route ${JSON.stringify(uri)}: ${why}`);
}

/** The normalised fields both tables store for one register/unregister. */
export interface PreparedEndpoint {
  key: string;
  host: string;
  port: number;
  app: string;
  instanceId: string;
  index: string;
  /** az \0 serverCertDomainSan \0 protocol \0 tags JSON: alike across an app's instances. */
  extras: string;
  staleSec: number;
  tlsPort: number;
  updatedAtNs: bigint;
}

export interface PreparedOptions {
  lb: number;
  hashHeader: string;
  balance: number;
  maxConns: number;
  routeService: string;
}

function u32(v: number): number {
  return Number.isFinite(v) && v > 0 ? Math.min(Math.trunc(v), 0xffffffff) : 0;
}

// One register message carries every uri of an endpoint: the registry applies them back to
// back with one decoded spec, so the last spec's preparation is kept (per thread) and reused
// while the spec is unchanged. Field by field, tags by identity (a decoded message's tags
// object is never changed); a spec edited in place is prepared again.
let last: { spec: EndpointSpec; copy: EndpointSpec; prepared: PreparedEndpoint } | null = null;

function sameEndpoint(a: EndpointSpec, b: EndpointSpec): boolean {
  return (
    a.host === b.host &&
    a.port === b.port &&
    a.instanceId === b.instanceId &&
    a.app === b.app &&
    a.instanceIndex === b.instanceIndex &&
    a.updatedAtNs === b.updatedAtNs &&
    a.staleThresholdSec === b.staleThresholdSec &&
    a.tlsPort === b.tlsPort &&
    a.tags === b.tags &&
    a.availabilityZone === b.availabilityZone &&
    a.serverCertDomainSan === b.serverCertDomainSan &&
    a.protocol === b.protocol
  );
}

/**
 * The normalised endpoint both tables store. The same object comes back for the uris of one
 * message, which lets the native table skip converting it again (native/table.ts).
 */
export function prepareEndpoint(ep: EndpointSpec): PreparedEndpoint {
  if (last !== null && last.spec === ep && sameEndpoint(last.copy, ep)) return last.prepared;
  if (typeof ep.host !== "string" || ep.host.length === 0) throw badEndpoint(ep, "no host");
  if (!Number.isInteger(ep.port) || ep.port < 1 || ep.port > 65535) throw badEndpoint(ep, "bad port");
  const updatedAtNs = typeof ep.updatedAtNs === "bigint" ? ep.updatedAtNs : 0n;
  if (updatedAtNs < 0n || updatedAtNs > 0xffffffffffffffffn)
    throw badEndpoint(ep, "bad endpoint_updated_at_ns");
  const tlsPort = Number.isInteger(ep.tlsPort) && ep.tlsPort > 0 && ep.tlsPort <= 65535 ? ep.tlsPort : 0;
  const instanceId = ep.instanceId ?? "";
  const prepared: PreparedEndpoint = {
    key: instanceId !== "" ? instanceId : `${ep.host}:${ep.port}`,
    host: ep.host,
    port: ep.port,
    app: ep.app ?? "",
    instanceId,
    index: ep.instanceIndex ?? "",
    extras: `${ep.availabilityZone ?? ""}\0${ep.serverCertDomainSan ?? ""}\0${ep.protocol ?? ""}\0${
      ep.tags === undefined || ep.tags === null ? "{}" : JSON.stringify(ep.tags)
    }`,
    staleSec: u32(ep.staleThresholdSec),
    tlsPort,
    updatedAtNs,
  };
  last = { spec: ep, copy: { ...ep }, prepared };
  return prepared;
}

/** The key that names an endpoint in its pool (private_instance_id, else host:port). */
export function endpointKey(ep: EndpointSpec): string {
  return ep.instanceId ? ep.instanceId : `${ep.host}:${ep.port}`;
}

export function prepareOptions(opt: PoolOptions): PreparedOptions {
  const lb = LB_CODE[opt.loadBalancing] ?? 0;
  return {
    lb,
    hashHeader: lb === 2 ? (opt.hashHeader ?? "").toLowerCase() : "",
    balance: lb === 2 && Number.isFinite(opt.hashBalance) && opt.hashBalance > 0 ? opt.hashBalance : 0,
    maxConns: u32(opt.maxConnsPerBackend),
    routeService: typeof opt.routeServiceUrl === "string" ? opt.routeServiceUrl : "",
  };
}

function badEndpoint(ep: EndpointSpec, why: string): NativeError {
  return new NativeError(
    "KILN_TABLE_BAD_ENDPOINT",
    `bad endpoint ${String(ep.host)}:${String(ep.port)}: ${why}`,
  );
}

export interface Extras {
  availabilityZone: string;
  serverCertDomainSan: string;
  protocol: string;
  tags: Record<string, string>;
}

export function decodeExtras(extras: string): Extras {
  const parts = extras.split("\0");
  return {
    availabilityZone: parts[0] ?? "",
    serverCertDomainSan: parts[1] ?? "",
    protocol: parts[2] ?? "",
    tags: JSON.parse(parts.slice(3).join("\0") || "{}") as Record<string, string>,
  };
}

/** Where a Host value's name ends: before `:port` (an IPv6 literal keeps its brackets). */
export function hostNameEnd(host: string): number {
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf("]");
    return close >= 0 ? close + 1 : host.length;
  }
  const colon = host.indexOf(":");
  return colon >= 0 ? colon : host.length;
}

/** A request host as both tables match it: lowercase, `:port` dropped; "" when too long. */
export function requestHost(host: string): string {
  const end = hostNameEnd(host);
  if (end >= HOST_MAX) return "";
  return (end === host.length ? host : host.slice(0, end)).toLowerCase();
}
