// A container's cgroups: which layout the machine has (v1, v2, or hybrid: v1 controllers
// beside an empty v2 tree, as runc 1.1 then uses v1), where runc put the container, and
// what it used: memory, CPU time and whether the kernel killed it for memory.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ContainerError } from "./errors.js";

export type CgroupLayout = "v1" | "v2" | "hybrid" | "none";

/** The cgroup layout under `mount` (/sys/fs/cgroup). */
export function cgroupLayout(mount = "/sys/fs/cgroup"): CgroupLayout {
  if (existsSync(join(mount, "cgroup.controllers"))) return "v2";
  if (!existsSync(join(mount, "memory", "memory.limit_in_bytes")) && !existsSync(join(mount, "memory")))
    return "none";
  return existsSync(join(mount, "unified", "cgroup.controllers")) ? "hybrid" : "v1";
}

/**
 * Where runc placed container `id`: controller name → cgroup directory ("" is the v2 tree).
 * Read from runc's own state file, which keeps them while the container exists (stopped included).
 */
export async function containerCgroups(stateRoot: string, id: string): Promise<Record<string, string>> {
  try {
    const state = JSON.parse(await readFile(join(stateRoot, id, "state.json"), "utf8")) as {
      cgroup_paths?: Record<string, string>;
    };
    if (state.cgroup_paths === undefined) throw new Error("state.json has no cgroup_paths");
    return state.cgroup_paths;
  } catch (err) {
    throw new ContainerError(
      "KILN_DEA_CONTAINER_CGROUP",
      `cgroups of container ${id} unknown: ${String(err)}`,
      err,
    );
  }
}

export interface CgroupUsage {
  /** Memory in use now, bytes (page cache included, as the limit counts it). */
  memoryBytes: number;
  /** CPU time used since the container started, nanoseconds. */
  cpuNs: number;
  /** Times the kernel's OOM killer killed a process of the container. */
  oomKills: number;
}

async function readNumber(file: string): Promise<number> {
  return Number((await readFile(file, "utf8")).trim());
}

/** `key value` lines (memory.events, memory.oom_control, cpu.stat) → the value of `key`, 0 when absent. */
async function readKey(file: string, key: string): Promise<number> {
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    const [k, v] = line.split(" ");
    if (k === key) return Number(v);
  }
  return 0;
}

/** Reads a container's usage from its cgroup paths (see containerCgroups). */
export async function cgroupUsage(paths: Record<string, string>): Promise<CgroupUsage> {
  try {
    const memory = paths.memory;
    if (memory !== undefined && existsSync(join(memory, "memory.usage_in_bytes"))) {
      const cpuacct = paths.cpuacct ?? paths.cpu;
      return {
        memoryBytes: await readNumber(join(memory, "memory.usage_in_bytes")),
        cpuNs: cpuacct === undefined ? 0 : await readNumber(join(cpuacct, "cpuacct.usage")),
        oomKills: await readKey(join(memory, "memory.oom_control"), "oom_kill"),
      };
    }
    const unified = paths[""];
    if (unified === undefined) throw new Error("no memory controller among its cgroups");
    return {
      memoryBytes: await readNumber(join(unified, "memory.current")),
      cpuNs: (await readKey(join(unified, "cpu.stat"), "usage_usec")) * 1000,
      oomKills: await readKey(join(unified, "memory.events"), "oom_kill"),
    };
  } catch (err) {
    if (err instanceof ContainerError) throw err;
    throw new ContainerError("KILN_DEA_CONTAINER_CGROUP", `container cgroup unreadable: ${String(err)}`, err);
  }
}
