// Instances with --isolation none: plain processes under their own uid, no container. The
// same life cycle (routes, droplet.exited on a kill, stop) and the uid separation that is
// then the only wall between instances and the DEA. Needs root to run apps as their uid.
import { mkdirSync, writeFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { Instances } from "../../dea/instances/instances.js";
import { ResourceLedger } from "../../dea/placement/ledger.js";
import { ArchiveWork } from "../../dea/staging/archive.js";
import { createLogger } from "../../kernel/log.js";
import { type DropletExited, decode, type StartRequest } from "../../messaging/codec.js";
import { decodeRegister, type RegistryMessage } from "../../messaging/gorouter.js";
import { guardChildren } from "../helpers/children.js";
import { bodyOf } from "../helpers/http.js";
import { startTestNats } from "../helpers/nats.js";
import { until as waitUntil } from "../helpers/until.js";

guardChildren(t);

const skip = process.getuid?.() === 0 ? false : "running an app as its own uid needs root";

const server = `
const http = require("http"), fs = require("fs");
process.on("SIGTERM", () => process.exit(0));
http.createServer((q, s) => {
  if (q.url === "/env") return s.end(JSON.stringify(process.env));
  if (q.url === "/pid") return s.end(String(process.pid));
  if (q.url.startsWith("/read?")) {
    const p = decodeURIComponent(q.url.slice(6));
    try { fs.statSync(p).isDirectory() ? fs.readdirSync(p) : fs.readFileSync(p); return s.end("READ"); }
    catch (e) { return s.end("DENIED " + e.code); }
  }
  s.end(String(JSON.parse(process.env.VCAP_APPLICATION).instance_index));
}).listen(+process.env.PORT, "0.0.0.0");
`;

const get = (port: number, path = "/"): Promise<string | null> => bodyOf(port, path);

const until = <T>(
  what: string,
  f: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 10_000,
) => waitUntil(what, f, ms);

t.test("plain instances under their own uids", { skip }, async (t) => {
  const base = await mkdtemp(join(tmpdir(), "kiln-instance-plain-"));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  await chmod(base, 0o711);
  const nats = await startTestNats(t);
  const bus = await nats.connect("dea");
  const observer = await nats.connect("admin");
  const exits: DropletExited[] = [];
  const regs: RegistryMessage[] = [];
  observer.nc.subscribe("droplet.exited", {
    callback: (_e, m) => exits.push(decode("droplet.exited", m.data)),
  });
  observer.nc.subscribe("router.register", { callback: (_e, m) => regs.push(decodeRegister(m.data)) });
  await observer.flush();
  const blobs = await bus.nc.jetstream().views.os("kiln_blobs");
  const archive = new ArchiveWork({ maxThreads: 1 });
  t.teardown(() => archive.close());

  const src = join(base, "src");
  mkdirSync(join(src, ".kiln"), { recursive: true });
  writeFileSync(join(src, "server.js"), server);
  writeFileSync(
    join(src, ".kiln", "droplet.json"),
    JSON.stringify({ startCommand: "node server.js", buildpack: "node" }),
  );
  const tarball = join(base, "droplet.tar.gz");
  await archive.packDroplet(src, tarball);
  await blobs.putBlob({ name: "droplets/plain" }, await readFile(tarball));

  const dataDir = join(base, "data");
  mkdirSync(dataDir, { recursive: true });
  const credentials = join(dataDir, "nats-credentials.json");
  writeFileSync(credentials, '{"user":"dea","pass":"secret"}', { mode: 0o600 });
  const instances = new Instances({
    bus,
    deaId: "dea-plain",
    host: "127.0.0.1",
    runc: null,
    archive,
    blobs,
    ledger: new ResourceLedger({ memoryMb: 4096, diskMb: 8192 }),
    dataDir,
    uidRange: { first: 33_000, count: 10 },
    stopGraceMs: 1000,
    heartbeatIntervalMs: 60_000,
    output: () => {},
    log: createLogger("dea-test", { level: "warn" }),
  });
  await instances.adopt();
  await instances.listen();
  t.teardown(() => instances.shutdown());

  const req: StartRequest = {
    app: "plain",
    appName: "plain",
    space: "dev",
    version: "v1",
    dropletKey: "droplets/plain",
    dropletSha1: "",
    indices: [0, 1, 2],
    memoryMb: 256,
    diskMb: 256,
    startCommand: "",
    env: {},
    uris: ["plain.kiln.test"],
    servicesJson: "",
    healthCheckType: "port",
    healthCheckHttpEndpoint: "",
    healthCheckTimeoutMs: 15_000,
  };
  await instances.start(req);
  await until("two registered", () => (regs.length >= 3 ? true : undefined));
  const hb = instances.heartbeat().instances;
  t.same(
    hb.map((i) => i.state),
    ["RUNNING", "RUNNING", "RUNNING"],
  );
  for (const r of regs) {
    const inst = hb.find((i) => i.instanceId === r.privateInstanceId);
    t.equal(await get(r.port), String(inst?.index), `instance ${inst?.index} answers on ${r.port}`);
  }
  const env = JSON.parse((await get(regs[0]?.port ?? 0, "/env")) ?? "{}") as Record<string, string>;
  t.same(
    Object.keys(env).filter((k) => k.startsWith("KILN_") || k.includes("NATS")),
    [],
    "no KILN_ or NATS variable",
  );
  const other = join(dataDir, "instances", `kiln-app-${regs[1]?.privateInstanceId}`);
  t.ok(regs[0]?.privateInstanceId !== regs[1]?.privateInstanceId);
  for (const path of [other, join(other, "server.js"), dataDir, credentials]) {
    const answer = await get(regs[0]?.port ?? 0, `/read?${encodeURIComponent(path)}`);
    t.match(answer, /^DENIED/, `reading ${path} fails (${answer})`);
  }

  const victim = hb.find((i) => i.index === 0)?.instanceId ?? "";
  const pid = Number(await get(regs.find((r) => r.privateInstanceId === victim)?.port ?? 0, "/pid"));
  process.kill(pid, "SIGKILL");
  const killed = await until("droplet.exited of the killed one", () =>
    exits.find((e) => e.instanceId === victim),
  );
  t.equal(killed.reason, "CRASHED");
  t.equal(killed.exitStatus, -9);

  await instances.stop({ app: "plain", version: "", indices: [1], instanceIds: [] });
  const stopped = await until("droplet.exited of index 1", () => exits.find((e) => e.index === 1));
  t.equal(stopped.reason, "STOPPED");
  await instances.shutdown();
  const last = await until("droplet.exited of index 2", () => exits.find((e) => e.index === 2));
  t.equal(last.reason, "DEA_SHUTDOWN");
});
