// After a restart the DEA finds the containers its previous run left under its runc root
// (by id prefix) and either takes a running one back or removes it: never an orphan.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { removeBundle } from "./bundle.js";
import { cgroupUsage, containerCgroups } from "./cgroups.js";
import type { ContainerState, Runc } from "./runc.js";

/** Containers under the DEA's runc root whose id starts with `prefix`, running or not. */
export function leftovers(runc: Runc, prefix: string): Promise<ContainerState[]> {
  return runc.list(prefix);
}

/**
 * Removes every leftover whose id starts with `prefix` except those `keep` accepts (the
 * ones the DEA re-adopts: running, and still wanted), with their cgroups and bundles; also
 * bundles no container uses. Returns the ids removed.
 */
export async function removeLeftovers(
  runc: Runc,
  prefix: string,
  keep: (c: ContainerState) => boolean = () => false,
): Promise<string[]> {
  const found = await runc.list(prefix);
  const removed: string[] = [];
  const kept = new Set<string>();
  for (const c of found) {
    if (c.status === "running" && keep(c)) {
      kept.add(c.id);
      continue;
    }
    await runc.delete(c.id);
    await removeBundle(runc.root, c.id);
    removed.push(c.id);
  }
  let bundles: string[] = [];
  try {
    bundles = await readdir(join(runc.root, "bundles"));
  } catch {}
  for (const id of bundles) {
    if (id.startsWith(prefix) && !kept.has(id) && !removed.includes(id)) await removeBundle(runc.root, id);
  }
  return removed;
}

/**
 * Takes back a running leftover: resolves when it has stopped (polled every `pollMs`, as
 * the DEA is no longer its parent), with whether the kernel killed it for memory, after
 * deleting it and its bundle. Its exit status died with the old `runc run`.
 */
export async function adopt(runc: Runc, id: string, pollMs = 1000): Promise<{ outOfMemory: boolean }> {
  for (;;) {
    let status: string;
    try {
      status = (await runc.state(id)).status;
    } catch {
      status = "gone";
    }
    if (status !== "running" && status !== "created" && status !== "creating" && status !== "paused") break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  let outOfMemory = false;
  try {
    outOfMemory = (await cgroupUsage(await containerCgroups(runc.stateRoot, id))).oomKills > 0;
  } catch {}
  await runc.delete(id);
  await removeBundle(runc.root, id);
  return { outOfMemory };
}
