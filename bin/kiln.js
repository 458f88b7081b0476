#!/usr/bin/env node
// The `kiln` command: runs the compiled CLI (built by `npm run setup`).
import { existsSync } from "node:fs";

const main = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("kiln: not built yet; run `npm run setup` in the Kiln checkout first\n");
  process.exit(1);
}
await import(main.href);
