// An instance's process, in a runc container or (--isolation none) as a plain process,
// behind one shape. Unlike startContainer, the exit is reported the moment `runc run` ends
// (with the OOM flag read from the still-present cgroup) and the container is deleted only
// when `cleanup` is called, so droplet.exited goes out before the slow runc delete.
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { constants } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { removeBundle, writeBundle } from "../container/bundle.js";
import { containerCgroups } from "../container/cgroups.js";
import { startPlain } from "../container/plain.js";
import type { Runc } from "../container/runc.js";
import type { ContainerSpec } from "../container/spec.js";

export interface ProcessExit {
  /** As a shell reports it: 128+signal when a signal ended it; null when unknown. */
  status: number | null;
  outOfMemory: boolean;
}

export interface InstanceProcess {
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Host pid of the first process (0 once it has ended or when it never started). */
  pid(): Promise<number>;
  /** cgroup paths for usage samples; null for a plain process. */
  cgroups(): Promise<Record<string, string> | null>;
  /** Resolves as soon as the process has ended; nothing is deleted yet. */
  readonly exited: Promise<ProcessExit>;
  /** `signal` to the first process, or with `all` to every process of the instance. */
  signal(signal: NodeJS.Signals, all?: boolean): Promise<void>;
  /** Removes the container and its bundle (after `exited`); kills a plain process's stragglers. */
  cleanup(): Promise<void>;
}

export async function runContainer(runc: Runc, spec: ContainerSpec): Promise<InstanceProcess> {
  await writeBundle(runc.root, spec);
  const running = runc.run(spec.id);
  let paths: Record<string, string> | null = null;
  let ended = false;
  const exited = running.exited.then(async ({ code, signal }): Promise<ProcessExit> => {
    ended = true;
    const status = code ?? (signal === null ? null : 128 + constants.signals[signal]);
    let outOfMemory = false;
    try {
      // --keep leaves the cgroup in place until cleanup: its OOM count is still readable. Read
      // synchronously (a pseudo-file in memory) so a busy thread pool cannot delay the report.
      paths ??= await containerCgroups(runc.stateRoot, spec.id);
      outOfMemory = oomKilled(paths);
    } catch {}
    return { status, outOfMemory };
  });
  const pid = async (): Promise<number> => {
    while (!ended) {
      try {
        const s = await runc.state(spec.id);
        if (s.pid > 0 && s.status === "running") return s.pid;
      } catch {}
      await new Promise((r) => setTimeout(r, 10));
    }
    return 0;
  };
  // Learn the cgroup paths as soon as the container runs, so the exit path looks nothing up.
  void pid().then(async (p) => {
    if (p > 0) paths ??= await containerCgroups(runc.stateRoot, spec.id).catch(() => null);
  });
  return {
    stdout: running.child.stdout as Readable,
    stderr: running.child.stderr as Readable,
    pid,
    cgroups: async () => {
      paths ??= await containerCgroups(runc.stateRoot, spec.id);
      return paths;
    },
    exited,
    signal: async (sig, all = false) => {
      try {
        await runc.kill(spec.id, sig, all);
      } catch {
        // Already ended: exited settles on its own.
      }
    },
    cleanup: async () => {
      await runc.delete(spec.id);
      await removeBundle(runc.root, spec.id);
    },
  };
}

export function runPlain(spec: ContainerSpec): InstanceProcess {
  const p = startPlain(spec);
  let ended = false;
  const exited = p.exited.then((status): ProcessExit => {
    ended = true;
    return { status, outOfMemory: false };
  });
  return {
    stdout: p.stdout as Readable,
    stderr: p.stderr as Readable,
    pid: async () => (ended ? 0 : p.pid),
    cgroups: async () => null,
    exited,
    signal: async (sig, all = false) => {
      if (ended) return;
      if (all) {
        // The instance's uid is its own: every process running as it belongs to the instance.
        await signalUid(spec.uid, sig);
        return;
      }
      try {
        process.kill(p.pid, sig);
      } catch {}
    },
    cleanup: async () => {
      // Whatever the app left running in the background goes with it.
      await signalUid(spec.uid, "SIGKILL");
    },
  };
}

/** Sends `sig` to every process whose real uid is `uid` (an instance's own uid). */
export async function signalUid(uid: number, sig: NodeJS.Signals): Promise<number> {
  let n = 0;
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = await readFile(`/proc/${name}/status`, "utf8");
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) !== uid) continue;
      process.kill(Number(name), sig);
      n++;
    } catch {
      // Ended meanwhile.
    }
  }
  return n;
}

/** Whether the kernel's OOM killer killed a process of the cgroup (v1 memory.oom_control, v2 memory.events). */
function oomKilled(paths: Record<string, string>): boolean {
  const v1 = paths.memory;
  const file = v1 !== undefined ? join(v1, "memory.oom_control") : join(paths[""] ?? "", "memory.events");
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [k, v] = line.split(" ");
    if (k === "oom_kill") return Number(v) > 0;
  }
  return false;
}
