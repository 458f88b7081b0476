// Worker for test/native/upstream.test.ts: uses a native Upstream on this thread's loop, then
// either exits with a pooled connection still open ("exit") or leaves a request hanging
// for the parent to terminate the thread ("terminate"); neither may crash the process.
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { TestClient } from "../upstream-client.js";

interface Data {
  port: number;
  hang: number;
  mode: "exit" | "terminate";
}

async function run({ port, hang, mode }: Data): Promise<void> {
  const c = new TestClient();
  if (mode === "exit") {
    let ok = 0;
    for (let i = 0; i < 20; i++) {
      const r = await c.get(port, "/tiny");
      if (r.status === 200 && r.body.toString() === "ok") ok++;
    }
    // No close(): the environment's cleanup must close the pooled connection.
    parentPort?.postMessage({ ok, connections: c.up.stats().connections });
  } else {
    void c.get(hang);
    void c.get(port, "/big/64");
    parentPort?.postMessage({ started: true });
  }
}

// Loaded directly (e.g. `tap test/native/`) there is nothing to do.
if (!isMainThread) await run(workerData as Data);
