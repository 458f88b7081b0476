// One usage sample of an instance, taken in the archive pool's worker so a large app
// directory never stalls the DEA's event loop: memory and CPU time from its cgroup (or from
// /proc for a plain process) and the bytes its directory holds on disk.
import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { cgroupUsage } from "../container/cgroups.js";

export interface SampleTask {
  /** Directory whose size is measured (blocks on disk, links not followed). */
  dir?: string;
  /** The container's cgroup paths (containerCgroups). */
  cgroupPaths?: Record<string, string>;
  /** A plain process (--isolation none): read from /proc/<pid>. */
  pid?: number;
}

export interface Sample {
  memoryBytes: number;
  /** CPU time used since start, nanoseconds. */
  cpuNs: number;
  diskBytes: number;
}

/** Clock ticks per second of /proc/<pid>/stat times; 100 on every Linux Node runs on. */
const TICKS = 100;
const PAGE = 4096;

export async function sample(task: SampleTask): Promise<Sample> {
  const out: Sample = { memoryBytes: 0, cpuNs: 0, diskBytes: 0 };
  if (task.cgroupPaths !== undefined) {
    const u = await cgroupUsage(task.cgroupPaths);
    out.memoryBytes = u.memoryBytes;
    out.cpuNs = u.cpuNs;
  } else if (task.pid !== undefined && task.pid > 0) {
    try {
      const stat = await readFile(`/proc/${task.pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.cpuNs = ((Number(f[11]) + Number(f[12])) * 1e9) / TICKS;
      out.memoryBytes = Number(f[21]) * PAGE;
    } catch {
      // Ended between the heartbeat's look and this read.
    }
  }
  if (task.dir !== undefined) out.diskBytes = await du(task.dir);
  return out;
}

async function du(dir: string): Promise<number> {
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(p);
    } catch {
      return;
    }
    total += Number(st.blocks) * 512;
    if (!st.isDirectory()) return;
    let names: string[] = [];
    try {
      names = await readdir(p);
    } catch {}
    for (const n of names) await walk(join(p, n));
  };
  await walk(dir);
  return total;
}
