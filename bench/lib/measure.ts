// One measured load run: CPU of the proxy's process trees (and of the backend's) sampled
// right before and right after the load generator runs, so CPU per request covers exactly
// the run.
import { type CpuUsage, cpuBetween, cpuPerRequest, sampleCpu } from "./cpu.js";
import type { LoadGenerator, LoadResult, LoadSpec } from "./loadgen/index.js";
import { interleave } from "./stats.js";

export interface RunCpu extends CpuUsage {
  userUsPerReq: number;
  sysUsPerReq: number;
  totalUsPerReq: number;
}

export interface RunResult {
  load: LoadResult;
  /** Undefined when nothing is charged (no proxy between client and backend). */
  cpu: RunCpu | undefined;
  /**
   * The backend's user+sys µs per request over the run, when asked for: the same backend
   * costs more per request when a proxy hands it more to parse.
   */
  backendUsPerReq?: number;
}

export async function measuredRun(
  gen: LoadGenerator,
  spec: LoadSpec,
  cpuRoots: readonly number[],
  backendRoots: readonly number[] = [],
): Promise<RunResult> {
  const before = cpuRoots.length > 0 ? sampleCpu(cpuRoots) : undefined;
  const backendBefore = backendRoots.length > 0 ? sampleCpu(backendRoots) : undefined;
  const load = await gen.run(spec);
  const backendAfter = backendBefore === undefined ? undefined : sampleCpu(backendRoots);
  const after = before === undefined ? undefined : sampleCpu(cpuRoots);
  const out: RunResult = { load, cpu: undefined };
  if (backendBefore !== undefined && backendAfter !== undefined) {
    out.backendUsPerReq = cpuPerRequest(cpuBetween(backendBefore, backendAfter), load.requests).totalUs;
  }
  if (before !== undefined && after !== undefined) {
    const usage = cpuBetween(before, after);
    const per = cpuPerRequest(usage, load.requests);
    out.cpu = { ...usage, userUsPerReq: per.userUs, sysUsPerReq: per.sysUs, totalUsPerReq: per.totalUs };
  }
  return out;
}

/**
 * Runs `fn` for every item in every round, each round in a rotated order (see interleave);
 * `fn` gets the round and the position within the round.
 */
export async function runInterleaved<T, R>(
  items: readonly T[],
  rounds: number,
  fn: (item: T, round: number, position: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  const plan = interleave(items, rounds);
  for (let r = 0; r < plan.length; r++) {
    const order = plan[r] as T[];
    for (let i = 0; i < order.length; i++) out.push(await fn(order[i] as T, r, i));
  }
  return out;
}
