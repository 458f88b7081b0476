import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { create as tarCreate } from "tar";
import { probeIsolation } from "../../dea/container/probe.js";
import { Runc } from "../../dea/container/runc.js";
import { projectRoot } from "../../kernel/paths.js";
import {
  type DropletExited,
  decode,
  encode,
  type StageReply,
  type StartRequest,
} from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { decodeRegister, decodeUnregister, type RegistryMessage } from "../../messaging/gorouter.js";
import { blobStore } from "../../messaging/jetstream.js";
import { deaStage, deaStart } from "../../messaging/subjects.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { until } from "../helpers/until.js";
import { type DeaProc, startDeaProc } from "./harness.js";
import { hostilePackages } from "./hostile-packages.js";

guardChildren(t);
const root = t;

const base = mkdtempSync(join(tmpdir(), "kiln-dea-"));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const skip = await probeIsolation(new Runc({ root: join(base, "probe") }));
if (skip !== null) {
  t.comment(`skipped: ${skip}`);
  t.pass("runc cannot run here");
  process.exit(0);
}

const nats = await startTestNats(t);
const cc = await nats.connect("admin");
const blobs = await blobStore(cc.nc, 1);
const dataDir = join(base, "dea");
const deaArgs = [
  "--data-dir",
  dataDir,
  "--memory-mb",
  "8192",
  "--disk-mb",
  "20000",
  "--heartbeat-interval-ms",
  "300",
  "--stop-grace-ms",
  "1000",
];
let dea: DeaProc = await startDeaProc(t, nats, "dea-it", deaArgs);

/** Every message on a subject from now on, with the time it arrived. */
function record(bus: KilnConnection, subject: string): { subject: string; data: Uint8Array; at: number }[] {
  const seen: { subject: string; data: Uint8Array; at: number }[] = [];
  bus.nc.subscribe(subject, {
    callback: (_e, m) => seen.push({ subject: m.subject, data: m.data, at: Date.now() }),
  });
  return seen;
}
const registers = record(cc, "router.register");
const unregisters = record(cc, "router.unregister");
const exits = record(cc, "droplet.exited");
const heartbeats = record(cc, "dea.heartbeat");
const logLines = record(cc, "logs.*");
await cc.flush();

let serial = 0;
/** Packs `dir` as a package, stores it, and returns its key. */
async function putPackage(dir: string): Promise<string> {
  const file = join(base, `pkg-${serial++}.tar.gz`);
  await tarCreate({ gzip: true, file, cwd: dir, portable: true }, readdirSync(dir));
  const key = `packages/${serial}-${Date.now()}`;
  await blobs.putBlob({ name: key }, readFileSync(file));
  return key;
}

async function stageDir(
  app: string,
  dir: string,
  more: { buildpack?: string; diskMb?: number } = {},
): Promise<StageReply> {
  const packageKey = await putPackage(dir);
  const msg = await cc.nc.request(
    deaStage(dea.id),
    encode("dea.stage", {
      app,
      taskId: `task-${app}`,
      packageKey,
      buildpack: more.buildpack ?? "",
      memoryMb: 1024,
      diskMb: more.diskMb ?? 2048,
      timeoutMs: 120_000,
    }),
    { timeout: 180_000 },
  );
  return decode("dea.stage:reply", msg.data);
}

function startReq(app: string, reply: StageReply, more: Partial<StartRequest> = {}): Uint8Array {
  return encode("dea.start", {
    app,
    appName: app,
    version: "v1",
    dropletKey: reply.dropletKey,
    dropletSha1: reply.dropletSha1,
    indices: [0],
    memoryMb: 256,
    diskMb: 1024,
    uris: [`${app}.kiln.test`],
    ...more,
  });
}

function registered(app: string, index = 0): RegistryMessage | undefined {
  for (const r of registers) {
    const m = decodeRegister(r.data);
    if (m.app === app && m.privateInstanceIndex === String(index)) return m;
  }
  return undefined;
}

function exitOf(app: string, after = 0): DropletExited | undefined {
  for (const e of exits) {
    if (e.at < after) continue;
    const m = decode("droplet.exited", e.data);
    if (m.app === app) return m;
  }
  return undefined;
}

async function get(port: number, path = "/"): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

async function stopApp(app: string): Promise<void> {
  cc.publish("dea.stop", encode("dea.stop", { app }));
  await until(`${app} stopped`, () => exitOf(app));
}

/** The host pid of an instance: the process whose environment names its instance id. */
function hostPid(instanceId: string): number {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, "latin1");
      if (env.includes(`CF_INSTANCE_GUID=${instanceId}\0`)) return Number(name);
    } catch {}
  }
  return 0;
}

const examples: { name: string; dir: string; buildpack?: string; body: RegExp }[] = [
  { name: "node", dir: "examples/node", body: /node/ },
  { name: "node-dep", dir: "examples/node-dep", body: /./ },
  { name: "python", dir: "examples/python", body: /python/ },
  { name: "go", dir: "examples/go", body: /go/ },
  { name: "static", dir: "examples/static", body: /static|html/i },
  { name: "procfile", dir: "examples/procfile", body: /./ },
  {
    name: "custom",
    dir: "examples/custom-buildpack/app",
    buildpack: join(projectRoot, "examples/custom-buildpack/buildpack"),
    body: /./,
  },
];

t.test("every example is staged, runs, answers HTTP and is registered", async (t: Test) => {
  for (const ex of examples) {
    const app = `ex-${ex.name}`;
    const started = Date.now();
    const reply = await stageDir(
      app,
      join(projectRoot, ex.dir),
      ex.buildpack === undefined ? {} : { buildpack: ex.buildpack },
    );
    t.ok(
      reply.ok,
      `${ex.name}: staged (${Date.now() - started} ms) ${reply.error} ${reply.logTail.join(" | ")}`,
    );
    if (!reply.ok) continue;
    t.match(reply.dropletKey, /^droplets\//, `${ex.name}: droplet in kiln_blobs`);
    t.ok(reply.startCommand.length > 0, `${ex.name}: start command ${reply.startCommand}`);
    const stg = logLines.filter((l) => l.subject === `logs.${app}`).map((l) => decode("logs", l.data));
    t.ok(
      stg.some((l) => l.source === "STG"),
      `${ex.name}: staging lines on logs.${app}`,
    );

    cc.publish(deaStart(dea.id), startReq(app, reply));
    const reg = await until(`${ex.name} registered`, () => registered(app), 60_000);
    t.same(reg.uris, [`${app}.kiln.test`], `${ex.name}: router.register with its route`);
    const res = await get(reg.port);
    t.equal(res.status, 200, `${ex.name}: answers on its port`);
    t.match(res.body, ex.body, `${ex.name}: body ${JSON.stringify(res.body.slice(0, 60))}`);
    await stopApp(app);
    t.equal(exitOf(app)?.reason, "STOPPED", `${ex.name}: stopped`);
  }
});

t.test("hostile packages are refused by dea.stage with their codes", async (t: Test) => {
  for (const h of hostilePackages()) {
    const key = `packages/hostile-${serial++}`;
    await blobs.putBlob({ name: key }, h.bytes);
    const msg = await cc.nc.request(
      deaStage(dea.id),
      encode("dea.stage", {
        app: "hostile",
        taskId: `h-${serial}`,
        packageKey: key,
        memoryMb: 256,
        diskMb: h.diskMb ?? 1024,
      }),
      { timeout: 30_000 },
    );
    const r = decode("dea.stage:reply", msg.data);
    t.notOk(r.ok, `${h.name}: refused`);
    t.equal(r.errorCode, h.code, `${h.name}: ${h.code}`);
  }
});

/** A procfile app (no buildpack work) whose server.js is `source`; staged and started. */
async function runProcfileApp(
  app: string,
  source: string,
  more: Partial<StartRequest> = {},
): Promise<{ reg: RegistryMessage; reply: StageReply }> {
  const dir = join(base, "apps", app);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "Procfile"), "web: node server.js\n");
  writeFileSync(join(dir, "server.js"), source);
  const reply = await stageDir(app, dir);
  if (!reply.ok) throw new Error(`${app}: staging failed: ${reply.error} ${reply.logTail.join("\n")}`);
  cc.publish(deaStart(dea.id), startReq(app, reply, more));
  const reg = await until(`${app} registered`, () => registered(app), 60_000);
  return { reg, reply };
}

const readerApp = `
const fs = require("node:fs");
require("node:http").createServer((req, res) => {
  const u = new URL(req.url, "http://x");
  if (u.pathname === "/env") return res.end(JSON.stringify(process.env));
  const p = u.searchParams.get("p");
  try {
    const st = fs.statSync(p);
    const got = st.isDirectory() ? fs.readdirSync(p).join(",") : fs.readFileSync(p, "utf8");
    res.end("READ " + got.slice(0, 200));
  } catch (e) {
    res.statusCode = 403;
    res.end(e.code);
  }
}).listen(Number(process.env.PORT));
`;

t.test(
  "an instance sees only itself: no neighbour, no DEA data, no credentials, no Kiln env",
  async (t: Test) => {
    const a = await runProcfileApp("reader-a", readerApp);
    const b = await runProcfileApp("reader-b", readerApp);
    const pidB = hostPid(b.reg.privateInstanceId);
    t.ok(pidB > 0, "found reader-b's host process");
    // Where reader-b's files are on the host, as the DEA laid them out.
    const bDir = join(dataDir, "instances", `kiln-app-${b.reg.privateInstanceId}`);
    t.ok(readdirSync(bDir).length > 0, "reader-b's directory is where the DEA keeps it");
    const secrets = [
      dataDir,
      join(dataDir, "instances"),
      bDir,
      join(nats.dataDir, "credentials.json"),
      nats.dataDir,
      "/root",
      "/proc/1/root/etc/shadow",
    ];
    for (const p of secrets) {
      const r = await get(a.reg.port, `/read?p=${encodeURIComponent(p)}`);
      t.equal(r.status, 403, `reader-a cannot read ${p} (${r.body.slice(0, 40)})`);
    }
    const own = await get(a.reg.port, `/read?p=${encodeURIComponent("/home/vcap/app/server.js")}`);
    t.equal(own.status, 200, "its own files are readable");
    const env = JSON.parse((await get(a.reg.port, "/env")).body) as Record<string, string>;
    t.same(
      Object.keys(env).filter((k) => k.startsWith("KILN_") || k.startsWith("NATS")),
      [],
      "no Kiln or NATS variable in an instance's environment",
    );
    t.equal(env.PORT, String(a.reg.port), "PORT");
    t.equal(env.VCAP_APP_PORT, String(a.reg.port), "VCAP_APP_PORT");
    t.equal(env.CF_INSTANCE_INDEX, "0", "CF_INSTANCE_INDEX");
    t.equal(env.CF_INSTANCE_GUID, a.reg.privateInstanceId, "CF_INSTANCE_GUID");
    const vcap = JSON.parse(env.VCAP_APPLICATION ?? "{}") as Record<string, unknown>;
    t.match(vcap, {
      application_id: "reader-a",
      application_name: "reader-a",
      application_uris: ["reader-a.kiln.test"],
      instance_id: a.reg.privateInstanceId,
      instance_index: 0,
      limits: { mem: 256 },
    });
    t.equal(env.HOME, "/home/vcap/app", "HOME");
    t.ok(env.VCAP_SERVICES !== undefined, "VCAP_SERVICES");
    await stopApp("reader-a");
    await stopApp("reader-b");
  },
);

t.test(
  "kill -9 of an instance: router.unregister, then droplet.exited CRASHED, within 100 ms",
  async (t: Test) => {
    const { reg } = await runProcfileApp(
      "victim",
      "require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT));",
    );
    const pid = hostPid(reg.privateInstanceId);
    t.ok(pid > 0, "found the instance's host process");
    const killedAt = Date.now();
    process.kill(pid, "SIGKILL");
    const exit = await until("droplet.exited", () => exitOf("victim", killedAt), 5_000);
    const exitAt =
      exits.find((e) => e.at >= killedAt && decode("droplet.exited", e.data).app === "victim")?.at ?? 0;
    const unreg = unregisters.find((u) => u.at >= killedAt && decodeUnregister(u.data).app === "victim");
    t.equal(exit.reason, "CRASHED", "CRASHED");
    t.equal(exit.exitStatus, -9, "killed by signal 9");
    t.ok(unreg !== undefined && unreg.at <= exitAt, "router.unregister came first");
    t.comment(`kill -9 → droplet.exited in ${exitAt - killedAt} ms`);
    t.ok(exitAt - killedAt < 100, `within 100 ms (${exitAt - killedAt} ms)`);
  },
);

t.test("an app allocating past its memory limit is CRASHED with 'out of memory'", async (t: Test) => {
  await runProcfileApp(
    "hog",
    `require('node:http').createServer((q, s) => {
       const keep = []; for (;;) keep.push(Buffer.alloc(16 * 1024 * 1024, 1));
     }).listen(Number(process.env.PORT));`,
    { memoryMb: 64 },
  );
  const before = Date.now();
  const reg = registered("hog");
  fetch(`http://127.0.0.1:${reg?.port}/`).catch(() => {});
  const exit = await until("hog exited", () => exitOf("hog", before), 30_000);
  t.equal(exit.reason, "CRASHED");
  t.match(exit.description, "out of memory");
});

t.test("dea.heartbeat carries every instance with its usage", async (t: Test) => {
  const { reg } = await runProcfileApp(
    "beat",
    "require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT));",
  );
  const since = Date.now();
  const hb = await until(
    "a heartbeat with beat running and its memory",
    () => {
      for (const h of heartbeats) {
        if (h.at < since) continue;
        const m = decode("dea.heartbeat", h.data);
        const i = m.instances.find((x) => x.app === "beat" && x.state === "RUNNING" && x.memoryBytes > 0);
        if (i !== undefined) return { m, i };
      }
      return undefined;
    },
    10_000,
  );
  t.equal(hb.m.deaId, dea.id);
  t.ok(hb.i.memoryBytes > 1024 * 1024, `memory ${hb.i.memoryBytes} bytes`);
  t.ok(hb.i.diskBytes > 0, `disk ${hb.i.diskBytes} bytes`);
  t.equal(hb.i.port, reg.port, "and where it answers: its port");
  t.equal(hb.i.host, "127.0.0.1", "and the DEA's host");
  await stopApp("beat");
});

t.test("a DEA killed with SIGKILL leaves no container once restarted", async (t: Test) => {
  const { reg } = await runProcfileApp(
    "survivor",
    "require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT));",
  );
  dea.child.kill("SIGKILL");
  await dea.exited;
  const runc = new Runc({ root: join(dataDir, "containers") });
  t.ok((await runc.list("")).length > 0, "its containers outlived it");
  const restartedAt = Date.now();
  // Torn down with the file, not this subtest: the next subtest uses it.
  dea = await startDeaProc(root, nats, "dea-it", deaArgs);
  t.same(
    (await runc.list("")).map((c) => c.id),
    [],
    "the restarted DEA removed every container its previous run left",
  );
  const exit = await until(
    "droplet.exited for the lost instance",
    () => exitOf("survivor", restartedAt),
    5_000,
  );
  t.equal(exit.instanceId, reg.privateInstanceId);
  await t.rejects(get(reg.port), "the old instance no longer answers");
});

t.test("SIGTERM evacuates: DEA_EVACUATION for every instance, then nothing left", async (t: Test) => {
  await runProcfileApp(
    "evacuee",
    "require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT));",
  );
  const at = Date.now();
  const code = await dea.stop();
  t.equal(code.code, 0, "the DEA exits 0");
  const exit = await until("droplet.exited for the evacuee", () => exitOf("evacuee", at), 5_000);
  t.equal(exit.reason, "DEA_EVACUATION");
  t.same((await new Runc({ root: join(dataDir, "containers") }).list("")).length, 0, "no container left");
});
