// The pure parts of the bench helpers: wrk output parsing, medians and the interleaved
// order, Markdown section writing, and CPU accounting of a real child process tree.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import {
  clockTicks,
  cpuBetween,
  cpuPerRequest,
  parseProcStat,
  processTree,
  sampleCpu,
} from "../../bench/lib/cpu.js";
import { parseWrkJson, parseWrkText, parseWrkTime, wrkScript } from "../../bench/lib/loadgen/wrk.js";
import { type RunResult, runInterleaved } from "../../bench/lib/measure.js";
import { sleep, startProcess, stopAll } from "../../bench/lib/procs.js";
import { appendToSection, fmtRate, mdTable } from "../../bench/lib/report.js";
import {
  best,
  computeRatios,
  markdown,
  type Report,
  type RunRecord,
  summarise,
} from "../../bench/lib/router-report.js";
import { interleave, median, range, ratio, rotate } from "../../bench/lib/stats.js";
import { listeningInfo } from "../../bench/lib/targets/kiln.js";
import { type CaseId, type Family, makeRouteSet, type Target } from "../../bench/lib/targets/types.js";
import { guardChildren } from "../helpers/children.js";

guardChildren(t);

const wrkText = `Running 8s test @ http://127.0.0.1:41235/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms  512.33us  14.33ms   90.12%
    Req/Sec    32.10k     1.20k   34.00k    80.00%
  Latency Distribution
     50%    1.95ms
     75%    2.10ms
     90%    2.40ms
     99%    4.12ms
  255432 requests in 8.00s, 30.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  31929.00
Transfer/sec:      3.77MB
`;

t.test("wrk times", async (t) => {
  t.equal(parseWrkTime("2.01ms"), 2.01);
  t.equal(parseWrkTime("500.00us"), 0.5);
  t.equal(parseWrkTime("1.50s"), 1500);
  t.equal(parseWrkTime("2.00m"), 120_000);
  t.ok(Number.isNaN(parseWrkTime("fast")));
});

t.test("wrk --latency text output", async (t) => {
  const r = parseWrkText(wrkText);
  if (r === undefined) throw new Error("no result");
  t.equal(r.requests, 255432);
  t.equal(r.durationS, 8);
  t.equal(r.rps, 31929);
  t.equal(r.latencyMs.p50, 1.95);
  t.equal(r.latencyMs.p90, 2.4);
  t.equal(r.latencyMs.p99, 4.12);
  t.equal(r.latencyMs.mean, 2.01);
  t.equal(r.latencyMs.max, 14.33);
  t.equal(r.errors, 3);
  t.equal(r.non2xx, 12);
  t.equal(Math.round(r.bytes), Math.round(30.2 * 1024 * 1024));
  t.equal(parseWrkText("wrk: connection refused"), undefined);
});

t.test("wrk text without --latency or errors", async (t) => {
  const plain = wrkText
    .split("\n")
    .filter((l) => !/%\s+\d|Distribution|Socket|Non-2xx/.test(l))
    .join("\n");
  const r = parseWrkText(plain);
  t.equal(r?.requests, 255432);
  t.ok(Number.isNaN(r?.latencyMs.p99));
  t.equal(r?.errors, 0);
  t.equal(r?.non2xx, 0);
});

t.test("wrk Lua done() JSON line wins and converts µs to ms", async (t) => {
  const line =
    'WRK_JSON {"requests":1000,"duration_us":2000000,"bytes":4096,' +
    '"errors":{"connect":1,"read":0,"write":0,"status":7,"timeout":2},' +
    '"latency_us":{"mean":1500.5,"max":9000,"p50":1400,"p90":2000,"p99":4500}}';
  const r = parseWrkJson(`${wrkText}${line}\n`);
  if (r === undefined) throw new Error("no result");
  t.equal(r.rps, 500);
  t.equal(r.durationS, 2);
  t.equal(r.latencyMs.p99, 4.5);
  t.equal(r.latencyMs.mean, 1.5005);
  t.equal(r.errors, 3);
  t.equal(r.non2xx, 7);
  t.equal(parseWrkJson(wrkText), undefined);
  t.equal(parseWrkJson("WRK_JSON {broken"), undefined);
});

t.test("wrk Lua script lists every host and prints the marker", async (t) => {
  const s = wrkScript("/16k", ["a.bench.kiln", "b.bench.kiln"]);
  t.match(s, /"a\.bench\.kiln",\s*"b\.bench\.kiln"/);
  t.match(s, /wrk\.format\("GET", "\/16k"/);
  t.match(s, /WRK_JSON /);
  t.match(s, /latency:percentile\(99\)/);
});

t.test("median, range, ratio", async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(median([5]), 5);
  t.ok(Number.isNaN(median([])));
  t.equal(median([Number.NaN, 1, 3]), 2, "NaN runs are left out");
  t.same(range([3, 9, 1]), { min: 1, max: 9 });
  t.equal(ratio(3, 2), 1.5);
  t.ok(Number.isNaN(ratio(1, 0)));
  t.ok(Number.isNaN(ratio(undefined, 2)));
});

t.test("rotate and interleave", async (t) => {
  t.same(rotate([1, 2, 3, 4], 1), [2, 3, 4, 1]);
  t.same(rotate([1, 2, 3, 4], 5), [2, 3, 4, 1]);
  t.same(rotate([1, 2, 3, 4], -1), [4, 1, 2, 3]);
  t.same(rotate([], 3), []);
  const plan = interleave(["a", "b", "c", "d", "e", "f"], 3);
  t.equal(plan.length, 3);
  t.same(plan[0], ["a", "b", "c", "d", "e", "f"]);
  t.same(plan[1], ["c", "d", "e", "f", "a", "b"]);
  t.same(plan[2], ["e", "f", "a", "b", "c", "d"]);
  for (const round of plan)
    t.same([...round].sort(), ["a", "b", "c", "d", "e", "f"], "every item once per round");
  t.same(interleave(["x"], 2), [["x"], ["x"]]);
});

t.test("route set: requested hosts are spread over the table", async (t) => {
  const r = makeRouteSet(1000, 10);
  t.equal(r.all.length, 1000);
  t.equal(r.requested.length, 10);
  t.equal(new Set(r.all).size, 1000);
  t.equal(r.requested[0], "r000000.bench.kiln");
  t.equal(r.requested[9], "r000900.bench.kiln");
  for (const h of r.requested) t.ok(r.all.includes(h));
});

t.test("Markdown table and numbers", async (t) => {
  t.equal(mdTable(["a", "b"], [["1", "2"]], ["left", "right"]), "| a | b |\n| --- | ---: |\n| 1 | 2 |");
  t.equal(fmtRate(31929), "31.9k");
  t.equal(fmtRate(1234), "1.23k");
  t.equal(fmtRate(812.4), "812");
  t.equal(fmtRate(Number.NaN), "–");
});

t.test("results file: an entry goes under its own section only", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-bench-test-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "RESULTS.md");
  appendToSection(file, "Router (bench/router.ts)", "Intro.", "### first\nrow 1");
  let text = readFileSync(file, "utf8");
  t.match(text, /^# Kiln benchmark results/);
  // Biome may put a blank line after a heading when it formats the file.
  t.match(text, /## Router \(bench\/router\.ts\)\n\nIntro\.\n\n### first\n\n?row 1\n$/);
  // Another bench's section after ours stays where it is and untouched.
  writeFileSync(file, `${text}\n## Route table (bench/route-table.ts)\n\nTheirs.\n`);
  appendToSection(file, "Router (bench/router.ts)", "Intro.", "### second\nrow 2");
  text = readFileSync(file, "utf8");
  const ours = text.indexOf("### second");
  const theirs = text.indexOf("## Route table");
  t.ok(ours > text.indexOf("### first") && ours < theirs, "new entry ends our section");
  t.match(text, /## Route table \(bench\/route-table\.ts\)\n\nTheirs\.\n$/);
  t.equal(text.split("## Router (bench/router.ts)").length, 2, "section heading written once");
});

t.test("/proc/<pid>/stat parsing keeps odd process names", async (t) => {
  const s = parseProcStat("4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 3 4 20 0 1 0");
  t.equal(s?.pid, 4242);
  t.equal(s?.ppid, 17);
  t.equal(s?.comm, "my (odd) name");
  t.equal(s?.utime, 250);
  t.equal(s?.stime, 75);
  t.equal(s?.cutime, 3);
  t.equal(s?.cstime, 4);
  t.equal(parseProcStat("garbage"), undefined);
});

t.test("CPU accounting of a real process tree (parent + busy grandchild)", async (t) => {
  // A parent that starts a child burning CPU until told to stop: the tree of the parent must
  // include the child and its CPU time.
  const burn =
    "const end=Date.now()+400;let x=0;while(Date.now()<end)x+=Math.sqrt(x+1);" +
    "process.stdout.write('done\\n');setInterval(()=>{},1000);";
  const parentCode = `const {spawn}=require('node:child_process');
const c=spawn(process.execPath,['-e',${JSON.stringify(burn)}],{stdio:['ignore','inherit','ignore']});
process.on('SIGTERM',()=>{c.kill('SIGKILL');process.exit(0);});setInterval(()=>{},1000);`;
  const parent = spawn(process.execPath, ["-e", parentCode], { stdio: ["ignore", "pipe", "ignore"] });
  t.teardown(() => {
    parent.kill("SIGTERM");
  });
  const pid = parent.pid;
  if (pid === undefined) throw new Error("no pid");
  const before = sampleCpu([pid]);
  await new Promise<void>((resolve) => {
    parent.stdout?.on("data", (c: Buffer) => {
      if (c.toString().includes("done")) resolve();
    });
  });
  const tree = processTree([pid]);
  t.equal(tree.length, 2, "parent and child are in the tree");
  t.equal(tree[0]?.pid, pid);
  t.equal(tree[1]?.ppid, pid);
  const usage = cpuBetween(before, sampleCpu([pid]));
  t.equal(usage.processes, 2);
  t.ok(usage.userS + usage.sysS > 0, "the busy child's CPU time is counted");
  t.ok(clockTicks() > 0);
  const per = cpuPerRequest({ userS: 0.02, sysS: 0.01, processes: 1 }, 1000);
  t.equal(Math.round(per.userUs), 20);
  t.equal(Math.round(per.sysUs), 10);
  t.equal(Math.round(per.totalUs), 30);
  t.ok(Number.isNaN(cpuPerRequest(usage, 0).totalUs));
  t.same(processTree([999_999_999]), [], "a dead root has an empty tree");
});

t.test("router report: medians per case and proxy, best variant, ratios, Markdown", async (t) => {
  const target = (id: string, family: Family): Target => ({
    id,
    family,
    label: id,
    endpoint: () => undefined,
    cpuRoots: () => [],
    stop: async () => {},
  });
  const targets = [
    target("direct", "direct"),
    target("nginx-1w", "nginx"),
    target("nginx-2w", "nginx"),
    target("kiln", "kiln"),
  ];
  const run = (rps: number, cpuUs: number | undefined, backendUs: number): RunResult => ({
    load: {
      generator: "wrk",
      requests: rps * 8,
      durationS: 8,
      rps,
      latencyMs: { mean: 1, p50: 1, p90: 2, p99: 4, max: 9 },
      errors: 0,
      non2xx: 0,
      bytes: 0,
    },
    cpu:
      cpuUs === undefined
        ? undefined
        : {
            userS: 0,
            sysS: 0,
            processes: 1,
            userUsPerReq: cpuUs / 2,
            sysUsPerReq: cpuUs / 2,
            totalUsPerReq: cpuUs,
          },
    backendUsPerReq: backendUs,
  });
  const records: RunRecord[] = [];
  const add = (c: CaseId, id: string, rpsList: number[], cpu: number | undefined): void => {
    rpsList.forEach((rps, round) => {
      records.push({ round, position: 0, case: c, target: id, result: run(rps, cpu, 15 + round) });
    });
  };
  add("tiny", "direct", [30000, 36000, 33000], undefined);
  add("tiny", "nginx-1w", [20000, 22000, 21000], 20);
  add("tiny", "nginx-2w", [25000, 24000, 26000], 19);
  add("tiny", "kiln", [12000, 13000, 14000], 40);
  add("routes100k", "kiln", [12000, 13000, 13000], 40);
  add("accesslog", "kiln", [10000, 10000, 10000], 44);
  records.push({ round: 2, position: 1, case: "accesslog", target: "kiln", error: "router exited" });
  const cases: CaseId[] = ["tiny", "routes100k", "accesslog"];
  const summary = summarise(records, targets, cases);
  const nginx2 = summary.find((s) => s.case === "tiny" && s.target === "nginx-2w");
  t.equal(nginx2?.rps, 25000, "median of the rounds");
  t.same([nginx2?.rpsMin, nginx2?.rpsMax], [24000, 26000]);
  t.equal(nginx2?.backendUsPerReq, 16, "the backend's CPU per request, median of the rounds");
  t.equal(best(summary, "tiny", ["nginx", "haproxy"])?.target, "nginx-2w", "best variant by req/s");
  const log = summary.find((s) => s.case === "accesslog");
  t.equal(log?.runs, 3);
  t.equal(log?.failedRuns, 1);
  const ratios = computeRatios(summary, cases, records);
  const tiny = ratios.perCase.find((c) => c.case === "tiny");
  t.equal(tiny?.reference, "nginx-2w");
  t.equal(tiny?.kilnVsRefRps.toFixed(2), (13000 / 25000).toFixed(2));
  t.equal(tiny?.kilnVsRefCpu.toFixed(2), (40 / 19).toFixed(2));
  t.equal(tiny?.kilnVsDirectRps.toFixed(3), (13000 / 33000).toFixed(3));
  t.equal(ratios.tableVsSingle.find((r) => r.family === "kiln")?.rps, 1);
  t.equal(ratios.accessLogVsOff.cpu, 1.1);
  // Round by round: Kiln 12k/13k/14k against nginx-2w 25k/24k/26k in the same rounds.
  const pairedTiny = ratios.paired.find((p) => p.ratios.against === "nginx-2w")?.ratios;
  t.equal(pairedTiny?.rps.median.toFixed(4), (14000 / 26000).toFixed(4), "median of the per-round ratios");
  t.same([pairedTiny?.rps.min.toFixed(2), pairedTiny?.rps.max.toFixed(2)], ["0.48", "0.54"]);
  t.equal(pairedTiny?.rps.rounds, 3);
  t.equal(pairedTiny?.cpu.median.toFixed(2), (40 / 19).toFixed(2));
  const pairedTable = ratios.paired.find((p) => p.label.startsWith("Kiln: 100k"))?.ratios;
  t.same([pairedTable?.rps.median, pairedTable?.rps.min.toFixed(3)], [1, (13000 / 14000).toFixed(3)]);
  const pairedLog = ratios.paired.find((p) => p.label.startsWith("Kiln: access log"))?.ratios;
  t.equal(pairedLog?.rps.rounds, 3, "three rounds with both runs; the failed run is left out");
  const report: Report = {
    date: "2026-11-25T12:00:00.000Z",
    command: "node dist/bench/router.js --rounds 3",
    machine: { cpus: 2, cpuModel: "test", node: "v20", kilnCommit: "abc", loadStart: 1, loadEnd: 2 },
    generator: { name: "wrk", version: "wrk 4.1.0", connections: 64, threads: 1 },
    settings: { rounds: 3, durationS: 8, warmupS: 1, routes: 100000, spread: 1000 },
    versions: {},
    notes: ["a note"],
    skipped: ["haproxy: not installed"],
    runs: records,
    summary,
    ratios,
  };
  const md = markdown(report);
  t.match(md, /^### 2026-11-25 12:00 UTC · wrk 4\.1\.0 -t1 -c64 · 3 rounds × 8 s/);
  t.match(md, /Reproduce: `node scripts\/setup\.mjs --build && node dist\/bench\/router\.js --rounds 3`/);
  t.match(md, /\| tiny body \(2 B\) \| nginx-2w \*\*best\*\* \| 25\.0k \| 24\.0k–26\.0k \|/);
  t.match(md, /\| backend µs\/req \|/);
  t.match(md, /\| 19\.0 \(9\.5 \/ 9\.5\) \| 16\.0 \| 3 \|/, "proxy CPU, then the backend's");
  t.match(md, /Kiln access log on ÷ off: req\/s 0\.77×, CPU\/req 1\.10×/);
  t.match(md, /- Skipped: haproxy: not installed/);
  t.match(md, /\| tiny body \(2 B\): Kiln ÷ nginx-2w \| 0\.54× \(0\.48×–0\.54×\) \|/);
});

t.test("the router's router_listening log line is read for the report", async (t) => {
  const out =
    '{"level":"info","event":"registry_started"}\n' +
    '{"at":"x","level":"info","component":"router","event":"router_listening","threads":2,"table":"native","upstream":"native"}\n';
  t.same(listeningInfo(out), {
    at: "x",
    level: "info",
    component: "router",
    event: "router_listening",
    threads: 2,
    table: "native",
    upstream: "native",
  });
  t.same(listeningInfo("nothing here"), {});
  t.same(listeningInfo('"router_listening" {broken'), {});
});

t.test("started processes: output kept, stopped with their group", async (t) => {
  // The child starts a grandchild in the same process group; stop() must end both.
  const code =
    "const {spawn}=require('node:child_process');" +
    "spawn(process.execPath,['-e','setInterval(()=>{},1000)'],{stdio:'ignore'});" +
    "process.stdout.write('ready\\n');process.on('SIGTERM',()=>{});setInterval(()=>{},1000);";
  let out = "";
  const p = startProcess("test child", process.execPath, ["-e", code], {
    onStdout: (c) => {
      out += c.toString();
    },
  });
  t.teardown(() => stopAll());
  while (!out.includes("ready")) await sleep(20);
  t.ok(p.isAlive());
  t.match(p.tail(), /ready/);
  const tree = processTree([p.pid]);
  t.equal(tree.length, 2, "child and grandchild");
  // SIGTERM is ignored by the child: stop() falls back to SIGKILL for the whole group.
  await p.stop(300);
  t.notOk(p.isAlive());
  t.same(
    processTree(tree.map((s) => s.pid)).filter((s) => !/^Z/.test(s.comm)),
    [],
    "nothing of the group is left",
  );
});

t.test("runInterleaved visits every item once per round in the rotated order", async (t) => {
  const seen: string[] = [];
  const out = await runInterleaved(["a", "b", "c"], 2, async (item, round, position) => {
    seen.push(`${round}${position}${item}`);
    return item;
  });
  // 3 items over 2 rounds: the second round starts ⌈3/2⌉ = 2 places later.
  t.same(seen, ["00a", "01b", "02c", "10c", "11a", "12b"]);
  t.same(out, ["a", "b", "c", "c", "a", "b"]);
});
