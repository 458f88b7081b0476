// The route table behaviour suite, run unchanged against the native table and the fallback.
import type { Test } from "tap";
import type { EndpointSpec, PoolOptions, RouteTable, TableOptions } from "../../native/types.js";
import { RegisterResult, SelectError } from "../../native/types.js";

export const T0 = 1_000_000;

export function ep(instanceId: string, port = 8080, more: Partial<EndpointSpec> = {}): EndpointSpec {
  return {
    host: "10.0.0.1",
    port,
    app: "app-1",
    instanceId,
    instanceIndex: "0",
    tags: { component: "route-emitter" },
    availabilityZone: "z1",
    staleThresholdSec: 0,
    serverCertDomainSan: "",
    tlsPort: 0,
    protocol: "http1",
    updatedAtNs: 0n,
    ...more,
  };
}

export function opts(more: Partial<PoolOptions> = {}): PoolOptions {
  return {
    loadBalancing: "round-robin",
    hashHeader: "",
    hashBalance: 0,
    maxConnsPerBackend: 0,
    routeServiceUrl: "",
    ...more,
  };
}

/** The instance id of the endpoint a select picked (and released), or the negative code. */
function pick(table: RouteTable, host: string, path = "/", sticky = "", key = "", now = T0): string | number {
  const h = table.select(host, path, sticky, key, now);
  if (h < 0) return h;
  const info = table.endpoint(h);
  table.release(h);
  return info === null ? "stale" : info.instanceId;
}

/** The tests below: an empty-pool timeout of 0 (an emptied route goes at once) unless they say. */
export function routeTableSuite(t: Test, factory: (options: TableOptions) => RouteTable): void {
  const fresh = (tt: Test, emptyPoolTimeoutMs = 0): RouteTable => {
    const table = factory({ emptyPoolTimeoutMs });
    tt.teardown(() => table.close());
    return table;
  };

  t.test("exact host, case and port", async (tt) => {
    const table = fresh(tt);
    tt.equal(table.register("Foo.Example.COM", ep("a"), opts(), T0), RegisterResult.Added);
    tt.equal(pick(table, "foo.example.com"), "a");
    tt.equal(pick(table, "FOO.example.com:8080"), "a");
    tt.equal(pick(table, "foo.example.com", "/any/path?x=1"), "a");
    tt.equal(pick(table, "bar.example.com"), SelectError.NoRoute);
    tt.equal(pick(table, "foo.example.co"), SelectError.NoRoute);
    tt.equal(table.register("foo.example.com:443", ep("a"), opts(), T0), RegisterResult.Updated);
    tt.same(table.stats(), { routes: 1, endpoints: 1 });
  });

  t.test("longest path prefix on a / boundary, query ignored", async (tt) => {
    const table = fresh(tt);
    table.register("a.com", ep("root"), opts(), T0);
    table.register("a.com/api", ep("api"), opts(), T0);
    table.register("a.com/api/v2/", ep("v2"), opts(), T0);
    tt.equal(pick(table, "a.com", "/api/v2/x"), "v2");
    tt.equal(pick(table, "a.com", "/api/v2"), "v2");
    tt.equal(pick(table, "a.com", "/API/V2?q=/api/v2"), "v2");
    tt.equal(pick(table, "a.com", "/api/v22"), "api");
    tt.equal(pick(table, "a.com", "/api/"), "api");
    tt.equal(pick(table, "a.com", "/apix"), "root");
    tt.equal(pick(table, "a.com", "/?/api"), "root");
    tt.equal(pick(table, "a.com", ""), "root");
    table.register("b.com/only", ep("only"), opts(), T0);
    tt.equal(pick(table, "b.com", "/"), SelectError.NoRoute);
    tt.equal(pick(table, "b.com", "/only/more"), "only");
    tt.same(
      table
        .dump()
        .map((d) => d.route)
        .sort(),
      ["a.com", "a.com/api", "a.com/api/v2", "b.com/only"],
    );
  });

  t.test("wildcards: most specific wins when no exact host", async (tt) => {
    const table = fresh(tt);
    table.register("*.example.com", ep("w1"), opts(), T0);
    table.register("*.b.example.com", ep("w2"), opts(), T0);
    table.register("exact.b.example.com/api", ep("e"), opts(), T0);
    tt.equal(pick(table, "x.b.example.com"), "w2");
    tt.equal(pick(table, "deep.x.b.example.com"), "w2");
    tt.equal(pick(table, "y.a.example.com"), "w1");
    tt.equal(pick(table, "Y.EXAMPLE.com:80"), "w1");
    tt.equal(pick(table, "exact.b.example.com", "/api/x"), "e");
    tt.equal(pick(table, "exact.b.example.com", "/other"), "w2", "exact host without a matching path");
    tt.equal(pick(table, "example.com"), SelectError.NoRoute);
    tt.equal(pick(table, "other.org"), SelectError.NoRoute);
  });

  t.test("round-robin spreads over 3 endpoints within ±1 over 300 picks", async (tt) => {
    const table = fresh(tt);
    for (const id of ["a", "b", "c"]) table.register("rr.com", ep(id), opts(), T0);
    const counts = new Map<string | number, number>();
    for (let i = 0; i < 300; i++) {
      const got = pick(table, "rr.com");
      counts.set(got, (counts.get(got) ?? 0) + 1);
    }
    tt.same([...counts.keys()].sort(), ["a", "b", "c"]);
    for (const n of counts.values()) tt.ok(n >= 99 && n <= 101, `count ${n}`);
  });

  t.test("least-connection follows in-flight counts", async (tt) => {
    const table = fresh(tt);
    for (const id of ["a", "b", "c"]) {
      table.register("lc.com", ep(id), opts({ loadBalancing: "least-connection" }), T0);
    }
    const held = new Map<string, number[]>([
      ["a", []],
      ["b", []],
      ["c", []],
    ]);
    for (let i = 0; i < 30; i++) {
      const loads = [...held.values()].map((h) => h.length);
      const h = table.select("lc.com", "/", "", "", T0);
      const id = table.endpoint(h)?.instanceId ?? "";
      tt.equal(held.get(id)?.length, Math.min(...loads), "picked a least-loaded endpoint");
      held.get(id)?.push(h);
      tt.equal(table.inFlight(h), held.get(id)?.length);
    }
    for (const h of held.get("b") ?? []) table.release(h);
    for (let i = 0; i < 10; i++) {
      const h = table.select("lc.com", "/", "", "", T0);
      tt.equal(table.endpoint(h)?.instanceId, "b", "the drained endpoint takes new requests");
    }
  });

  t.test("hash: stable per key, ≤ 1/N of keys move when one of N leaves", async (tt) => {
    const table = fresh(tt);
    const o = opts({ loadBalancing: "hash", hashHeader: "X-Tenant" });
    const ids = ["a", "b", "c", "d", "e"];
    for (const id of ids) table.register("h.com", ep(id), o, T0);
    tt.equal(table.hashHeader("H.com:80", "/x"), "x-tenant");
    tt.equal(table.select("h.com", "/", "", "", T0), SelectError.NeedHashKey);
    for (let i = 0; i < 20; i++)
      tt.equal(pick(table, "h.com", "/", "", "tenant-7"), pick(table, "h.com", "/", "", "tenant-7"));
    const keys = 10_000;
    const before: (string | number)[] = [];
    for (let k = 0; k < keys; k++) before.push(pick(table, "h.com", "/", "", `key-${k}`));
    const perEndpoint = ids.map((id) => before.filter((x) => x === id).length);
    for (const n of perEndpoint) tt.ok(n > keys / 5 / 1.3 && n < (keys / 5) * 1.3, `share ${n}`);
    table.unregister("h.com", ep("c"), T0);
    let moved = 0;
    let movedFromSurvivors = 0;
    for (let k = 0; k < keys; k++) {
      const now = pick(table, "h.com", "/", "", `key-${k}`);
      if (now !== before[k]) {
        moved++;
        if (before[k] !== "c") movedFromSurvivors++;
      }
    }
    // Keys of the leaving endpoint must move (≈ 1/N, up to sampling noise); Maglev moves few others.
    tt.ok(moved <= (keys / ids.length) * 1.1, `moved ${moved} of ${keys}`);
    tt.ok(movedFromSurvivors <= keys * 0.02, `moved from survivors ${movedFromSurvivors}`);
    table.register("plain.com", ep("p"), opts(), T0);
    tt.equal(table.hashHeader("plain.com", "/"), "");
    tt.equal(table.hashHeader("none.com", "/"), "");
  });

  t.test("hash_balance bounds the load of a hot key's endpoint", async (tt) => {
    const table = fresh(tt);
    for (const id of ["a", "b", "c"]) {
      table.register(
        "hb.com",
        ep(id),
        opts({ loadBalancing: "hash", hashHeader: "x-k", hashBalance: 1.25 }),
        T0,
      );
      table.register(
        "hp.com",
        ep(id),
        opts({ loadBalancing: "hash", hashHeader: "x-k", hashBalance: 0 }),
        T0,
      );
    }
    const loads = (host: string): number[] => {
      const held: number[] = [];
      for (let i = 0; i < 30; i++) held.push(table.select(host, "/", "", "hot", T0));
      const per = new Map<string, number>();
      for (const h of held) {
        const id = table.endpoint(h)?.instanceId ?? "?";
        per.set(id, (per.get(id) ?? 0) + 1);
      }
      for (const h of held) table.release(h);
      return [...per.values()].sort((x, y) => y - x);
    };
    tt.same(loads("hp.com"), [30], "without balance every request of a key goes to one endpoint");
    const balanced = loads("hb.com");
    tt.ok((balanced[0] ?? 0) <= Math.ceil((1.25 * 30) / 3), `max load ${balanced[0]}`);
    tt.equal(balanced.length, 3);
  });

  t.test("sticky by instance id, falling back when gone or full", async (tt) => {
    const table = fresh(tt);
    for (const id of ["a", "b", "c"]) table.register("s.com", ep(id), opts({ maxConnsPerBackend: 2 }), T0);
    for (let i = 0; i < 10; i++) tt.equal(pick(table, "s.com", "/", "b"), "b");
    tt.not(pick(table, "s.com", "/", "zzz"), SelectError.UnknownInstance);
    const h1 = table.select("s.com", "/", "b", "", T0);
    const h2 = table.select("s.com", "/", "b", "", T0);
    tt.equal(table.endpoint(h2)?.instanceId, "b");
    const h3 = table.select("s.com", "/", "b", "", T0);
    tt.not(table.endpoint(h3)?.instanceId, "b", "a full sticky endpoint is not used");
    for (const h of [h1, h2, h3]) table.release(h);
    tt.equal(pick(table, "s.com", "/", "b"), "b");
  });

  t.test("selectInstance picks app + index", async (tt) => {
    const table = fresh(tt);
    table.register("i.com", ep("a", 1, { instanceIndex: "0" }), opts(), T0);
    table.register("i.com", ep("b", 2, { instanceIndex: "1" }), opts(), T0);
    const h = table.selectInstance("i.com", "/", "app-1", "1", T0);
    tt.equal(table.endpoint(h)?.instanceId, "b");
    tt.equal(table.inFlight(h), 1);
    table.release(h);
    tt.equal(table.inFlight(h), 0);
    tt.equal(table.selectInstance("i.com", "/", "app-1", "7", T0), SelectError.UnknownInstance);
    tt.equal(table.selectInstance("i.com", "/", "app-2", "0", T0), SelectError.UnknownInstance);
    tt.equal(table.selectInstance("nope.com", "/", "app-1", "0", T0), SelectError.NoRoute);
  });

  t.test("markFailed skips the endpoint until the given time", async (tt) => {
    const table = fresh(tt);
    for (const id of ["a", "b", "c"]) table.register("f.com", ep(id), opts(), T0);
    let ha = -1;
    for (let i = 0; i < 3 && ha < 0; i++) {
      const h = table.select("f.com", "/", "", "", T0);
      if (table.endpoint(h)?.instanceId === "a") ha = h;
      table.release(h);
    }
    tt.ok(ha >= 0);
    table.markFailed(ha, T0 + 30_000);
    for (let i = 0; i < 20; i++) tt.not(pick(table, "f.com", "/", "", "", T0 + 29_999), "a");
    const seen = new Set<string | number>();
    for (let i = 0; i < 6; i++) seen.add(pick(table, "f.com", "/", "", "", T0 + 30_000));
    tt.ok(seen.has("a"), "back once the skip time passed");
    table.register("g.com", ep("only"), opts(), T0);
    const h = table.select("g.com", "/", "", "", T0);
    table.markFailed(h, T0 + 30_000);
    table.release(h);
    tt.equal(pick(table, "g.com", "/", "", "", T0 + 1), "only", "all failed: one is tried anyway");
  });

  t.test("max in-flight per backend gives AllFull", async (tt) => {
    const table = fresh(tt);
    for (const id of ["a", "b"]) table.register("m.com", ep(id), opts({ maxConnsPerBackend: 1 }), T0);
    const h1 = table.select("m.com", "/", "", "", T0);
    const h2 = table.select("m.com", "/", "", "", T0);
    tt.ok(h1 >= 0 && h2 >= 0);
    tt.not(table.endpoint(h1)?.instanceId, table.endpoint(h2)?.instanceId);
    tt.equal(table.select("m.com", "/", "", "", T0), SelectError.AllFull);
    table.release(h2);
    const h3 = table.select("m.com", "/", "", "", T0);
    tt.equal(table.endpoint(h3)?.instanceId, table.endpoint(h2)?.instanceId);
  });

  t.test("stale pruning with a fake clock", async (tt) => {
    const table = fresh(tt);
    table.register("p.com", ep("short", 1, { staleThresholdSec: 10 }), opts(), T0);
    table.register("p.com", ep("default", 2), opts(), T0);
    tt.equal(table.prune(T0 + 10_000), 0, "exactly at the threshold is not stale");
    tt.equal(table.prune(T0 + 10_001), 1);
    tt.equal(pick(table, "p.com"), "default");
    table.register("p.com", ep("default", 2), opts(), T0 + 60_000);
    tt.equal(table.prune(T0 + 120_001), 0, "a refresh restarts the clock");
    tt.equal(table.prune(T0 + 180_001), 1);
    tt.equal(pick(table, "p.com"), SelectError.NoRoute);
    tt.same(table.stats(), { routes: 0, endpoints: 0 });
  });

  t.test("older endpoint_updated_at_ns is ignored", async (tt) => {
    const table = fresh(tt);
    tt.equal(table.register("o.com", ep("a", 1000, { updatedAtNs: 200n }), opts(), T0), RegisterResult.Added);
    const h = table.select("o.com", "/", "", "", T0);
    tt.equal(
      table.register("o.com", ep("a", 999, { updatedAtNs: 100n }), opts(), T0),
      RegisterResult.IgnoredStale,
    );
    tt.equal(table.endpoint(h)?.port, 1000);
    tt.equal(table.unregister("o.com", ep("a", 1000, { updatedAtNs: 100n }), T0), false);
    tt.equal(
      table.register("o.com", ep("a", 1001, { updatedAtNs: 300n }), opts(), T0),
      RegisterResult.Updated,
    );
    tt.equal(table.endpoint(h), null, "a changed endpoint is a new generation: the old handle is stale");
    table.release(h);
    const h2 = table.select("o.com", "/", "", "", T0);
    tt.equal(table.endpoint(h2)?.port, 1001);
    tt.equal(table.inFlight(h2), 1);
    tt.equal(table.dump()[0]?.endpoints[0]?.updatedAtNs, "300");
  });

  t.test(
    "unregister removes the endpoint; with an empty-pool timeout of 0 an empty pool removes the route",
    async (tt) => {
      const table = fresh(tt);
      table.register("u.com", ep("a"), opts(), T0);
      table.register("u.com", ep("", 9000), opts(), T0);
      const h = table.select("u.com", "/", "a", "", T0);
      tt.equal(table.unregister("u.com", ep("a"), T0), true);
      tt.equal(table.unregister("u.com", ep("a"), T0), false);
      tt.equal(table.endpoint(h), null);
      tt.equal(table.inFlight(h), 0);
      table.release(h);
      table.markFailed(h, T0 + 1000);
      tt.equal(pick(table, "u.com"), "", "keyed by host:port without an instance id");
      tt.equal(table.unregister("u.com", ep("", 9000), T0), true);
      tt.equal(pick(table, "u.com"), SelectError.NoRoute);
      tt.same(table.stats(), { routes: 0, endpoints: 0 });
      tt.equal(table.unregister("never.com", ep("a"), T0), false);
    },
  );

  t.test(
    "timeout 0: a route emptied by prune goes at once, a path falls back to the host's root",
    async (tt) => {
      const table = fresh(tt, 0);
      table.register("z.com", ep("root", 1), opts(), T0);
      table.register("z.com/api", ep("api", 2, { staleThresholdSec: 10 }), opts(), T0 + 5000);
      tt.equal(table.unregister("z.com", ep("root", 1), T0), true);
      tt.equal(pick(table, "z.com", "/"), SelectError.NoRoute);
      tt.same(table.stats(), { routes: 1, endpoints: 1 });
      table.register("z.com", ep("root", 1), opts(), T0);
      tt.equal(table.prune(T0 + 15_001), 1);
      tt.equal(pick(table, "z.com", "/api/x"), "root", "the path route went; the host's root serves");
      tt.same(
        table.dump().map((d) => d.route),
        ["z.com"],
      );
    },
  );

  t.test(
    "empty-pool timeout: the route of a last unregistered endpoint is kept, answering NoEndpoints",
    async (tt) => {
      const table = fresh(tt, 30_000);
      table.register("e.com", ep("a", 1), opts(), T0);
      table.register("e.com/api", ep("api", 2), opts(), T0);
      table.register("*.w.com", ep("wild", 3), opts(), T0);
      table.register("x.w.com", ep("x", 4), opts(), T0);
      table.register("h.com", ep("h", 5), opts({ loadBalancing: "hash", hashHeader: "x-k" }), T0);
      tt.equal(table.unregister("e.com", ep("a", 1), T0 + 1000), true);
      tt.equal(table.unregister("e.com", ep("a", 1), T0 + 1000), false, "nothing left to remove");
      tt.equal(pick(table, "e.com"), SelectError.NoEndpoints);
      tt.equal(table.selectInstance("e.com", "/", "app-1", "0", T0), SelectError.NoEndpoints);
      tt.same(table.stats(), { routes: 5, endpoints: 4 }, "the empty route is counted: it answers");
      tt.same(table.dump().find((d) => d.route === "e.com")?.endpoints, [], "dumped with no endpoints");
      // An emptied path route answers for its paths instead of the host's root (as gorouter).
      tt.equal(table.unregister("e.com/api", ep("api", 2), T0 + 1000), true);
      tt.equal(pick(table, "e.com", "/api/x"), SelectError.NoEndpoints);
      table.register("e.com", ep("a", 1), opts(), T0 + 2000);
      tt.equal(pick(table, "e.com", "/api/x"), SelectError.NoEndpoints, "not the host's root");
      tt.equal(pick(table, "e.com", "/other"), "a");
      // An emptied exact host answers instead of the wildcard above it.
      tt.equal(table.unregister("x.w.com", ep("x", 4), T0 + 1000), true);
      tt.equal(pick(table, "x.w.com"), SelectError.NoEndpoints);
      tt.equal(pick(table, "y.w.com"), "wild");
      // An emptied hash route: no endpoints with or without a key, its header still named.
      tt.equal(table.unregister("h.com", ep("h", 5), T0 + 1000), true);
      tt.equal(table.select("h.com", "/", "", "", T0), SelectError.NoEndpoints);
      tt.equal(table.select("h.com", "/", "", "k1", T0), SelectError.NoEndpoints);
      tt.equal(table.hashHeader("h.com", "/"), "x-k");
      // A registration fills an empty route again, with its options.
      tt.equal(
        table.register("h.com", ep("h2", 6), opts({ loadBalancing: "hash", hashHeader: "x-k" }), T0),
        RegisterResult.Added,
      );
      tt.equal(pick(table, "h.com", "/", "", "k1"), "h2");
      tt.equal(
        table.register("e.com/api", ep("api", 2), opts({ loadBalancing: "least-connection" }), T0),
        RegisterResult.Added,
      );
      tt.equal(pick(table, "e.com", "/api/x"), "api");
      tt.equal(table.dump().find((d) => d.route === "e.com/api")?.options.loadBalancing, "least-connection");
      tt.same(table.stats(), { routes: 5, endpoints: 4 }, "x.w.com stays empty");
    },
  );

  t.test("empty-pool timeout: prune removes a route once it has been empty longer", async (tt) => {
    const table = fresh(tt, 30_000);
    table.register("p.com", ep("a", 1), opts(), T0);
    table.unregister("p.com", ep("a", 1), T0);
    tt.equal(table.prune(T0 + 30_000), 0);
    tt.equal(pick(table, "p.com"), SelectError.NoEndpoints, "exactly at the timeout it is kept");
    tt.equal(table.prune(T0 + 30_001), 0, "prune counts endpoints; an empty route has none");
    tt.equal(pick(table, "p.com"), SelectError.NoRoute);
    tt.same(table.stats(), { routes: 0, endpoints: 0 });
    // Emptied by prune: kept from that prune on.
    table.register("s.com", ep("s", 2, { staleThresholdSec: 10 }), opts(), T0);
    tt.equal(table.prune(T0 + 10_001), 1);
    tt.equal(pick(table, "s.com"), SelectError.NoEndpoints);
    tt.equal(table.prune(T0 + 40_001), 0);
    tt.equal(pick(table, "s.com"), SelectError.NoEndpoints);
    table.prune(T0 + 40_002);
    tt.equal(pick(table, "s.com"), SelectError.NoRoute);
    // A refill and a new emptying restart the clock.
    table.register("r.com", ep("r", 3), opts(), T0);
    table.unregister("r.com", ep("r", 3), T0);
    table.register("r.com", ep("r", 3), opts(), T0 + 20_000);
    table.prune(T0 + 30_001);
    tt.equal(pick(table, "r.com"), "r");
    table.unregister("r.com", ep("r", 3), T0 + 25_000);
    table.prune(T0 + 55_000);
    tt.equal(pick(table, "r.com"), SelectError.NoEndpoints);
    table.prune(T0 + 55_001);
    tt.equal(pick(table, "r.com"), SelectError.NoRoute);
    tt.same(table.dump(), []);
  });

  t.test("a bad empty-pool timeout is refused with a coded error", async (tt) => {
    for (const ms of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      tt.throws(() => factory({ emptyPoolTimeoutMs: ms }), { code: "KILN_TABLE_BAD_OPTION" }, String(ms));
    }
  });

  t.test("an endpoint on several routes is one record", async (tt) => {
    const table = fresh(tt);
    for (const uri of ["x.com", "y.com", "x.com/api"]) table.register(uri, ep("a"), opts(), T0);
    tt.same(table.stats(), { routes: 3, endpoints: 1 });
    const hx = table.select("x.com", "/", "", "", T0);
    const hy = table.select("y.com", "/", "", "", T0);
    tt.equal(hx, hy, "the same handle");
    tt.equal(table.inFlight(hx), 2, "in-flight counted per endpoint across routes");
    table.release(hx);
    table.release(hy);
    table.unregister("x.com", ep("a"), T0);
    tt.same(table.stats(), { routes: 2, endpoints: 1 });
  });

  t.test("one spec for a message's uris; a spec edited in place is taken as edited", async (tt) => {
    const table = fresh(tt);
    const other = fresh(tt);
    const spec = ep("a", 61000);
    // The uris of one message, interleaved with another table and another endpoint.
    table.register("m1.com", spec, opts(), T0);
    other.register("o.com", spec, opts(), T0);
    table.register("m2.com", spec, opts(), T0);
    table.register("n.com", ep("b", 61001), opts(), T0);
    table.register("m3.com/p", spec, opts({ loadBalancing: "least-connection" }), T0);
    tt.same(table.stats(), { routes: 4, endpoints: 2 });
    const h1 = table.select("m1.com", "/", "", "", T0);
    const h3 = table.select("m3.com", "/p", "", "", T0);
    tt.equal(h1, h3, "every uri of the message names one endpoint");
    tt.equal(table.endpoint(h3)?.port, 61000);
    tt.equal(table.dump().find((r) => r.route === "m3.com/p")?.options.loadBalancing, "least-connection");
    table.release(h1);
    table.release(h3);
    tt.equal(other.endpoint(other.select("o.com", "/", "", "", T0))?.port, 61000);
    // The same object changed in place (a caller reusing its spec): the change is applied.
    spec.port = 62000;
    spec.tags = { component: "moved" };
    table.register("m1.com", spec, opts(), T0);
    table.register("m4.com", spec, opts(), T0);
    const h4 = table.select("m4.com", "/", "", "", T0);
    tt.equal(table.endpoint(h4)?.port, 62000);
    tt.same(table.endpoint(h4)?.tags, { component: "moved" });
    tt.equal(table.endpoint(table.select("m2.com", "/", "", "", T0))?.port, 62000, "one record, updated");
  });

  t.test("bad routes and endpoints are rejected with coded errors", async (tt) => {
    const table = fresh(tt);
    for (const uri of [
      "",
      "/path",
      "a b.com",
      "foo.*.com",
      "*.",
      "a..com",
      ".a.com",
      "a.com:http",
      "é.com",
    ]) {
      tt.throws(() => table.register(uri, ep("a"), opts(), T0), { code: "KILN_TABLE_BAD_ROUTE" }, uri);
    }
    tt.throws(() => table.register("a.com", ep("a", 0), opts(), T0), { code: "KILN_TABLE_BAD_ENDPOINT" });
    tt.throws(() => table.register("a.com", ep("a", 70000), opts(), T0), { code: "KILN_TABLE_BAD_ENDPOINT" });
    tt.throws(() => table.register("a.com", ep("a", 80, { host: "" }), opts(), T0), {
      code: "KILN_TABLE_BAD_ENDPOINT",
    });
    tt.same(table.stats(), { routes: 0, endpoints: 0 });
  });

  t.test(
    "a route service belongs to the route: select declines until its callback is checked",
    async (tt) => {
      const table = fresh(tt);
      const rs = "http://10.0.0.9:8000/auth";
      // One instance serves a route with a route service and one without (the route-emitter
      // registers one message per route, with the same private_instance_id).
      table.register("guarded.com", ep("a", 8080), opts({ routeServiceUrl: rs }), T0);
      table.register("open.com", ep("a", 8080), opts(), T0);
      tt.equal(table.routeService("guarded.com", "/x"), rs);
      tt.equal(table.routeService("GUARDED.com:8080", "/x?q"), rs);
      tt.equal(table.routeService("open.com", "/"), "");
      tt.equal(table.routeService("nowhere.com", "/"), "");
      tt.equal(table.select("guarded.com", "/", "", "", T0), SelectError.RouteService);
      tt.equal(table.select("guarded.com", "/", "a", "", T0), SelectError.RouteService, "not even sticky");
      tt.equal(table.selectInstance("guarded.com", "/", "app-1", "0", T0), SelectError.RouteService);
      tt.equal(pick(table, "open.com"), "a", "the other route of the same instance goes straight");
      const h = table.select("guarded.com", "/", "", "", T0, true);
      tt.ok(h >= 0, "with the callback checked an endpoint is picked");
      table.release(h);
      const hi = table.selectInstance("guarded.com", "/", "app-1", "0", T0, true);
      tt.ok(hi >= 0);
      table.release(hi);
      tt.same(
        table.dump().find((d) => d.route === "guarded.com")?.options.routeServiceUrl,
        rs,
        "/routes shows it",
      );
      // Last register wins, as for the other pool options.
      table.register("guarded.com", ep("b", 8081), opts({ routeServiceUrl: "http://10.0.0.9:8001/" }), T0);
      tt.equal(table.routeService("guarded.com", "/"), "http://10.0.0.9:8001/");
      table.register("guarded.com", ep("b", 8081), opts(), T0);
      tt.equal(table.routeService("guarded.com", "/"), "");
      tt.ok(table.select("guarded.com", "/", "", "", T0) >= 0);
      // An empty pool answers no_endpoints before anything goes to a route service.
      table.register("empty.com", ep("c", 8082), opts({ routeServiceUrl: rs }), T0);
      table.unregister("empty.com", ep("c", 8082), T0);
      const left = table.select("empty.com", "/", "", "", T0);
      tt.ok(left === SelectError.NoEndpoints || left === SelectError.NoRoute);
    },
  );

  t.test("endpoint details and dump", async (tt) => {
    const table = fresh(tt);
    const spec = ep("a", 61000, {
      tags: { component: "x", process_id: "web" },
      availabilityZone: "z2",
      protocol: "http2",
      updatedAtNs: 12345678901234567n,
      staleThresholdSec: 30,
    });
    table.register("d.com/p", spec, opts({ loadBalancing: "least-connection", maxConnsPerBackend: 5 }), T0);
    const h = table.select("d.com", "/p", "", "", T0);
    tt.same(table.endpoint(h), {
      handle: h,
      host: "10.0.0.1",
      port: 61000,
      app: "app-1",
      instanceId: "a",
      instanceIndex: "0",
      availabilityZone: "z2",
      tags: { component: "x", process_id: "web" },
      protocol: "http2",
    });
    tt.ok(Number.isSafeInteger(h));
    const d = table.dump();
    tt.equal(d.length, 1);
    tt.same(d[0]?.options, {
      loadBalancing: "least-connection",
      hashHeader: "",
      hashBalance: 0,
      maxConnsPerBackend: 5,
      routeServiceUrl: "",
    });
    tt.match(d[0]?.endpoints[0], {
      inFlight: 1,
      updatedAtNs: "12345678901234567",
      lastSeenMs: T0,
      staleThresholdSec: 30,
      failedUntilMs: 0,
    });
  });

  t.test("a closed table throws", async (tt) => {
    const table = factory({ emptyPoolTimeoutMs: 0 });
    table.register("c.com", ep("a"), opts(), T0);
    table.close();
    table.close();
    tt.throws(() => table.select("c.com", "/", "", "", T0), { code: "KILN_TABLE_CLOSED" });
    tt.throws(() => table.register("c.com", ep("a"), opts(), T0), { code: "KILN_TABLE_CLOSED" });
    tt.throws(() => table.stats(), { code: "KILN_TABLE_CLOSED" });
  });
}
