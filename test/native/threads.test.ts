// One native table read by 4 worker threads while the main thread churns 100k updates:
// no crash, and every endpoint a worker gets is one registered for the route it asked for.
import { Worker } from "node:worker_threads";
import t from "tap";
import { distPath } from "../../kernel/paths.js";
import { binding } from "../../native/index.js";
import { createNativeTable } from "../../native/table.js";
import { ep, opts } from "./suite.js";

const ROUTES = 2000;
const UPDATES = 100_000;

interface Report {
  implementation: string;
  lookups: number;
  hits: number;
  errors: string[];
}

function spec(route: number, k: number) {
  return ep(`${route}-${k}`, 10000 + k, { host: `10.${k}.${Math.floor(route / 256)}.${route % 256}` });
}

t.test(
  "4 workers read while the main thread churns",
  { skip: binding === null && "addon not built" },
  async (tt) => {
    // Emptied routes stay 1000 updates (the clock below) and are freed by the prunes, under the readers.
    const table = createNativeTable({ emptyPoolTimeoutMs: 1000 });
    tt.teardown(() => table.close());
    const lbs = ["round-robin", "least-connection", "hash"] as const;
    for (let r = 0; r < ROUTES; r++) {
      for (let k = 0; k < 2; k++) table.register(`r${r}.threads.test`, spec(r, k), opts(), 0);
    }
    const workers = Array.from(
      { length: 4 },
      () =>
        new Worker(distPath("test/native/workers/lookup-worker.js"), {
          workerData: { tableId: table.id, routes: ROUTES },
        }),
    );
    tt.teardown(async () => {
      await Promise.all(workers.map((w) => w.terminate()));
    });
    const reports = workers.map(
      (w) =>
        new Promise<Report>((resolve, reject) => {
          w.on("message", (m) => {
            if (m !== "ready") resolve(m as Report);
          });
          w.on("error", reject);
        }),
    );
    await Promise.all(workers.map((w) => new Promise<void>((resolve) => w.once("message", () => resolve()))));
    let seed = 99;
    for (let i = 0; i < UPDATES; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const r = seed % ROUTES;
      const k = (seed >>> 16) % 4;
      const uri = `r${r}.threads.test${k === 3 ? "/x" : ""}`;
      if ((seed >>> 20) % 3 === 0) table.unregister(uri, spec(r, k), i);
      else table.register(uri, spec(r, k), opts({ loadBalancing: lbs[i % 3], hashHeader: "x-k" }), i);
      if (i % 20_000 === 0) table.prune(i);
      // Let the workers run between bursts, as the registry applies batches.
      if (i % 5000 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    // A reader killed mid-loop (handles in flight, functions still referenced) must not
    // disturb the table or the other threads.
    const doomed = new Worker(distPath("test/native/workers/lookup-worker.js"), {
      workerData: { tableId: table.id, routes: ROUTES },
    });
    await new Promise((resolve) => doomed.once("message", resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
    await doomed.terminate();
    table.register("after.threads.test", spec(0, 0), opts(), UPDATES);
    tt.ok(
      table.select("after.threads.test", "/", "", "", UPDATES) >= 0,
      "the table serves after a reader was killed",
    );
    for (const w of workers) w.postMessage("stop");
    const got = await Promise.all(reports);
    for (const rep of got) {
      tt.equal(rep.implementation, "native", "the addon loads in a worker thread");
      tt.same(rep.errors, [], "no torn reads");
      tt.ok(rep.lookups > 0 && rep.hits > 0, `${rep.lookups} lookups, ${rep.hits} hits`);
    }
  },
);
