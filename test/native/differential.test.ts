// Randomized differential test: the native table and the fallback get the same random
// register/unregister/prune/select/markFailed sequences and must give the same answers.
// Round-robin and least-connection ties start at a random index, so their picks are compared
// as sets: the pick must be one the other table could also have made.
import t, { type Test } from "tap";
import { binding } from "../../native/index.js";
import { createFallbackTable, createNativeTable } from "../../native/table.js";
import { type LoadBalancing, type RouteDump, type RouteTable, SelectError } from "../../native/types.js";
import { ep, opts } from "./suite.js";

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const HOSTS = ["a.com", "b.com", "x.a.com", "*.a.com", "*.com", "c.org", "deep.x.a.com"];
const PATHS = ["", "/p", "/p/q", "/r"];
const REQ_HOSTS = [...HOSTS.filter((h) => !h.startsWith("*")), "y.a.com", "z.com", "A.COM:8080", "q.x.a.com"];
const REQ_PATHS = ["/", "/p", "/p/q/s", "/P/Q?x", "/r", "/rr", "/p/x"];
const IDS = ["i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "", ""];
const LBS: LoadBalancing[] = ["round-robin", "least-connection", "hash"];

function norm(dump: RouteDump[]): unknown {
  return dump
    .map((r) => ({
      route: r.route,
      options: r.options,
      endpoints: r.endpoints.map((e) => ({ ...e, handle: 0, key: e.instanceId || `${e.host}:${e.port}` })),
    }))
    .sort((x, y) => (x.route < y.route ? -1 : 1));
}

function keyOf(table: RouteTable, h: number): string | number {
  if (h < 0) return h;
  const info = table.endpoint(h);
  return info === null ? "stale" : info.instanceId || `${info.host}:${info.port}`;
}

/** An independent model of matching over a dump: exact host, then wildcards, longest path prefix. */
function matchRoute(dump: RouteDump[], rawHost: string, rawPath: string): RouteDump | undefined {
  let host = rawHost.toLowerCase().split(":")[0] as string;
  const path = (rawPath.split(/[?#]/)[0] as string).toLowerCase();
  for (;;) {
    let best: RouteDump | undefined;
    for (const r of dump) {
      const slash = r.route.indexOf("/");
      const rh = slash < 0 ? r.route : r.route.slice(0, slash);
      const rp = slash < 0 ? "" : r.route.slice(slash);
      if (rh !== host) continue;
      if (rp !== "" && !(path === rp || path.startsWith(`${rp}/`))) continue;
      if (best === undefined || rp.length > best.route.length - rh.length) best = r;
    }
    if (best !== undefined) return best;
    const rest = host.startsWith("*.") ? host.slice(2) : host;
    const dot = rest.indexOf(".");
    if (dot < 0) return undefined;
    host = `*.${rest.slice(dot + 1)}`;
  }
}

function route(dump: RouteDump[], name: string): RouteDump | undefined {
  return dump.find((r) => r.route === name);
}

function run(seed: number, ops: number, emptyPoolTimeoutMs: number, tt: Test): void {
  const rnd = mulberry32(seed);
  const pickOf = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const native = createNativeTable({ emptyPoolTimeoutMs });
  const fallback = createFallbackTable({ emptyPoolTimeoutMs });
  let now = 1_000_000;
  let mismatches = 0;
  let noEndpoints = 0;
  const fail = (what: string, a: unknown, b: unknown): void => {
    if (mismatches++ < 5) tt.fail(`seed ${seed}: ${what}`, { native: a, fallback: b });
  };
  for (let i = 0; i < ops; i++) {
    const r = rnd();
    const uri = `${pickOf(HOSTS)}${pickOf(PATHS)}`;
    const id = pickOf(IDS);
    const spec = ep(id, 8000 + Math.floor(rnd() * 3), {
      app: `app-${Math.floor(rnd() * 2)}`,
      instanceIndex: String(Math.floor(rnd() * 3)),
      staleThresholdSec: pickOf([0, 5, 30]),
      updatedAtNs: pickOf([0n, 1n, 2n, 3n, 4n]),
    });
    if (r < 0.4) {
      const o = opts({
        loadBalancing: pickOf(LBS),
        hashHeader: "X-Key",
        hashBalance: pickOf([0, 0, 1.25, 2]),
        maxConnsPerBackend: pickOf([0, 0, 1, 2]),
        routeServiceUrl: pickOf(["", "", "", "http://10.0.0.9:8000/rs"]),
      });
      const a = native.register(uri, spec, o, now);
      const b = fallback.register(uri, spec, o, now);
      if (a !== b) fail(`register ${uri} ${id}`, a, b);
    } else if (r < 0.55) {
      const a = native.unregister(uri, spec, now);
      const b = fallback.unregister(uri, spec, now);
      if (a !== b) fail(`unregister ${uri} ${id}`, a, b);
    } else if (r < 0.6) {
      now += Math.floor(rnd() * 20_000);
      const a = native.prune(now);
      const b = fallback.prune(now);
      if (a !== b) fail(`prune ${now}`, a, b);
    } else if (r < 0.65) {
      // Mark the i-th endpoint of a route failed in both (handles differ, positions do not).
      const dn = native.dump();
      const name = dn.length === 0 ? undefined : pickOf(dn).route;
      if (name === undefined) continue;
      const ra = route(dn, name);
      const rb = route(fallback.dump(), name);
      const k = Math.floor(rnd() * (ra?.endpoints.length ?? 0));
      const until = now + pickOf([-1, 5000, 30_000]);
      const ha = ra?.endpoints[k]?.handle;
      const hb = rb?.endpoints[k]?.handle;
      if (ha !== undefined && hb !== undefined) {
        native.markFailed(ha, until);
        fallback.markFailed(hb, until);
      }
    } else if (r < 0.7) {
      const host = pickOf(REQ_HOSTS);
      const path = pickOf(REQ_PATHS);
      const app = `app-${Math.floor(rnd() * 2)}`;
      const index = String(Math.floor(rnd() * 3));
      const done = rnd() < 0.5;
      const ha = native.selectInstance(host, path, app, index, now, done);
      const hb = fallback.selectInstance(host, path, app, index, now, done);
      const a = keyOf(native, ha);
      const b = keyOf(fallback, hb);
      if (ha >= 0) native.release(ha);
      if (hb >= 0) fallback.release(hb);
      if (a !== b) fail(`selectInstance ${host}${path} ${app}/${index}`, a, b);
    } else {
      const host = pickOf(REQ_HOSTS);
      const path = pickOf(REQ_PATHS);
      const sticky = rnd() < 0.2 ? pickOf(IDS) : "";
      const key = rnd() < 0.8 ? `k${Math.floor(rnd() * 50)}` : "";
      const hold = rnd() < 0.3;
      const done = rnd() < 0.5;
      const ha = native.select(host, path, sticky, key, now, done);
      const hb = fallback.select(host, path, sticky, key, now, done);
      const rs = native.routeService(host, path);
      if (rs !== fallback.routeService(host, path)) fail(`routeService ${host}${path}`, rs, "");
      const a = keyOf(native, ha);
      const b = keyOf(fallback, hb);
      if (ha === SelectError.NoEndpoints) noEndpoints++;
      const header = native.hashHeader(host, path);
      if (header !== fallback.hashHeader(host, path)) fail(`hashHeader ${host}${path}`, header, "");
      const stuck = sticky !== "" && (a === sticky || b === sticky);
      if (typeof a === "number" || typeof b === "number" || header !== "" || stuck) {
        if (a !== b) fail(`select ${host}${path} sticky=${sticky} key=${key}`, a, b);
      } else if (a !== b || i % 8 === 0) {
        // Round-robin / least-connection: both picks are endpoints of the same pool and
        // neither is failed unless every endpoint of the pool is.
        const pool = matchRoute(native.dump(), host, path);
        const keys = new Set(pool?.endpoints.map((e) => e.instanceId || `${e.host}:${e.port}`));
        if (!keys.has(a) || !keys.has(b)) fail(`select ${host}${path} picks outside the pool`, a, b);
        const healthy = pool?.endpoints.filter((e) => e.failedUntilMs <= now) ?? [];
        const healthyKeys = new Set(healthy.map((e) => e.instanceId || `${e.host}:${e.port}`));
        const full = (pool?.options.maxConnsPerBackend ?? 0) > 0;
        if (!full && healthy.length > 0 && (!healthyKeys.has(a) || !healthyKeys.has(b))) {
          fail(`select ${host}${path} picked a failed endpoint`, a, b);
        }
      }
      if (hold && ha >= 0 && hb >= 0 && a === b) continue;
      if (ha >= 0) native.release(ha);
      if (hb >= 0) fallback.release(hb);
    }
    if (i % 250 === 0 || i === ops - 1) {
      const a = norm(native.dump());
      const b = norm(fallback.dump());
      if (JSON.stringify(a) !== JSON.stringify(b)) fail(`dump after op ${i}`, a, b);
      const sa = native.stats();
      const sb = fallback.stats();
      if (sa.routes !== sb.routes || sa.endpoints !== sb.endpoints) fail(`stats after op ${i}`, sa, sb);
    }
  }
  tt.equal(mismatches, 0, `seed ${seed}: ${ops} operations agree`);
  if (emptyPoolTimeoutMs > 0) tt.ok(noEndpoints > 0, `${noEndpoints} selects met an emptied route`);
  native.close();
  fallback.close();
}

if (binding === null) {
  t.fail("the native addon is not built; run node scripts/setup.mjs --build");
} else {
  // Emptied routes go at once, or stay for an empty-pool timeout shorter than the prune steps.
  for (const [seed, emptyPoolTimeoutMs] of [
    [1, 0],
    [2, 0],
    [3, 10_000],
    [42, 10_000],
    [20261125, 30_000],
  ] as const) {
    t.test(`seed ${seed}, empty-pool timeout ${emptyPoolTimeoutMs} ms`, async (tt) =>
      run(seed, 10_000, emptyPoolTimeoutMs, tt),
    );
  }
}
