// The pure parts of the self-healing bench (bench/heal.ts): which instance each kill hits so that
// every kill meets the Health Manager's immediate restart, the failed requests of a `kiln bench
// --json` result, and the summary of the kill → replacement times.
import { FLAPPING_CRASHES, IMMEDIATE_RESTARTS } from "../../hm/crashes.js";
import { BenchError } from "./errors.js";
import { median, percentile, range } from "./stats.js";

/**
 * Kills one app takes before the crash policy would change what is measured: the HM counts
 * crashes per app index, restarts the first IMMEDIATE_RESTARTS at once and marks an index
 * FLAPPING at FLAPPING_CRASHES within its window, so each index is killed at most one time
 * fewer than either (2 with the defaults) and the series moves on to a new app.
 */
export function killsPerApp(instances: number): number {
  return instances * Math.max(1, Math.min(IMMEDIATE_RESTARTS, FLAPPING_CRASHES - 1));
}

export interface PlannedKill {
  /** 0-based: the app (a fresh push) this kill hits. */
  app: number;
  index: number;
}

/** `kills` kills alternating over the indexes of `instances`-instance apps, a new app every killsPerApp. */
export function killPlan(kills: number, instances: number): PlannedKill[] {
  const per = killsPerApp(instances);
  return Array.from({ length: kills }, (_, k) => ({ app: Math.floor(k / per), index: k % instances }));
}

/** Failed requests of one `kiln bench --json` run: every answer that was not 2xx and every error. */
export interface LoadFailures {
  requests: number;
  failed: number;
  non2xx: number;
  timeouts: number;
  /** Socket errors by code. */
  connection: Record<string, number>;
  /** Non-2xx answers by status. */
  statusCodes: Record<string, number>;
}

/** Reads the failures out of `kiln bench --json`'s output (a BenchError when it is not one). */
export function loadFailures(stdout: string): LoadFailures {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout.slice(stdout.indexOf("{")));
  } catch (err) {
    throw new BenchError("KILN_BENCH_LOAD_FAILED", `kiln bench printed no JSON result:\n${stdout}`, err);
  }
  const s = (parsed as { target?: { summary?: Record<string, unknown> } }).target?.summary;
  const e = s?.errors as Record<string, unknown> | undefined;
  if (s === undefined || e === undefined || typeof s.requests !== "number" || typeof e.total !== "number")
    throw new BenchError(
      "KILN_BENCH_LOAD_FAILED",
      `kiln bench's JSON has no target.summary.errors:\n${stdout}`,
    );
  const non2xx = Object.values((e.non_2xx ?? {}) as Record<string, number>).reduce((a, b) => a + b, 0);
  return {
    requests: s.requests,
    failed: e.total,
    non2xx,
    timeouts: typeof e.timeouts === "number" ? e.timeouts : 0,
    connection: { ...((e.connection ?? {}) as Record<string, number>) },
    statusCodes: { ...((e.status_codes ?? {}) as Record<string, number>) },
  };
}

/** The sum of several runs' failures. */
export function sumFailures(all: readonly LoadFailures[]): LoadFailures {
  const out: LoadFailures = {
    requests: 0,
    failed: 0,
    non2xx: 0,
    timeouts: 0,
    connection: {},
    statusCodes: {},
  };
  for (const f of all) {
    out.requests += f.requests;
    out.failed += f.failed;
    out.non2xx += f.non2xx;
    out.timeouts += f.timeouts;
    for (const [k, v] of Object.entries(f.connection)) out.connection[k] = (out.connection[k] ?? 0) + v;
    for (const [k, v] of Object.entries(f.statusCodes)) out.statusCodes[k] = (out.statusCodes[k] ?? 0) + v;
  }
  return out;
}

export interface RecoverySummary {
  samplesMs: number[];
  p50Ms: number;
  p90Ms: number;
  minMs: number;
  maxMs: number;
  targetMs: number;
  /** p50 ÷ target. */
  ratio: number;
  pass: boolean;
}

/** p50/p90/min/max of the kill → replacement times against the p50 target. */
export function summarizeRecovery(samplesMs: readonly number[], targetMs: number): RecoverySummary {
  const p50Ms = median(samplesMs);
  const { min, max } = range(samplesMs);
  return {
    samplesMs: [...samplesMs],
    p50Ms,
    p90Ms: percentile(samplesMs, 0.9),
    minMs: min,
    maxMs: max,
    targetMs,
    ratio: p50Ms / targetMs,
    pass: p50Ms <= targetMs,
  };
}
