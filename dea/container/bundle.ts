// A container's bundle on disk: <runc root>/bundles/<id>/config.json and an empty root
// directory holding only the mount points and the bin/lib/sbin symlinks into /usr.
import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ContainerSpec, ociConfig, rootSymlinks } from "./spec.js";

/** The bundle directory of container `id` under the DEA's container root. */
export function bundleDir(root: string, id: string): string {
  return join(root, "bundles", id);
}

/** Writes the bundle of `spec` (replacing one left from an earlier container of that id); returns its directory. */
export async function writeBundle(root: string, spec: ContainerSpec): Promise<string> {
  const config = ociConfig(spec);
  const dir = bundleDir(root, spec.id);
  await rm(dir, { recursive: true, force: true });
  const rootfs = join(dir, "rootfs");
  await mkdir(rootfs, { recursive: true, mode: 0o755 });
  for (const [name, target] of Object.entries(rootSymlinks)) await symlink(target, join(rootfs, name));
  await writeFile(join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

export async function removeBundle(root: string, id: string): Promise<void> {
  await rm(bundleDir(root, id), { recursive: true, force: true });
}
