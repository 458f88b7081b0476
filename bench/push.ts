// Push/scale bench: one real kernel (`kiln up` on free ports, temp data dir) driven only by the
// real `kiln` CLI, timed as a user waits: a push of a new app until its first 200 through the
// router, an unchanged re-push until it answers again after the command exits, and `kiln scale
// -i 10` until ten distinct instance indexes answer through the router. References from the same
// run: the DEA's own share of a push (its staging log's first → last line, by its own clock,
// plus "Starting" → first 200), a cold push for the re-push, and one instance's start for the
// scale. Where the time goes: each push split into phases from the CLI's stamped output; and
// how long a re-push leaves the running app without a 200 through the router.
//   node dist/bench/push.js [--json] [--record] [--rounds N]
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { projectRoot } from "../kernel/paths.js";
import { BenchError } from "./lib/errors.js";
import { type KernelUp, startKernelUp } from "./lib/kernel-up.js";
import { checked, kilnCli } from "./lib/kiln-cli.js";
import { runInterleaved } from "./lib/measure.js";
import { httpGet, sleep } from "./lib/procs.js";
import {
  type CaseSummary,
  medianPhases,
  type PushPhases,
  phaseNames,
  pushPhases,
  summarizeCase,
} from "./lib/push-phases.js";
import { appendToSection, fmtNum, fmtRatio, mdTable } from "./lib/report.js";
import { median, ratio } from "./lib/stats.js";
import { identifyingApp, workspace } from "./lib/workspace.js";

const { values: flags } = parseArgs({
  options: { json: { type: "boolean" }, record: { type: "boolean" }, rounds: { type: "string" } },
});
const rounds = Number(flags.rounds ?? 5);
if (!Number.isInteger(rounds) || rounds < 1)
  throw new BenchError("KILN_BENCH_BAD_ARGS", `--rounds must be a positive integer, not ${flags.rounds}`);

const targetsMs = { coldPush: 2000, rePush: 1000, scale: 3000 };
const SCALE_TO = 10;
/** Router polling interval while waiting for an answer: the measurement's resolution. */
const POLL_MS = 10;
const STEP_TIMEOUT_MS = 120_000;

const ws = workspace("push");
const work = ws.dir;
const appDir = identifyingApp(join(work, "app"), "its instance index", "process.env.CF_INSTANCE_INDEX");
const kilnHome = join(work, "home");
mkdirSync(kilnHome, { mode: 0o700 });

const cli = kilnCli(kilnHome);
const startKiln = cli.start;
const kiln = cli.run;

let kernel: KernelUp;
const host = (app: string): string => `${app}.localhost`;

interface Polled {
  /** When the first 200 for a request sent at or after notBefore() arrived (NaN: none). */
  okAt: number;
  /** How long the router answered anything but 200 after having answered 200 (a restart's gap). */
  unavailableMs: number;
}

/**
 * Polls the router every POLL_MS until a request sent at or after notBefore() gets a 200
 * (gives up when `give` says so or the step times out).
 */
async function pollRouter(app: string, notBefore: () => number, give: () => boolean): Promise<Polled> {
  const deadline = performance.now() + STEP_TIMEOUT_MS;
  let answered = false;
  let downSince = Number.NaN;
  let unavailableMs = 0;
  while (!give() && performance.now() < deadline) {
    const sent = performance.now();
    const r = await httpGet(kernel.routerPort, "/", host(app), 1000);
    if (r.status === 200) {
      if (Number.isFinite(downSince)) unavailableMs += sent - downSince;
      downSince = Number.NaN;
      answered = true;
      if (sent >= notBefore()) return { okAt: performance.now(), unavailableMs };
    } else if (answered && Number.isNaN(downSince)) downSince = sent;
    await sleep(POLL_MS);
  }
  return { okAt: Number.NaN, unavailableMs };
}

/** Polls the router with `n` requests at once; resolves when `n` distinct bodies (indexes) came back. */
async function allIndexes(app: string, n: number, give: () => boolean): Promise<number> {
  const deadline = performance.now() + STEP_TIMEOUT_MS;
  const seen = new Set<string>();
  while (!give() && performance.now() < deadline) {
    const batch = await Promise.all(
      Array.from({ length: n }, () => httpGet(kernel.routerPort, "/", host(app), 1000)),
    );
    for (const r of batch) if (r.status === 200) seen.add(r.body.trim());
    if (seen.size >= n) return performance.now();
    await sleep(POLL_MS);
  }
  return Number.NaN;
}

/** Distinct bodies of `count` requests in a row (the instances the router still sends to). */
async function answering(app: string, count: number): Promise<Set<string>> {
  const bodies = new Set<string>();
  for (let i = 0; i < count; i++) {
    const r = await httpGet(kernel.routerPort, "/", host(app), 1000);
    bodies.add(r.status === 200 ? r.body.trim() : `status ${r.status}`);
  }
  return bodies;
}

async function untilTrue(what: string, cond: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + STEP_TIMEOUT_MS;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new BenchError("KILN_BENCH_STEP_FAILED", `timed out: ${what}`);
    await sleep(100);
  }
}

type CaseId = "coldPush" | "rePush" | "scale";
interface Sample {
  id: CaseId;
  round: number;
  ms: number;
  phases?: PushPhases;
  /** The reference measured with this sample (cold push: the DEA's share of it; scale: none). */
  referenceMs?: number;
  /** Re-push: how long the running app did not answer 200 through the router. */
  unavailableMs?: number;
}

/**
 * A push timed until the first 200 through the router; with `afterExit`, until the command has
 * exited and a request sent after that got a 200 (a restart's old instance may answer meanwhile).
 */
async function timedPush(
  app: string,
  afterExit: boolean,
): Promise<{ ms: number; phases: PushPhases; unavailableMs: number }> {
  const args = ["push", app, "-p", appDir];
  const run = startKiln(args);
  const { okAt, unavailableMs } = await pollRouter(
    app,
    afterExit ? run.exitedAt : () => run.startedAt,
    run.failed,
  );
  const r = checked(args, await run.done);
  if (!Number.isFinite(okAt))
    throw new BenchError("KILN_BENCH_STEP_FAILED", `${app} never answered through the router`);
  return {
    ms: okAt - r.startedAt,
    phases: pushPhases(r.lines, r.startedAt, r.exitedAt, okAt),
    unavailableMs,
  };
}

const warm = "warm";
let serial = 0;

async function coldPush(round: number): Promise<Sample> {
  const app = `cold-${round}-${serial++}`;
  const { ms, phases } = await timedPush(app, false);
  // Deleted, and gone from the router, so every round pushes against the same kernel state.
  await kiln(["delete", "-f", app]);
  await untilTrue(
    `${app} unrouted`,
    async () => (await httpGet(kernel.routerPort, "/", host(app))).status !== 200,
  );
  return { id: "coldPush", round, ms, phases, referenceMs: phases.deaStaging + phases.startToRouter };
}

async function rePush(round: number): Promise<Sample> {
  const { ms, phases, unavailableMs } = await timedPush(warm, true);
  return { id: "rePush", round, ms, phases, unavailableMs };
}

async function scale(round: number): Promise<Sample> {
  const args = ["scale", warm, "-i", String(SCALE_TO)];
  const run = startKiln(args);
  const allAt = await allIndexes(warm, SCALE_TO, run.failed);
  const r = checked(args, await run.done);
  if (!Number.isFinite(allAt))
    throw new BenchError("KILN_BENCH_STEP_FAILED", `${SCALE_TO} instances of ${warm} never all answered`);
  const ms = Math.max(allAt, r.exitedAt) - r.startedAt;
  // Back to one instance, and the router down to one, before the next case.
  await kiln(["scale", warm, "-i", "1"]);
  await untilTrue(`${warm} back to one instance`, async () => {
    const out = (await kiln(["app", warm, "--json"])).lines.map((l) => l.text).join("\n");
    const shown = JSON.parse(out.slice(out.indexOf("{"))) as { instances: { state: string }[] };
    return shown.instances.length === 1 && (await answering(warm, 20)).size === 1;
  });
  return { id: "scale", round, ms };
}

const cases: Record<CaseId, (round: number) => Promise<Sample>> = { coldPush, rePush, scale };
const labels: Record<CaseId, string> = {
  coldPush: "cold push → first 200 through the router",
  rePush: "unchanged re-push → exit and a 200 after it",
  scale: `scale 1 → ${SCALE_TO} until ${SCALE_TO} indexes answer through the router`,
};

function commit(): string {
  const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: projectRoot, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "unknown";
}

const loadStart = loadavg()[0] ?? Number.NaN;
let samples: Sample[] = [];
await ws.run(async () => {
  kernel = await startKernelUp(join(work, "data"));
  await kiln(["login", "-a", kernel.api, "-u", "admin", "-p", kernel.adminPassword]);
  await kiln(["create-space", "bench"]);
  await kiln(["target", "-s", "bench"]);
  // The warm app (re-pushed and scaled), pushed once untimed: this also fills the DEA's caches.
  await timedPush(warm, false);
  samples = await runInterleaved(Object.keys(cases) as CaseId[], rounds, (id, round) => cases[id](round));
});

// ---- report --------------------------------------------------------------------------------
const of = (id: CaseId): Sample[] => samples.filter((s) => s.id === id);
const summary = (id: CaseId): CaseSummary =>
  summarizeCase(
    of(id).map((s) => s.ms),
    targetsMs[id],
  );
const cold = summary("coldPush");
const phases = {
  coldPush: medianPhases(of("coldPush").map((s) => s.phases as PushPhases)),
  rePush: medianPhases(of("rePush").map((s) => s.phases as PushPhases)),
};
const deaShare = median(of("coldPush").map((s) => s.referenceMs ?? Number.NaN));
const references = {
  coldPush: {
    label: "the DEA's share of the push",
    what: "the DEA's share of the same push: its staging log's first → last line (its own clock) + Starting → first 200 through the router",
    medianMs: deaShare,
    ratio: median(of("coldPush").map((s) => ratio(s.ms, s.referenceMs))),
  },
  rePush: {
    label: "a cold push",
    what: "a cold push of a new app in the same rounds",
    medianMs: cold.medianMs,
    ratio: ratio(summary("rePush").medianMs, cold.medianMs),
  },
  scale: {
    label: "one instance's start",
    what: "one instance's start in the cold pushes: Starting → first 200 through the router",
    medianMs: phases.coldPush.startToRouter,
    ratio: ratio(summary("scale").medianMs, phases.coldPush.startToRouter),
  },
};
const report = {
  date: new Date().toISOString(),
  commit: commit(),
  rounds,
  machine: { cpus: cpus().length, node: process.version, loadStart, loadEnd: loadavg()[0] ?? Number.NaN },
  cases: { coldPush: cold, rePush: summary("rePush"), scale: summary("scale") },
  references,
  phasesMedianMs: phases,
  /** Re-push: how long the warm app did not answer 200 through the router, median. */
  rePushUnavailableMs: median(of("rePush").map((s) => s.unavailableMs ?? Number.NaN)),
};

const ms = (v: number): string => `${fmtNum(v, 0)} ms`;
const caseTable = mdTable(
  ["case", "min", "median", "max", "target", "median ÷ target", "reference (same run)", "÷ reference"],
  (Object.keys(cases) as CaseId[]).map((id) => {
    const c = report.cases[id];
    const ref = references[id];
    return [
      labels[id],
      ms(c.minMs),
      ms(c.medianMs),
      ms(c.maxMs),
      `≤ ${ms(c.targetMs)}`,
      `${fmtRatio(c.ratio)} ${c.pass ? "pass" : "**miss**"}`,
      `${ref.label} ${ms(ref.medianMs)}`,
      fmtRatio(ref.ratio),
    ];
  }),
  ["left", "right", "right", "right", "left", "right", "left", "right"],
);
const phaseLabels: Record<keyof PushPhases, string> = {
  prepare: "start → `Uploading` (CLI start, app, route, resource match)",
  upload: "`Uploading` → `Staging` (package upload)",
  staging: "`Staging` → `(Re)starting` (build, polled by the CLI)",
  deaStaging: "of which the DEA's staging log, first → last line",
  startWait: "`(Re)starting` → exit (wait for RUNNING, polled)",
  startToRouter: "`(Re)starting` → first 200 through the router",
  cli: "whole command, start → exit",
};
const phaseTable = mdTable(
  ["phase (median)", "cold push", "unchanged re-push"],
  [
    ...phaseNames.map((p) => [phaseLabels[p], ms(phases.coldPush[p]), ms(phases.rePush[p])]),
    ["the running app without a 200 through the router", "", ms(report.rePushUnavailableMs)],
  ],
  ["left", "right", "right"],
);

if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
else process.stdout.write(`${caseTable}\n\n${phaseTable}\n`);
if (flags.record) {
  const when = report.date.slice(0, 16).replace("T", " ");
  appendToSection(
    join(projectRoot, "bench", "RESULTS.md"),
    "Push and scale (bench/push.ts)",
    "One real kernel (`kiln up`, runc DEA) driven by the real `kiln` CLI, timed as a user waits, the router polled every 10 ms: a push of a new app until its first 200 through the router; an unchanged re-push until the command has exited and a request sent after it got a 200 (the router is polled during it too, to time how long the running app went without a 200); `kiln scale -i 10` until ten distinct `CF_INSTANCE_INDEX` answers came through the router (the node example answering its index). Cases interleave over rounds. References from the same rounds: for the cold push, the DEA's share of it (its staging log's first → last line by its own clock, plus `Starting` → first 200 through the router); for the re-push, the cold push; for the scale, one instance's start (`Starting` → first 200 in the cold pushes). Targets: cold push p50 ≤ 2 s, unchanged re-push ≤ 1 s, scale 1 → 10 ≤ 3 s.",
    `### ${when} UTC: ${rounds} rounds, ${report.commit}, load average ${fmtNum(loadStart, 2)} → ${fmtNum(report.machine.loadEnd, 2)}\n\n${caseTable}\n\n${phaseTable}\n\nReproduce: \`node scripts/setup.mjs --build && node dist/bench/push.js --rounds ${rounds} --record\``,
  );
}
