// DEA bench: a real `kiln dea` against a private nats-server, driven only by NATS as the Cloud
// Controller drives it. Staging time per example (dea.<id>.stage request → reply), start →
// router.register of the node example, and how many node instances one DEA runs at once with
// all answering. References measured in the same run: a bare runc container running /bin/true
// (what one staging container costs at least) and the node example started by hand in a bare
// runc container until its port accepts (what a start costs without the DEA); memory per
// instance against the same server's RSS as a plain process. Cases interleave over rounds.
//   node dist/bench/dea.js [--json] [--record] [--rounds N] [--starts N] [--instances N]
//                          [--examples node,python,…] [--instance-memory-mb M]
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create as tarCreate } from "tar";
import { startContainer, stopContainer } from "../dea/container/container.js";
import { probeIsolation } from "../dea/container/probe.js";
import { Runc } from "../dea/container/runc.js";
import { cpuSharesFor } from "../dea/container/spec.js";
import { createLogger } from "../kernel/log.js";
import { kilnBin, projectRoot } from "../kernel/paths.js";
import { decode, encode, type StageReply } from "../messaging/codec.js";
import { connectNats } from "../messaging/connection.js";
import { decodeRegister } from "../messaging/gorouter.js";
import { blobStore } from "../messaging/jetstream.js";
import { startNatsServer } from "../messaging/nats-server.js";
import { deaStage, deaStart } from "../messaging/subjects.js";
import { BenchError } from "./lib/errors.js";
import { cleanEnv, freePort, startProcess, stopAll, stopAllOnSignal, waitForPort } from "./lib/procs.js";
import { appendToSection, fmtNum, fmtRatio, mdTable } from "./lib/report.js";
import { median, percentile, ratio } from "./lib/stats.js";

const { values: flags } = parseArgs({
  options: {
    json: { type: "boolean" },
    record: { type: "boolean" },
    rounds: { type: "string" },
    starts: { type: "string" },
    instances: { type: "string" },
    examples: { type: "string" },
    "instance-memory-mb": { type: "string" },
  },
});
const rounds = Number(flags.rounds ?? 3);
const starts = Number(flags.starts ?? 20);
const instanceCount = Number(flags.instances ?? 50);
const instanceMemoryMb = Number(flags["instance-memory-mb"] ?? 64);
const exampleDirs: Record<string, string> = {
  node: "examples/node",
  "node-dep": "examples/node-dep",
  python: "examples/python",
  go: "examples/go",
  static: "examples/static",
  procfile: "examples/procfile",
  custom: "examples/custom-buildpack/app",
};
const examples = (flags.examples ?? Object.keys(exampleDirs).join(",")).split(",");
for (const e of examples)
  if (!(e in exampleDirs)) throw new BenchError("KILN_BENCH_BAD_ARGS", `unknown example ${e}`);
const log = createLogger("bench.dea");

const work = mkdtempSync(join(tmpdir(), "kiln-bench-dea-"));
stopAllOnSignal(() => rmSync(work, { recursive: true, force: true }));

const runc = new Runc({ root: join(work, "ref") });
const unusable = await probeIsolation(runc);
if (unusable !== null) throw new BenchError("KILN_BENCH_TOOL_MISSING", `runc cannot run here: ${unusable}`);

const nats = await startNatsServer({ dataDir: join(work, "nats"), port: 0 });
const admin = await connectNats({ servers: nats.url, ...nats.credentials("admin"), name: "bench-dea" });
const blobs = await blobStore(admin.nc, 1);

const deaId = "bench-dea";
const deaCred = nats.credentials("dea");
const advertised = new Promise<void>((resolve) => {
  const sub = admin.nc.subscribe("dea.advertise", {
    callback: (_e, m) => {
      if (decode("dea.advertise", m.data).deaId === deaId) {
        sub.unsubscribe();
        resolve();
      }
    },
  });
});
await admin.flush();
const dea = startProcess(
  "dea",
  process.execPath,
  [
    kilnBin,
    "dea",
    "--nats",
    nats.url,
    "--id",
    deaId,
    "--data-dir",
    join(work, "dea"),
    "--memory-mb",
    "20000",
    "--disk-mb",
    "50000",
    "--heartbeat-interval-ms",
    "1000",
    "--stop-grace-ms",
    "2000",
  ],
  { env: cleanEnv({ KILN_NATS_USER: deaCred.user, KILN_NATS_PASS: deaCred.pass, KILN_LOG_LEVEL: "warn" }) },
);
await Promise.race([
  advertised,
  dea.exited.then((c) => {
    throw new BenchError("KILN_BENCH_STEP_FAILED", `kiln dea exited (${c}): ${dea.tail()}`);
  }),
]);

/** Every router.register and droplet.exited from now on. */
const registered = new Map<string, { at: number; port: number }>();
admin.nc.subscribe("router.register", {
  callback: (_e, m) => {
    const r = decodeRegister(m.data);
    const key = `${r.app}/${r.privateInstanceIndex}`;
    if (!registered.has(key)) registered.set(key, { at: performance.now(), port: r.port });
  },
});
const exited = new Map<string, number>();
admin.nc.subscribe("droplet.exited", {
  callback: (_e, m) => {
    const x = decode("droplet.exited", m.data);
    exited.set(`${x.app}/${x.index}`, performance.now());
  },
});
const memoryOf = new Map<string, number>();
admin.nc.subscribe("dea.heartbeat", {
  callback: (_e, m) => {
    for (const i of decode("dea.heartbeat", m.data).instances)
      if (i.state === "RUNNING") memoryOf.set(`${i.app}/${i.index}`, i.memoryBytes);
  },
});
await admin.flush();

async function until(what: string, f: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > end) throw new BenchError("KILN_BENCH_STEP_FAILED", `timed out: ${what}; ${dea.tail()}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

let serial = 0;
async function putPackage(dir: string): Promise<string> {
  const file = join(work, `pkg-${serial++}.tar.gz`);
  await tarCreate({ gzip: true, file, cwd: dir, portable: true }, readdirSync(dir));
  const key = `packages/bench-${serial}`;
  await blobs.putBlob({ name: key }, readFileSync(file));
  return key;
}

const packages = new Map<string, string>();
for (const e of examples) packages.set(e, await putPackage(join(projectRoot, exampleDirs[e] as string)));

async function stage(example: string, app: string): Promise<{ ms: number; reply: StageReply }> {
  const buildpack = example === "custom" ? join(projectRoot, "examples/custom-buildpack/buildpack") : "";
  const t0 = performance.now();
  const msg = await admin.nc.request(
    deaStage(deaId),
    encode("dea.stage", {
      app,
      taskId: `bench-${serial++}`,
      packageKey: packages.get(example) as string,
      buildpack,
      memoryMb: 1024,
      diskMb: 4096,
      timeoutMs: 300_000,
    }),
    { timeout: 310_000 },
  );
  const ms = performance.now() - t0;
  const reply = decode("dea.stage:reply", msg.data);
  if (!reply.ok)
    throw new BenchError(
      "KILN_BENCH_STEP_FAILED",
      `staging ${example} failed: ${reply.error} ${reply.logTail.join(" | ")}`,
    );
  return { ms, reply };
}

/** A bare runc container running /bin/true: the floor under every staging task. */
async function bareTrue(): Promise<number> {
  const dir = join(work, `true-${serial++}`);
  mkdirSync(dir);
  const t0 = performance.now();
  const c = await startContainer(runc, {
    id: `kiln-bench-true-${serial}`,
    appDir: dir,
    command: ["/bin/true"],
    env: {},
    uid: 65534,
    gid: 65534,
    memoryMiB: 64,
    pids: 64,
    cpuShares: cpuSharesFor(64),
  });
  c.stdout.resume();
  c.stderr.resume();
  await c.exited;
  return performance.now() - t0;
}

/** The node example in a bare runc container, timed until its port accepts: a start without the DEA. */
async function bareNodeStart(): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const c = await startContainer(runc, {
    id: `kiln-bench-node-${serial++}`,
    appDir: join(projectRoot, "examples/node"),
    command: ["/usr/bin/node", "server.js"],
    env: { PORT: String(port) },
    uid: 65534,
    gid: 65534,
    memoryMiB: 256,
    pids: 256,
    cpuShares: cpuSharesFor(256),
  });
  c.stdout.resume();
  c.stderr.resume();
  await waitForPort(port, undefined, 15_000);
  const ms = performance.now() - t0;
  await stopContainer(runc, c, 1000);
  return ms;
}

/** RSS of the node example as a plain process, once it answers. */
async function plainNodeRss(): Promise<number> {
  const port = await freePort();
  const child = spawn("/usr/bin/node", ["server.js"], {
    cwd: join(projectRoot, "examples/node"),
    env: { PORT: String(port), PATH: "/usr/bin:/bin" },
    stdio: "ignore",
  });
  await waitForPort(port, undefined, 15_000);
  await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
  const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
  child.kill("SIGKILL");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

// ---- staging: every example, interleaved with the bare-container reference -----------------
const stagingMs = new Map<string, number[]>();
const bareTrueMs: number[] = [];
let nodeDroplet: StageReply | undefined;
for (let r = 0; r < rounds; r++) {
  const order = [...examples.slice(r % examples.length), ...examples.slice(0, r % examples.length)];
  bareTrueMs.push(await bareTrue());
  for (const e of order) {
    const { ms, reply } = await stage(e, `stage-${e}`);
    if (e === "node") nodeDroplet = reply;
    stagingMs.set(e, [...(stagingMs.get(e) ?? []), ms]);
    log.info("staged", { example: e, round: r, ms: Math.round(ms) });
  }
  bareTrueMs.push(await bareTrue());
}
nodeDroplet ??= (await stage("node", "stage-node")).reply;

function startMsg(app: string, indices: number[], memoryMb: number): Uint8Array {
  const d = nodeDroplet as StageReply;
  return encode("dea.start", {
    app,
    appName: app,
    version: "v1",
    dropletKey: d.dropletKey,
    dropletSha1: d.dropletSha1,
    indices,
    memoryMb,
    diskMb: 256,
    uris: [`${app}.bench.test`],
  });
}

async function stopIndices(app: string, indices: number[]): Promise<void> {
  const t0 = performance.now();
  admin.publish("dea.stop", encode("dea.stop", { app, indices }));
  await until(`${app} stopped`, () => indices.every((i) => (exited.get(`${app}/${i}`) ?? 0) > t0), 30_000);
}

// ---- start → registered, interleaved with the bare start ---------------------------------
const startMs: number[] = [];
const bareStartMs: number[] = [];
for (let i = 0; i < starts; i++) {
  if (i % 2 === 0) bareStartMs.push(await bareNodeStart());
  const app = "start-bench";
  const t0 = performance.now();
  admin.publish(deaStart(deaId), startMsg(app, [i], 256));
  await until(`${app}/${i} registered`, () => registered.has(`${app}/${i}`), 60_000);
  startMs.push((registered.get(`${app}/${i}`)?.at ?? Number.NaN) - t0);
  await stopIndices(app, [i]);
  if (i % 2 === 1) bareStartMs.push(await bareNodeStart());
}
const p90 = percentile(startMs, 0.9);

// ---- capacity: N instances at once, all answering ----------------------------------------
/** MemAvailable of the machine, bytes: what N instances cost the host in all, shared pages counted once. */
function memAvailable(): number {
  return Number(/MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0) * 1024;
}
const many = "many";
const availableBefore = memAvailable();
const indices = Array.from({ length: instanceCount }, (_, i) => i);
const manyT0 = performance.now();
admin.publish(deaStart(deaId), startMsg(many, indices, instanceMemoryMb));
let allRegistered = true;
try {
  await until(
    `${instanceCount} instances registered`,
    () => indices.every((i) => registered.has(`${many}/${i}`)),
    180_000,
  );
} catch (err) {
  allRegistered = false;
  log.warn("capacity_incomplete", { error: err });
}
const manyMs = performance.now() - manyT0;
// Settle: give the instances a moment to finish starting before reading the host's memory.
await new Promise((r) => setTimeout(r, 2000));
const hostPerInstance = (availableBefore - memAvailable()) / instanceCount;
let answering = 0;
await Promise.all(
  indices.map(async (i) => {
    const reg = registered.get(`${many}/${i}`);
    if (reg === undefined) return;
    try {
      const res = await fetch(`http://127.0.0.1:${reg.port}/`);
      if (res.status === 200) answering++;
      await res.text();
    } catch {}
  }),
);
await until(
  "a heartbeat with every instance's memory",
  () => indices.every((i) => memoryOf.has(`${many}/${i}`)),
  15_000,
).catch(() => {});
const perInstance = median(indices.map((i) => memoryOf.get(`${many}/${i}`) ?? Number.NaN));
const plainRss = median([await plainNodeRss(), await plainNodeRss(), await plainNodeRss()]);
await stopIndices(
  many,
  indices.filter((i) => registered.has(`${many}/${i}`)),
);

// ---- report --------------------------------------------------------------------------------
const trueMedian = median(bareTrueMs);
const report = {
  date: new Date().toISOString(),
  rounds,
  staging: examples.map((e) => ({
    example: e,
    medianMs: median(stagingMs.get(e) ?? []),
    vsBareContainer: ratio(median(stagingMs.get(e) ?? []), trueMedian),
  })),
  bareContainerMs: trueMedian,
  start: { starts, p50Ms: median(startMs), p90Ms: p90, bareStartP50Ms: median(bareStartMs) },
  capacity: {
    requested: instanceCount,
    answering,
    allRegistered,
    secondsToAllRegistered: manyMs / 1000,
    memoryPerInstanceBytes: perInstance,
    hostMemoryPerInstanceBytes: hostPerInstance,
    plainProcessRssBytes: plainRss,
  },
};

const MiB = 1024 * 1024;
const table = mdTable(
  ["measure", "result", "reference (same run)", "ratio", "target"],
  [
    ...report.staging.map((s) => [
      `staging ${s.example}`,
      `${fmtNum(s.medianMs, 0)} ms`,
      `bare runc /bin/true ${fmtNum(trueMedian, 0)} ms`,
      fmtRatio(s.vsBareContainer),
      s.example === "node" ? "≤ 1000 ms" : "",
    ]),
    [
      `start → router.register p50 (${starts} starts)`,
      `${fmtNum(report.start.p50Ms, 0)} ms`,
      `bare runc node until port accepts ${fmtNum(report.start.bareStartP50Ms, 0)} ms`,
      fmtRatio(ratio(report.start.p50Ms, report.start.bareStartP50Ms)),
      "≤ 300 ms",
    ],
    [`start → router.register p90`, `${fmtNum(p90, 0)} ms`, "", "", ""],
    [
      `node instances at once, answering`,
      `${answering} / ${instanceCount} (${fmtNum(manyMs / 1000, 1)} s to all registered)`,
      "",
      "",
      "50",
    ],
    [
      "host memory per instance (MemAvailable drop ÷ N)",
      `${fmtNum(hostPerInstance / MiB, 1)} MiB`,
      `plain node RSS ${fmtNum(plainRss / MiB, 1)} MiB`,
      fmtRatio(ratio(hostPerInstance, plainRss)),
      "",
    ],
    [
      "memory per instance (its cgroup's charge; shared pages of node are charged once)",
      `${fmtNum(perInstance / MiB, 1)} MiB`,
      `plain node RSS ${fmtNum(plainRss / MiB, 1)} MiB`,
      fmtRatio(ratio(perInstance, plainRss)),
      "",
    ],
  ],
  ["left", "right", "left", "right", "left"],
);

if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
else process.stdout.write(`${table}\n`);
if (flags.record) {
  const when = report.date.slice(0, 16).replace("T", " ");
  appendToSection(
    join(projectRoot, "bench", "RESULTS.md"),
    "DEA (bench/dea.ts)",
    "A real `kiln dea` (runc isolation) against a private nats-server, driven by NATS as the Cloud Controller drives it. Staging: dea.<id>.stage request → reply per example (package already in kiln_blobs), against a bare runc container running /bin/true in the same run. Start: dea.<id>.start publish → router.register of the node example, against the same server started by hand in a bare runc container until its port accepts. Capacity: one start request for N node instances, all must register and answer; memory per instance is the cgroup's usage from dea.heartbeat against the server's RSS as a plain process. Targets: staging a dependency-free node app ≤ 1 s; start → registered p50 ≤ 300 ms; 50 instances on one DEA all answering.",
    `### ${when} UTC: ${rounds} rounds of staging, ${starts} starts, ${instanceCount} instances of ${instanceMemoryMb} MiB\n\n${table}\n\nReproduce: \`node scripts/setup.mjs --build && node dist/bench/dea.js --rounds ${rounds} --starts ${starts} --instances ${instanceCount} --record\``,
  );
}

await admin.close();
await stopAll();
await nats.stop();
rmSync(work, { recursive: true, force: true });
