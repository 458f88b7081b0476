// The router bench's results: per case and proxy medians over the interleaved runs, the
// ratios its targets are stated in, and the Markdown entry written to bench/RESULTS.md.
import type { RunResult } from "./measure.js";
import { fmtNum, fmtRate, fmtRatio, mdTable } from "./report.js";
import { median, range, ratio } from "./stats.js";
import type { CaseId, Family, Target } from "./targets/types.js";

export const allCases: readonly CaseId[] = ["tiny", "16k", "1m", "routes100k", "accesslog"];
export const caseTitles: Record<CaseId, string> = {
  tiny: "tiny body (2 B)",
  "16k": "16 KiB body",
  "1m": "1 MiB body",
  routes100k: "100k routes, 1k hosts requested",
  accesslog: "tiny body, access log on",
};
export const allFamilies: readonly Family[] = ["direct", "nginx", "haproxy", "kiln"];

export interface RunRecord {
  round: number;
  position: number;
  case: CaseId;
  target: string;
  result?: RunResult;
  error?: string;
}

export interface Summary {
  case: CaseId;
  target: string;
  family: Family;
  label: string;
  runs: number;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p99Ms: number;
  p50Ms: number;
  cpuUsPerReq: number;
  cpuUserUs: number;
  cpuSysUs: number;
  /** The backend's CPU per request under this proxy (median). */
  backendUsPerReq: number;
  errors: number;
  non2xx: number;
  failedRuns: number;
}

export function summarise(
  records: readonly RunRecord[],
  targets: readonly Target[],
  cases: readonly CaseId[],
): Summary[] {
  const out: Summary[] = [];
  for (const c of cases) {
    for (const t of targets) {
      const rs = records.filter((r) => r.case === c && r.target === t.id);
      if (rs.length === 0) continue;
      const ok = rs.flatMap((r) => (r.result === undefined ? [] : [r.result]));
      const rps = ok.map((r) => r.load.rps);
      const rr = range(rps);
      out.push({
        case: c,
        target: t.id,
        family: t.family,
        label: t.label,
        runs: ok.length,
        rps: median(rps),
        rpsMin: rr.min,
        rpsMax: rr.max,
        p99Ms: median(ok.map((r) => r.load.latencyMs.p99)),
        p50Ms: median(ok.map((r) => r.load.latencyMs.p50)),
        cpuUsPerReq: median(ok.map((r) => r.cpu?.totalUsPerReq ?? Number.NaN)),
        cpuUserUs: median(ok.map((r) => r.cpu?.userUsPerReq ?? Number.NaN)),
        cpuSysUs: median(ok.map((r) => r.cpu?.sysUsPerReq ?? Number.NaN)),
        backendUsPerReq: median(ok.map((r) => r.backendUsPerReq ?? Number.NaN)),
        errors: ok.reduce((s, r) => s + r.load.errors, 0),
        non2xx: ok.reduce((s, r) => s + r.load.non2xx, 0),
        failedRuns: rs.length - ok.length,
      });
    }
  }
  return out;
}

/** The variant of a family with the highest median req/s in a case ("best taken"). */
export function best(
  summaries: readonly Summary[],
  c: CaseId,
  families: readonly Family[],
): Summary | undefined {
  let top: Summary | undefined;
  for (const s of summaries) {
    if (s.case !== c || !families.includes(s.family) || !Number.isFinite(s.rps)) continue;
    if (top === undefined || s.rps > top.rps) top = s;
  }
  return top;
}

export interface CaseRatios {
  case: CaseId;
  reference: string | undefined;
  kilnVsRefRps: number;
  kilnVsRefP99: number;
  kilnVsRefCpu: number;
  kilnVsDirectRps: number;
}

/** A ratio taken within each round (both runs from the same round), over the rounds. */
export interface PairedRatio {
  median: number;
  min: number;
  max: number;
  /** Rounds in which both runs succeeded. */
  rounds: number;
}

/** Kiln ÷ another run, round by round, for req/s, p99 and CPU per request. */
export interface PairedRatios {
  /** What Kiln is divided by, e.g. "haproxy-2t" or "kiln tiny". */
  against: string;
  rps: PairedRatio;
  p99: PairedRatio;
  cpu: PairedRatio;
}

export interface Ratios {
  perCase: CaseRatios[];
  /**
   * The same ratios taken round by round: slow drifts of a noisy box hit both runs of a
   * round alike, so the spread over rounds shows whether a difference holds in every round
   * or only in the medians.
   */
  paired: { label: string; ratios: PairedRatios }[];
  /** routes100k ÷ tiny per family (best variant in each case). */
  tableVsSingle: { family: Family; rps: number; cpu: number }[];
  accessLogVsOff: { rps: number; cpu: number; p99: number };
}

function pairedRatio(values: readonly number[]): PairedRatio {
  const ok = values.filter((v) => Number.isFinite(v));
  const r = range(ok);
  return { median: median(ok), min: r.min, max: r.max, rounds: ok.length };
}

/** Run `a` ÷ run `b` in every round where both succeeded (case and target of each given). */
export function pairedRatios(
  records: readonly RunRecord[],
  a: { case: CaseId; target: string },
  b: { case: CaseId; target: string },
  against: string,
): PairedRatios {
  const byRound = (w: { case: CaseId; target: string }): Map<number, RunResult> => {
    const m = new Map<number, RunResult>();
    for (const r of records)
      if (r.case === w.case && r.target === w.target && r.result) m.set(r.round, r.result);
    return m;
  };
  const ra = byRound(a);
  const rb = byRound(b);
  const rps: number[] = [];
  const p99: number[] = [];
  const cpu: number[] = [];
  for (const [round, x] of ra) {
    const y = rb.get(round);
    if (y === undefined) continue;
    rps.push(ratio(x.load.rps, y.load.rps));
    p99.push(ratio(x.load.latencyMs.p99, y.load.latencyMs.p99));
    cpu.push(ratio(x.cpu?.totalUsPerReq, y.cpu?.totalUsPerReq));
  }
  return { against, rps: pairedRatio(rps), p99: pairedRatio(p99), cpu: pairedRatio(cpu) };
}

export function computeRatios(
  summaries: readonly Summary[],
  cases: readonly CaseId[],
  records: readonly RunRecord[] = [],
): Ratios {
  const paired: Ratios["paired"] = [];
  const perCase: CaseRatios[] = [];
  for (const c of cases) {
    const kiln = best(summaries, c, ["kiln"]);
    const ref = best(summaries, c, ["nginx", "haproxy"]);
    const direct = best(summaries, c, ["direct"]);
    // A before/after run (--kiln-base-bin): this build ÷ the other, round by round.
    const base = best(summaries, c, ["kiln-base"]);
    if (kiln !== undefined && base !== undefined) {
      paired.push({
        label: `${caseTitles[c]}: Kiln ÷ ${base.target}`,
        ratios: pairedRatios(records, kiln, base, base.target),
      });
    }
    if (kiln !== undefined && ref !== undefined && c !== "accesslog") {
      paired.push({
        label: `${caseTitles[c]}: Kiln ÷ ${ref.target}`,
        ratios: pairedRatios(records, kiln, ref, ref.target),
      });
    }
    perCase.push({
      case: c,
      reference: ref?.target,
      kilnVsRefRps: ratio(kiln?.rps, ref?.rps),
      kilnVsRefP99: ratio(kiln?.p99Ms, ref?.p99Ms),
      kilnVsRefCpu: ratio(kiln?.cpuUsPerReq, ref?.cpuUsPerReq),
      kilnVsDirectRps: ratio(kiln?.rps, direct?.rps),
    });
  }
  const tableVsSingle: Ratios["tableVsSingle"] = [];
  for (const f of ["kiln", "nginx", "haproxy", "direct"] as const) {
    const t = best(summaries, "routes100k", [f]);
    const s = best(summaries, "tiny", [f]);
    if (t === undefined || s === undefined) continue;
    tableVsSingle.push({ family: f, rps: ratio(t.rps, s.rps), cpu: ratio(t.cpuUsPerReq, s.cpuUsPerReq) });
  }
  const on = best(summaries, "accesslog", ["kiln"]);
  const off = best(summaries, "tiny", ["kiln"]);
  // Kiln's table and access-log cases, each against Kiln's tiny case of the same round.
  const againstTiny = (label: string, x: Summary | undefined): void => {
    if (x === undefined || off === undefined) return;
    const tiny = { case: "tiny" as const, target: off.target };
    paired.push({ label, ratios: pairedRatios(records, x, tiny, "kiln tiny") });
  };
  againstTiny("Kiln: 100k routes ÷ 1 route (tiny body)", best(summaries, "routes100k", ["kiln"]));
  againstTiny("Kiln: access log on ÷ off (tiny body)", on);
  return {
    perCase,
    paired,
    tableVsSingle,
    accessLogVsOff: {
      rps: ratio(on?.rps, off?.rps),
      cpu: ratio(on?.cpuUsPerReq, off?.cpuUsPerReq),
      p99: ratio(on?.p99Ms, off?.p99Ms),
    },
  };
}

export interface Report {
  date: string;
  command: string;
  machine: {
    cpus: number;
    cpuModel: string;
    node: string;
    kilnCommit: string;
    /** 1-minute load average when the runs began and ended (other work on the box shows here). */
    loadStart: number;
    loadEnd: number;
  };
  generator: { name: string; version: string; connections: number; threads: number };
  settings: { rounds: number; durationS: number; warmupS: number; routes: number; spread: number };
  versions: Record<string, string>;
  notes: string[];
  skipped: string[];
  runs: RunRecord[];
  summary: Summary[];
  ratios: Ratios;
}

export function markdown(r: Report): string {
  const when = `${r.date.slice(0, 10)} ${r.date.slice(11, 16)} UTC`;
  const lines: string[] = [];
  lines.push(
    `### ${when} · ${r.generator.version} -t${r.generator.threads} -c${r.generator.connections} · ${r.settings.rounds} rounds × ${r.settings.durationS} s`,
  );
  lines.push("");
  lines.push(`Reproduce: \`node scripts/setup.mjs --build && ${r.command}\``);
  lines.push("");
  lines.push(
    `Machine: ${r.machine.cpus} × ${r.machine.cpuModel}; Node ${r.machine.node}; Kiln ${r.machine.kilnCommit}; ${r.generator.version}; ` +
      `${Object.values(r.versions)
        .map((v) => `${v}; `)
        .join("")}load generator, proxy and backend all share these cores; ` +
      `1-min load average ${fmtNum(r.machine.loadStart, 2)} at the start, ${fmtNum(r.machine.loadEnd, 2)} at the end.`,
  );
  lines.push("");
  const bestIds = new Set<string>();
  for (const c of allCases) {
    for (const f of allFamilies) {
      const b = best(r.summary, c, [f]);
      if (b !== undefined && r.summary.filter((s) => s.case === c && s.family === f).length > 1) {
        bestIds.add(`${c}/${b.target}`);
      }
    }
  }
  const rows = r.summary.map((s) => [
    caseTitles[s.case],
    `${s.label}${bestIds.has(`${s.case}/${s.target}`) ? " **best**" : ""}`,
    fmtRate(s.rps),
    `${fmtRate(s.rpsMin)}–${fmtRate(s.rpsMax)}`,
    fmtNum(s.p99Ms, 2),
    Number.isFinite(s.cpuUsPerReq)
      ? `${fmtNum(s.cpuUsPerReq)} (${fmtNum(s.cpuUserUs)} / ${fmtNum(s.cpuSysUs)})`
      : "–",
    Number.isFinite(s.backendUsPerReq) ? fmtNum(s.backendUsPerReq) : "–",
    `${s.runs}${s.failedRuns > 0 ? ` (+${s.failedRuns} failed)` : ""}`,
    `${s.errors}/${s.non2xx}`,
  ]);
  lines.push(
    mdTable(
      [
        "case",
        "proxy",
        "req/s (median)",
        "req/s min–max",
        "p99 ms",
        "CPU µs/req (user / sys)",
        "backend µs/req",
        "runs",
        "sock err/non-2xx",
      ],
      rows,
      ["left", "left", "right", "right", "right", "right", "right", "right", "right"],
    ),
  );
  lines.push("");
  const anyKiln = r.summary.some((s) => s.family === "kiln");
  if (anyKiln) {
    lines.push(
      "Ratios of medians (reference = the better of nginx and HAProxy by req/s in that case; CPU ratio < 1 is better):",
    );
    lines.push("");
    lines.push(
      mdTable(
        [
          "case",
          "reference",
          "Kiln ÷ ref req/s",
          "Kiln ÷ ref p99",
          "Kiln ÷ ref CPU/req",
          "Kiln ÷ direct req/s",
        ],
        r.ratios.perCase
          .filter((c) => c.case !== "accesslog")
          .map((c) => [
            caseTitles[c.case],
            c.reference ?? "–",
            fmtRatio(c.kilnVsRefRps),
            fmtRatio(c.kilnVsRefP99),
            fmtRatio(c.kilnVsRefCpu),
            fmtRatio(c.kilnVsDirectRps),
          ]),
        ["left", "left", "right", "right", "right", "right"],
      ),
    );
    lines.push("");
  }
  if (r.ratios.tableVsSingle.length > 0) {
    lines.push(
      `${r.settings.routes} routes (load over ${r.settings.spread} hosts) ÷ 1 route, tiny body: ` +
        r.ratios.tableVsSingle
          .map((t) => `${t.family} req/s ${fmtRatio(t.rps)}, CPU/req ${fmtRatio(t.cpu)}`)
          .join("; ") +
        ".",
    );
    lines.push("");
  }
  if (Number.isFinite(r.ratios.accessLogVsOff.rps)) {
    const a = r.ratios.accessLogVsOff;
    lines.push(
      `Kiln access log on ÷ off: req/s ${fmtRatio(a.rps)}, CPU/req ${fmtRatio(a.cpu)}, p99 ${fmtRatio(a.p99)}.`,
    );
    lines.push("");
  }
  if (r.ratios.paired.some((p) => p.ratios.rps.rounds > 1)) {
    const cell = (p: PairedRatio): string =>
      p.rounds === 0 ? "–" : `${fmtRatio(p.median)} (${fmtRatio(p.min)}–${fmtRatio(p.max)})`;
    lines.push(
      "The same ratios taken within each round (both runs from one round), median over the rounds (min–max); a range that straddles 1.00× is not a difference this box can resolve:",
    );
    lines.push("");
    lines.push(
      mdTable(
        ["ratio", "req/s", "p99", "CPU/req", "rounds"],
        r.ratios.paired.map((p) => [
          p.label,
          cell(p.ratios.rps),
          cell(p.ratios.p99),
          cell(p.ratios.cpu),
          String(p.ratios.rps.rounds),
        ]),
        ["left", "right", "right", "right", "right"],
      ),
    );
    lines.push("");
  }
  for (const n of r.notes) lines.push(`- ${n}`);
  for (const s of r.skipped) lines.push(`- Skipped: ${s}`);
  return `${lines.join("\n")}\n`;
}
