// Worker for test/native/threads.test.ts: attaches to the main thread's native table and
// looks routes up until told to stop, checking every endpoint it gets belongs to its route.
import { parentPort, workerData } from "node:worker_threads";
import { implementation } from "../../../native/index.js";
import { attachTable } from "../../../native/table.js";

interface Data {
  tableId: number;
  routes: number;
}

const { tableId, routes } = workerData as Data;
const table = attachTable(tableId);
let stop = false;
parentPort?.on("message", (m) => {
  if (m === "stop") stop = true;
});

/** Endpoints of route r are instance ids "r-k" on host 10.<k>.<r>/port 10000+k (see the test). */
function check(route: number, h: number): string | null {
  const info = table.endpoint(h);
  if (info === null) return null; // unregistered between select and endpoint: not a torn read
  const [r, k] = info.instanceId.split("-").map(Number);
  if (r !== route) return `route ${route} got ${info.instanceId}`;
  if (info.port !== 10000 + (k ?? -1) || info.host !== `10.${k}.${Math.floor(route / 256)}.${route % 256}`) {
    return `torn endpoint ${JSON.stringify(info)}`;
  }
  return "";
}

let lookups = 0;
let hits = 0;
let seed = 12345;
const errors: string[] = [];
function loop(): void {
  for (let i = 0; i < 300; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const route = seed % routes;
    const h = table.select(`r${route}.threads.test`, "/x", "", "", Date.now());
    lookups++;
    if (h < 0) continue;
    const bad = check(route, h);
    if (bad === "") hits++;
    else if (bad !== null && errors.length < 10) errors.push(bad);
    table.release(h);
  }
  if (stop) parentPort?.postMessage({ implementation, lookups, hits, errors });
  // A short pause between bursts leaves the 2-core box to the churning main thread too.
  else setTimeout(loop, 1);
}
parentPort?.postMessage("ready");
loop();
