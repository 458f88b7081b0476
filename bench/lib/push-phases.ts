// Where a `kiln push` spends its time, read from the CLI's own output: each line stamped when
// the bench received it ("Uploading …", "Staging", "Starting …"/"Restarting …"/"Unchanged: …"), and the
// staging log's lines stamped by the DEA that wrote them.
import { median, range, ratio } from "./stats.js";

/** One line of a command's output and when it arrived (performance.now() ms). */
export interface StampedLine {
  at: number;
  text: string;
}

/** Milliseconds of each phase of one push; NaN where the output lacks the line that bounds it. */
export interface PushPhases {
  /** Command start → "Uploading": the CLI starting, logging in, the app, its route, resource matching. */
  prepare: number;
  /** "Uploading" → "Staging": the package upload. */
  upload: number;
  /** "Staging" → "Starting"/"Restarting": the build as the CLI waits for it (polled). */
  staging: number;
  /** First → last staging log line, by the DEA's own timestamps: its share of the staging phase. */
  deaStaging: number;
  /** "Starting"/"Restarting" → the command's exit: the wait for a running instance (polled). */
  startWait: number;
  /** "Starting"/"Restarting" → the first 200 through the router. */
  startToRouter: number;
  /** Command start → its exit. */
  cli: number;
}

export const phaseNames: readonly (keyof PushPhases)[] = [
  "prepare",
  "upload",
  "staging",
  "deaStaging",
  "startWait",
  "startToRouter",
  "cli",
];

const STG = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d):?(\d\d) \[STG\/\d+\]/;

/** The timestamp (epoch ms) of a staging log line as the CLI prints it, NaN for any other line. */
export function stagingLogTime(line: string): number {
  const m = STG.exec(line);
  if (m === null) return Number.NaN;
  return Date.parse(`${m[1]}${m[2]}:${m[3]}`);
}

function firstAt(lines: readonly StampedLine[], test: (text: string) => boolean): number {
  for (const l of lines) if (test(l.text)) return l.at;
  return Number.NaN;
}

/**
 * The phases of one push from its stamped output, its start and exit and the first 200 through
 * the router (all performance.now() ms).
 */
export function pushPhases(
  lines: readonly StampedLine[],
  startedAt: number,
  exitedAt: number,
  firstOkAt: number,
): PushPhases {
  const uploading = firstAt(lines, (t) => t.startsWith("Uploading "));
  // An unchanged push reuses its droplet ("Staging skipped: …") and keeps running ("Unchanged: …").
  const staging = firstAt(lines, (t) => t === "Staging" || t.startsWith("Staging skipped"));
  const starting = firstAt(lines, (t) => /^((Re)?[Ss]tarting |Unchanged: )/.test(t));
  const stg = lines.map((l) => stagingLogTime(l.text)).filter((t) => Number.isFinite(t));
  return {
    prepare: uploading - startedAt,
    upload: staging - uploading,
    staging: starting - staging,
    deaStaging: stg.length === 0 ? Number.NaN : Math.max(...stg) - Math.min(...stg),
    startWait: exitedAt - starting,
    startToRouter: firstOkAt - starting,
    cli: exitedAt - startedAt,
  };
}

/** Splits a stream's chunks into lines, stamping each complete line with the time its end arrived. */
export class LineStamper {
  readonly lines: StampedLine[] = [];
  private rest = "";

  push(chunk: string, at: number): void {
    const parts = (this.rest + chunk).split("\n");
    this.rest = parts.pop() ?? "";
    for (const p of parts) this.lines.push({ at, text: p.replace(/\r$/, "") });
  }

  /** The last line when the stream ended without a newline. */
  end(at: number): void {
    if (this.rest !== "") this.lines.push({ at, text: this.rest });
    this.rest = "";
  }
}

/** min, median and max of one case's samples, and its median against a target. */
export interface CaseSummary {
  samplesMs: number[];
  minMs: number;
  medianMs: number;
  maxMs: number;
  targetMs: number;
  /** median ÷ target. */
  ratio: number;
  pass: boolean;
}

export function summarizeCase(samplesMs: readonly number[], targetMs: number): CaseSummary {
  const { min, max } = range(samplesMs);
  const med = median(samplesMs);
  const r = ratio(med, targetMs);
  return {
    samplesMs: [...samplesMs],
    minMs: min,
    medianMs: med,
    maxMs: max,
    targetMs,
    ratio: r,
    pass: Number.isFinite(r) && r <= 1,
  };
}

/** The median of each phase over a case's pushes. */
export function medianPhases(all: readonly PushPhases[]): PushPhases {
  const out = {} as PushPhases;
  for (const name of phaseNames) out[name] = median(all.map((p) => p[name]));
  return out;
}
