// Starts the bench backend (backend-server.ts, compiled) in its own process.
import { compiledSibling } from "../../kernel/paths.js";
import { freePort, type Managed, startProcess, waitForPort } from "./procs.js";

export interface Backend {
  port: number;
  proc: Managed;
}

export { backendPaths, headersPath } from "./backend-paths.js";

export async function startBackend(): Promise<Backend> {
  const port = await freePort();
  const proc = startProcess("backend", process.execPath, [
    compiledSibling(import.meta.url, "backend-server.js"),
    String(port),
  ]);
  await waitForPort(port, proc);
  return { port, proc };
}
