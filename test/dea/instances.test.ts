// The DEA's instances against a real nats-server, the real object store and real runc:
// droplets built here are started, answer on their ports and are registered with the
// router; a killed instance is unregistered and reported within 100 ms; a memory hog is
// reported out of memory; instances cannot read each other or the DEA; stop, the SIGKILL
// after the grace, the heartbeat, evacuation and the adoption after a DEA crash.
// Skipped with the probe's reason where runc cannot run. The archive pool and the crashing
// DEA (instance-crash-child.ts) run compiled from dist/: build first.
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Msg, ObjectStore } from "nats";
import t from "tap";
import { probeIsolation } from "../../dea/container/probe.js";
import { Runc } from "../../dea/container/runc.js";
import { instanceEnv } from "../../dea/instances/env.js";
import { Instances, type InstancesOptions } from "../../dea/instances/instances.js";
import { ResourceLedger } from "../../dea/placement/ledger.js";
import { ArchiveWork } from "../../dea/staging/archive.js";
import { createLogger } from "../../kernel/log.js";
import { compiledSibling } from "../../kernel/paths.js";
import {
  type DeaHeartbeat,
  type DropletExited,
  decode,
  encode,
  type StartRequest,
} from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { decodeRegister, decodeUnregister, type RegistryMessage } from "../../messaging/gorouter.js";
import { guardChildren } from "../helpers/children.js";
import { bodyOf } from "../helpers/http.js";
import { startTestNats } from "../helpers/nats.js";
import { until as waitUntil } from "../helpers/until.js";

guardChildren(t);

const base = await mkdtemp(join(tmpdir(), "kiln-instances-"));
t.teardown(() => rm(base, { recursive: true, force: true }));
const runc = new Runc({ root: join(base, "containers") });
const skip = (await probeIsolation(runc)) ?? false;
if (skip !== false) t.comment(`runc instances skipped: ${skip}`);

const prefix = `kiln-it${process.pid}-`;
const dataDir = join(base, "data");
const credentials = join(dataDir, "nats-credentials.json");

t.test("the environment is Cloud Foundry's and carries nothing of the DEA's (pure)", async (t) => {
  const env = instanceEnv({
    req: {
      app: "app-1",
      appName: "hello",
      space: "dev",
      version: "v3",
      memoryMb: 256,
      diskMb: 512,
      env: { GREETING: "hi", PORT: "1" },
      uris: ["hello.kiln.test"],
      servicesJson: "",
    },
    index: 2,
    instanceId: "i-1",
    port: 61001,
    host: "10.0.0.5",
    home: "/home/vcap/app",
    fds: 16384,
  });
  t.equal(env.PORT, "61001", "PORT is the platform's, not the app's");
  t.equal(env.VCAP_APP_PORT, "61001");
  t.equal(env.VCAP_APP_HOST, "0.0.0.0");
  t.equal(env.GREETING, "hi");
  t.equal(env.VCAP_SERVICES, "{}");
  t.equal(env.CF_INSTANCE_INDEX, "2");
  t.equal(env.CF_INSTANCE_GUID, "i-1");
  t.equal(env.CF_INSTANCE_ADDR, "10.0.0.5:61001");
  t.equal(env.HOME, "/home/vcap/app");
  t.equal(env.TMPDIR, "/tmp");
  t.equal(env.MEMORY_LIMIT, "256m");
  const vcap = JSON.parse(env.VCAP_APPLICATION ?? "{}") as Record<string, unknown>;
  t.match(vcap, {
    application_id: "app-1",
    application_name: "hello",
    application_uris: ["hello.kiln.test"],
    application_version: "v3",
    instance_id: "i-1",
    instance_index: 2,
    space_name: "dev",
    limits: { mem: 256, disk: 512, fds: 16384 },
    host: "0.0.0.0",
    port: 61001,
  });
  t.same(
    Object.keys(env).filter((k) => k.startsWith("KILN_") || k.startsWith("NATS")),
    [],
    "no KILN_ or NATS variable",
  );
});

const server = `
const http = require("http"), fs = require("fs");
let healthy = 0;
if (process.env.IGNORE_TERM) process.on("SIGTERM", () => console.log("SIGTERM ignored"));
else process.on("SIGTERM", () => process.exit(0));
if (process.env.HOG) { const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1)); }
http.createServer((q, s) => {
  if (q.url === "/env") return s.end(JSON.stringify(process.env));
  if (q.url === "/health") { s.statusCode = process.env.SICK && healthy++ > 0 ? 503 : 200; return s.end(); }
  if (q.url.startsWith("/read?")) {
    const p = decodeURIComponent(q.url.slice(6));
    try { fs.statSync(p).isDirectory() ? fs.readdirSync(p) : fs.readFileSync(p); return s.end("READ"); }
    catch (e) { return s.end("DENIED " + e.code); }
  }
  s.end(String(JSON.parse(process.env.VCAP_APPLICATION).instance_index));
}).listen(+process.env.PORT, "0.0.0.0", () => console.log("listening on " + process.env.PORT));
`;

const get = (port: number, path = "/"): Promise<string | null> => bodyOf(port, path);

interface Seen {
  subject: string;
  at: number;
  msg: Msg;
}

/** Everything published on the subjects the DEA speaks, with the time it arrived. */
function watch(bus: KilnConnection): Seen[] {
  const seen: Seen[] = [];
  for (const subject of ["router.register", "router.unregister", "droplet.exited", "dea.heartbeat"])
    bus.nc.subscribe(subject, { callback: (_e, msg) => seen.push({ subject, at: performance.now(), msg }) });
  return seen;
}

const until = <T>(
  what: string,
  f: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 15_000,
) => waitUntil(what, f, ms);

const exitedOf = (seen: Seen[], instanceId: string): DropletExited | undefined =>
  seen
    .filter((s) => s.subject === "droplet.exited")
    .map((s) => decode("droplet.exited", s.msg.data))
    .find((e) => e.instanceId === instanceId);

const exitsOf = (seen: Seen[], app: string): DropletExited[] =>
  seen
    .filter((s) => s.subject === "droplet.exited")
    .map((s) => decode("droplet.exited", s.msg.data))
    .filter((e) => e.app === app);

const registersOf = (seen: Seen[], subject: string): RegistryMessage[] =>
  seen
    .filter((s) => s.subject === subject)
    .map((s) => (subject === "router.register" ? decodeRegister(s.msg.data) : decodeUnregister(s.msg.data)));

t.test("instances in runc containers", { skip }, async (t) => {
  const nats = await startTestNats(t);
  const bus = await nats.connect("dea");
  const observer = await nats.connect("admin");
  const seen = watch(observer);
  await observer.flush();
  const blobs: ObjectStore = await bus.nc.jetstream().views.os("kiln_blobs");
  const archive = new ArchiveWork({ maxThreads: 2 });
  t.teardown(() => archive.close());

  // The droplet: a node server and the metadata staging writes.
  const src = join(base, "src");
  mkdirSync(join(src, ".kiln"), { recursive: true });
  writeFileSync(join(src, "server.js"), server);
  writeFileSync(
    join(src, ".kiln", "droplet.json"),
    JSON.stringify({ startCommand: "node server.js", buildpack: "node" }),
  );
  const tarball = join(base, "droplet.tar.gz");
  const digests = await archive.packDroplet(src, tarball);
  await blobs.putBlob({ name: "droplets/app-1" }, await readFile(tarball));

  mkdirSync(dataDir, { recursive: true });
  writeFileSync(credentials, '{"user":"dea","pass":"secret"}', { mode: 0o600 });
  const lines: string[] = [];
  const ledger = new ResourceLedger({ memoryMb: 4096, diskMb: 8192 });
  const options: InstancesOptions = {
    bus,
    deaId: "dea-1",
    host: "127.0.0.1",
    runc,
    archive,
    blobs,
    ledger,
    dataDir,
    uidRange: { first: 31_000, count: 100 },
    stopGraceMs: 1500,
    httpCheckIntervalMs: 100,
    heartbeatIntervalMs: 300,
    containerPrefix: prefix,
    output: (o, stream, text) => lines.push(`${o.index} ${stream} ${text}`),
    log: createLogger("dea-test", { level: "warn" }),
  };
  let instances = new Instances(options);
  await instances.adopt();
  await instances.listen();
  t.teardown(() => instances.shutdown());

  const request = (more: Partial<StartRequest>): StartRequest => ({
    app: "app-1",
    appName: "hello",
    space: "dev",
    version: "v1",
    dropletKey: "droplets/app-1",
    dropletSha1: digests.sha1,
    indices: [0],
    memoryMb: 128,
    diskMb: 256,
    startCommand: "",
    env: {},
    uris: ["hello.kiln.test"],
    servicesJson: "",
    healthCheckType: "port",
    healthCheckHttpEndpoint: "",
    healthCheckTimeoutMs: 20_000,
    ...more,
  });
  const ofApp = (app: string) => instances.heartbeat().instances.filter((i) => i.app === app);

  await t.test("two instances answer, are registered, and see Cloud Foundry's environment", async (t) => {
    const started = Date.now();
    // Through NATS, as the Cloud Controller sends it.
    observer.nc.publish("dea.dea-1.start", encode("dea.start", request({ indices: [0, 1] })));
    const regs = await until("two router.register", () => {
      const r = registersOf(seen, "router.register");
      return r.length >= 2 ? r : undefined;
    });
    t.comment(`start → both registered: ${Date.now() - started} ms`);
    t.equal(ledger.instancesOf("app-1"), 2, "both reserved in the ledger");
    const hb = ofApp("app-1");
    t.same(
      hb.map((i) => i.state),
      ["RUNNING", "RUNNING"],
    );
    for (const r of regs) {
      const inst = hb.find((i) => i.instanceId === r.privateInstanceId);
      t.ok(inst, "private_instance_id is the instance id");
      t.same(r.uris, ["hello.kiln.test"]);
      t.equal(r.host, "127.0.0.1");
      t.equal(r.app, "app-1");
      t.equal(r.privateInstanceIndex, String(inst?.index));
      t.equal(r.tags.component, "dea");
      t.equal(await get(r.port), String(inst?.index), `instance ${inst?.index} answers on port ${r.port}`);
    }
    const env = JSON.parse((await get(regs[0]?.port ?? 0, "/env")) ?? "{}") as Record<string, string>;
    const vcap = JSON.parse(env.VCAP_APPLICATION ?? "{}") as Record<string, unknown>;
    t.match(vcap, {
      application_id: "app-1",
      application_name: "hello",
      application_version: "v1",
      instance_id: regs[0]?.privateInstanceId,
      space_name: "dev",
      limits: { mem: 128, disk: 256 },
      port: regs[0]?.port,
    });
    t.equal(env.PORT, String(regs[0]?.port));
    t.equal(env.HOME, "/home/vcap/app");
    t.same(
      Object.keys(env).filter((k) => k.startsWith("KILN_") || k.includes("NATS")),
      [],
      "no KILN_ or NATS variable reaches the app",
    );
    t.ok(
      lines.some((l) => / stdout listening on \d+$/.test(l)),
      "the app's stdout arrives line by line",
    );

    // Isolation: from inside instance 0, instance 1's directory, the data dir, the credentials.
    const other = join(dataDir, "instances", `${prefix}${regs[1]?.privateInstanceId}`);
    for (const path of [other, join(other, "server.js"), dataDir, credentials]) {
      const answer = await get(regs[0]?.port ?? 0, `/read?${encodeURIComponent(path)}`);
      t.match(answer, /^DENIED/, `reading ${path} from inside fails (${answer})`);
    }
  });

  await t.test("heartbeat carries usage", async (t) => {
    const hb = await until("a heartbeat with usage", () => {
      const beats = seen
        .filter((s) => s.subject === "dea.heartbeat")
        .map((s) => decode("dea.heartbeat", s.msg.data));
      return beats.find(
        (b: DeaHeartbeat) =>
          b.instances.length === 2 &&
          b.instances.every(
            (i) => i.state === "RUNNING" && i.memoryBytes > 0 && i.diskBytes > 0 && i.cpuPermille >= 0,
          ),
      );
    });
    for (const i of hb.instances) {
      t.ok(i.memoryBytes > 1024 * 1024, `memory ${i.memoryBytes} bytes`);
      t.ok(i.diskBytes > 0, `disk ${i.diskBytes} bytes`);
      t.equal(i.state, "RUNNING");
    }
  });

  await t.test("router.start sets the register interval and brings every route again", async (t) => {
    const before = registersOf(seen, "router.register").length;
    observer.publish(
      "router.start",
      new TextEncoder().encode(
        JSON.stringify({
          id: "r1",
          hosts: [],
          minimumRegisterIntervalInSeconds: 1,
          pruneThresholdInSeconds: 120,
        }),
      ),
    );
    await until("routes registered at once", () =>
      registersOf(seen, "router.register").length >= before + 2 ? true : undefined,
    );
    const asked = Date.now();
    await until("and again a second later", () =>
      registersOf(seen, "router.register").length >= before + 4 ? true : undefined,
    );
    t.ok(Date.now() - asked > 500, `re-registered after ${Date.now() - asked} ms`);
  });

  await t.test("kill -9: router.unregister, then droplet.exited CRASHED, within 100 ms", async (t) => {
    const victim = ofApp("app-1").find((i) => i.index === 0);
    const id = victim?.instanceId ?? "";
    const pid = (await runc.state(`${prefix}${id}`)).pid;
    const killedWall = Date.now();
    const killedAt = performance.now();
    process.kill(pid, "SIGKILL");
    const exited = await until("droplet.exited", () => exitedOf(seen, id));
    const exitedAt =
      seen.find(
        (s) => s.subject === "droplet.exited" && decode("droplet.exited", s.msg.data).instanceId === id,
      )?.at ?? 0;
    const unregisteredAt =
      seen.find(
        (s) => s.subject === "router.unregister" && decodeUnregister(s.msg.data).privateInstanceId === id,
      )?.at ?? Infinity;
    const latency = exitedAt - killedAt;
    t.comment(
      `kill -9 → droplet.exited seen: ${latency.toFixed(1)} ms (published ${exited.at - killedWall} ms after the kill; unregister seen at ${(unregisteredAt - killedAt).toFixed(1)} ms)`,
    );
    t.ok(latency < 100, `droplet.exited within 100 ms of the kill (${latency.toFixed(1)} ms)`);
    t.ok(unregisteredAt <= exitedAt, "router.unregister came first");
    t.equal(exited.reason, "CRASHED");
    t.equal(exited.exitStatus, -9, "killed by signal 9");
    t.equal(exited.description, "killed by signal 9");
    t.equal(exited.index, 0);
    await until("instance gone", () => (ofApp("app-1").some((i) => i.instanceId === id) ? undefined : true));
    t.same(await runc.list(`${prefix}${id}`), [], "its container is deleted");
    t.equal(ledger.instancesOf("app-1"), 1, "its reservation released");
  });

  await t.test("dea.stop: unregistered, STOPPED", async (t) => {
    const id = ofApp("app-1")[0]?.instanceId ?? "";
    observer.nc.publish("dea.stop", encode("dea.stop", { app: "app-1", indices: [1] }));
    const exited = await until("droplet.exited", () => exitedOf(seen, id));
    t.equal(exited.reason, "STOPPED");
    t.ok(
      registersOf(seen, "router.unregister").some((r) => r.privateInstanceId === id),
      "router.unregister published",
    );
    await until("instance gone", () => (ofApp("app-1").length === 0 ? true : undefined));
    t.equal(ledger.instancesOf("app-1"), 0);
  });

  await t.test("a memory hog is reported CRASHED, out of memory", async (t) => {
    await instances.start(request({ app: "hog", env: { HOG: "1" }, memoryMb: 64 }));
    const exited = await until("droplet.exited", () =>
      seen
        .map((s) => (s.subject === "droplet.exited" ? decode("droplet.exited", s.msg.data) : undefined))
        .find((e) => e?.app === "hog"),
    );
    t.equal(exited.reason, "CRASHED");
    t.equal(exited.description, "out of memory");
  });

  await t.test("an app ignoring SIGTERM is SIGKILLed after the grace", async (t) => {
    await instances.start(request({ app: "deaf", env: { IGNORE_TERM: "1" } }));
    t.equal(ofApp("deaf")[0]?.state, "RUNNING");
    const asked = Date.now();
    await instances.stop({ app: "deaf", version: "", indices: [], instanceIds: [] });
    const took = Date.now() - asked;
    t.ok(took >= 1500, `not before the grace (${took} ms)`);
    const exited = await until("droplet.exited", () =>
      seen
        .map((s) => (s.subject === "droplet.exited" ? decode("droplet.exited", s.msg.data) : undefined))
        .find((e) => e?.app === "deaf"),
    );
    t.equal(exited.reason, "STOPPED");
    t.equal(exited.exitStatus, -9, "SIGKILLed");
    t.ok(
      lines.some((l) => l.endsWith("SIGTERM ignored")),
      "the app saw the SIGTERM",
    );
  });

  await t.test(
    "health: never healthy → CRASHED; an http check failing while running restarts it",
    async (t) => {
      await instances.start(request({ app: "mute", startCommand: "sleep 600", healthCheckTimeoutMs: 300 }));
      const mute = await until("droplet.exited of mute", () => exitsOf(seen, "mute")[0]);
      t.equal(mute.reason, "CRASHED");
      t.equal(mute.description, "health check timed out");

      await instances.start(
        request({
          app: "sick",
          env: { SICK: "1" },
          healthCheckType: "http",
          healthCheckHttpEndpoint: "/health",
          healthCheckTimeoutMs: 300,
        }),
      );
      const first = await until("droplet.exited of sick", () => exitsOf(seen, "sick")[0]);
      t.equal(first.reason, "CRASHED");
      t.equal(first.description, "health check timed out");
      const again = await until("a new instance of index 0", () =>
        ofApp("sick").find((i) => i.index === 0 && i.instanceId !== first.instanceId),
      );
      t.ok(again, "started again with the same index");
      await instances.stop({ app: "sick", version: "", indices: [], instanceIds: [] });
      await until("sick gone", () => (ofApp("sick").length === 0 ? true : undefined));
    },
  );

  await t.test("a bad start request is reported, never thrown", async (t) => {
    await instances.start(request({ app: "missing", dropletKey: "droplets/none" }));
    await instances.start(request({ app: "badsha", dropletSha1: "0".repeat(40) }));
    await instances.start(request({ app: "huge", memoryMb: 1_000_000 }));
    for (const [app, pattern] of [
      ["missing", /not in the object store/],
      ["badsha", /SHA-1/],
      ["huge", /needs 1000000 MiB/],
    ] as const) {
      const e = await until(`droplet.exited of ${app}`, () =>
        seen
          .map((s) => (s.subject === "droplet.exited" ? decode("droplet.exited", s.msg.data) : undefined))
          .find((x) => x?.app === app),
      );
      t.equal(e.reason, "CRASHED", app);
      t.match(e.description, pattern, `${app}: ${e.description}`);
    }
    t.equal(ledger.reservedMemoryMb, 0, "nothing stays reserved");
  });

  await t.test("evacuation: DEA_EVACUATION for every instance", async (t) => {
    await instances.start(request({ app: "evac", indices: [0, 1] }));
    const ids = ofApp("evac").map((i) => i.instanceId);
    t.equal(ids.length, 2);
    await instances.evacuate();
    for (const id of ids) t.equal(exitedOf(seen, id)?.reason, "DEA_EVACUATION");
    t.ok(
      ids.every((id) => registersOf(seen, "router.unregister").some((r) => r.privateInstanceId === id)),
      "unregistered",
    );
    t.same(await runc.list(prefix), [], "no container left");
  });

  await t.test(
    "adoption after a DEA killed with SIGKILL: no leftover, droplet.exited for each",
    async (t) => {
      const { user, pass } = nats.credentials("dea");
      const child = spawn(
        process.execPath,
        [
          compiledSibling(import.meta.url, "instance-crash-child.js"),
          JSON.stringify({
            natsUrl: nats.url,
            user,
            pass,
            runcRoot: runc.root,
            dataDir,
            prefix,
            request: request({ app: "crash", indices: [0, 1] }),
          }),
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      const ids = await new Promise<string[]>((resolve, reject) => {
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => {
          out += d;
          if (out.includes("\n")) resolve(JSON.parse(out) as string[]);
        });
        child.once("exit", (code) => reject(new Error(`the crashing DEA exited early (${code})`)));
      });
      t.equal(ids.length, 2, "two instances started by the DEA about to crash");
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await gone;
      t.equal(
        (await runc.list(prefix)).filter((c) => c.status === "running").length,
        2,
        "its containers outlive it",
      );

      instances = new Instances(options);
      await instances.adopt();
      t.same(await runc.list(prefix), [], "runc list shows none of the old ones");
      for (const id of ids) {
        const e = await until("droplet.exited", () => exitedOf(seen, id));
        t.equal(e.reason, "CRASHED");
        t.equal(e.app, "crash");
        t.match(e.description, /restarted/);
      }
    },
  );

  await t.test("after shutdown nothing is left", async (t) => {
    await instances.start(request({ app: "last" }));
    await instances.shutdown();
    t.equal(exitsOf(seen, "last")[0]?.reason, "DEA_SHUTDOWN");
    t.same(await runc.list(prefix), [], "no container");
    t.same(
      (await readdir(join(dataDir, "instances"))).filter((n) => n.startsWith(prefix)),
      [],
      "no instance directory or record",
    );
    t.equal(ledger.reservedMemoryMb, 0, "no reservation");
  });
});
