// Bench of the router's upstream hop alone: the same minimal uWS front (1 and 2 threads)
// proxying to one Node `http` backend through the native upstream client or a lean
// JavaScript client on `net` sockets, against nginx (1 and 2 workers) and the front
// answering by itself, in interleaved rounds with wrk; CPU µs per request from /proc.
// Usage: node dist/bench/upstream.js [--json] [--duration S] [--rounds N] [--cases tiny,16k,1m]
//        [--connections N] [--only id,id] [--json-file path] [--results bench/RESULTS.md]
//        [--nice=-10] (the bench and everything it starts inherit the priority: less noise from
//        other work on the box; negative values need root)
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { compiledSibling } from "../kernel/paths.js";
import { backendPaths, startBackend } from "./lib/backend.js";
import { cpuBetween, cpuPerRequest, sampleCpu } from "./lib/cpu.js";
import { ensureTools, versionOf } from "./lib/debian.js";
import { pickGenerator } from "./lib/loadgen/index.js";
import { freePort, startProcess, stopAll, stopAllOnSignal, waitForPort } from "./lib/procs.js";
import { appendToSection, formatMarkdown } from "./lib/report.js";
import { interleave, median } from "./lib/stats.js";
import { startNginx } from "./lib/targets/nginx.js";
import { makeRouteSet } from "./lib/targets/types.js";

type CaseName = keyof typeof backendPaths;

const RESULTS_HEADING = "Upstream hop (bench/upstream.ts)";
const RESULTS_INTRO = `The router's upstream hop alone: one minimal uWS front (1 or 2 threads on one port)
forwarding to one Node \`http\` backend through the native upstream client (native/src/upstream.cc)
or a lean JavaScript keep-alive client on \`net\` sockets written in the bench, against nginx (1 and
2 workers, upstream keep-alive) and the front answering by itself (its own cost). wrk -t1 -c64
keep-alive, cases interleaved over rounds, medians. CPU µs/req = user+sys of the proxy's process
tree over the run ÷ requests.`;

interface Proxy {
  id: string;
  label: string;
  port: number;
  /** Process trees whose CPU is the proxy's; empty for the direct case. */
  cpuRoots: number[];
}

interface Sample {
  rps: number;
  p99: number;
  cpuUs: number;
  userUs: number;
  sysUs: number;
  errors: number;
}

interface Row {
  target: string;
  label: string;
  case: CaseName;
  rps: number;
  p99Ms: number;
  cpuUsPerReq: number;
  userUs: number;
  sysUs: number;
  rpsRuns: number[];
  errors: number;
}

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    duration: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
    cases: { type: "string", default: "tiny,16k" },
    connections: { type: "string", default: "64" },
    only: { type: "string", default: "" },
    "json-file": { type: "string", default: "" },
    results: { type: "string", default: "" },
    nice: { type: "string", default: "0" },
  },
});
const durationS = Number(args.duration);
const rounds = Number(args.rounds);
const cases = (args.cases ?? "tiny").split(",") as CaseName[];
const connections = Number(args.connections);
const nice = Number(args.nice);
const only = new Set((args.only ?? "").split(",").filter((s) => s !== ""));

function log(line: string): void {
  process.stderr.write(`bench upstream: ${line}\n`);
}

async function startFront(mode: string, threads: number, backendPort: number): Promise<Proxy> {
  const port = await freePort();
  const proc = startProcess(`${mode}-${threads}t`, process.execPath, [
    compiledSibling(import.meta.url, "upstream-proxy.js"),
    mode,
    String(threads),
    String(port),
    String(backendPort),
  ]);
  await waitForPort(port, proc);
  const what = {
    native: "uWS + native upstream",
    nativeh: "uWS + native upstream, writeHeader per field",
    js: "uWS + JS client on net",
    front: "uWS answering itself",
  }[mode];
  return {
    id: `${mode}-${threads}t`,
    label: `${what} (${threads} thread${threads > 1 ? "s" : ""})`,
    port,
    cpuRoots: [proc.pid],
  };
}

async function main(): Promise<void> {
  stopAllOnSignal();
  if (nice !== 0) setPriority(nice);
  const tools = ensureTools(
    [
      { command: "wrk", pkg: "wrk" },
      { command: "nginx", pkg: "nginx-light" },
    ],
    true,
  );
  for (const n of tools.notes) log(n);
  const gen = pickGenerator("auto");
  const loadStart = loadavg()[0] ?? Number.NaN;
  const backend = await startBackend();
  const proxies: Proxy[] = [{ id: "direct", label: "backend direct", port: backend.port, cpuRoots: [] }];
  const want = (id: string): boolean => only.size === 0 || only.has(id);
  for (const [mode, threads] of [
    ["front", 1],
    ["native", 1],
    ["native", 2],
    ["nativeh", 1],
    ["js", 1],
    ["js", 2],
  ] as const) {
    if (want(`${mode}-${threads}t`)) proxies.push(await startFront(mode, threads, backend.port));
  }
  const nginxBin = tools.found.get("nginx");
  const dirs: string[] = [];
  if (nginxBin !== undefined) {
    const version = versionOf(nginxBin, ["-v"]).replace("nginx version: ", "");
    for (const workers of [1, 2]) {
      if (!want(`nginx-${workers}w`)) continue;
      const dir = mkdtempSync(join(tmpdir(), "kiln-upstream-nginx-"));
      dirs.push(dir);
      const t = await startNginx({
        bin: nginxBin,
        version,
        workers,
        backendPort: backend.port,
        routes: makeRouteSet(1, 1),
        dir,
        // The hop under test forwards the client's headers only; so does nginx here.
        headers: "none",
      });
      const ep = t.endpoint("tiny");
      if (ep !== undefined)
        proxies.push({ id: t.id, label: `nginx ${t.label}`, port: ep.port, cpuRoots: t.cpuRoots("tiny") });
    }
  }
  const chosen = proxies.filter((p) => want(p.id));
  log(`${gen.name} ${gen.version}; ${chosen.map((p) => p.id).join(", ")}; cases ${cases.join(", ")}`);

  const run = async (p: Proxy, c: CaseName, seconds: number): Promise<Sample> => {
    const before = sampleCpu(p.cpuRoots);
    const r = await gen.run({
      port: p.port,
      path: backendPaths[c],
      hosts: ["app.bench.kiln"],
      connections,
      threads: 1,
      durationS: seconds,
      timeoutS: 5,
    });
    const cpu = cpuPerRequest(cpuBetween(before, sampleCpu(p.cpuRoots)), r.requests);
    return {
      rps: r.rps,
      p99: r.latencyMs.p99,
      cpuUs: cpu.totalUs,
      userUs: cpu.userUs,
      sysUs: cpu.sysUs,
      errors: r.errors + r.non2xx,
    };
  };

  for (const p of chosen) await run(p, "tiny", 1); // warm-up: JIT, pools, connections
  const samples = new Map<string, Sample[]>();
  const plan = interleave(chosen, rounds);
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      for (const p of plan[r] ?? []) {
        const s = await run(p, c, durationS);
        const key = `${p.id}|${c}`;
        const list = samples.get(key) ?? [];
        list.push(s);
        samples.set(key, list);
        log(
          `round ${r + 1} ${c} ${p.id}: ${s.rps.toFixed(0)} req/s, p99 ${s.p99.toFixed(2)} ms, ${s.cpuUs.toFixed(1)} µs/req${s.errors ? `, ${s.errors} errors` : ""}`,
        );
      }
    }
  }

  const rows: Row[] = [];
  for (const c of cases) {
    for (const p of chosen) {
      const list = samples.get(`${p.id}|${c}`) ?? [];
      rows.push({
        target: p.id,
        label: p.label,
        case: c,
        rps: median(list.map((s) => s.rps)),
        p99Ms: median(list.map((s) => s.p99)),
        cpuUsPerReq: median(list.map((s) => s.cpuUs)),
        userUs: median(list.map((s) => s.userUs)),
        sysUs: median(list.map((s) => s.sysUs)),
        rpsRuns: list.map((s) => Math.round(s.rps)),
        errors: list.reduce((n, s) => n + s.errors, 0),
      });
    }
  }
  const command = `node dist/bench/upstream.js --duration ${durationS} --rounds ${rounds} --cases ${cases.join(",")} --connections ${connections}${nice ? ` --nice=${nice}` : ""}${only.size ? ` --only ${[...only].join(",")}` : ""}`;
  const meta = {
    date: new Date().toISOString(),
    command,
    generator: `${gen.name} ${gen.version} -t1 -c${connections} -d${durationS}s`,
    node: process.version,
    kiln: spawnSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout?.trim() ?? "?",
    rounds,
  };
  if (args["json-file"]) writeFileSync(args["json-file"], `${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
  if (args.results) {
    appendToSection(
      args.results,
      RESULTS_HEADING,
      RESULTS_INTRO,
      `### ${meta.date.slice(0, 16).replace("T", " ")} UTC\n\n${markdown(rows, meta)}\n\n1-min load average ${loadStart.toFixed(2)} at the start, ${loadavg()[0]?.toFixed(2)} at the end.`,
    );
    formatMarkdown(args.results);
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
  } else {
    process.stdout.write(`${markdown(rows, meta)}\n`);
  }
  await stopAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

function markdown(
  rows: Row[],
  meta: { date: string; command: string; generator: string; node: string; kiln: string },
): string {
  const out: string[] = [];
  out.push(`${meta.date} · ${meta.generator} · Node ${meta.node} · Kiln ${meta.kiln}`, "");
  out.push(`Reproduce: \`node scripts/setup.mjs --build && ${meta.command}\``, "");
  for (const c of cases) {
    const list = rows.filter((r) => r.case === c);
    const nginx = Math.max(...list.filter((r) => r.target.startsWith("nginx")).map((r) => r.rps));
    out.push(`Case ${c}:`, "");
    out.push("| target | req/s (median) | runs | vs best nginx | p99 ms | CPU µs/req (user / sys) |");
    out.push("|---|---:|---|---:|---:|---:|");
    for (const r of list) {
      const vs = Number.isFinite(nginx) && nginx > 0 ? `${(r.rps / nginx).toFixed(2)}×` : "–";
      const cpu =
        r.target === "direct"
          ? "–"
          : `${r.cpuUsPerReq.toFixed(1)} (${r.userUs.toFixed(1)} / ${r.sysUs.toFixed(1)})`;
      out.push(
        `| ${r.label} | ${r.rps.toFixed(0)} | ${r.rpsRuns.join(", ")} | ${vs} | ${r.p99Ms.toFixed(2)} | ${cpu} |${r.errors ? ` ${r.errors} errors` : ""}`,
      );
    }
    out.push("");
  }
  return out.join("\n");
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench upstream: ${(err as Error).stack ?? String(err)}\n`);
  await stopAll();
  process.exit(1);
});
