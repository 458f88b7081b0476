// Per-worker proxy state: the route table, endpoint details cached by handle, the
// backend pools, counters and the access log. One instance per worker thread.

import type { EndpointInfo, RouteTable } from "../../native/types.js";
import type { AccessLog } from "../access-log.js";
import type { RouterConfig } from "../config.js";
import { parseTrustedProxies, type TrustedNet } from "../handlers/forwarded.js";
import type { RouteServices } from "../handlers/route-service.js";
import { WorkerCounters } from "../metrics/counters.js";
import type { NativeSide } from "./native-exchange.js";
import { BackendPool, type PoolLimits } from "./pool.js";

/** What the forwarder needs about one endpoint, computed once per handle. */
export interface EndpointEntry {
  handle: number;
  info: EndpointInfo;
  pool: BackendPool;
  /** "host:port", for logs. */
  label: string;
  /** X-CF-ApplicationID, X-CF-InstanceIndex and X-CF-InstanceID lines of the upstream head. */
  headerBlock: string;
}

/**
 * Header values come from NATS messages: never let one end a line. The decoder already refuses
 * such registrations (messaging/gorouter.ts headerToken); this stays for endpoints that reach
 * the table another way (RouteTable.register is public), at one regex test per cached endpoint.
 */
function headerSafe(v: string): string {
  return /[\r\n]/.test(v) ? v.replace(/[\r\n]/g, "") : v;
}

const maxCachedEndpoints = 50_000;

export class ProxyContext {
  readonly cfg: RouterConfig;
  readonly table: RouteTable;
  readonly counters = new WorkerCounters();
  readonly accessLog: AccessLog | null;
  readonly limits: PoolLimits;
  /** --trusted-proxies, parsed once per worker (router/handlers/forwarded.ts). */
  readonly trustedNets: TrustedNet[];
  /** The worker's native upstream client, or null when it forwards with the JavaScript one. */
  native: NativeSide | null = null;
  /** Route services of this worker (router/handlers/route-service.ts); set by the worker. */
  routeServices: RouteServices | null = null;
  private readonly pools = new Map<string, BackendPool>();
  private readonly endpoints = new Map<number, EndpointEntry>();

  constructor(cfg: RouterConfig, table: RouteTable, accessLog: AccessLog | null) {
    this.cfg = cfg;
    this.table = table;
    this.accessLog = accessLog;
    this.trustedNets = parseTrustedProxies(cfg.trustedProxies);
    this.limits = {
      connectTimeoutMs: cfg.connectTimeoutMs,
      poolIdleTimeoutMs: cfg.poolIdleTimeoutMs,
      maxIdlePerBackend: cfg.maxIdlePerBackend,
    };
  }

  /** The cached entry of a selected handle, or null when the endpoint just went away. */
  endpoint(handle: number): EndpointEntry | null {
    const hit = this.endpoints.get(handle);
    if (hit !== undefined) return hit;
    const info = this.table.endpoint(handle);
    if (info === null) return null;
    const label = `${info.host}:${info.port}`;
    const entry: EndpointEntry = {
      handle,
      info,
      pool: this.pool(info.host, info.port, label),
      label,
      headerBlock:
        `x-cf-applicationid: ${headerSafe(info.app)}\r\n` +
        `x-cf-instanceindex: ${headerSafe(info.instanceIndex)}\r\n` +
        `x-cf-instanceid: ${headerSafe(info.instanceId)}\r\n`,
    };
    if (this.endpoints.size >= maxCachedEndpoints) this.endpoints.clear();
    this.endpoints.set(handle, entry);
    return entry;
  }

  private pool(host: string, port: number, label: string): BackendPool {
    let pool = this.pools.get(label);
    if (pool === undefined) {
      pool = new BackendPool(host, port, this.limits);
      this.pools.set(label, pool);
    }
    return pool;
  }

  /** An entry for a route service at ip:port: not in the table (handle -1), no X-CF-* lines. */
  serviceEntry(ip: string, port: number): EndpointEntry {
    const label = ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
    return {
      handle: -1,
      info: {
        handle: -1,
        host: ip,
        port,
        app: "",
        instanceId: "",
        instanceIndex: "",
        availabilityZone: "",
        tags: {},
        protocol: "",
      },
      pool: this.pool(ip, port, label),
      label,
      headerBlock: "",
    };
  }

  /** Drops cached endpoint details (the table changed: an endpoint may have moved). */
  invalidate(): void {
    this.endpoints.clear();
  }

  requestStarted(): void {
    this.counters.inFlight++;
  }

  requestEnded(): void {
    this.counters.inFlight--;
  }

  /** Closes idle backend connections and forgets pools with no connection left. */
  closeIdle(): void {
    for (const [k, p] of this.pools) {
      p.closeIdle();
      if (p.open <= 0) this.pools.delete(k);
    }
  }

  poolStats(): { pools: number; open: number; idle: number } {
    let open = 0;
    let idle = 0;
    for (const p of this.pools.values()) {
      open += p.open;
      idle += p.idleCount();
    }
    return { pools: this.pools.size, open, idle };
  }
}
