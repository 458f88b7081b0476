#!/usr/bin/env node
// The checks every change passes before the tests: strict type check and Biome
// (lint + format). Any error or warning fails `npm test`.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const checks = [
  [
    "typecheck",
    process.execPath,
    [join(root, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "-p", "."],
  ],
  ["lint", join(root, "node_modules", ".bin", "biome"), ["check", "--error-on-warnings", "."]],
];
for (const [name, cmd, args] of checks) {
  const t = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    process.stderr.write(`kiln check: ${name} failed\n`);
    process.exit(1);
  }
  process.stderr.write(`kiln check: ${name} ok (${((Date.now() - t) / 1000).toFixed(1)} s)\n`);
}
