// The route table contract shared by the C++ addon and the TypeScript fallback.
// Hot-path calls take and return plain numbers and strings so that one request
// crosses into the table once (select) and once more when it finishes (release).

export type LoadBalancing = "round-robin" | "least-connection" | "hash";

/** One backend instance as announced by `router.register` (gorouter semantics). */
export interface EndpointSpec {
  host: string;
  port: number;
  /** App guid (`app`). */
  app: string;
  /** `private_instance_id`; when empty the endpoint is keyed by `host:port`. */
  instanceId: string;
  /** `private_instance_index` as announced (a decimal string). */
  instanceIndex: string;
  tags: Record<string, string>;
  availabilityZone: string;
  /** Seconds without a refresh before pruning removes the endpoint. */
  staleThresholdSec: number;
  serverCertDomainSan: string;
  tlsPort: number;
  protocol: string;
  /** `endpoint_updated_at_ns`; 0n when absent (always applied). */
  updatedAtNs: bigint;
}

/** Per-pool options from the register message's `options` (last writer wins). */
export interface PoolOptions {
  loadBalancing: LoadBalancing;
  /** Request header whose value is hashed when `loadBalancing` is "hash". */
  hashHeader: string;
  /** gorouter's `hash_balance`: 0 = pure hash; >0 = max load factor over the average. */
  hashBalance: number;
  /** Max in-flight requests per endpoint; 0 = unlimited. Full endpoints are skipped. */
  maxConnsPerBackend: number;
  /**
   * `route_service_url` ("" = none): a property of the route, as gorouter keeps it on the pool,
   * since one instance (one private_instance_id) can serve routes with and without a service.
   */
  routeServiceUrl: string;
}

/** Result of `register`. */
export const RegisterResult = {
  Added: 0,
  Updated: 1,
  /** The update carried an `endpoint_updated_at_ns` older than the one held. */
  IgnoredStale: 2,
} as const;
export type RegisterResult = (typeof RegisterResult)[keyof typeof RegisterResult];

/**
 * Negative results of `select`/`selectInstance`; a non-negative result is an
 * endpoint handle (a safe integer: slot + generation, never reused while held).
 */
export const SelectError = {
  NoRoute: -1,
  NoEndpoints: -2,
  UnknownInstance: -3,
  AllFull: -4,
  /** The route balances by hash and no key was passed: read `hashHeader(host, path)` and call again. */
  NeedHashKey: -5,
  /**
   * The route has a route service: no endpoint was picked. Read `routeService(host, path)`; once
   * the service's signed callback is checked, call again with `routeServiceDone` true.
   */
  RouteService: -6,
} as const;

/** What a worker needs to forward a request; fetched once per handle and cached. */
export interface EndpointInfo {
  handle: number;
  host: string;
  port: number;
  app: string;
  instanceId: string;
  instanceIndex: string;
  availabilityZone: string;
  tags: Record<string, string>;
  protocol: string;
}

export interface RouteDumpEndpoint extends EndpointInfo {
  inFlight: number;
  updatedAtNs: string;
  lastSeenMs: number;
  staleThresholdSec: number;
  failedUntilMs: number;
}

export interface RouteDump {
  /** Normalised `host[/path]`. */
  route: string;
  options: PoolOptions;
  endpoints: RouteDumpEndpoint[];
}

export interface TableStats {
  /** Routes in the table, empty ones kept for the empty-pool timeout included (they answer). */
  routes: number;
  endpoints: number;
}

/** Options of one table, fixed when it is created. */
export interface TableOptions {
  /**
   * How long a route whose last endpoint went (unregistered or pruned) stays, empty: `select`
   * answers `NoEndpoints` for it until a registration fills it again or a prune after this
   * long removes it (gorouter's `empty_pool_timeout`). 0 removes it at once.
   */
  emptyPoolTimeoutMs: number;
}

export interface RouteTable {
  /** True when every thread of the process sees this same table (native); false for the per-thread fallback. */
  readonly shared: boolean;
  /** Process-unique id; a worker thread passes it to `attachTable` to read the same table. */
  readonly id: number;

  register(uri: string, endpoint: EndpointSpec, options: PoolOptions, nowMs: number): RegisterResult;
  /**
   * Removes the endpoint (matched by instance id, else host:port) from the route; returns
   * whether one was removed. A route left empty is kept from `nowMs` (`emptyPoolTimeoutMs`).
   */
  unregister(uri: string, endpoint: EndpointSpec, nowMs: number): boolean;
  /**
   * Removes endpoints not refreshed within their stale threshold and routes empty for longer
   * than `emptyPoolTimeoutMs`; returns how many endpoints were removed.
   */
  prune(nowMs: number): number;

  /**
   * Picks an endpoint for a request and counts it in flight (call `release` when done).
   * `host` may carry a port and any case; `path` is the request path (query allowed).
   * `stickyId` is the `__VCAP_ID__` cookie value or ""; `hashKey` is the hash header value or "".
   */
  select(
    host: string,
    path: string,
    stickyId: string,
    hashKey: string,
    nowMs: number,
    routeServiceDone?: boolean,
  ): number;
  /** Like `select` but only the endpoint of app `app` with instance index `index` (X-CF-APP-INSTANCE). */
  selectInstance(
    host: string,
    path: string,
    app: string,
    index: string,
    nowMs: number,
    routeServiceDone?: boolean,
  ): number;
  /** The hash header name of the route `select` would use, or "" when it does not hash. */
  hashHeader(host: string, path: string): string;
  /** The route service URL of the route `select` would use, or "" when it has none. */
  routeService(host: string, path: string): string;
  release(handle: number): void;
  /** Skips the endpoint in `select` until `untilMs` (after a connect failure). */
  markFailed(handle: number, untilMs: number): void;
  /** Endpoint details, or null once the handle no longer names a registered endpoint. */
  endpoint(handle: number): EndpointInfo | null;
  inFlight(handle: number): number;

  stats(): TableStats;
  dump(): RouteDump[];
  /** Frees the table; later calls throw. */
  close(): void;
}

/** One change to a table, as the registry produces it and as the fallback's workers receive it. */
export type RouteUpdate =
  | { op: "register"; uri: string; endpoint: EndpointSpec; options: PoolOptions }
  | { op: "unregister"; uri: string; endpoint: EndpointSpec };

/**
 * Where the registry sends its updates. With the native table the router's main thread
 * applies them once to the shared table; with the fallback it also posts each batch to every
 * worker thread's own table.
 */
export interface RouteSink {
  apply(updates: readonly RouteUpdate[], nowMs: number): void;
  prune(nowMs: number): number;
}
