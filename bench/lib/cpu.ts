// CPU time of a process tree from /proc (Linux): user+sys of a proxy's master, workers and
// threads, sampled before and after a load run, so a proxy's cost per request can be compared.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** One /proc/<pid>/stat line, reduced to what CPU accounting needs (times in clock ticks). */
export interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  utime: number;
  stime: number;
  /** Time of reaped children (a worker that exited and was waited for moves here). */
  cutime: number;
  cstime: number;
}

/** Parses the text of /proc/<pid>/stat; `comm` may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 2)
    .trim()
    .split(" ");
  // rest[0] is field 3 (state); utime is field 14 → rest[11].
  const num = (i: number): number => Number(rest[i]);
  const stat: ProcStat = {
    pid,
    ppid: num(1),
    comm: text.slice(open + 1, close),
    utime: num(11),
    stime: num(12),
    cutime: num(13),
    cstime: num(14),
  };
  return Number.isFinite(stat.pid) && Number.isFinite(stat.utime) && Number.isFinite(stat.stime)
    ? stat
    : undefined;
}

export function readProcStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

let ticksPerSecond: number | undefined;

/** USER_HZ (clock ticks per second of /proc times), from getconf; 100 when unknown. */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    const n = Number(r.stdout?.trim());
    ticksPerSecond = r.status === 0 && Number.isInteger(n) && n > 0 ? n : 100;
  }
  return ticksPerSecond;
}

/** Every live process of the machine (pid → stat). */
function allStats(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const name of readdirSync("/proc")) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const s = readProcStat(Number(name));
    if (s !== undefined) out.set(s.pid, s);
  }
  return out;
}

/** The processes of the trees rooted at `roots` (the roots included, when alive). */
export function processTree(roots: readonly number[]): ProcStat[] {
  const stats = allStats();
  const children = new Map<number, number[]>();
  for (const s of stats.values()) {
    const list = children.get(s.ppid);
    if (list === undefined) children.set(s.ppid, [s.pid]);
    else list.push(s.pid);
  }
  const seen = new Set<number>();
  const out: ProcStat[] = [];
  const queue = [...roots];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    if (seen.has(pid)) continue;
    seen.add(pid);
    const s = stats.get(pid);
    if (s === undefined) continue;
    out.push(s);
    for (const child of children.get(pid) ?? []) queue.push(child);
  }
  return out;
}

/** CPU consumed so far by a set of process trees, per process, in ticks. */
export interface CpuSample {
  at: number;
  perPid: Map<number, { user: number; sys: number }>;
}

export function sampleCpu(roots: readonly number[]): CpuSample {
  const perPid = new Map<number, { user: number; sys: number }>();
  for (const s of processTree(roots)) {
    perPid.set(s.pid, { user: s.utime + s.cutime, sys: s.stime + s.cstime });
  }
  return { at: performance.now(), perPid };
}

/** CPU seconds spent between two samples of the same trees. */
export interface CpuUsage {
  userS: number;
  sysS: number;
  /** How many processes of the trees were seen in the second sample. */
  processes: number;
}

/**
 * CPU used between `before` and `after`: per pid, the growth of its times; a process born
 * in between counts in full. A process gone by `after` is lost unless its parent reaped it
 * (then its time shows in the parent's cutime/cstime).
 */
export function cpuBetween(before: CpuSample, after: CpuSample): CpuUsage {
  let user = 0;
  let sys = 0;
  for (const [pid, t] of after.perPid) {
    const b = before.perPid.get(pid);
    user += t.user - (b?.user ?? 0);
    sys += t.sys - (b?.sys ?? 0);
  }
  const hz = clockTicks();
  return { userS: Math.max(0, user) / hz, sysS: Math.max(0, sys) / hz, processes: after.perPid.size };
}

/** CPU per request in microseconds (user, sys, total); NaN when there were no requests. */
export function cpuPerRequest(
  usage: CpuUsage,
  requests: number,
): { userUs: number; sysUs: number; totalUs: number } {
  if (requests <= 0) return { userUs: Number.NaN, sysUs: Number.NaN, totalUs: Number.NaN };
  const userUs = (usage.userS * 1e6) / requests;
  const sysUs = (usage.sysS * 1e6) / requests;
  return { userUs, sysUs, totalUs: userUs + sysUs };
}
