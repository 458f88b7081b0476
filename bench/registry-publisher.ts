// Worker thread of bench/registry.ts: a registrar publishing router.register as fast
// as NATS takes it, on its own event loop and core, like a fleet of DEAs would.
import { parentPort, workerData } from "node:worker_threads";
import { connect } from "nats";
import { encodeRegistryMessage } from "../messaging/gorouter.js";
import { ROUTER_REGISTER } from "../messaging/subjects.js";

interface PublisherData {
  url: string;
  user: string;
  pass: string;
  count: number;
  prefix: string;
}

const d = workerData as PublisherData;
const nc = await connect({ servers: d.url, user: d.user, pass: d.pass });
// Encoded up front so the run measures NATS and the registry, not JSON.stringify.
const payloads: Uint8Array[] = [];
for (let i = 0; i < d.count; i++) {
  payloads.push(
    encodeRegistryMessage({
      host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 61000 + (i % 1000),
      uris: [`${d.prefix}${i}.apps.example.com`],
      app: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
      privateInstanceId: `${d.prefix}-${i}`,
      privateInstanceIndex: "0",
    }),
  );
}
parentPort?.postMessage({ ready: true });
await new Promise<void>((resolve) => parentPort?.once("message", () => resolve()));
const t0 = performance.now();
for (let i = 0; i < payloads.length; i++) nc.publish(ROUTER_REGISTER, payloads[i] as Uint8Array);
await nc.flush();
parentPort?.postMessage({ publishedMs: performance.now() - t0 });
await nc.close();
