// The router benchmark: Kiln's router against nginx, HAProxy and the backend alone, same
// backend and load generator, cases interleaved over rounds; reports medians of req/s, p99
// and each proxy's CPU per request, and the ratios the router's targets are stated in.
// Run: node dist/bench/router.js [--json] [--rounds N] [--duration S] [--cases a,b] [--quick]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createLogger } from "../kernel/log.js";
import { projectRoot } from "../kernel/paths.js";
import { backendPaths, headersPath, startBackend } from "./lib/backend.js";
import { ensureTools, routerBenchTools, versionOf } from "./lib/debian.js";
import { BenchError } from "./lib/errors.js";
import { type LoadGenerator, pickGenerator } from "./lib/loadgen/index.js";
import { measuredRun, runInterleaved } from "./lib/measure.js";
import { httpGet, httpStatus, setNiceness, stopAll, stopAllOnSignal } from "./lib/procs.js";
import { appendToSection } from "./lib/report.js";
import {
  allCases,
  allFamilies,
  computeRatios,
  markdown,
  type Report,
  type RunRecord,
  summarise,
} from "./lib/router-report.js";
import { directTarget } from "./lib/targets/direct.js";
import {
  addedHeaderNames,
  forwardedHeaderNames,
  type ReferenceHeaders,
  referenceHeaderModes,
} from "./lib/targets/forwarded.js";
import { startHaproxy } from "./lib/targets/haproxy.js";
import { type KilnRole, startKiln } from "./lib/targets/kiln.js";
import { startNginx } from "./lib/targets/nginx.js";
import { type CaseId, makeRouteSet, type Target } from "./lib/targets/types.js";

const log = createLogger("bench.router");

const casePaths: Record<CaseId, string> = {
  tiny: backendPaths.tiny,
  "16k": backendPaths["16k"],
  "1m": backendPaths["1m"],
  routes100k: backendPaths.tiny,
  accesslog: backendPaths.tiny,
};

/** Defaults of the bench (also shown by --help). */
const defaults = {
  rounds: 3,
  durationS: 8,
  warmupS: 1,
  connections: 64,
  threads: 1,
  routes: 100_000,
  spread: 1000,
  nginxWorkers: "1,2",
  haproxyThreads: "1,2",
  kilnArgs: "",
  kilnBin: "bin/kiln.js",
  kilnAccessLog: "--access-log {file}",
  referenceHeaders: "kiln" as ReferenceHeaders,
  results: "bench/RESULTS.md",
};

const usage = `node dist/bench/router.js [options]
  --json                 print the JSON report on stdout instead of the Markdown table
  --json-file F          also write the JSON report (every run) to F
  --rounds N             interleaved rounds (default ${defaults.rounds}; medians over rounds)
  --duration S           seconds per measured run (default ${defaults.durationS})
  --warmup S             unmeasured seconds before each run (default ${defaults.warmupS})
  --cases a,b            of ${allCases.join(",")} (default all)
  --proxies a,b          of ${allFamilies.join(",")} (default all)
  --quick                1 round of 2 s, 0.5 s warm-up (a smoke run)
  --connections N        load connections (default ${defaults.connections}); --threads N load threads (default ${defaults.threads})
  --generator G          auto (wrk when installed, else autocannon), wrk or autocannon
  --routes N             routes registered in the table case (default ${defaults.routes})
  --spread N             hosts the table case's load spreads over (default ${defaults.spread})
  --nginx-workers L      worker counts to run (default ${defaults.nginxWorkers}); --haproxy-threads L (default ${defaults.haproxyThreads})
  --kiln-bin F           the \`kiln\` entry script to run as \`F router ...\` (default ${defaults.kilnBin})
  --kiln-args "A B"      extra arguments for every \`kiln router\` (e.g. "--threads 2")
  --kiln-base-bin F      also run another build of Kiln (its \`kiln\` entry script, e.g. a worktree of the
                         last release) interleaved with this one: a before/after run, reported as
                         Kiln ÷ base within each round
  --kiln-base-label L    what to call that build in the report (default: its git commit)
  --reference-headers M  kiln: nginx and HAProxy add the request headers Kiln adds (X-Forwarded-*,
                         X-Request-Start, X-Vcap-Request-Id, traceparent, X-CF-*), so the backend gets
                         the same request from every proxy; none: their plain config (default ${defaults.referenceHeaders})
  --kiln-access-log "A"  router arguments that turn the access log on; {file} is replaced (default "${defaults.kilnAccessLog}")
  --nice N               run backend, proxies and load generator at nice N (e.g. -10 as root on a busy box; default 0)
  --setup-only           install what is missing (as root), say what is there, and exit
  --no-install           do not apt-get missing tools (wrk, nginx-light, haproxy)
  --write-results [F]    append a dated section to the router section of F (default ${defaults.results})
`;

function die(msg: string): never {
  throw new BenchError("KILN_BENCH_BAD_ARGS", `${msg}\n\n${usage}`);
}

function parseList<T extends string>(value: string | undefined, allowed: readonly T[], what: string): T[] {
  if (value === undefined || value === "") return [...allowed];
  const out: T[] = [];
  for (const v of value.split(",")) {
    const s = v.trim() as T;
    if (!allowed.includes(s)) die(`unknown ${what} "${s}"`);
    out.push(s);
  }
  return out;
}

function positive(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) die(`${what} must be a positive number, got "${value}"`);
  return n;
}

function counts(value: string): number[] {
  return value
    .split(",")
    .filter((s) => s.trim() !== "")
    .map((s) => positive(s, 1, "a worker/thread count"));
}

function niceValue(value: string | undefined): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < -20 || n > 19)
    die(`--nice must be an integer from -20 to 19, got "${value}"`);
  return n;
}

const split = (s: string): string[] => s.split(" ").filter((x) => x !== "");

function parseBenchArgs(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: false,
    options: {
      json: { type: "boolean", default: false },
      "json-file": { type: "string" },
      rounds: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      cases: { type: "string" },
      proxies: { type: "string" },
      quick: { type: "boolean", default: false },
      connections: { type: "string" },
      threads: { type: "string" },
      generator: { type: "string", default: "auto" },
      routes: { type: "string" },
      spread: { type: "string" },
      "nginx-workers": { type: "string", default: defaults.nginxWorkers },
      "haproxy-threads": { type: "string", default: defaults.haproxyThreads },
      "kiln-args": { type: "string", default: defaults.kilnArgs },
      "kiln-bin": { type: "string", default: defaults.kilnBin },
      "kiln-base-bin": { type: "string" },
      "kiln-base-label": { type: "string" },
      "kiln-access-log": { type: "string", default: defaults.kilnAccessLog },
      "reference-headers": { type: "string", default: defaults.referenceHeaders },
      "no-install": { type: "boolean", default: false },
      "setup-only": { type: "boolean", default: false },
      nice: { type: "string" },
      "write-results": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
}

function parseOptions(argv: string[]) {
  // `--write-results` may come without a file (give it an empty value parseArgs accepts), and
  // `--nice -10` would read as an option (join a negative value to its flag).
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const next = argv[i + 1];
    if (a === "--write-results" && (next === undefined || next.startsWith("--")))
      args.push("--write-results=");
    else if (a === "--nice" && next !== undefined && /^-\d+$/.test(next)) {
      args.push(`--nice=${next}`);
      i++;
    } else args.push(a);
  }
  let parsed: ReturnType<typeof parseBenchArgs>;
  try {
    parsed = parseBenchArgs(args);
  } catch (err) {
    die(err instanceof Error ? err.message : String(err));
  }
  const { values } = parsed;
  const quick = values.quick === true;
  const generator = values.generator as string;
  if (!["auto", "wrk", "autocannon"].includes(generator)) die(`unknown generator "${generator}"`);
  const referenceHeaders = values["reference-headers"] as ReferenceHeaders;
  if (!referenceHeaderModes.includes(referenceHeaders))
    die(`--reference-headers must be one of ${referenceHeaderModes.join(", ")}, got "${referenceHeaders}"`);
  return {
    help: values.help === true,
    json: values.json === true,
    jsonFile: values["json-file"],
    rounds: Math.round(positive(values.rounds, quick ? 1 : defaults.rounds, "--rounds")),
    durationS: Math.round(positive(values.duration, quick ? 2 : defaults.durationS, "--duration")),
    warmupS: values.warmup === "0" ? 0 : positive(values.warmup, quick ? 0.5 : defaults.warmupS, "--warmup"),
    cases: parseList(values.cases, allCases, "case"),
    families: parseList(values.proxies, allFamilies, "proxy"),
    connections: Math.round(positive(values.connections, defaults.connections, "--connections")),
    threads: Math.round(positive(values.threads, defaults.threads, "--threads")),
    generator: generator as "auto" | "wrk" | "autocannon",
    routes: Math.round(positive(values.routes, defaults.routes, "--routes")),
    spread: Math.round(positive(values.spread, defaults.spread, "--spread")),
    nginxWorkers: counts(values["nginx-workers"] as string),
    haproxyThreads: counts(values["haproxy-threads"] as string),
    kilnArgs: split(values["kiln-args"] as string),
    kilnBin: values["kiln-bin"] as string,
    kilnBaseBin: values["kiln-base-bin"] as string | undefined,
    kilnBaseLabel: values["kiln-base-label"] as string | undefined,
    kilnAccessLog: split(values["kiln-access-log"] as string),
    referenceHeaders,
    install: values["no-install"] !== true,
    setupOnly: values["setup-only"] === true,
    nice: niceValue(values.nice),
    writeResults: values["write-results"],
  };
}

type Options = ReturnType<typeof parseOptions>;

const SECTION = "Router (bench/router.ts)";
const SECTION_INTRO = `Kiln's router against nginx and HAProxy (installed from Debian by the bench, upstream
keep-alive, best of 1 and 2 workers/threads) and the backend alone, one Node \`http\` backend, one
load generator, all cases interleaved over rounds. CPU µs/req is user+sys of the proxy's whole
process tree over the run ÷ requests (backend and load generator not counted); backend µs/req is
the backend's own, which grows with what a proxy adds to each request.`;

async function main(argv: string[]): Promise<number> {
  const o: Options = parseOptions(argv);
  if (o.help) {
    process.stdout.write(usage);
    return 0;
  }
  const tmp = mkdtempSync(join(tmpdir(), "kiln-bench-router-"));
  const cleanup = (): void => rmSync(tmp, { recursive: true, force: true });
  stopAllOnSignal(cleanup);
  const notes: string[] = [];
  const skipped: string[] = [];
  const targets: Target[] = [];
  try {
    const tools = ensureTools(routerBenchTools, o.install);
    if (o.setupOnly) {
      for (const [cmd, path] of tools.found) process.stdout.write(`${cmd}: ${path}\n`);
      for (const t of tools.missing)
        process.stdout.write(`${t.command}: missing (Debian package ${t.pkg})\n`);
      for (const n of tools.notes) process.stdout.write(`${n}\n`);
      return tools.missing.length === 0 ? 0 : 1;
    }
    setNiceness(o.nice);
    for (const n of tools.notes) log.warn("setup", { note: n });
    const gen: LoadGenerator = pickGenerator(o.generator);
    if (o.generator === "wrk" && gen.name !== "wrk") die("--generator wrk but wrk is not installed");
    const versions: Record<string, string> = {};
    const routes = makeRouteSet(o.routes, o.spread);
    const backend = await startBackend();
    log.info("backend", { port: backend.port, generator: gen.version });
    if (o.families.includes("direct")) targets.push(directTarget(backend.port, routes));
    const nginxBin = tools.found.get("nginx");
    if (o.families.includes("nginx")) {
      if (nginxBin === undefined) skipped.push("nginx: not installed");
      else {
        const nginxVersion = versionOf(nginxBin, ["-v"]).replace("nginx version: nginx/", "nginx ");
        versions.nginx = nginxVersion;
        for (const w of o.nginxWorkers) {
          await startOrSkip(targets, skipped, `nginx ${w} worker(s)`, () =>
            startNginx({
              bin: nginxBin,
              version: nginxVersion,
              workers: w,
              backendPort: backend.port,
              routes,
              dir: join(tmp, `nginx-${w}w`),
              headers: o.referenceHeaders,
            }),
          );
        }
      }
    }
    const haproxyBin = tools.found.get("haproxy");
    if (o.families.includes("haproxy")) {
      if (haproxyBin === undefined) skipped.push("HAProxy: not installed");
      else {
        const v = /version (\d+\.\d+\.\d+)/.exec(versionOf(haproxyBin, ["-v"]));
        const haproxyVersion = `HAProxy ${v?.[1] ?? "?"}`;
        versions.haproxy = haproxyVersion;
        for (const th of o.haproxyThreads) {
          await startOrSkip(targets, skipped, `HAProxy ${th} thread(s)`, () =>
            startHaproxy({
              bin: haproxyBin,
              version: haproxyVersion,
              threads: th,
              backendPort: backend.port,
              routes,
              dir: join(tmp, `haproxy-${th}t`),
              headers: o.referenceHeaders,
            }),
          );
        }
      }
    }
    const commit = gitCommit();
    if (o.families.includes("kiln")) {
      const roles: KilnRole[] = [];
      if (o.cases.some((c) => c === "tiny" || c === "16k" || c === "1m")) roles.push("single");
      if (o.cases.includes("routes100k")) roles.push("table");
      if (o.cases.includes("accesslog")) roles.push("accesslog");
      try {
        targets.push(
          await startKiln(
            {
              backendPort: backend.port,
              routes,
              dir: join(tmp, "kiln"),
              extraArgs: o.kilnArgs,
              kilnBin: resolve(projectRoot, o.kilnBin),
              accessLogArgs: o.kilnAccessLog,
              roles,
              log: (line) => log.info("kiln", { note: line }),
            },
            `Kiln router ${commit}${o.kilnArgs.length > 0 ? ` (${o.kilnArgs.join(" ")})` : ""}`,
          ),
        );
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        skipped.push(`Kiln router: could not start: ${briefly(msg)}`);
        log.warn("kiln_skipped", { reason: msg });
      }
    }
    if (o.families.includes("kiln") && o.kilnBaseBin !== undefined) {
      const baseBin = resolve(projectRoot, o.kilnBaseBin);
      const baseLabel = o.kilnBaseLabel ?? gitCommit(dirname(dirname(baseBin)));
      const roles: KilnRole[] = [];
      if (o.cases.some((c) => c === "tiny" || c === "16k" || c === "1m")) roles.push("single");
      if (o.cases.includes("routes100k")) roles.push("table");
      if (o.cases.includes("accesslog")) roles.push("accesslog");
      await startOrSkip(targets, skipped, "Kiln base", () =>
        startKiln(
          {
            backendPort: backend.port,
            routes,
            dir: join(tmp, "kiln-base"),
            extraArgs: o.kilnArgs,
            kilnBin: baseBin,
            family: "kiln-base",
            accessLogArgs: o.kilnAccessLog,
            roles,
            log: (line) => log.info("kiln_base", { note: line }),
          },
          `Kiln router ${baseLabel} (base)`,
        ),
      );
    }
    if (o.cases.includes("routes100k")) {
      notes.push(
        `Table case: nginx and HAProxy route by a ${o.routes}-entry exact host map (nginx \`map $host\`, HAProxy \`map_str\`; unknown host → 404), Kiln by ${o.routes} routes registered over NATS; ${
          gen.name === "wrk"
            ? `the load picks one of ${o.spread} of those hosts at random per request (wrk Lua).`
            : `each autocannon connection walks ${o.spread} of those hosts in turn.`
        }`,
      );
    }
    notes.push(
      gen.name === "wrk"
        ? "Every case (single-host ones too) sends its requests through the same wrk Lua `request` function, so the generator's own cost is the same in all cases."
        : "autocannon runs in its own process with a prebuilt request list per connection (one entry, or one per host).",
    );
    notes.push(...(await headerNotes(targets, o.referenceHeaders)));
    // Every endpoint must answer 200 before anything is measured.
    const items: { c: CaseId; t: Target }[] = [];
    for (const c of o.cases) {
      for (const t of targets) {
        const ep = t.endpoint(c);
        if (ep === undefined) continue;
        const status = await httpStatus(ep.port, casePaths[c], ep.hosts[0] ?? "localhost");
        if (status !== 200) {
          skipped.push(`${t.id} × ${c}: answered ${status} to a probe`);
          continue;
        }
        items.push({ c, t });
      }
    }
    log.info("plan", {
      rounds: o.rounds,
      runsPerRound: items.length,
      estimateS: Math.round(items.length * o.rounds * (o.durationS + o.warmupS + 0.5)),
    });
    const loadStart = loadavg()[0] ?? Number.NaN;
    const records = await runInterleaved(
      items,
      o.rounds,
      async ({ c, t }, round, position): Promise<RunRecord> => {
        const ep = t.endpoint(c);
        const rec: RunRecord = { round, position, case: c, target: t.id };
        if (ep === undefined) return rec;
        const spec = {
          port: ep.port,
          path: casePaths[c],
          hosts: ep.hosts,
          connections: o.connections,
          threads: o.threads,
          durationS: o.durationS,
          timeoutS: 5,
        };
        try {
          await t.prepare?.(c);
          if (o.warmupS > 0) await gen.run({ ...spec, durationS: Math.max(1, Math.round(o.warmupS)) });
          rec.result = await measuredRun(gen, spec, t.cpuRoots(c), [backend.proc.pid]);
          const r = rec.result;
          log.info("run", {
            round,
            case: c,
            target: t.id,
            rps: Math.round(r.load.rps),
            p99Ms: r.load.latencyMs.p99,
            cpuUsPerReq: r.cpu === undefined ? null : Number(r.cpu.totalUsPerReq.toFixed(1)),
            backendUsPerReq: r.backendUsPerReq === undefined ? null : Number(r.backendUsPerReq.toFixed(1)),
            errors: r.load.errors,
            non2xx: r.load.non2xx,
          });
        } catch (err) {
          rec.error = err instanceof Error ? err.message : String(err);
          log.error("run_failed", { round, case: c, target: t.id, err });
        }
        return rec;
      },
    );
    for (const t of targets) notes.push(...(t.describe?.() ?? []));
    if (o.nice !== 0) {
      notes.push(
        `Backend, proxies and load generator ran at nice ${o.nice}, ahead of other work on the box (same priority for all of them).`,
      );
    }
    const summary = summarise(records, targets, o.cases);
    const report: Report = {
      date: new Date().toISOString(),
      command: `node dist/bench/router.js ${reproduceArgs(argv).join(" ")}`.trim(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? "?",
        node: process.version,
        kilnCommit: commit,
        loadStart,
        loadEnd: loadavg()[0] ?? Number.NaN,
      },
      generator: { name: gen.name, version: gen.version, connections: o.connections, threads: o.threads },
      settings: {
        rounds: o.rounds,
        durationS: o.durationS,
        warmupS: o.warmupS,
        routes: o.routes,
        spread: o.spread,
      },
      versions,
      notes,
      skipped,
      runs: records,
      summary,
      ratios: computeRatios(summary, o.cases, records),
    };
    const md = markdown(report);
    const json = `${JSON.stringify(report, null, 2)}\n`;
    process.stdout.write(o.json ? json : md);
    if (o.jsonFile !== undefined) writeFileSync(resolve(o.jsonFile), json);
    if (o.writeResults !== undefined) {
      const file = resolve(projectRoot, o.writeResults === "" ? defaults.results : o.writeResults);
      if (!appendToSection(file, SECTION, SECTION_INTRO, md)) {
        log.warn("results_not_formatted", { file, hint: "run npx biome format --write on it" });
      }
      log.info("results_written", { file });
    }
    return records.some((r) => r.error !== undefined) ? 1 : 0;
  } finally {
    for (const t of targets.reverse()) await t.stop().catch(() => {});
    await stopAll();
    cleanup();
  }
}

/** Starts a reference proxy; a failure skips it (with the reason) instead of ending the run. */
async function startOrSkip(
  targets: Target[],
  skipped: string[],
  what: string,
  start: () => Promise<Target>,
): Promise<void> {
  try {
    targets.push(await start());
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    skipped.push(`${what}: could not start: ${briefly(msg)}`);
    log.warn("reference_skipped", { what, reason: msg });
  }
}

/** The first line of an error and the first line of its output naming an error, for the report. */
function briefly(msg: string): string {
  const lines = msg.split("\n").map((l) => l.trim());
  const cause = lines.slice(1).find((l) => /error|alert|emerg|fatal/i.test(l));
  return cause === undefined ? (lines[0] ?? "") : `${lines[0]} ${cause}`;
}

/** The command-line options that change what is measured (output destinations left out). */
function reproduceArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith("--write-results") || a.startsWith("--json-file")) {
      const next = argv[i + 1];
      if (!a.includes("=") && next !== undefined && !next.startsWith("--")) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/**
 * What each proxy adds to the request on the way to the backend, as the backend saw it. In
 * `kiln` mode a reference that adds a different set is a bench fault: the backend's share of
 * the cores would differ between proxies, and so would their req/s and p99.
 */
async function headerNotes(targets: readonly Target[], mode: ReferenceHeaders): Promise<string[]> {
  const added = new Map<string, string[]>();
  for (const t of targets) {
    const ep = t.endpoint("tiny");
    if (ep === undefined || t.family === "direct") continue;
    const host = ep.hosts[0] ?? "localhost";
    const r = await httpGet(ep.port, headersPath, host);
    // A target that does not answer is reported by the probe before the runs, not here.
    if (r.status !== 200) continue;
    let seen: string[] = [];
    try {
      seen = JSON.parse(r.body) as string[];
    } catch {
      seen = [];
    }
    // What a probe sends (Node's http client): host and connection only.
    added.set(t.id, addedHeaderNames(seen, ["host", "connection"]));
  }
  const text = (names: readonly string[]): string => (names.length === 0 ? "none" : names.join(", "));
  if (mode === "none")
    return [...added].map(([id, names]) => `Headers ${id} adds on the way to the backend: ${text(names)}.`);
  const kiln = [...forwardedHeaderNames].sort().join(",");
  for (const [id, names] of added) {
    if (names.join(",") !== kiln) {
      throw new BenchError(
        "KILN_BENCH_HEADERS_DIFFER",
        `${id} adds [${text(names)}] to the backend's request, not Kiln's [${forwardedHeaderNames.join(", ")}]`,
      );
    }
  }
  return [
    `Every proxy (${[...added.keys()].join(", ")}) hands the backend the same request: the backend saw ${text(forwardedHeaderNames)} added by each (--reference-headers kiln).`,
  ];
}

/** The checkout's commit; KILN_BENCH_COMMIT names it when running from a copy without .git. */
function gitCommit(dir?: string): string {
  const given = process.env.KILN_BENCH_COMMIT;
  if (dir === undefined && given !== undefined && given !== "") return given;
  const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: dir ?? projectRoot, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "unknown";
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  async (err: unknown) => {
    await stopAll();
    process.stderr.write(`bench/router: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
