// Where Kiln's own files are, whether running from the TypeScript sources (tests)
// or from the compiled dist/ tree (`kiln` and every spawned component).
import { existsSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "binding.gyp"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`Kiln project root not found above ${start}`);
    dir = up;
  }
}

/** The checkout's top folder (holds package.json and binding.gyp). */
export const projectRoot = findRoot(dirname(fileURLToPath(import.meta.url)));

/** Absolute path of a compiled module, e.g. distPath("router/worker.js"). */
export function distPath(rel: string): string {
  return join(projectRoot, "dist", rel);
}

/** The compiled counterpart of a source module URL (identity when already under dist/). */
export function compiledSibling(moduleUrl: string, name: string): string {
  const dir = dirname(fileURLToPath(moduleUrl));
  const rel = relative(projectRoot, dir);
  return rel.startsWith("dist") ? join(dir, name) : join(projectRoot, "dist", rel, name);
}

/** The `kiln` entry script (compiled). */
export const kilnBin = join(projectRoot, "bin", "kiln.js");
