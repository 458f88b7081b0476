#!/usr/bin/env node
// The `kiln` command: runs the compiled CLI (built by `npm run setup`).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("kiln: not built yet; run `npm run setup` in the Kiln checkout first\n");
  process.exit(1);
}
const { main } = await import(entry.href);
// Long-running commands (up, nats, router) resolve only once they have shut down.
process.exitCode = await main(process.argv.slice(2));
