// The route registry against a real nats-server: routes arrive from router.register,
// leave on router.unregister, bad messages are counted and never thrown, and a NATS
// outage neither loses routes nor lets pruning run until NATS has been back a while.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import t from "tap";
import { createLogger } from "../../kernel/log.js";
import {
  decodeRouterStart,
  encodeRegistryMessage,
  type RegistryMessageInput,
} from "../../messaging/gorouter.js";
import { type NatsServerHandle, startNatsServer } from "../../messaging/nats-server.js";
import { ROUTER_GREET, ROUTER_REGISTER, ROUTER_START, ROUTER_UNREGISTER } from "../../messaging/subjects.js";
import { createRouteTable } from "../../native/table.js";
import type { RouteTable } from "../../native/types.js";
import { type RegistryOptions, RouteRegistry } from "../../router/registry/registry.js";
import { tableSink } from "../../router/registry/sink.js";
import { guardChildren } from "../helpers/children.js";
import { freePort } from "../helpers/ports.js";
import { until as waitUntil } from "../helpers/until.js";

guardChildren(t);

const quiet = createLogger("registry-test", { level: "error" });

interface Rig {
  nats: NatsServerHandle;
  table: RouteTable;
  registry: RouteRegistry;
  /** The router's own connection (what the registry listens on). */
  routerNc: NatsConnection;
  /** A registrar's connection (a DEA publishing routes). */
  deaNc: NatsConnection;
  dataDir: string;
}

async function rig(
  t: { teardown(fn: () => unknown): void },
  opts: Partial<RegistryOptions> = {},
): Promise<Rig> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-registry-"));
  const port = await freePort();
  const nats = await startNatsServer({ dataDir, port });
  const asComponent = (c: "router" | "dea") =>
    connect({
      servers: nats.url,
      ...nats.credentials(c),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
      waitOnFirstConnect: true,
    });
  const routerNc = await asComponent("router");
  const deaNc = await asComponent("dea");
  // Emptied routes go at once: these tests watch the registry, not the empty-pool timeout.
  const table = createRouteTable({ emptyPoolTimeoutMs: 0 });
  const registry = new RouteRegistry({
    nc: routerNc,
    sink: tableSink(table),
    log: quiet,
    routerId: "0b4e1f62-2a0b-4d5e-9a3c-7f1d2e3c4b5a",
    startResponseDelayMs: 50,
    ...opts,
  });
  await registry.start();
  t.teardown(async () => {
    await registry.stop();
    await deaNc.close();
    await routerNc.close();
    table.close();
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { nats, table, registry, routerNc, deaNc, dataDir };
}

const endpoint = (over: Partial<RegistryMessageInput> = {}): RegistryMessageInput => ({
  host: "10.0.0.5",
  port: 61001,
  uris: ["shop.example.com"],
  app: "4d7e6a14-2d6f-4bd6-a3e6-5b4d1c1a0001",
  privateInstanceId: "inst-0001",
  privateInstanceIndex: "0",
  ...over,
});

const until = <T>(
  what: string,
  f: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 5000,
) => waitUntil(what, f, ms);

function resolves(table: RouteTable, host: string, path = "/"): boolean {
  const h = table.select(host, path, "", "", Date.now());
  if (h < 0) return false;
  table.release(h);
  return true;
}

t.test("router.register makes a route visible, router.unregister removes it", async (t) => {
  const { table, deaNc, registry } = await rig(t);
  deaNc.publish(
    ROUTER_REGISTER,
    encodeRegistryMessage(endpoint({ uris: ["shop.example.com", "api.example.com/v1"] })),
  );
  await until("route visible", () => resolves(table, "shop.example.com"));
  t.ok(resolves(table, "API.example.com:443", "/v1/orders"), "second uri with a path, case and port ignored");
  const h = table.select("shop.example.com", "/", "", "", Date.now());
  const info = table.endpoint(h);
  table.release(h);
  t.match(info, { host: "10.0.0.5", port: 61001, instanceId: "inst-0001" });

  deaNc.publish(
    ROUTER_UNREGISTER,
    encodeRegistryMessage(endpoint({ uris: ["shop.example.com", "api.example.com/v1"] })),
  );
  await until("route gone", () => !resolves(table, "shop.example.com"));
  t.notOk(resolves(table, "api.example.com", "/v1"), "both uris gone");
  t.equal(table.stats().routes, 0, "an empty pool removes the route");
  const c = registry.counters();
  t.equal(c.registers, 1);
  t.equal(c.unregisters, 1);
  t.equal(c.badMessages, 0);
});

t.test("router.start is published on boot and router.greet is answered", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-registry-"));
  const nats = await startNatsServer({ dataDir, port: 0 });
  const admin = await connect({ servers: nats.url, ...nats.credentials("admin") });
  const routerNc = await connect({ servers: nats.url, ...nats.credentials("router") });
  const table = createRouteTable({ emptyPoolTimeoutMs: 0 });
  const sub = admin.subscribe(ROUTER_START, { max: 1 });
  await admin.flush();
  const registry = new RouteRegistry({
    nc: routerNc,
    sink: tableSink(table),
    log: quiet,
    routerId: "router-7",
    hosts: ["127.0.0.1"],
  });
  t.teardown(async () => {
    await registry.stop();
    await routerNc.close();
    await admin.close();
    table.close();
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  await registry.start();
  for await (const m of sub) {
    const start = decodeRouterStart(m.data);
    t.match(start, { id: "router-7", hosts: ["127.0.0.1"], minimumRegisterIntervalInSeconds: 20 });
  }
  const dea = await connect({ servers: nats.url, ...nats.credentials("dea") });
  t.teardown(() => dea.close());
  const reply = await dea.request(ROUTER_GREET, new Uint8Array(0), { timeout: 2000 });
  t.equal(decodeRouterStart(reply.data, ROUTER_GREET).id, "router-7");
});

t.test("1,000 malformed messages are counted, never thrown, and the registry keeps serving", async (t) => {
  const { table, deaNc, registry } = await rig(t);
  const enc = new TextEncoder();
  const bad = [
    enc.encode("not json"),
    enc.encode("{}"),
    enc.encode(JSON.stringify({ host: "10.0.0.1", port: 70000, uris: ["a.example.com"] })),
    enc.encode(JSON.stringify({ host: "10.0.0.1", port: 8080, uris: [7] })),
    enc.encode(JSON.stringify({ port: 8080, uris: ["a.example.com"] })),
    new Uint8Array(200 * 1024).fill(0x7b),
    new Uint8Array([0xff, 0xfe, 0x00]),
    enc.encode("[1,2,3]"),
  ];
  for (let i = 0; i < 1000; i++) {
    deaNc.publish(i % 2 === 0 ? ROUTER_REGISTER : ROUTER_UNREGISTER, bad[i % bad.length] as Uint8Array);
  }
  deaNc.publish(ROUTER_REGISTER, encodeRegistryMessage(endpoint()));
  await until("valid route after the junk", () => resolves(table, "shop.example.com"));
  await until("all junk counted", () => registry.counters().badMessages === 1000);
  t.equal(registry.counters().badMessages, 1000);
  t.equal(table.stats().routes, 1);
});

t.test("a NATS outage keeps every route and suspends pruning until NATS is back one interval", async (t) => {
  const pruneIntervalMs = 400;
  const r = await rig(t, { pruneIntervalMs });
  const uris = Array.from({ length: 50 }, (_, i) => `app${i}.example.com`);
  // Stale after 1 s: without the outage rule, pruning would remove them during the outage.
  r.deaNc.publish(ROUTER_REGISTER, encodeRegistryMessage(endpoint({ uris, staleThresholdInSeconds: 1 })));
  await until("routes visible", () => r.table.stats().routes === 50);

  const port = r.nats.port;
  await r.nats.stop();
  await until("registry saw NATS go", () => !r.registry.natsConnected);
  await new Promise((res) => setTimeout(res, 2500));
  t.equal(r.table.stats().routes, 50, "no route lost or pruned while NATS was down");
  t.ok(r.registry.counters().prunesSuspended > 0, "prune rounds were suspended");
  t.equal(r.registry.counters().pruned, 0);

  const again = await startNatsServer({ dataDir: r.dataDir, port });
  t.teardown(() => again.stop());
  await until("registry saw NATS return", () => r.registry.natsConnected, 10_000);
  t.equal(r.table.stats().routes, 50, "routes still there right after NATS returned");
  // Once NATS has been back for a full prune interval, stale endpoints do go.
  await until("stale routes pruned after the grace interval", () => r.table.stats().routes === 0, 5000);
  t.ok(r.registry.counters().pruned >= 1);
  // Clients close before the second server stops (teardowns run last-registered first), so
  // no connection is mid-reconnect when it is closed.
  await r.registry.stop();
  await r.deaNc.close();
  await r.routerNc.close();
});

t.test("a refreshed endpoint survives pruning; an unrefreshed one does not (fake clock)", async (t) => {
  let now = 1_000_000;
  const r = await rig(t, { pruneIntervalMs: 100, now: () => now });
  r.deaNc.publish(
    ROUTER_REGISTER,
    encodeRegistryMessage(endpoint({ uris: ["keep.example.com"], staleThresholdInSeconds: 2 })),
  );
  r.deaNc.publish(
    ROUTER_REGISTER,
    encodeRegistryMessage(
      endpoint({
        uris: ["drop.example.com"],
        privateInstanceId: "inst-2",
        port: 61002,
        staleThresholdInSeconds: 2,
      }),
    ),
  );
  await until("both visible", () => r.table.stats().routes === 2);
  now += 1500;
  r.deaNc.publish(
    ROUTER_REGISTER,
    encodeRegistryMessage(endpoint({ uris: ["keep.example.com"], staleThresholdInSeconds: 2 })),
  );
  await until("refresh applied", () => r.registry.counters().registers === 3);
  now += 1000;
  await until("unrefreshed endpoint pruned", () => r.table.stats().routes === 1, 5000);
  t.ok(resolves(r.table, "keep.example.com"), "refreshed route kept");
  t.notOk(resolves(r.table, "drop.example.com"), "stale route pruned");
});

t.test("a burst of 20,000 registrations is applied in batches", async (t) => {
  const { table, deaNc, registry } = await rig(t);
  for (let i = 0; i < 20_000; i++) {
    deaNc.publish(
      ROUTER_REGISTER,
      encodeRegistryMessage(
        endpoint({ uris: [`burst${i}.example.com`], privateInstanceId: `i-${i}`, port: 20000 + (i % 40000) }),
      ),
    );
  }
  await deaNc.flush();
  await until("all applied", () => table.stats().routes === 20_000, 20_000);
  const c = registry.counters();
  t.equal(c.updatesApplied, 20_000);
  t.ok(c.batches < 20_000, `applied in ${c.batches} batches`);
});
