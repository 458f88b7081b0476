#!/usr/bin/env node
// Writes docs/errors.md from every area's errors.ts (compiled), so the table of
// codes can never drift from the code: `npm run docs:errors` after adding a code.
import { spawnSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const found = [];
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() && e.name !== "test") walk(p);
    else if (e.name === "errors.js") found.push(p);
  }
};
walk(dist);
for (const f of found.sort()) await import(pathToFileURL(f).href);
const { allCodes } = await import(pathToFileURL(join(dist, "kernel", "errors.js")).href);

const byArea = new Map();
for (const [code, spec] of allCodes()) {
  if (!byArea.has(spec.area)) byArea.set(spec.area, []);
  byArea.get(spec.area).push([code, spec]);
}
const lines = [
  "# Kiln error codes",
  "",
  "Every error a Kiln component reports carries one of these stable codes. Generated from the",
  "code by `npm run docs:errors`; a test fails when a code is missing here.",
];
for (const [area, codes] of [...byArea].sort((a, b) => a[0].localeCompare(b[0]))) {
  lines.push("", `## ${area}`, "", "| code | HTTP | meaning |", "|---|---|---|");
  for (const [code, spec] of codes.sort((a, b) => a[0].localeCompare(b[0]))) {
    lines.push(`| \`${code}\` | ${spec.status ?? ""} | ${spec.summary.replaceAll("|", "\\|")} |`);
  }
}
const out = join(root, "docs", "errors.md");
writeFileSync(out, `${lines.join("\n")}\n`);
// Tables aligned the way the lint check expects, so a regenerated file passes `npm test`.
spawnSync(join(root, "node_modules", ".bin", "biome"), ["format", "--write", out], { stdio: "ignore" });
process.stderr.write(`docs/errors.md: ${allCodes().size} codes\n`);
