// dea.update against a real `kiln dea` (runc when usable, else --isolation none), driven by
// NATS only: a running instance swaps its routes in place (router.unregister for the ones
// gone, router.register for the new ones, the periodic refresh carries the new list), a
// starting one registers the new list once healthy, one restarted by its http health check
// keeps it; an update for another version or a repeated one changes nothing; a malformed
// update is counted and logged by code and harms nothing.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { ArchiveWork } from "../../dea/staging/archive.js";
import { type DropletExited, decode, encode, type StartRequest } from "../../messaging/codec.js";
import { kiln } from "../../messaging/generated/kiln.js";
import {
  decodeRegister,
  decodeUnregister,
  encodeRouterStart,
  type RegistryMessage,
} from "../../messaging/gorouter.js";
import { blobStore } from "../../messaging/jetstream.js";
import { deaStart } from "../../messaging/subjects.js";
import { guardChildren } from "../helpers/children.js";
import { bodyOf } from "../helpers/http.js";
import { startTestNats } from "../helpers/nats.js";
import { appDeaArgs, events, startDeaProc, testIsolation } from "./harness.js";

guardChildren(t);

const base = mkdtempSync(join(tmpdir(), "kiln-dea-update-"));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const isolation = await testIsolation(t, base);

// A server whose /health turns 503 after /sick (for the http health check's restart) and that
// may wait before listening (to be caught STARTING).
const server = `
const http = require("http");
let sick = false;
process.on("SIGTERM", () => process.exit(0));
const s = http.createServer((q, r) => {
  if (q.url === "/sick") { sick = true; return r.end("sick"); }
  if (q.url === "/health") { r.statusCode = sick ? 503 : 200; return r.end(); }
  r.end(process.env.CF_INSTANCE_GUID);
});
setTimeout(() => s.listen(+process.env.PORT, "0.0.0.0"), +(process.env.LISTEN_AFTER_MS || 0));
`;

const nats = await startTestNats(t);
const cc = await nats.connect("admin");
const blobs = await blobStore(cc.nc, 1);
const archive = new ArchiveWork({ maxThreads: 1 });
t.teardown(() => archive.close());
const src = join(base, "src");
mkdirSync(join(src, ".kiln"), { recursive: true });
writeFileSync(join(src, "server.js"), server);
writeFileSync(join(src, ".kiln", "droplet.json"), JSON.stringify({ startCommand: "node server.js" }));
const tarball = join(base, "droplet.tar.gz");
const digests = await archive.packDroplet(src, tarball);
await blobs.putBlob({ name: "droplets/update" }, readFileSync(tarball));

const dea = await startDeaProc(
  t,
  nats,
  "dea-update",
  appDeaArgs(isolation, join(base, "dea"), ["--stop-grace-ms", "1000"]),
);

interface Seen {
  subject: string;
  at: number;
  m: RegistryMessage | DropletExited;
}
const seen: Seen[] = [];
for (const subject of ["router.register", "router.unregister", "droplet.exited"])
  cc.nc.subscribe(subject, {
    callback: (_e, msg) =>
      seen.push({
        subject,
        at: Date.now(),
        m:
          subject === "router.register"
            ? decodeRegister(msg.data)
            : subject === "router.unregister"
              ? decodeUnregister(msg.data)
              : decode("droplet.exited", msg.data),
      }),
  });
await cc.flush();
// Re-registration every second, so the refresh is seen within a test's patience.
cc.publish(
  "router.start",
  encodeRouterStart({ id: "r1", hosts: [], minimumRegisterIntervalInSeconds: 1, pruneThresholdInSeconds: 3 }),
);
await cc.flush();

async function until<T>(what: string, f: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Route messages on `subject` about `instanceId` that arrived at or after `since`. */
const routes = (subject: "router.register" | "router.unregister", instanceId: string, since: number) =>
  seen
    .filter((s) => s.subject === subject && s.at >= since)
    .map((s) => s.m as RegistryMessage)
    .filter((m) => m.privateInstanceId === instanceId);

const exitsOf = (app: string): DropletExited[] =>
  seen
    .filter((s) => s.subject === "droplet.exited")
    .map((s) => s.m as DropletExited)
    .filter((e) => e.app === app);

function start(app: string, uris: string[], more: Partial<StartRequest> = {}): void {
  cc.publish(
    deaStart(dea.id),
    encode("dea.start", {
      app,
      appName: app,
      version: "v1",
      dropletKey: "droplets/update",
      dropletSha1: digests.sha1,
      indices: [0],
      memoryMb: 128,
      diskMb: 256,
      uris,
      ...more,
    }),
  );
}

/** The first router.register of the app since `since`. */
const firstRegister = (app: string, since: number) =>
  until(`${app} registered`, () =>
    seen.find(
      (s) => s.subject === "router.register" && s.at >= since && (s.m as RegistryMessage).app === app,
    ),
  ).then((s) => s.m as RegistryMessage);

const update = (app: string, uris: string[], version = "v1") =>
  cc.publish("dea.update", encode("dea.update", { app, version, uris }));

async function stopApp(app: string): Promise<void> {
  const before = exitsOf(app).length;
  cc.publish("dea.stop", encode("dea.stop", { app }));
  await until(`${app} stopped`, () => (exitsOf(app).length > before ? true : undefined));
}

const sorted = (a: string[]) => [...a].sort();

t.test("a running instance swaps its routes at once and keeps running", async (t: Test) => {
  const t0 = Date.now();
  start("swap", ["a.kiln.test", "b.kiln.test"]);
  const reg = await firstRegister("swap", t0);
  const id = reg.privateInstanceId;
  t.same(sorted(reg.uris), ["a.kiln.test", "b.kiln.test"], "registered with its start routes");

  const t1 = Date.now();
  update("swap", ["b.kiln.test", "c.kiln.test"]);
  const gone = await until("router.unregister of a", () => routes("router.unregister", id, t1)[0], 3_000);
  t.same(gone.uris, ["a.kiln.test"], "router.unregister names only the route it lost");
  t.equal(gone.port, reg.port, "for the same port");
  const added = await until("router.register of c", () => routes("router.register", id, t1)[0], 3_000);
  // A refresh would name b and c: this is the update's own register, not the next tick.
  t.same(added.uris, ["c.kiln.test"], "router.register names the route it gained, at once");
  // The refresh (every second here): the new list, and nothing more.
  const refresh = await until(
    "a refresh with the new list",
    () => routes("router.register", id, t1).find((m) => m.uris.length > 1),
    5_000,
  );
  t.same(sorted(refresh.uris), ["b.kiln.test", "c.kiln.test"], "the refresh carries only the new list");
  const t2 = Date.now();
  await until(
    "a second refresh",
    () => (routes("router.register", id, t2).length > 0 ? true : undefined),
    5_000,
  );
  t.same(
    routes("router.register", id, t1).filter((m) => m.uris.includes("a.kiln.test")),
    [],
    "the lost route is never registered again",
  );
  t.equal(await bodyOf(reg.port, "/"), id, "the same instance answers on the same port");
  t.same(exitsOf("swap"), [], "nothing was stopped or restarted");
  t.match(events(dea.logs, "instance_routes_updated").at(-1), {
    app: "swap",
    instanceId: id,
    added: ["c.kiln.test"],
    removed: ["a.kiln.test"],
  });

  // The same list again, in another order, and a list for another version: no change.
  const logged = events(dea.logs, "instance_routes_updated").length;
  const t3 = Date.now();
  update("swap", ["c.kiln.test", "b.kiln.test", "c.kiln.test"]);
  update("swap", ["z.kiln.test"], "v0");
  await cc.flush();
  // Past a whole refresh interval, so both have been handled and a refresh has followed.
  await new Promise((r) => setTimeout(r, 1_200));
  const t3b = Date.now();
  await until(
    "another refresh",
    () => (routes("router.register", id, t3b).length > 0 ? true : undefined),
    5_000,
  );
  t.equal(events(dea.logs, "instance_routes_updated").length, logged, "neither update changed the instance");
  t.same(routes("router.unregister", id, t3), [], "nothing unregistered");
  t.same(
    routes("router.register", id, t3).map((m) => sorted(m.uris)),
    routes("router.register", id, t3).map(() => ["b.kiln.test", "c.kiln.test"]),
    "only the refresh of the current list",
  );

  // Every route taken away: unregistered, and no longer refreshed.
  const t4 = Date.now();
  update("swap", []);
  const last = await until(
    "router.unregister of b and c",
    () => routes("router.unregister", id, t4)[0],
    3_000,
  );
  t.same(sorted(last.uris), ["b.kiln.test", "c.kiln.test"]);
  await new Promise((r) => setTimeout(r, 1_500));
  t.same(routes("router.register", id, t4), [], "not refreshed without routes");
  // And given one back: registered at once.
  const t5 = Date.now();
  update("swap", ["d.kiln.test"]);
  const back = await until("router.register of d", () => routes("router.register", id, t5)[0], 3_000);
  t.same(back.uris, ["d.kiln.test"]);
  await stopApp("swap");
  const unreg = routes("router.unregister", id, t5).at(-1);
  t.same(unreg?.uris, ["d.kiln.test"], "the stop unregisters the routes it had last");
});

t.test("a starting instance registers the updated list once healthy", async (t: Test) => {
  const t0 = Date.now();
  start("late", ["old.kiln.test"], { env: { LISTEN_AFTER_MS: "1500" } });
  await until("late starting", () =>
    dea.logs.find((l) => l.event === "instance_starting" && l.app === "late"),
  );
  update("late", ["new.kiln.test"]);
  const reg = await firstRegister("late", t0);
  t.same(reg.uris, ["new.kiln.test"], "its first router.register carries the new list");
  t.same(
    seen.filter(
      (s) => s.subject === "router.register" && (s.m as RegistryMessage).uris.includes("old.kiln.test"),
    ),
    [],
    "the old route is never registered",
  );
  await stopApp("late");
});

t.test("an instance restarted by its http health check keeps the updated list", async (t: Test) => {
  const t0 = Date.now();
  start("sick", ["old-sick.kiln.test"], {
    healthCheckType: "http",
    healthCheckHttpEndpoint: "/health",
    // Also the start's deadline: 1 s was too short for a node app starting on a loaded machine.
    healthCheckTimeoutMs: 3_000,
  });
  const reg = await firstRegister("sick", t0);
  update("sick", ["new-sick.kiln.test"]);
  await until(
    "updated",
    () =>
      routes("router.register", reg.privateInstanceId, t0).find((m) => m.uris[0] === "new-sick.kiln.test"),
    3_000,
  );
  const t1 = Date.now();
  await bodyOf(reg.port, "/sick");
  const crashed = await until("restarted", () => exitsOf("sick").find((e) => e.reason === "CRASHED"), 15_000);
  t.equal(crashed.instanceId, reg.privateInstanceId, "the sick instance was ended");
  const next = await until(
    "the replacement registered",
    () =>
      seen
        .filter((s) => s.subject === "router.register" && s.at >= t1)
        .map((s) => s.m as RegistryMessage)
        .find((m) => m.app === "sick" && m.privateInstanceId !== reg.privateInstanceId),
    30_000,
  );
  t.same(next.uris, ["new-sick.kiln.test"], "the replacement registers the updated list");
  await stopApp("sick");
});

t.test("malformed dea.update: counted and logged by code, the DEA carries on", async (t: Test) => {
  const t0 = Date.now();
  start("steady", ["steady.kiln.test"]);
  const reg = await firstRegister("steady", t0);
  const cases: [string, Uint8Array, string][] = [
    ["not protobuf (text)", new TextEncoder().encode("hello, not protobuf"), "KILN_MSG_BAD_PROTOBUF"],
    ["empty payload", new Uint8Array(0), "KILN_MSG_INVALID_FIELD"],
    [
      "no version",
      kiln.UpdateRequest.encode({ app: "steady", uris: ["evil.kiln.test"] }).finish(),
      "KILN_MSG_INVALID_FIELD",
    ],
    [
      "an empty route",
      kiln.UpdateRequest.encode({ app: "steady", version: "v1", uris: ["", "evil.kiln.test"] }).finish(),
      "KILN_MSG_INVALID_FIELD",
    ],
    // app (field 1) as a varint: skipped as the wrong type, so no app.
    ["wrong type: app as number", Uint8Array.from([0x08, 0x05, 0x12, 1, 0x62]), "KILN_MSG_INVALID_FIELD"],
    ["huge garbage (1000 KiB)", new Uint8Array(1000 * 1024).fill(0xff), "KILN_MSG_BAD_PROTOBUF"],
  ];
  for (const [name, payload, code] of cases) {
    const before = events(dea.logs, "update_rejected").length;
    cc.publish("dea.update", payload);
    await until(`${name}: rejected`, () =>
      events(dea.logs, "update_rejected").length > before ? true : undefined,
    );
    const rejected = events(dea.logs, "update_rejected");
    t.equal(rejected.length, before + 1, `${name}: one update_rejected line`);
    t.equal(rejected.at(-1)?.code, code, `${name}: ${code}`);
    t.ok(String(rejected.at(-1)?.reason ?? "").length <= 201, `${name}: the reason stays short`);
  }
  t.same(
    seen.filter(
      (s) => s.subject === "router.register" && (s.m as RegistryMessage).uris.includes("evil.kiln.test"),
    ),
    [],
    "no route of a refused update was registered",
  );
  t.same(routes("router.unregister", reg.privateInstanceId, t0), [], "nor any route lost");
  t.equal(await bodyOf(reg.port, "/"), reg.privateInstanceId, "the instance still answers");
  const t1 = Date.now();
  update("steady", ["steady.kiln.test", "more.kiln.test"]);
  const added = await until(
    "a valid update after them",
    () => routes("router.register", reg.privateInstanceId, t1)[0],
    3_000,
  );
  t.same(added.uris, ["more.kiln.test"], "a valid update still works");
  await stopApp("steady");
  const e = await dea.stop();
  t.equal(e.code, 0, "the DEA exits 0 on SIGTERM");
  const counters = (events(dea.logs, "dea_stopped")[0]?.counters ?? {}) as {
    updatesRejected: Record<string, number>;
  };
  t.same(
    counters.updatesRejected,
    { KILN_MSG_BAD_PROTOBUF: 2, KILN_MSG_INVALID_FIELD: 4 },
    "rejections counted by code",
  );
});
