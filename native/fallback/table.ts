// The TypeScript route table: the same rules as native/src/route_table.cc (matching,
// pools, balancing, pruning, handles), one table per thread (shared = false).
import { NativeError } from "../errors.js";
import type {
  EndpointInfo,
  EndpointSpec,
  PoolOptions,
  RegisterResult,
  RouteDump,
  RouteDumpEndpoint,
  RouteTable,
  TableOptions,
  TableStats,
} from "../types.js";
import { buildMaglev, hashString, SEED_KEY } from "./hash.js";
import {
  decodeExtras,
  LB_NAME,
  type PreparedEndpoint,
  type PreparedOptions,
  parseRouteUri,
  prepareEndpoint,
  prepareOptions,
  requestHost,
} from "./uri.js";

const SLOT_SPAN = 2 ** 26;
const GEN_MASK = 2 ** 27 - 1;
const DEFAULT_STALE_SEC = 120;
const LB_HASH = 2;
const LB_LEAST = 1;

const NO_ROUTE = -1;
const NO_ENDPOINTS = -2;
const UNKNOWN_INSTANCE = -3;
const ALL_FULL = -4;
const NEED_HASH_KEY = -5;
const ROUTE_SERVICE = -6;

/** One backend instance, shared by every route it registered (like the native slot). */
interface Rec {
  slot: number;
  gen: number;
  inFlight: number;
  failedUntil: number;
  key: string;
  keyIsId: boolean;
  host: string;
  port: number;
  app: string;
  index: string;
  extras: string;
  tlsPort: number;
  staleSec: number;
  updatedAtNs: bigint;
  refs: number;
}

interface Member {
  rec: Rec;
  lastSeenMs: number;
}

interface Route {
  host: string;
  path: string;
  members: Member[];
  rr: number;
  lb: number;
  maxConns: number;
  hashHeader: string;
  balance: number;
  /** route_service_url of the pool ("" = none); last register wins, as in gorouter. */
  routeService: string;
  maglev: Uint16Array | null;
  /** When the pool became empty; meaningful only while `members` is empty. */
  emptySinceMs: number;
}

let nextFallbackId = -1;

function pathMatches(reg: string, req: string): boolean {
  if (reg.length === 0) return true;
  return req.startsWith(reg) && (req.length === reg.length || req.charCodeAt(reg.length) === 47);
}

function cutQuery(path: string): string {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 63 || c === 35) return path.slice(0, i);
  }
  return path;
}

function nextGen(gen: number): number {
  const g = (gen + 1) & GEN_MASK;
  return g === 0 ? 1 : g;
}

/** The table's empty-pool timeout, checked (both tables take it through here). */
export function emptyPoolTimeout(options: TableOptions): number {
  const ms = options.emptyPoolTimeoutMs;
  if (!Number.isFinite(ms) || ms < 0) {
    throw new NativeError(
      "KILN_TABLE_BAD_OPTION",
      `emptyPoolTimeoutMs must be a finite number of ms, 0 or more; got ${String(ms)}`,
    );
  }
  return ms;
}

export class FallbackRouteTable implements RouteTable {
  readonly shared = false;
  readonly id = nextFallbackId--;
  private readonly emptyPoolTimeoutMs: number;
  private readonly hosts = new Map<string, Route[]>();
  private readonly byKey = new Map<string, Rec>();
  /** Live record per slot, and each slot's generation (kept after the record is freed). */
  private readonly slots: (Rec | null)[] = [];
  private readonly gens: number[] = [];
  private readonly free: number[] = [];
  private routes = 0;
  private closed = false;

  constructor(options: TableOptions) {
    this.emptyPoolTimeoutMs = emptyPoolTimeout(options);
  }

  private check(): void {
    if (this.closed) throw new NativeError("KILN_TABLE_CLOSED", "the route table was closed");
  }

  register(uri: string, endpoint: EndpointSpec, options: PoolOptions, nowMs: number): RegisterResult {
    this.check();
    const { host, path } = parseRouteUri(uri);
    return this.registerPrepared(host, path, prepareEndpoint(endpoint), prepareOptions(options), nowMs);
  }

  private findRoute(host: string, path: string): Route | undefined {
    const list = this.hosts.get(host);
    if (list === undefined) return undefined;
    for (const r of list) if (r.path === path) return r;
    return undefined;
  }

  private acquire(ep: PreparedEndpoint): Rec {
    const slot = this.free.length > 0 ? (this.free.pop() as number) : this.slots.length;
    if (slot === this.slots.length) {
      this.slots.push(null);
      this.gens.push(1);
    }
    const rec: Rec = {
      slot,
      gen: this.gens[slot] as number,
      inFlight: 0,
      failedUntil: 0,
      key: ep.key,
      keyIsId: ep.instanceId !== "",
      host: ep.host,
      port: ep.port,
      app: ep.app,
      index: ep.index,
      extras: ep.extras,
      tlsPort: ep.tlsPort,
      staleSec: ep.staleSec,
      updatedAtNs: ep.updatedAtNs,
      refs: 0,
    };
    this.slots[slot] = rec;
    this.byKey.set(ep.key, rec);
    return rec;
  }

  private releaseRef(rec: Rec): void {
    if (--rec.refs !== 0) return;
    this.byKey.delete(rec.key);
    const gen = nextGen(rec.gen);
    rec.gen = gen;
    this.gens[rec.slot] = gen;
    rec.inFlight = 0;
    this.slots[rec.slot] = null;
    this.free.push(rec.slot);
  }

  private registerPrepared(
    host: string,
    path: string,
    ep: PreparedEndpoint,
    opt: PreparedOptions,
    nowMs: number,
  ): RegisterResult {
    let r = this.findRoute(host, path);
    let rec = this.byKey.get(ep.key);
    let member: Member | undefined;
    if (rec !== undefined && r !== undefined) {
      for (const m of r.members) {
        if (m.rec === rec) {
          member = m;
          break;
        }
      }
    }
    const older = rec !== undefined && ep.updatedAtNs !== 0n && ep.updatedAtNs < rec.updatedAtNs;
    if (older && member !== undefined) return 2;
    if (rec === undefined) {
      rec = this.acquire(ep);
    } else if (!older) {
      const changed =
        rec.host !== ep.host ||
        rec.port !== ep.port ||
        rec.app !== ep.app ||
        rec.index !== ep.index ||
        rec.extras !== ep.extras ||
        rec.tlsPort !== ep.tlsPort;
      if (changed) {
        // Like gorouter replacing the Endpoint (and its stats): a new generation.
        rec.host = ep.host;
        rec.port = ep.port;
        rec.app = ep.app;
        rec.index = ep.index;
        rec.extras = ep.extras;
        rec.tlsPort = ep.tlsPort;
        rec.failedUntil = 0;
        rec.inFlight = 0;
        rec.gen = nextGen(rec.gen);
        this.gens[rec.slot] = rec.gen;
      }
      rec.staleSec = ep.staleSec;
      if (ep.updatedAtNs !== 0n) rec.updatedAtNs = ep.updatedAtNs;
    }
    if (r === undefined) {
      r = {
        host,
        path,
        members: [{ rec, lastSeenMs: nowMs }],
        rr: Math.floor(Math.random() * 0x100000000),
        lb: opt.lb,
        maxConns: opt.maxConns,
        hashHeader: opt.hashHeader,
        balance: opt.balance,
        routeService: opt.routeService,
        maglev: null,
        emptySinceMs: 0,
      };
      if (opt.lb === LB_HASH) r.maglev = buildMaglev([rec.key]);
      rec.refs++;
      let list = this.hosts.get(host);
      if (list === undefined) {
        list = [];
        this.hosts.set(host, list);
      }
      // Longest path first, so the first prefix that matches is the longest.
      let at = 0;
      while (at < list.length && (list[at] as Route).path.length >= path.length) at++;
      list.splice(at, 0, r);
      this.routes++;
      return 0;
    }
    let result: RegisterResult = 1;
    let membershipChanged = false;
    if (member === undefined) {
      if (r.members.length === 0xffff) return 2;
      result = 0;
      membershipChanged = true;
      rec.refs++;
      r.members.push({ rec, lastSeenMs: nowMs });
    } else {
      member.lastSeenMs = nowMs;
    }
    r.routeService = opt.routeService;
    const hashChanged =
      opt.lb === LB_HASH &&
      (r.lb !== LB_HASH || membershipChanged || r.balance !== opt.balance || r.hashHeader !== opt.hashHeader);
    if (hashChanged || r.lb !== opt.lb || r.maxConns !== opt.maxConns) {
      r.lb = opt.lb;
      r.maxConns = opt.maxConns;
      r.hashHeader = opt.hashHeader;
      r.balance = opt.balance;
      r.maglev = opt.lb === LB_HASH ? buildMaglev(r.members.map((m) => m.rec.key)) : null;
    }
    return result;
  }

  unregister(uri: string, endpoint: EndpointSpec, nowMs: number): boolean {
    this.check();
    const { host, path } = parseRouteUri(uri);
    const ep = prepareEndpoint(endpoint);
    const r = this.findRoute(host, path);
    if (r === undefined) return false;
    const rec = this.byKey.get(ep.key);
    if (rec === undefined) return false;
    if (ep.updatedAtNs !== 0n && ep.updatedAtNs < rec.updatedAtNs) return false;
    const i = r.members.findIndex((m) => m.rec === rec);
    if (i < 0) return false;
    r.members.splice(i, 1);
    if (r.members.length === 0) this.emptied(r, nowMs);
    else if (r.lb === LB_HASH) r.maglev = buildMaglev(r.members.map((m) => m.rec.key));
    this.releaseRef(rec);
    return true;
  }

  /** A route whose last endpoint went: kept, empty, for the empty-pool timeout (503, not 404). */
  private emptied(r: Route, nowMs: number): void {
    if (this.emptyPoolTimeoutMs === 0) this.unlink(r);
    else r.emptySinceMs = nowMs;
  }

  private unlink(r: Route): void {
    const list = this.hosts.get(r.host);
    if (list === undefined) return;
    const i = list.indexOf(r);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.hosts.delete(r.host);
    this.routes--;
  }

  prune(nowMs: number): number {
    this.check();
    let removed = 0;
    const released: Rec[] = [];
    for (const list of [...this.hosts.values()]) {
      for (const r of [...list]) {
        if (r.members.length === 0) {
          if (nowMs - r.emptySinceMs > this.emptyPoolTimeoutMs) this.unlink(r);
          continue;
        }
        let touched = false;
        for (let i = 0; i < r.members.length; ) {
          const m = r.members[i] as Member;
          const thr = m.rec.staleSec !== 0 ? m.rec.staleSec : DEFAULT_STALE_SEC;
          if (nowMs - m.lastSeenMs > thr * 1000) {
            r.members.splice(i, 1);
            released.push(m.rec);
            removed++;
            touched = true;
          } else {
            i++;
          }
        }
        if (!touched) continue;
        if (r.members.length === 0) this.emptied(r, nowMs);
        else if (r.lb === LB_HASH) r.maglev = buildMaglev(r.members.map((m) => m.rec.key));
      }
    }
    for (const rec of released) this.releaseRef(rec);
    return removed;
  }

  /** The route for a request: exact host, then "*.parent" wildcards, most specific first. */
  private match(rawHost: string, rawPath: string): Route | null {
    let key = requestHost(rawHost);
    if (key === "") return null;
    const path = cutQuery(rawPath).toLowerCase();
    for (;;) {
      const list = this.hosts.get(key);
      if (list !== undefined) {
        for (let i = 0; i < list.length; i++) {
          const r = list[i] as Route;
          if (pathMatches(r.path, path)) return r;
        }
      }
      const from = key.startsWith("*.") ? 2 : 0;
      const dot = key.indexOf(".", from);
      if (dot < 0 || dot + 1 >= key.length) return null;
      key = `*.${key.slice(dot + 1)}`;
    }
  }

  private take(rec: Rec): number {
    rec.inFlight++;
    return rec.gen * SLOT_SPAN + rec.slot;
  }

  private isFull(rec: Rec, maxConns: number): boolean {
    return maxConns !== 0 && rec.inFlight >= maxConns;
  }

  select(
    host: string,
    path: string,
    stickyId: string,
    hashKey: string,
    nowMs: number,
    routeServiceDone = false,
  ): number {
    this.check();
    const r = this.match(host, path);
    if (r === null) return NO_ROUTE;
    const m = r.members;
    const n = m.length;
    if (n === 0) return NO_ENDPOINTS;
    if (r.routeService !== "" && !routeServiceDone) return ROUTE_SERVICE;
    if (stickyId !== "") {
      for (let i = 0; i < n; i++) {
        const rec = (m[i] as Member).rec;
        if (rec.keyIsId && rec.key === stickyId) {
          if (!this.isFull(rec, r.maxConns)) return this.take(rec);
          break;
        }
      }
    }
    let fbAny: Rec | null = null;
    if (r.lb === LB_HASH) {
      if (hashKey === "") return NEED_HASH_KEY;
      const table = r.maglev as Uint16Array;
      const size = table.length;
      let limit = Number.POSITIVE_INFINITY;
      if (r.balance > 0) {
        let total = 0;
        for (let i = 0; i < n; i++) total += (m[i] as Member).rec.inFlight;
        limit = Math.ceil((r.balance * (total + 1)) / n);
      }
      let fbHealthy: Rec | null = null;
      const pos = hashString(hashKey, SEED_KEY) % size;
      for (let j = 0; j < size; j++) {
        const idx = table[(pos + j) % size] as number;
        if (idx >= n) continue;
        const rec = (m[idx] as Member).rec;
        if (this.isFull(rec, r.maxConns)) continue;
        if (fbAny === null) fbAny = rec;
        if (rec.failedUntil > nowMs) continue;
        if (fbHealthy === null) fbHealthy = rec;
        if (rec.inFlight + 1 > limit) continue;
        return this.take(rec);
      }
      if (fbHealthy !== null) return this.take(fbHealthy);
      return fbAny !== null ? this.take(fbAny) : ALL_FULL;
    }
    const start = r.rr % n;
    r.rr = (r.rr + 1) >>> 0;
    if (r.lb === LB_LEAST) {
      let best: Rec | null = null;
      for (let j = 0; j < n; j++) {
        const rec = (m[(start + j) % n] as Member).rec;
        if (this.isFull(rec, r.maxConns)) continue;
        if (fbAny === null || rec.inFlight < fbAny.inFlight) fbAny = rec;
        if (rec.failedUntil > nowMs) continue;
        if (best === null || rec.inFlight < best.inFlight) best = rec;
      }
      if (best !== null) return this.take(best);
      return fbAny !== null ? this.take(fbAny) : ALL_FULL;
    }
    for (let j = 0; j < n; j++) {
      const rec = (m[(start + j) % n] as Member).rec;
      if (this.isFull(rec, r.maxConns)) continue;
      if (fbAny === null) fbAny = rec;
      if (rec.failedUntil > nowMs) continue;
      return this.take(rec);
    }
    // Every endpoint failed recently: like gorouter, try one anyway rather than none.
    return fbAny !== null ? this.take(fbAny) : ALL_FULL;
  }

  selectInstance(
    host: string,
    path: string,
    app: string,
    index: string,
    _nowMs: number,
    routeServiceDone = false,
  ): number {
    this.check();
    const r = this.match(host, path);
    if (r === null) return NO_ROUTE;
    if (r.members.length === 0) return NO_ENDPOINTS;
    if (r.routeService !== "" && !routeServiceDone) return ROUTE_SERVICE;
    for (const m of r.members) {
      if (m.rec.app !== app || m.rec.index !== index) continue;
      return this.isFull(m.rec, r.maxConns) ? ALL_FULL : this.take(m.rec);
    }
    return UNKNOWN_INSTANCE;
  }

  hashHeader(host: string, path: string): string {
    this.check();
    const r = this.match(host, path);
    return r !== null && r.lb === LB_HASH ? r.hashHeader : "";
  }

  routeService(host: string, path: string): string {
    this.check();
    return this.match(host, path)?.routeService ?? "";
  }

  private live(handle: number): Rec | null {
    if (!(handle >= 0) || !Number.isSafeInteger(handle)) return null;
    const slot = handle % SLOT_SPAN;
    const rec = this.slots[slot];
    return rec != null && rec.gen === Math.floor(handle / SLOT_SPAN) ? rec : null;
  }

  release(handle: number): void {
    this.check();
    const rec = this.live(handle);
    if (rec !== null && rec.inFlight > 0) rec.inFlight--;
  }

  markFailed(handle: number, untilMs: number): void {
    this.check();
    const rec = this.live(handle);
    if (rec !== null) rec.failedUntil = untilMs;
  }

  endpoint(handle: number): EndpointInfo | null {
    this.check();
    const rec = this.live(handle);
    return rec === null ? null : info(rec, handle);
  }

  inFlight(handle: number): number {
    this.check();
    return this.live(handle)?.inFlight ?? 0;
  }

  stats(): TableStats {
    this.check();
    return { routes: this.routes, endpoints: this.byKey.size };
  }

  dump(): RouteDump[] {
    this.check();
    const out: RouteDump[] = [];
    for (const list of this.hosts.values()) {
      for (const r of list) {
        out.push({
          route: r.host + r.path,
          options: {
            loadBalancing: LB_NAME[r.lb] ?? "round-robin",
            hashHeader: r.lb === LB_HASH ? r.hashHeader : "",
            hashBalance: r.lb === LB_HASH ? r.balance : 0,
            maxConnsPerBackend: r.maxConns,
            routeServiceUrl: r.routeService,
          },
          endpoints: r.members.map((m) => dumpEndpoint(m)),
        });
      }
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hosts.clear();
    this.byKey.clear();
    this.slots.length = 0;
    this.routes = 0;
  }
}

function info(rec: Rec, handle: number): EndpointInfo {
  const x = decodeExtras(rec.extras);
  return {
    handle,
    host: rec.host,
    port: rec.port,
    app: rec.app,
    instanceId: rec.keyIsId ? rec.key : "",
    instanceIndex: rec.index,
    availabilityZone: x.availabilityZone,
    tags: x.tags,
    protocol: x.protocol,
  };
}

function dumpEndpoint(m: Member): RouteDumpEndpoint {
  const rec = m.rec;
  return {
    ...info(rec, rec.gen * SLOT_SPAN + rec.slot),
    inFlight: rec.inFlight,
    updatedAtNs: rec.updatedAtNs.toString(),
    lastSeenMs: m.lastSeenMs,
    staleThresholdSec: rec.staleSec,
    failedUntilMs: rec.failedUntil,
  };
}

export function createFallbackTable(options: TableOptions): RouteTable {
  return new FallbackRouteTable(options);
}
