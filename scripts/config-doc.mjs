#!/usr/bin/env node
// Writes docs/config.md from every component's config table and the doc comments of its options
// (kernel/config-doc.ts, compiled), so the reference can never drift from the code:
// `npm run docs:config` after adding or changing a setting.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { configDoc } = await import(pathToFileURL(join(root, "dist", "kernel", "config-doc.js")).href);
const out = join(root, "docs", "config.md");
const text = configDoc(root);
writeFileSync(out, text);
// Tables aligned the way the lint check expects, so a regenerated file passes `npm test`.
spawnSync(join(root, "node_modules", ".bin", "biome"), ["format", "--write", out], { stdio: "ignore" });
process.stderr.write(
  `docs/config.md: ${text.split("\n").filter((l) => l.startsWith("| `")).length} settings\n`,
);
