// A private nats-server for a bench's router. Plain `nats-server -a 127.0.0.1 -p PORT`
// (no auth, no JetStream: the router only needs router.* subjects). Kept behind this one
// function so the bench can move to messaging/nats-server.ts's launcher in one place.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { which } from "../debian.js";
import { BenchError } from "../errors.js";
import { freePort, type Managed, startProcess, waitForPort } from "../procs.js";

export interface BenchNats {
  url: string;
  proc: Managed;
  stop(): Promise<void>;
}

export async function startBenchNats(dir: string, name = "nats-server"): Promise<BenchNats> {
  const bin = which("nats-server");
  if (bin === undefined) {
    throw new BenchError(
      "KILN_BENCH_TOOL_MISSING",
      "nats-server is not installed; `node scripts/setup.mjs` installs it (Debian package nats-server)",
    );
  }
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const proc = startProcess(name, bin, ["-a", "127.0.0.1", "-p", String(port), "-l", join(dir, "nats.log")]);
  await waitForPort(port, proc);
  return { url: `nats://127.0.0.1:${port}`, proc, stop: () => proc.stop() };
}
