#!/usr/bin/env node
// The `kiln` command: runs the compiled CLI (built by `npm run setup`).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("kiln: not built yet; run `npm run setup` in the Kiln checkout first\n");
  process.exit(1);
}
const { main } = await import(entry.href);
// Long-running commands (up, nats, router) resolve only once they have shut down. Then the
// process ends at once: the API client's idle keep-alive sockets would hold it open for a while
// after the answer is printed (stdout and stderr are synchronous for files, pipes and terminals
// here, so nothing written is lost).
process.exit(await main(process.argv.slice(2)));
