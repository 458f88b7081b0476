// Self-healing bench: `kill -9` of one instance of a 2-instance app, over and over, under a
// constant load from the real `kiln bench` (a child process), on one real kernel (`kiln up`).
// Measured: the load's failed requests, and kill → the replacement's first answer through the
// router (a separate client polls the router; the app answers its index and instance GUID, so
// the new instance is told apart from the one killed and from its surviving sibling). Also
// `kiln up` → ready on fresh data dirs. The crash policy counts crashes per app index, so kills
// alternate indexes and move to a freshly pushed app before the policy would delay a restart
// (bench/lib/heal.ts). Reference from the same run: one instance's cold start through the router.
//   node dist/bench/heal.js [--json] [--record] [--kills N=20] [--rate R=200] [--connections C=10] [--starts N=3]
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { containerRoot } from "../dea/config.js";
import { Runc } from "../dea/container/runc.js";
import { FLAPPING_CRASHES, IMMEDIATE_RESTARTS } from "../hm/crashes.js";
import { projectRoot } from "../kernel/paths.js";
import { BenchError } from "./lib/errors.js";
import {
  killPlan,
  killsPerApp,
  type LoadFailures,
  loadFailures,
  sumFailures,
  summarizeRecovery,
} from "./lib/heal.js";
import { type KernelUp, startKernelUp } from "./lib/kernel-up.js";
import { type CliRun, kilnCli, type Started } from "./lib/kiln-cli.js";
import { httpGet, sleep } from "./lib/procs.js";
import { appendToSection, fmtNum, fmtRatio, mdTable } from "./lib/report.js";
import { median, percentile, ratio } from "./lib/stats.js";
import { identifyingApp, workspace } from "./lib/workspace.js";

const { values: flags } = parseArgs({
  options: {
    json: { type: "boolean" },
    record: { type: "boolean" },
    kills: { type: "string" },
    rate: { type: "string" },
    connections: { type: "string" },
    starts: { type: "string" },
  },
});
function positive(name: string, raw: string | undefined, fallback: number): number {
  const n = Number(raw ?? fallback);
  if (!Number.isInteger(n) || n < 1)
    throw new BenchError("KILN_BENCH_BAD_ARGS", `--${name} must be a positive integer, not ${raw}`);
  return n;
}
const kills = positive("kills", flags.kills, 20);
const rate = positive("rate", flags.rate, 200);
const connections = positive("connections", flags.connections, 10);
const starts = positive("starts", flags.starts, 3);

const INSTANCES = 2;
const targetsMs = { recovery: 1000, up: 3000 };
/** Router polling interval while waiting for the replacement: the measurement's resolution. */
const POLL_MS = 10;
/** After both instances answer again, this long before the next kill: the kernel settles. */
const SETTLE_MS = 1000;
/** From starting `kiln bench` to the first kill: its start, login lookup and connect check. */
const LOAD_WARMUP_MS = 2000;
const STEP_TIMEOUT_MS = 120_000;

const ws = workspace("heal");
const work = ws.dir;
const appDir = identifyingApp(
  join(work, "app"),
  "its instance index and GUID",
  `process.env.CF_INSTANCE_INDEX + " " + process.env.CF_INSTANCE_GUID`,
);
const kilnHome = join(work, "home");
mkdirSync(kilnHome, { mode: 0o700 });
const cli = kilnCli(kilnHome);

let kernel: KernelUp;
const host = (app: string): string => `${app}.localhost`;

interface Answer {
  status: number;
  index: number;
  guid: string;
  /** When it arrived (performance.now()). */
  at: number;
}

async function ask(app: string): Promise<Answer> {
  const r = await httpGet(kernel.routerPort, "/", host(app), 1000);
  const at = performance.now();
  const [index, guid] = r.body.trim().split(" ");
  return r.status === 200
    ? { status: 200, index: Number(index), guid: guid ?? "", at }
    : { status: r.status, index: -1, guid: "", at };
}

/**
 * Polls the router, two requests at a time every POLL_MS (the surviving instance takes every
 * other request), until `done` says yes; keeps the statuses other than 200 on the way (0: no answer).
 */
async function pollUntil(
  app: string,
  what: string,
  done: (a: Answer) => boolean,
): Promise<{ at: number; failed: number[] }> {
  const deadline = performance.now() + STEP_TIMEOUT_MS;
  const failed: number[] = [];
  while (performance.now() < deadline) {
    const answers = await Promise.all([ask(app), ask(app)]);
    let at = Number.POSITIVE_INFINITY;
    for (const a of answers) {
      if (a.status !== 200) failed.push(a.status);
      else if (done(a)) at = Math.min(at, a.at);
    }
    if (at < Number.POSITIVE_INFINITY) return { at, failed };
    await sleep(POLL_MS);
  }
  throw new BenchError("KILN_BENCH_STEP_FAILED", `timed out: ${what}`);
}

/** The GUID answering for each index, once every index has answered. */
async function instancesOf(app: string): Promise<Map<number, string>> {
  const seen = new Map<number, string>();
  await pollUntil(app, `${INSTANCES} instances of ${app} answering`, (a) => {
    seen.set(a.index, a.guid);
    return seen.size >= INSTANCES;
  });
  return seen;
}

/** The host pid of the container running instance `guid` (the DEA names containers after it). */
async function instancePid(guid: string): Promise<number> {
  const runc = new Runc({ root: containerRoot(join(kernel.dataDir, "dea")) });
  const c = (await runc.list()).find((s) => s.id.endsWith(guid) && s.status === "running");
  if (c === undefined || c.pid <= 0)
    throw new BenchError("KILN_BENCH_STEP_FAILED", `no running container for instance ${guid}`);
  return c.pid;
}

interface KillSample {
  app: string;
  index: number;
  /** kill -9 → the first 200 through the router from the replacement, ms. */
  recoveryMs: number;
  /** Statuses other than 200 the polling client got from the kill to both instances answering (0: no answer). */
  probeFailed: number[];
}

/** One kill -9 of `index` and the wait for its replacement; `current` is updated to it. */
async function killOne(app: string, index: number, current: Map<number, string>): Promise<KillSample> {
  const old = current.get(index) ?? "";
  const pid = await instancePid(old);
  const killedAt = performance.now();
  process.kill(pid, "SIGKILL");
  let replacement = "";
  const back = await pollUntil(app, `a replacement for ${app}/${index}`, (a) => {
    if (a.index !== index || a.guid === old) return false;
    replacement = a.guid;
    return true;
  });
  current.set(index, replacement);
  // Both back: the sibling answers too.
  const sibling = await pollUntil(app, `${app} answering from both instances`, (a) => a.index !== index);
  return { app, index, recoveryMs: back.at - killedAt, probeFailed: [...back.failed, ...sibling.failed] };
}

interface AppRun {
  app: string;
  samples: KillSample[];
  load: LoadFailures;
}

/** A fresh 2-instance app, its kills under one `kiln bench` run, then deleted. */
async function killSeries(app: string, indexes: readonly number[]): Promise<AppRun> {
  await cli.run(["push", app, "-p", appDir, "-i", String(INSTANCES)]);
  const current = await instancesOf(app);
  const load: Started = cli.start([
    "bench",
    app,
    "-c",
    String(connections),
    "-R",
    String(rate),
    "-d",
    "86400",
    "--json",
  ]);
  const samples: KillSample[] = [];
  let run: CliRun;
  try {
    await sleep(LOAD_WARMUP_MS);
    for (const index of indexes) {
      if (load.exitedAt() < Number.POSITIVE_INFINITY) break;
      samples.push(await killOne(app, index, current));
      await sleep(SETTLE_MS);
    }
  } finally {
    // SIGINT ends `kiln bench` early with its result for the part that ran.
    load.signal("SIGINT");
    run = await load.done;
  }
  if (run.code !== 0)
    throw new BenchError("KILN_BENCH_LOAD_FAILED", `kiln bench ${app} exited ${run.code}:\n${run.tail}`);
  await cli.run(["delete", "-f", app]);
  return { app, samples, load: loadFailures(run.stdout) };
}

/** The reference: `kiln start` of a pushed, stopped 1-instance app → its first 200 through the router. */
async function coldStartMs(app: string): Promise<number> {
  await cli.run(["push", app, "-p", appDir, "-i", "1"]);
  await cli.run(["stop", app]);
  const deadline = performance.now() + STEP_TIMEOUT_MS;
  while ((await ask(app)).status === 200) {
    if (performance.now() > deadline) throw new BenchError("KILN_BENCH_STEP_FAILED", `${app} never stopped`);
    await sleep(POLL_MS);
  }
  const startedAt = performance.now();
  const run = cli.start(["start", app]);
  const { at } = await pollUntil(app, `${app} answering`, () => true);
  await run.done;
  await cli.run(["delete", "-f", app]);
  return at - startedAt;
}

function commit(): string {
  const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: projectRoot, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "unknown";
}

const loadStart = loadavg()[0] ?? Number.NaN;
const upMs: number[] = [];
const runs: AppRun[] = [];
const startRefs: number[] = [];
await ws.run(async () => {
  // Fresh data dirs: the first `kiln up` on a machine, every time. The last one stays up.
  for (let i = 1; i < starts; i++) {
    const k = await startKernelUp(join(work, `data-${i}`));
    upMs.push(k.readyMs);
    await k.stop();
  }
  kernel = await startKernelUp(join(work, "data"));
  upMs.push(kernel.readyMs);
  await cli.run(["login", "-a", kernel.api, "-u", "admin", "-p", kernel.adminPassword]);
  await cli.run(["create-space", "bench"]);
  await cli.run(["target", "-s", "bench"]);
  const plan = killPlan(kills, INSTANCES);
  const apps = [...new Set(plan.map((k) => k.app))];
  for (const a of apps) {
    runs.push(
      await killSeries(
        `heal-${a}`,
        plan.filter((k) => k.app === a).map((k) => k.index),
      ),
    );
    // The reference, between the series (so it sees the same machine), not under load.
    startRefs.push(await coldStartMs(`cold-${a}`));
  }
});

// ---- report --------------------------------------------------------------------------------
const samples = runs.flatMap((r) => r.samples);
const recovery = summarizeRecovery(
  samples.map((s) => s.recoveryMs),
  targetsMs.recovery,
);
const load = sumFailures(runs.map((r) => r.load));
const upMedian = median(upMs);
const startRef = median(startRefs);
const report = {
  date: new Date().toISOString(),
  commit: commit(),
  settings: {
    kills: samples.length,
    instances: INSTANCES,
    killsPerApp: killsPerApp(INSTANCES),
    apps: runs.length,
    load: { connections, rate },
    pollMs: POLL_MS,
    settleMs: SETTLE_MS,
    crashPolicy: { immediateRestarts: IMMEDIATE_RESTARTS, flappingCrashes: FLAPPING_CRASHES },
    hm: "defaults (kiln up's; no KILN_HM_* set)",
  },
  machine: { cpus: cpus().length, node: process.version, loadStart, loadEnd: loadavg()[0] ?? Number.NaN },
  recovery,
  reference: {
    what: "one instance's cold start: kiln start of a pushed, stopped app → its first 200 through the router",
    medianMs: startRef,
    ratio: ratio(recovery.p50Ms, startRef),
  },
  failedRequests: {
    total: load.failed,
    perKillMean: load.failed / Math.max(1, samples.length),
    perApp: runs.map((r) => ({ app: r.app, kills: r.samples.length, ...r.load })),
    load,
    /** The polling client's own answers other than 200, per kill (a second, independent count). */
    probePerKill: samples.map((s) => s.probeFailed),
  },
  up: {
    samplesMs: upMs,
    medianMs: upMedian,
    targetMs: targetsMs.up,
    ratio: upMedian / targetsMs.up,
    pass: upMedian <= targetsMs.up,
  },
  kills: samples,
};

const ms = (v: number): string => `${fmtNum(v, 0)} ms`;
const verdict = (r: number, pass: boolean): string => `${fmtRatio(r)} ${pass ? "pass" : "**miss**"}`;
const failedPass = load.failed === 0;
const table = mdTable(
  ["measure", "result", "target", "÷ target", "reference (same run)"],
  [
    [
      `failed requests of \`kiln bench\` (${fmtNum(load.requests, 0)} requests, ${samples.length} kills)`,
      `${load.failed} (${fmtNum(report.failedRequests.perKillMean, 2)} per kill)`,
      "0",
      failedPass ? "pass" : "**miss**",
      "",
    ],
    [
      "kill -9 → replacement's first 200 through the router, p50",
      ms(recovery.p50Ms),
      `≤ ${ms(recovery.targetMs)}`,
      verdict(recovery.ratio, recovery.pass),
      `${fmtRatio(report.reference.ratio)} one instance's cold start (${ms(startRef)})`,
    ],
    [
      "same, p90 / min / max",
      `${ms(recovery.p90Ms)} / ${ms(recovery.minMs)} / ${ms(recovery.maxMs)}`,
      "",
      "",
      "",
    ],
    [
      `\`kiln up\` → ready, median of ${upMs.length} (fresh data dir)`,
      ms(upMedian),
      `≤ ${ms(targetsMs.up)}`,
      verdict(report.up.ratio, report.up.pass),
      `each: ${upMs.map((v) => fmtNum(v, 0)).join(", ")} ms`,
    ],
  ],
  ["left", "right", "left", "right", "left"],
);
const errorKinds = [
  ...Object.entries(load.statusCodes).map(([k, v]) => `${v}× ${k}`),
  ...Object.entries(load.connection).map(([k, v]) => `${v}× ${k}`),
  ...(load.timeouts > 0 ? [`${load.timeouts}× timeout`] : []),
];
const detail = [
  `Failed requests by kind: ${errorKinds.length === 0 ? "none" : errorKinds.join(", ")}; per app (${killsPerApp(INSTANCES)} kills each): ${runs.map((r) => r.load.failed).join(", ")}.`,
  `The polling client's own answers other than 200 (0: no answer), per kill: ${samples.map((s) => (s.probeFailed.length === 0 ? "none" : s.probeFailed.join("+"))).join(", ")}.`,
  `Each kill → replacement, ms: ${samples.map((s) => fmtNum(s.recoveryMs, 0)).join(", ")} (p90 by nearest rank: ${fmtNum(
    percentile(
      samples.map((s) => s.recoveryMs),
      0.9,
    ),
    0,
  )}).`,
].join("\n");

if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
else process.stdout.write(`${table}\n\n${detail}\n`);
if (flags.record) {
  const when = report.date.slice(0, 16).replace("T", " ");
  appendToSection(
    join(projectRoot, "bench", "RESULTS.md"),
    "Self-healing (bench/heal.ts)",
    `One real kernel (\`kiln up\`, runc DEA, the Health Manager on its defaults) and a 2-instance app answering its \`CF_INSTANCE_INDEX\` and \`CF_INSTANCE_GUID\`, under a constant load from the real \`kiln bench NAME -c ${connections} -R ${rate} --json\` (a child process, stopped with SIGINT after the app's kills, its JSON summed). Each kill is a \`kill -9\` of the instance's container init pid (from \`runc list\`); a separate client polls the router (2 requests every ${POLL_MS} ms) until an answer comes from a new GUID of the killed index, then until the sibling answers too, then waits ${SETTLE_MS} ms. The Health Manager counts crashes per app index (hm/crashes.ts: the first ${IMMEDIATE_RESTARTS} restart at once, ${FLAPPING_CRASHES} within 180 s make it FLAPPING, later ones wait 30 s × 2ⁿ), and no KILN_HM_* setting changes that, so kills alternate indexes and each app takes ${killsPerApp(INSTANCES)} (2 per index) before a freshly pushed app takes over, under its own \`kiln bench\` run: every kill meets the immediate restart and none is FLAPPING. \`kiln up\` → ready: spawn until it says so, the router's /health answers 200 and the controller answers /v3/info, each on a fresh data dir. Reference: one instance's cold start (\`kiln start\` of a pushed, stopped 1-instance app → its first 200 through the router), between the series. Targets: 0 failed requests; kill → replacement p50 ≤ 1 s; \`kiln up\` ready ≤ 3 s.`,
    `### ${when} UTC: ${samples.length} kills over ${runs.length} apps, ${report.commit}, load average ${fmtNum(loadStart, 2)} → ${fmtNum(report.machine.loadEnd, 2)}\n\n${table}\n\n${detail}\n\nReproduce: \`node scripts/setup.mjs --build && node dist/bench/heal.js --kills ${kills} --rate ${rate} --connections ${connections} --starts ${starts} --record\``,
  );
}
