// Route registry bench: registrations applied per second end to end through NATS (a
// registrar thread → nats-server → registry → table), the same messages applied in process
// as the reference, and router.register → visible latency under 1,000 updates/s of churn.
// Native and fallback tables alternate over the rounds; medians are reported.
//   node dist/bench/registry.js [--json] [--rounds N] [--count N] [--probes N] [--record]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { connect, type NatsConnection } from "nats";
import { createLogger } from "../kernel/log.js";
import { distPath, projectRoot } from "../kernel/paths.js";
import {
  decodeRegister,
  encodeRegistryMessage,
  toEndpointSpec,
  toPoolOptions,
} from "../messaging/gorouter.js";
import { type NatsServerHandle, startNatsServer } from "../messaging/nats-server.js";
import { ROUTER_REGISTER } from "../messaging/subjects.js";
import { createFallbackTable, createNativeTable } from "../native/table.js";
import type { RouteTable, RouteUpdate, TableOptions } from "../native/types.js";
import { routerDefaults } from "../router/config.js";
import { RouteRegistry } from "../router/registry/registry.js";
import { tableSink } from "../router/registry/sink.js";
import { appendToSection, fmtNum, fmtRate, fmtRatio, mdTable } from "./lib/report.js";
import { median, ratio } from "./lib/stats.js";

const { values: flags } = parseArgs({
  options: {
    json: { type: "boolean" },
    record: { type: "boolean" },
    rounds: { type: "string" },
    count: { type: "string" },
    probes: { type: "string" },
  },
});
const rounds = Number(flags.rounds ?? 3);
const count = Number(flags.count ?? 200_000);
const probes = Number(flags.probes ?? 500);

type Kind = "native" | "fallback";
/** As the router creates its table. */
const TABLE: TableOptions = { emptyPoolTimeoutMs: routerDefaults.emptyPoolTimeoutMs };
const makeTable: Record<Kind, () => RouteTable> = {
  native: () => createNativeTable(TABLE),
  fallback: () => createFallbackTable(TABLE),
};
const quiet = createLogger("bench", { level: "error" });

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setImmediate(r));
  }
  return true;
}

/** The same messages decoded and applied without NATS: the in-process reference. */
function inProcessRate(kind: Kind, n: number): number {
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    msgs.push(
      encodeRegistryMessage({
        host: "10.0.0.1",
        port: 61000 + (i % 1000),
        uris: [`p${i}.apps.example.com`],
        privateInstanceId: `p-${i}`,
      }),
    );
  }
  const table = makeTable[kind]();
  const sink = tableSink(table);
  const t0 = performance.now();
  let batch: RouteUpdate[] = [];
  for (let i = 0; i < n; i++) {
    const m = decodeRegister(msgs[i] as Uint8Array);
    const endpoint = toEndpointSpec(m);
    const options = toPoolOptions(m);
    for (const uri of m.uris) batch.push({ op: "register", uri, endpoint, options });
    if (batch.length === 4096) {
      sink.apply(batch, Date.now());
      batch = [];
    }
  }
  sink.apply(batch, Date.now());
  const ms = performance.now() - t0;
  table.close();
  return (n / ms) * 1000;
}

interface Rig {
  table: RouteTable;
  registry: RouteRegistry;
  nc: NatsConnection;
}

async function rig(nats: NatsServerHandle, kind: Kind): Promise<Rig> {
  const nc = await connect({ servers: nats.url, ...nats.credentials("router") });
  const table = makeTable[kind]();
  const registry = new RouteRegistry({ nc, sink: tableSink(table), log: quiet, routerId: "bench" });
  await registry.start();
  return { table, registry, nc };
}

async function unrig(r: Rig): Promise<void> {
  await r.registry.stop();
  await r.nc.close();
  r.table.close();
}

async function throughThroughNats(nats: NatsServerHandle, kind: Kind, round: number): Promise<number> {
  const r = await rig(nats, kind);
  const creds = nats.credentials("dea");
  const worker = new Worker(distPath("bench/registry-publisher.js"), {
    workerData: { url: nats.url, ...creds, count, prefix: `r${round}${kind}` },
  });
  // Listened for now: the worker may well have exited before the table has caught up.
  const exited = new Promise((res) => worker.once("exit", res));
  await new Promise((res) => worker.once("message", res));
  const t0 = performance.now();
  worker.postMessage("go");
  const ok = await until(() => r.table.stats().routes >= count, 120_000);
  const ms = performance.now() - t0;
  await exited;
  await unrig(r);
  return ok ? (count / ms) * 1000 : Number.NaN;
}

async function visibleLatency(
  nats: NatsServerHandle,
  kind: Kind,
  round: number,
): Promise<{ p50: number; p99: number }> {
  const r = await rig(nats, kind);
  const pub = await connect({ servers: nats.url, ...nats.credentials("dea") });
  // Background churn: 1,000 re-registrations per second over 2,000 routes.
  let churnI = 0;
  const churnMsgs = Array.from({ length: 2000 }, (_, i) =>
    encodeRegistryMessage({
      host: "10.1.0.1",
      port: 62000 + i,
      uris: [`churn${i}.example.com`],
      privateInstanceId: `c-${i}`,
    }),
  );
  const churn = setInterval(() => {
    for (let k = 0; k < 10; k++)
      pub.publish(ROUTER_REGISTER, churnMsgs[churnI++ % churnMsgs.length] as Uint8Array);
  }, 10);
  await new Promise((res) => setTimeout(res, 500));
  const samples: number[] = [];
  for (let i = 0; i < probes; i++) {
    const host = `probe${round}-${i}.${kind}.example.com`;
    const msg = encodeRegistryMessage({
      host: "10.2.0.1",
      port: 63000,
      uris: [host],
      privateInstanceId: `probe-${i}`,
    });
    const t0 = performance.now();
    pub.publish(ROUTER_REGISTER, msg);
    const seen = await until(() => {
      const h = r.table.select(host, "/", "", "", Date.now());
      if (h < 0) return false;
      r.table.release(h);
      return true;
    }, 5000);
    samples.push(seen ? performance.now() - t0 : Number.POSITIVE_INFINITY);
  }
  clearInterval(churn);
  await pub.close();
  await unrig(r);
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}

const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-registry-"));
const nats = await startNatsServer({ dataDir, port: 0 });
const kinds: Kind[] = ["native", "fallback"];
const results: Record<Kind, { inProc: number[]; nats: number[]; p50: number[]; p99: number[] }> = {
  native: { inProc: [], nats: [], p50: [], p99: [] },
  fallback: { inProc: [], nats: [], p50: [], p99: [] },
};
try {
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? kinds : [...kinds].reverse();
    for (const kind of order) {
      results[kind].inProc.push(inProcessRate(kind, count));
      results[kind].nats.push(await throughThroughNats(nats, kind, round));
      const lat = await visibleLatency(nats, kind, round);
      results[kind].p50.push(lat.p50);
      results[kind].p99.push(lat.p99);
      process.stderr.write(`round ${round + 1}/${rounds} ${kind} done\n`);
    }
  }
} finally {
  await nats.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

const summary = kinds.map((kind) => {
  const r = results[kind];
  return {
    table: kind,
    inProcessPerSec: median(r.inProc),
    throughNatsPerSec: median(r.nats),
    natsVsInProcess: ratio(median(r.nats), median(r.inProc)),
    visibleP50Ms: median(r.p50),
    visibleP99Ms: median(r.p99),
  };
});
if (flags.json) {
  process.stdout.write(
    `${JSON.stringify({ date: new Date().toISOString(), rounds, count, probes, summary }, null, 2)}\n`,
  );
} else {
  const table = mdTable(
    [
      "table",
      "applied/s in process",
      "applied/s through NATS",
      "NATS ÷ in process",
      "register→visible p50 ms",
      "p99 ms",
    ],
    summary.map((s) => [
      s.table,
      fmtRate(s.inProcessPerSec),
      fmtRate(s.throughNatsPerSec),
      fmtRatio(s.natsVsInProcess),
      fmtNum(s.visibleP50Ms, 2),
      fmtNum(s.visibleP99Ms, 2),
    ]),
    ["left", "right", "right", "right", "right", "right"],
  );
  process.stdout.write(`${table}\n`);
  if (flags.record) {
    const date = new Date().toISOString().slice(0, 10);
    appendToSection(
      join(projectRoot, "bench", "RESULTS.md"),
      "Route registry (bench/registry.ts)",
      "Registrations applied per second through NATS (a registrar thread publishing router.register, a real nats-server, the registry and the table) against the same messages decoded and applied in process, and router.register publish → visible in the table under 1,000 updates/s of background churn. Targets: ≥ 100k/s through NATS, ≥ 500k/s in process, visible p99 ≤ 5 ms.",
      `### ${date}: ${rounds} rounds × ${count} registrations, ${probes} latency probes (medians)\n\n${table}\n\nReproduce: \`node scripts/setup.mjs --build && node dist/bench/registry.js --rounds ${rounds} --count ${count} --probes ${probes} --record\``,
    );
  }
}
