// Can this machine isolate apps with runc? The DEA asks once at start: it runs a trivial
// container (`/bin/true` under the full config) and returns why not when it cannot, so the
// DEA can say so and refuse to start unless `--isolation none` is given.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupLayout } from "./cgroups.js";
import { startContainer } from "./container.js";
import { ContainerError } from "./errors.js";
import type { Runc } from "./runc.js";

/** null when runc can run containers here, else the reason it cannot. */
export async function probeIsolation(runc: Runc): Promise<string | null> {
  if (process.platform !== "linux") return `containers need Linux (this is ${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0)
    return "runc needs root (the DEA runs as an unprivileged user)";
  if (cgroupLayout() === "none") return "no cgroup hierarchy with a memory controller under /sys/fs/cgroup";
  try {
    await runc.exec(["--version"]);
  } catch (err) {
    return `runc is not usable: ${err instanceof Error ? err.message : String(err)}`;
  }
  const app = await mkdtemp(join(tmpdir(), "kiln-probe-"));
  const id = `kiln-probe-${process.pid}-${Date.now()}`;
  try {
    const c = await startContainer(runc, {
      id,
      appDir: app,
      command: ["/bin/true"],
      env: {},
      uid: 65534,
      gid: 65534,
      memoryMiB: 32,
      pids: 16,
      cpuShares: 32,
    });
    let stderr = "";
    c.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    c.stdout.resume();
    const exit = await c.exited;
    if (exit.status !== 0)
      return `runc could not run a trivial container (${exit.reason}): ${stderr.trim().split("\n").pop() ?? ""}`;
    return null;
  } catch (err) {
    return `runc could not run a trivial container: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    await rm(app, { recursive: true, force: true });
  }
}

/** Throws KILN_DEA_CONTAINER_UNAVAILABLE with the probe's reason when runc cannot isolate apps here. */
export async function requireIsolation(runc: Runc): Promise<void> {
  const reason = await probeIsolation(runc);
  if (reason !== null) {
    throw new ContainerError(
      "KILN_DEA_CONTAINER_UNAVAILABLE",
      `apps cannot run in containers here: ${reason}. Start the DEA with --isolation none to run them as plain processes (memory limited by prlimit, no isolation).`,
    );
  }
}
