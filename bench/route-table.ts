// Route table bench: ns per lookup (select + release from JavaScript) at 1k/100k/1M routes,
// registrations applied per second in process, RSS per route, and lookups from 2 worker
// threads while the main thread churns; native and fallback side by side, each measurement
// in a fresh child process, interleaved over rounds, medians reported.
//   node dist/bench/route-table.js [--json] [--quick] [--rounds N] [--record]
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { distPath, projectRoot } from "../kernel/paths.js";
import { attachTable, createFallbackTable, createNativeTable } from "../native/table.js";
import type { EndpointSpec, PoolOptions, RouteTable, TableOptions } from "../native/types.js";
import { routerDefaults } from "../router/config.js";
import { appendToSection, fmtNum, fmtRate, fmtRatio, mdTable } from "./lib/report.js";
import { interleave, median } from "./lib/stats.js";

type Kind = "native" | "fallback";
const KINDS: Kind[] = ["native", "fallback"];
const OPTS: PoolOptions = {
  loadBalancing: "round-robin",
  hashHeader: "",
  hashBalance: 0,
  maxConnsPerBackend: 0,
  routeServiceUrl: "",
};
/** As the router creates its table. */
const TABLE: TableOptions = { emptyPoolTimeoutMs: routerDefaults.emptyPoolTimeoutMs };
const SCRIPT = distPath("bench/route-table.js");

// ---- the data set: route i of app ⌊i/4⌋, 2 instances per app; 70% exact, 20% path, 10% wildcard ----

interface RouteCase {
  uri: string;
  reqHost: string;
  reqPath: string;
}

function routeAt(i: number): RouteCase {
  const kind = i % 10;
  if (kind < 7) return { uri: `app${i}.apps.example.com`, reqHost: `app${i}.apps.example.com`, reqPath: "/" };
  if (kind < 9) {
    return {
      uri: `api${i}.example.com/v1/items`,
      reqHost: `api${i}.example.com`,
      reqPath: "/v1/items/42?x=1",
    };
  }
  return { uri: `*.t${i}.example.com`, reqHost: `www.t${i}.example.com`, reqPath: "/" };
}

/** Instances live on 1,000 cells (as Diego cells host many containers): the host IP repeats, the port does not. */
function specOf(app: number, k: number): EndpointSpec {
  const cell = (app * 2 + k) % 1000;
  return {
    host: `10.0.${cell >> 8}.${cell & 255}`,
    port: 61000 + ((app * 2 + k) % 4000),
    app: `a1b2c3d4-0000-4000-8000-${app.toString(16).padStart(12, "0")}`,
    instanceId: `i-${app.toString(16).padStart(8, "0")}-${k}-5f9e2c7a-1d3b-4c8e`,
    instanceIndex: String(k),
    tags: { component: "route-emitter", process_type: "web" },
    availabilityZone: "z1",
    staleThresholdSec: 120,
    serverCertDomainSan: "",
    tlsPort: 0,
    protocol: "http1",
    updatedAtNs: 0n,
  };
}

function makeTable(kind: Kind): RouteTable {
  return kind === "native" ? createNativeTable(TABLE) : createFallbackTable(TABLE);
}

/**
 * Registers routes [0, n) (2 instances each) in message order: one register message per
 * instance carrying all of its app's 4 uris, so an instance's uris arrive back to back with
 * one spec object, as the registry applies a decoded message. Returns the seconds spent
 * inside register() only. Small chunks keep the bench's own garbage in V8's young
 * generation, out of the RSS figure.
 */
function fill(table: RouteTable, n: number): number {
  let ns = 0;
  const chunk = 1000;
  const uris: string[] = [];
  const specs: EndpointSpec[] = [];
  for (let base = 0; base < n; base += chunk) {
    const end = Math.min(n, base + chunk);
    uris.length = 0;
    specs.length = 0;
    // Apps whose routes start in this chunk (an app's 4 routes may spill into the next index range).
    for (let a = base >> 2; a << 2 < end; a++) {
      const first = Math.max(a << 2, base);
      const last = Math.min((a << 2) + 4, end);
      for (let k = 0; k < 2; k++) {
        const spec = specOf(a, k);
        for (let i = first; i < last; i++) {
          uris.push(routeAt(i).uri);
          specs.push(spec);
        }
      }
    }
    const t0 = cpuNs();
    for (let j = 0; j < uris.length; j++)
      table.register(uris[j] as string, specs[j] as EndpointSpec, OPTS, 0);
    ns += cpuNs() - t0;
  }
  return ns / 1e9;
}

/** CPU time of this process in ns: on a shared 2-core VM wall time mostly measures the neighbours. */
function cpuNs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) * 1000;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) {
    g();
    g();
  }
}

/**
 * A sample of requests over the whole table. "uniform": every route equally likely, in random
 * order, so caches do not flatter (the worst case, and the target's case). "zipf": route of
 * popularity rank k with probability ~1/k (s = 1), ranks scattered over the table, the way real
 * traffic concentrates on a few hosts.
 */
function sample(n: number, size: number, dist: "uniform" | "zipf"): { hosts: string[]; paths: string[] } {
  const hosts: string[] = [];
  const paths: string[] = [];
  let seed = 7;
  const logN = Math.log(n + 1);
  for (let j = 0; j < size; j++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    let i = seed % n;
    if (dist === "zipf") {
      // Inverse of the continuous CDF ln(k + 1) / ln(n + 1); the odd multiplier (coprime to n)
      // permutes ranks so the popular routes are not neighbours in the table.
      const rank = Math.min(n - 1, Math.floor(Math.exp((seed / 2 ** 32) * logN)) - 1);
      i = (rank * 2654435761) % n;
    }
    const c = routeAt(i);
    hosts.push(c.reqHost);
    paths.push(c.reqPath);
  }
  return { hosts, paths };
}

/**
 * The machine's floor: ns per dependent load over 128 MiB (a pointer chase through one random
 * cycle, Sattolo's shuffle), i.e. what one cache miss to DRAM costs a lookup on this box.
 */
function childDram(): { dramNs: number } {
  const n = 1 << 25;
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) next[i] = i;
  let seed = 12345;
  for (let i = n - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % i;
    const t = next[i] as number;
    next[i] = next[j] as number;
    next[j] = t;
  }
  let p = 0;
  const steps = 4_000_000;
  for (let i = 0; i < 200_000; i++) p = next[p] as number;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) p = next[p] as number;
  const ns = Number(process.hrtime.bigint() - t0) / steps;
  if (p < 0) throw new Error("unreachable");
  return { dramNs: ns };
}

function lookupLoop(table: RouteTable, hosts: string[], paths: string[], ops: number): number {
  const mask = hosts.length - 1;
  let misses = 0;
  const t0 = cpuNs();
  for (let i = 0; i < ops; i++) {
    const j = i & mask;
    const h = table.select(hosts[j] as string, paths[j] as string, "", "", 0);
    if (h >= 0) table.release(h);
    else misses++;
  }
  const ns = (cpuNs() - t0) / ops;
  if (misses !== 0) throw new Error(`bench data set broken: ${misses} lookups missed`);
  return ns;
}

// ---- child: one table size, one kind ----

interface SizeResult {
  kind: Kind;
  routes: number;
  lookupNs: number;
  /** The same with Zipf-distributed requests (s = 1). */
  lookupZipfNs: number;
  /** New routes and endpoints (the table filling up). */
  registersPerSec: number;
  /** The same registrations again: the steady state of registrars re-announcing every 20 s. */
  refreshesPerSec: number;
  rssBytesPerRoute: number;
  heapBytesPerRoute: number;
}

function childSize(kind: Kind, routes: number, ops: number): SizeResult {
  gc();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  const table = makeTable(kind);
  const sec = fill(table, routes);
  gc();
  const mem = process.memoryUsage();
  const refreshSec = ops > 0 ? fill(table, routes) : Number.NaN;
  let lookupNs = Number.NaN;
  let lookupZipfNs = Number.NaN;
  if (ops > 0) {
    const { hosts, paths } = sample(routes, 1 << 16, "uniform");
    lookupLoop(table, hosts, paths, Math.min(ops, 200_000));
    lookupNs = lookupLoop(table, hosts, paths, ops);
    const z = sample(routes, 1 << 16, "zipf");
    lookupLoop(table, z.hosts, z.paths, Math.min(ops, 200_000));
    lookupZipfNs = lookupLoop(table, z.hosts, z.paths, ops);
  }
  return {
    kind,
    routes,
    lookupNs,
    lookupZipfNs,
    registersPerSec: (routes * 2) / sec,
    refreshesPerSec: (routes * 2) / refreshSec,
    rssBytesPerRoute: (mem.rss - rss0) / routes,
    heapBytesPerRoute: (mem.heapUsed - heap0) / routes,
  };
}

// ---- child: 2 reader threads while the main thread churns ----

interface ThreadResult {
  kind: Kind;
  lookupNs: number;
  /** CPU of the whole process (readers, churn, message passing) ÷ lookups served. */
  cpuNsPerLookup: number;
  lookupsPerSec: number;
  updatesPerSec: number;
}

interface WorkerReport {
  lookups: number;
  loopNs: number;
}

function churnBatch(
  round: number,
  routes: number,
  size: number,
): { uri: string; spec: EndpointSpec; on: boolean }[] {
  const out: { uri: string; spec: EndpointSpec; on: boolean }[] = [];
  let seed = round * 7919 + 1;
  for (let j = 0; j < size; j++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const i = seed % routes;
    // Flap a third instance of the app on this route: the route never empties.
    out.push({ uri: routeAt(i).uri, spec: specOf(i >> 2, 2), on: (seed >>> 16) % 2 === 0 });
  }
  return out;
}

function applyBatch(table: RouteTable, batch: { uri: string; spec: EndpointSpec; on: boolean }[]): void {
  for (const u of batch) {
    if (u.on) table.register(u.uri, u.spec, OPTS, 0);
    else table.unregister(u.uri, u.spec, 0);
  }
}

async function childThreads(kind: Kind, routes: number, seconds: number): Promise<ThreadResult> {
  const table = makeTable(kind);
  if (kind === "native") fill(table, routes);
  const workers = [0, 1].map(() => new Worker(SCRIPT, { workerData: { kind, routes, tableId: table.id } }));
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))));
  const reports = workers.map((w) => new Promise<WorkerReport>((resolve) => w.once("message", resolve)));
  for (const w of workers) w.postMessage({ op: "start" });
  // 20k updates/s in batches of 200 every 10 ms, as the registry applies bursts.
  const started = Date.now();
  const cpu0 = cpuNs();
  let updates = 0;
  let round = 0;
  while (Date.now() - started < seconds * 1000) {
    const batch = churnBatch(round++, routes, 200);
    if (kind === "native") applyBatch(table, batch);
    else for (const w of workers) w.postMessage({ op: "batch", batch });
    updates += batch.length;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  for (const w of workers) w.postMessage({ op: "stop" });
  const got = await Promise.all(reports);
  const elapsed = (Date.now() - started) / 1000;
  const cpu = cpuNs() - cpu0;
  await Promise.all(workers.map((w) => w.terminate()));
  table.close();
  const lookups = got.reduce((s, r) => s + r.lookups, 0);
  return {
    kind,
    lookupNs: median(got.map((r) => r.loopNs / r.lookups)),
    cpuNsPerLookup: cpu / lookups,
    lookupsPerSec: lookups / elapsed,
    updatesPerSec: updates / elapsed,
  };
}

function workerMain(): void {
  const { kind, routes, tableId } = workerData as { kind: Kind; routes: number; tableId: number };
  let table: RouteTable;
  if (kind === "native") table = attachTable(tableId);
  else {
    table = createFallbackTable(TABLE);
    fill(table, routes);
  }
  const { hosts, paths } = sample(routes, 1 << 16, "uniform");
  lookupLoop(table, hosts, paths, 100_000);
  let running = false;
  let stop = false;
  let lookups = 0;
  let loopNs = 0;
  let at = 0;
  const mask = hosts.length - 1;
  const slice = (): void => {
    if (stop) {
      parentPort?.postMessage({ lookups, loopNs } satisfies WorkerReport);
      return;
    }
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 5000; i++) {
      const j = at++ & mask;
      const h = table.select(hosts[j] as string, paths[j] as string, "", "", 0);
      if (h >= 0) table.release(h);
    }
    loopNs += Number(process.hrtime.bigint() - t0);
    lookups += 5000;
    setImmediate(slice);
  };
  parentPort?.on(
    "message",
    (m: { op: string; batch?: { uri: string; spec: EndpointSpec; on: boolean }[] }) => {
      if (m.op === "batch" && m.batch !== undefined) applyBatch(table, m.batch);
      else if (m.op === "stop") stop = true;
      else if (m.op === "start" && !running) {
        running = true;
        slice();
      }
    },
  );
  parentPort?.postMessage("ready");
}

// ---- orchestration ----

function runChild(args: string[], nodeFlags: string[] = []): unknown {
  const out = execFileSync(process.execPath, ["--expose-gc", ...nodeFlags, SCRIPT, ...args], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split("\n").pop() as string);
}

interface Summary {
  date: string;
  rounds: number;
  quick: boolean;
  sizes: { routes: number; native: SizeResult; fallback: SizeResult }[];
  memory: { routes: number; native: SizeResult; fallback: SizeResult };
  threads: { routes: number; native: ThreadResult; fallback: ThreadResult };
  /** One dependent load from DRAM on this box, measured in the same run (the floor of a miss). */
  dramNs: number;
}

type JobKind = "size" | "memory" | "threads" | "dram";
interface Job {
  kind: Kind;
  routes: number;
  job: JobKind;
}

function medianOf<T extends object>(rows: T[]): T {
  const first = rows[0] as T;
  const out: Record<string, unknown> = { ...(first as Record<string, unknown>) };
  for (const [k, v] of Object.entries(first)) {
    if (typeof v === "number") out[k] = median(rows.map((r) => (r as Record<string, number>)[k] as number));
  }
  return out as unknown as T;
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      json: { type: "boolean" },
      quick: { type: "boolean" },
      record: { type: "boolean" },
      rounds: { type: "string" },
      child: { type: "string" },
      routes: { type: "string" },
      ops: { type: "string" },
      seconds: { type: "string" },
      threads: { type: "boolean" },
      dram: { type: "boolean" },
    },
  });
  if (flags.dram === true) {
    process.stdout.write(`${JSON.stringify(childDram())}\n`);
    return;
  }
  if (flags.child !== undefined) {
    const kind = flags.child as Kind;
    const routes = Number(flags.routes);
    const result = flags.threads
      ? await childThreads(kind, routes, Number(flags.seconds ?? 3))
      : childSize(kind, routes, Number(flags.ops ?? 2_000_000));
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const quick = flags.quick === true;
  const rounds = Number(flags.rounds ?? 3);
  const sizes = quick ? [1000, 100_000] : [1000, 100_000, 1_000_000];
  const memRoutes = quick ? 100_000 : 1_000_000;
  const ops = quick ? 500_000 : 2_000_000;
  const threadRoutes = quick ? 10_000 : 100_000;
  const seconds = quick ? 2 : 4;
  const runs = new Map<string, unknown[]>();
  const jobs: Job[] = [];
  for (const routes of sizes) for (const kind of KINDS) jobs.push({ kind, routes, job: "size" });
  for (const kind of KINDS) jobs.push({ kind, routes: memRoutes, job: "memory" });
  for (const kind of KINDS) jobs.push({ kind, routes: threadRoutes, job: "threads" });
  jobs.push({ kind: "native", routes: 0, job: "dram" });
  for (const [r, plan] of interleave(jobs, rounds).entries()) {
    for (const j of plan) {
      const base = ["--child", j.kind, "--routes", String(j.routes)];
      const res =
        j.job === "dram"
          ? runChild(["--dram"])
          : j.job === "threads"
            ? runChild([...base, "--threads", "--seconds", String(seconds)])
            : j.job === "memory"
              ? // A 1 MB young generation keeps the bench's own garbage out of the RSS delta (both kinds).
                runChild([...base, "--ops", "0"], ["--max-semi-space-size=1"])
              : runChild([...base, "--ops", String(ops)]);
      const key = `${j.job}:${j.kind}:${j.routes}`;
      runs.set(key, [...(runs.get(key) ?? []), res]);
      if (flags.json !== true) process.stderr.write(`round ${r + 1}/${rounds}: ${key}\n`);
    }
  }
  const get = <T extends object>(job: JobKind, kind: Kind, routes: number): T =>
    medianOf((runs.get(`${job}:${kind}:${routes}`) ?? []) as T[]);
  const summary: Summary = {
    date: new Date().toISOString().slice(0, 10),
    rounds,
    quick,
    sizes: sizes.map((routes) => ({
      routes,
      native: get<SizeResult>("size", "native", routes),
      fallback: get<SizeResult>("size", "fallback", routes),
    })),
    memory: {
      routes: memRoutes,
      native: get<SizeResult>("memory", "native", memRoutes),
      fallback: get<SizeResult>("memory", "fallback", memRoutes),
    },
    threads: {
      routes: threadRoutes,
      native: get<ThreadResult>("threads", "native", threadRoutes),
      fallback: get<ThreadResult>("threads", "fallback", threadRoutes),
    },
    dramNs: get<{ dramNs: number }>("dram", "native", 0).dramNs,
  };
  if (flags.json === true) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  const md = report(summary);
  if (flags.json !== true) process.stdout.write(`${md}\n`);
  if (flags.record === true) {
    appendToSection(
      join(projectRoot, "bench", "RESULTS.md"),
      "Route table (bench/route-table.ts)",
      [
        "Native C++ table vs the TypeScript fallback. Every figure comes from a fresh child process;",
        "native and fallback are interleaved over the rounds and medians reported. A lookup is",
        "`select` + `release` from JavaScript (N-API crossing included) over a random sample of the",
        "table (70% exact host, 20% host+path, 10% wildcard). Times are CPU time of the process, not",
        "wall time: the 2-core VM is shared with other builds and tests. Data set: 2 instances per",
        "app, 4 routes per app (one register message carries all of an app's uris), instances on",
        "1,000 cell IPs. Targets (issue 4): lookup ≤ 250 ns at 1M routes, ≥ 500k registrations/s in",
        "process, ≤ 250 bytes per route.",
      ].join("\n"),
      md,
    );
  }
}

function report(s: Summary): string {
  const rows = s.sizes.map(({ routes, native, fallback }) => [
    fmtRate(routes),
    fmtNum(native.lookupNs, 0),
    fmtNum(fallback.lookupNs, 0),
    fmtRatio(fallback.lookupNs / native.lookupNs),
    fmtNum(native.lookupZipfNs, 0),
    fmtNum(fallback.lookupZipfNs, 0),
    fmtRate(native.registersPerSec),
    fmtRate(fallback.registersPerSec),
    fmtRate(native.refreshesPerSec),
    fmtRate(fallback.refreshesPerSec),
  ]);
  const t = s.threads;
  const m = s.memory;
  const cmd = `node dist/bench/route-table.js --record${s.quick ? " --quick" : ""}${
    s.rounds !== 3 ? ` --rounds ${s.rounds}` : ""
  }`;
  return [
    `### ${s.date} (${s.rounds} rounds${s.quick ? ", quick" : ""}): \`${cmd}\``,
    "",
    mdTable(
      [
        "routes",
        "native ns/lookup",
        "fallback ns/lookup",
        "fallback ÷ native",
        "native ns/lookup, Zipf",
        "fallback ns/lookup, Zipf",
        "native new reg/s",
        "fallback new reg/s",
        "native refresh reg/s",
        "fallback refresh reg/s",
      ],
      rows,
      ["right", "right", "right", "right", "right", "right", "right", "right", "right", "right"],
    ),
    "",
    `One dependent load from DRAM (pointer chase over 128 MiB, same run): ${fmtNum(s.dramNs, 0)} ns. A uniformly random lookup at 1M routes needs at least two (the route record with its key, then the endpoint's in-flight counter).`,
    "",
    `Memory at ${fmtRate(m.routes)} routes (RSS delta ÷ routes after GC; V8 heap delta for reference):`,
    "",
    mdTable(
      ["", "RSS bytes/route", "V8 heap bytes/route"],
      [
        ["native", fmtNum(m.native.rssBytesPerRoute, 0), fmtNum(m.native.heapBytesPerRoute, 0)],
        ["fallback", fmtNum(m.fallback.rssBytesPerRoute, 0), fmtNum(m.fallback.heapBytesPerRoute, 0)],
        ["fallback ÷ native", fmtRatio(m.fallback.rssBytesPerRoute / m.native.rssBytesPerRoute), ""],
      ],
      ["left", "right", "right"],
    ),
    "",
    `2 worker threads looking up ${fmtRate(t.routes)} routes while the main thread churns ~${fmtRate(
      t.native.updatesPerSec,
    )} updates/s (native: applied once to the shared table; fallback: posted to each worker, which applies it to its own table):`,
    "",
    mdTable(
      ["", "ns/lookup in the loop (wall)", "process CPU ns per lookup", "lookups/s, both workers"],
      [
        [
          "native",
          fmtNum(t.native.lookupNs, 0),
          fmtNum(t.native.cpuNsPerLookup, 0),
          fmtRate(t.native.lookupsPerSec),
        ],
        [
          "fallback",
          fmtNum(t.fallback.lookupNs, 0),
          fmtNum(t.fallback.cpuNsPerLookup, 0),
          fmtRate(t.fallback.lookupsPerSec),
        ],
        [
          "fallback ÷ native",
          fmtRatio(t.fallback.lookupNs / t.native.lookupNs),
          fmtRatio(t.fallback.cpuNsPerLookup / t.native.cpuNsPerLookup),
          fmtRatio(t.fallback.lookupsPerSec / t.native.lookupsPerSec),
        ],
      ],
      ["left", "right", "right", "right"],
    ),
  ].join("\n");
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`route-table bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
} else {
  workerMain();
}
