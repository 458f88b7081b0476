// One container's life: write its bundle, run it, and when it ends read from its cgroup
// whether the kernel killed it for memory, then delete it and its bundle, so nothing stays.
import { constants } from "node:os";
import type { Readable } from "node:stream";
import { removeBundle, writeBundle } from "./bundle.js";
import { cgroupUsage, containerCgroups } from "./cgroups.js";
import type { Runc } from "./runc.js";
import type { ContainerSpec } from "./spec.js";

/** How a container ended. */
export interface ContainerExit {
  /** Exit status as a shell reports it: 128+signal when a signal killed it; null when unknown. */
  status: number | null;
  /** The kernel's OOM killer killed a process of it (over its memory limit). */
  outOfMemory: boolean;
  /** One line for droplet.exited and the app's log: "out of memory", "exited with 0", … */
  reason: string;
}

export interface StartedContainer {
  id: string;
  /** The app's standard output and error (through `runc run`). */
  stdout: Readable;
  stderr: Readable;
  /** Host pid of the container's first process, once runc has started it. */
  pid(): Promise<number>;
  /** Resolves once the container has ended and is deleted. */
  exited: Promise<ContainerExit>;
}

export function exitReason(status: number | null, outOfMemory: boolean): string {
  if (outOfMemory) return "out of memory";
  if (status === null) return "ended, status unknown";
  return status > 128 ? `killed by signal ${status - 128}` : `exited with ${status}`;
}

/** Writes `spec`'s bundle and starts the container; see StartedContainer. */
export async function startContainer(runc: Runc, spec: ContainerSpec): Promise<StartedContainer> {
  await writeBundle(runc.root, spec);
  const running = runc.run(spec.id);
  const exited = running.exited.then(async ({ code, signal }) => {
    // runc run exits with 128+signal itself; its own death by signal counts the same way.
    const status = code ?? (signal === null ? null : 128 + constants.signals[signal]);
    let outOfMemory = false;
    try {
      outOfMemory = (await cgroupUsage(await containerCgroups(runc.stateRoot, spec.id))).oomKills > 0;
    } catch {
      // runc never created it (bad bundle, runc missing): nothing to read.
    }
    await runc.delete(spec.id);
    await removeBundle(runc.root, spec.id);
    return { status, outOfMemory, reason: exitReason(status, outOfMemory) };
  });
  return {
    id: spec.id,
    stdout: running.child.stdout as Readable,
    stderr: running.child.stderr as Readable,
    pid: () => waitForPid(runc, spec.id, running.exited),
    exited,
  };
}

async function waitForPid(runc: Runc, id: string, ended: Promise<unknown>): Promise<number> {
  let done = false;
  void ended.then(() => {
    done = true;
  });
  for (;;) {
    try {
      const s = await runc.state(id);
      if (s.pid > 0 && s.status === "running") return s.pid;
    } catch {}
    if (done) return 0;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Stops a container: SIGTERM to its first process, then SIGKILL to every process in it after
 * `graceMs`. A process that is pid 1 of its namespace ignores a signal it has no handler
 * for, so an app that does not handle SIGTERM is ended by the SIGKILL.
 */
export async function stopContainer(
  runc: Runc,
  c: StartedContainer,
  graceMs = 10_000,
): Promise<ContainerExit> {
  let ended = false;
  void c.exited.then(() => {
    ended = true;
  });
  try {
    await runc.kill(c.id, "SIGTERM");
  } catch {
    // Already stopped or gone: exited settles on its own.
  }
  const timer = setTimeout(() => {
    if (!ended) runc.kill(c.id, "SIGKILL", true).catch(() => {});
  }, graceMs);
  try {
    return await c.exited;
  } finally {
    clearTimeout(timer);
  }
}
