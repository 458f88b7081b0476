// Route tables: the native one (one per process, shared by every worker thread) and the
// TypeScript fallback (one per thread). createRouteTable() picks native when the addon loaded.
import { NativeError } from "./errors.js";
import { createFallbackTable, emptyPoolTimeout } from "./fallback/table.js";
import {
  decodeExtras,
  LB_NAME,
  type PreparedEndpoint,
  parseRouteUri,
  prepareEndpoint,
  prepareOptions,
} from "./fallback/uri.js";
import { binding } from "./index.js";
import type {
  EndpointInfo,
  EndpointSpec,
  PoolOptions,
  RegisterResult,
  RouteDump,
  RouteTable,
  TableOptions,
  TableStats,
} from "./types.js";

export { createFallbackTable } from "./fallback/table.js";

/** [host, port, app, instanceId, index, extras, inFlight, updatedAtNs, staleSec, failedUntil] */
type EndpointRow = [string, number, string, string, string, string, number, string, number, number];
type DumpRow = [string, number, string, number, number, [number, number, EndpointRow][], string];

/** The pool half of a registration, the same for register() and registerLast(). */
type PoolArgs = [
  lb: number,
  hashHeader: string,
  hashBalance: number,
  maxConns: number,
  routeService: string,
  nowMs: number,
];

/** The functions of one native table, bound in C++ to the process-wide object (route_table_napi.cc). */
interface NativeTableFns {
  id: number;
  register(
    host: string,
    path: string,
    key: string,
    epHost: string,
    port: number,
    app: string,
    instanceId: string,
    index: string,
    extras: string,
    staleSec: number,
    tlsPort: number,
    updatedAtNs: bigint,
    ...pool: PoolArgs
  ): RegisterResult;
  /** The next uri of the endpoint given to this thread's last register(). */
  registerLast(host: string, path: string, ...pool: PoolArgs): RegisterResult;
  unregister(host: string, path: string, key: string, updatedAtNs: bigint, nowMs: number): boolean;
  prune(nowMs: number): number;
  select(
    host: string,
    path: string,
    stickyId: string,
    hashKey: string,
    nowMs: number,
    routeServiceDone?: boolean,
  ): number;
  selectInstance(
    host: string,
    path: string,
    app: string,
    index: string,
    nowMs: number,
    routeServiceDone?: boolean,
  ): number;
  hashHeader(host: string, path: string): string;
  routeService(host: string, path: string): string;
  release(handle: number): void;
  markFailed(handle: number, untilMs: number): void;
  inFlight(handle: number): number;
  endpoint(handle: number): EndpointRow | null;
  stats(): [number, number];
  dump(): DumpRow[];
  close(): void;
}

interface RouteTableBinding {
  createRouteTable(emptyPoolTimeoutMs: number): NativeTableFns;
  attachRouteTable(id: number): NativeTableFns | undefined;
}

function endpointInfo(handle: number, row: EndpointRow): EndpointInfo {
  const x = decodeExtras(row[5]);
  return {
    handle,
    host: row[0],
    port: row[1],
    app: row[2],
    instanceId: row[3],
    instanceIndex: row[4],
    availabilityZone: x.availabilityZone,
    tags: x.tags,
    protocol: x.protocol,
  };
}

/**
 * The native table seen from one thread. The hot methods are the C++ functions themselves
 * (own properties, no JavaScript frame in between); the rest adapt arguments and results.
 */
class NativeRouteTable implements RouteTable {
  readonly shared = true;
  readonly id: number;
  readonly select: RouteTable["select"];
  readonly selectInstance: RouteTable["selectInstance"];
  readonly hashHeader: RouteTable["hashHeader"];
  readonly routeService: RouteTable["routeService"];
  readonly release: RouteTable["release"];
  readonly markFailed: RouteTable["markFailed"];
  readonly inFlight: RouteTable["inFlight"];
  readonly prune: RouteTable["prune"];
  readonly close: RouteTable["close"];
  private readonly n: NativeTableFns;
  /** The endpoint the addon holds from this thread's last successful register(). */
  private last: PreparedEndpoint | null = null;

  constructor(n: NativeTableFns) {
    this.n = n;
    this.id = n.id;
    this.select = n.select;
    this.selectInstance = n.selectInstance;
    this.hashHeader = n.hashHeader;
    this.routeService = n.routeService;
    this.release = n.release;
    this.markFailed = n.markFailed;
    this.inFlight = n.inFlight;
    this.prune = n.prune;
    this.close = n.close;
  }

  register(uri: string, endpoint: EndpointSpec, options: PoolOptions, nowMs: number): RegisterResult {
    const { host, path } = parseRouteUri(uri);
    const opt = prepareOptions(options);
    const ep = prepareEndpoint(endpoint);
    // A register message names one endpoint for all its uris: the uris after the first reuse
    // the endpoint the addon already holds (no string conversions).
    if (ep === this.last) {
      return this.n.registerLast(
        host,
        path,
        opt.lb,
        opt.hashHeader,
        opt.balance,
        opt.maxConns,
        opt.routeService,
        nowMs,
      );
    }
    this.last = null;
    const r = this.n.register(
      host,
      path,
      ep.key,
      ep.host,
      ep.port,
      ep.app,
      ep.instanceId,
      ep.index,
      ep.extras,
      ep.staleSec,
      ep.tlsPort,
      ep.updatedAtNs,
      opt.lb,
      opt.hashHeader,
      opt.balance,
      opt.maxConns,
      opt.routeService,
      nowMs,
    );
    this.last = ep;
    return r;
  }

  unregister(uri: string, endpoint: EndpointSpec, nowMs: number): boolean {
    const { host, path } = parseRouteUri(uri);
    const ep = prepareEndpoint(endpoint);
    return this.n.unregister(host, path, ep.key, ep.updatedAtNs, nowMs);
  }

  endpoint(handle: number): EndpointInfo | null {
    const row = this.n.endpoint(handle);
    return row === null ? null : endpointInfo(handle, row);
  }

  stats(): TableStats {
    const [routes, endpoints] = this.n.stats();
    return { routes, endpoints };
  }

  dump(): RouteDump[] {
    return this.n.dump().map(([route, lb, hashHeader, hashBalance, maxConns, eps, routeService]) => ({
      route,
      options: {
        loadBalancing: LB_NAME[lb] ?? "round-robin",
        hashHeader,
        hashBalance,
        maxConnsPerBackend: maxConns,
        routeServiceUrl: routeService,
      },
      endpoints: eps.map(([handle, lastSeenMs, row]) => ({
        ...endpointInfo(handle, row),
        inFlight: row[6],
        updatedAtNs: row[7],
        lastSeenMs,
        staleThresholdSec: row[8],
        failedUntilMs: row[9],
      })),
    }));
  }
}

function nativeBinding(): RouteTableBinding | null {
  if (binding === null || typeof binding.createRouteTable !== "function") return null;
  return binding as unknown as RouteTableBinding;
}

/** A new process-wide native table; throws KILN_NATIVE_UNAVAILABLE when the addon is not loaded. */
export function createNativeTable(options: TableOptions): RouteTable {
  const b = nativeBinding();
  if (b === null) {
    throw new NativeError(
      "KILN_NATIVE_UNAVAILABLE",
      "the native addon is not loaded (KILN_NATIVE=0 or not built); run npm run build",
    );
  }
  return new NativeRouteTable(b.createRouteTable(emptyPoolTimeout(options)));
}

/**
 * The router's table: native when the addon loaded (measured faster under many reader
 * threads, and one copy per process; see bench/RESULTS.md), else the fallback.
 */
export function createRouteTable(options: TableOptions): RouteTable {
  return nativeBinding() !== null ? createNativeTable(options) : createFallbackTable(options);
}

/**
 * The table `id` (from `table.id` in the thread that created it), seen from this thread.
 * Only native tables can be shared: with the fallback this throws KILN_TABLE_NOT_SHARED.
 */
export function attachTable(id: number): RouteTable {
  const b = nativeBinding();
  if (b === null && id > 0) {
    throw new NativeError(
      "KILN_NATIVE_UNAVAILABLE",
      `route table ${id} is native but the addon is not loaded in this thread (KILN_NATIVE=0 or not built)`,
    );
  }
  if (b === null || id < 0) {
    throw new NativeError(
      "KILN_TABLE_NOT_SHARED",
      `route table ${id} is a per-thread fallback table; each worker builds its own from RouteUpdate batches`,
    );
  }
  const fns = b.attachRouteTable(id);
  if (fns === undefined)
    throw new NativeError("KILN_TABLE_UNKNOWN", `no open native route table has id ${id}`);
  return new NativeRouteTable(fns);
}
