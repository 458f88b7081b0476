#!/usr/bin/env node
// Reads a TAP stream (tap's `--reporter=tap` output, as CI records it) on stdin and prints
// every failed test point with the chain of subtests above it, and the first lines of its
// diagnostics, so the end of a CI log says what failed. Prints nothing when nothing failed.
// Plain Node: CI runs it whatever state node_modules is in.
import { createInterface } from "node:readline";

const DIAG_LINES = 12;
const MAX_FAILURES = 40;
/** A crashed file's diagnostics open with how it was run; what it ended with is the news. */
const NOISE = /^(stdio|cwd|externalID|command|jobId):/;

/** Subtest names by indent depth (4 spaces per level). */
const names = [];
const failures = [];
let diag = null;

for await (const line of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
  if (diag) {
    const text = line.trim();
    if (text === "...") diag = null;
    else if (diag.inArgs && text.startsWith("- ")) {
      // The rest of a crashed file's argv.
    } else {
      diag.inArgs = text === "args:";
      if (diag.lines.length < DIAG_LINES && text !== "---" && !diag.inArgs && !NOISE.test(text))
        diag.lines.push(line.trimEnd());
    }
    continue;
  }
  const sub = /^( *)# Subtest: (.*)$/.exec(line);
  if (sub) {
    const depth = sub[1].length / 4;
    names.length = depth;
    names[depth] = sub[2];
    continue;
  }
  const point = /^( *)(not ok|ok) \d+(?: - (.*?))?(?: # (?:time=\S+|SKIP.*|TODO.*))?$/.exec(line);
  if (!point) continue;
  const depth = point[1].length / 4;
  if (point[2] === "ok") continue;
  // A failed subtest is followed by its own summary point; only the deepest failures say why.
  const title = point[3] ?? "(unnamed)";
  const path = names.slice(0, depth).filter((n) => n !== undefined);
  const failure = { path: [...path, title], depth, lines: [] };
  failures.push(failure);
  diag = failure;
}

// A point whose path is a prefix of a later, deeper failure is that failure's parent.
const leaves = failures.filter(
  (f, i) => !failures.some((g, j) => j !== i && g.depth > f.depth && f.path.every((p, k) => g.path[k] === p)),
);
if (leaves.length > 0) {
  console.log(`\nFailed (${leaves.length}):`);
  for (const f of leaves.slice(0, MAX_FAILURES)) {
    console.log(`  not ok: ${f.path.join(" > ")}`);
    const indent = Math.min(...f.lines.map((l) => l.length - l.trimStart().length));
    for (const l of f.lines) console.log(`      ${l.slice(indent)}`);
  }
  if (leaves.length > MAX_FAILURES) console.log(`  … and ${leaves.length - MAX_FAILURES} more`);
}
