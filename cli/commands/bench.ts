// `kiln bench NAME|URL`: load an app (through the router) or any URL with autocannon and report
// req/s, latency percentiles and errors by kind; `--compare URL` measures a reference in the same
// run, rounds interleaved, and reports the ratio, as the project's own benchmarks do.
import { parseCommand } from "../args.js";
import { type LoadSettings, type RunControl, type RunResult, runLoad, type Target } from "../bench/load.js";
import { formatReport, type Ratio, ratio, type Side, side } from "../bench/report.js";
import { probe, resolveTarget, urlTarget } from "../bench/target.js";
import type { Command } from "../command.js";
import { CliError } from "../errors.js";
import { note, output, printJson } from "../output/print.js";
import { liveLine } from "../output/progress.js";

const spec = {
  connections: { type: "string", short: "c" },
  duration: { type: "string", short: "d" },
  rate: { type: "string", short: "R" },
  method: { type: "string", short: "m" },
  body: { type: "string", short: "b" },
  header: { type: "string", short: "H", multiple: true },
  compare: { type: "string" },
  rounds: { type: "string" },
  json: { type: "boolean" },
} as const;

const usage = (message: string) => new CliError("KILN_CLI_USAGE", `kiln bench: ${message}`);

/** A whole number in [min, max] or the default; anything else names the flag in a usage error. */
function count(flag: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max))
    throw usage(`${flag} wants a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}

/** HTTP's token characters (RFC 9110), for methods and header names. */
const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function headers(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of values) {
    const colon = h.indexOf(":");
    const name = colon < 0 ? "" : h.slice(0, colon).trim().toLowerCase();
    const value = h.slice(colon + 1).trim();
    if (!token.test(name) || /[\r\n\0]/.test(value)) throw usage(`-H wants "Name: value", not "${h}"`);
    out[name] = value;
  }
  return out;
}

function settings(flags: ReturnType<typeof parse>["flags"]): LoadSettings {
  const method = (flags.method ?? (flags.body === undefined ? "GET" : "POST")).toUpperCase();
  if (!token.test(method)) throw usage(`-m wants an HTTP method, not "${flags.method}"`);
  return {
    connections: count("-c", flags.connections, 10, 1, 10_000),
    durationS: count("-d", flags.duration, 10, 1, 86_400),
    rate: flags.rate === undefined ? undefined : count("-R", flags.rate, 0, 1, 10_000_000),
    method,
    body: flags.body,
    headers: headers(flags.header ?? []),
  };
}

const parse = (argv: string[]) => parseCommand("bench", argv, spec, 1, 1);

export const benchCommand: Command = {
  summary: "load an app (through the router) or a URL: req/s, latency p50/p90/p99/max, errors by kind",
  usage:
    'NAME|URL [-c CONNECTIONS=10] [-d SECONDS=10] [-R RATE] [-m METHOD] [-b BODY] [-H "Name: value"]… [--compare URL] [--rounds N=3] [--json]',
  async run(argv) {
    const { flags, args } = parse(argv);
    const load = settings(flags);
    const rounds = count("--rounds", flags.rounds, 3, 1, 1000);
    if (flags.rounds !== undefined && flags.compare === undefined)
      throw usage("--rounds needs --compare URL");
    const reference = flags.compare === undefined ? undefined : urlTarget(flags.compare);
    const out = output(flags.json);
    const target = await resolveTarget(args[0] ?? "");
    await probe(target);
    if (reference !== undefined) await probe(reference);

    const line = liveLine(out.tty);
    const control: RunControl = { stopped: false };
    const measured: RunResult[] = [];
    const against: RunResult[] = [];
    const n = reference === undefined ? 1 : rounds;
    // Alternating target and reference round by round spreads any drift of the machine (other
    // load, CPU frequency, caches) evenly over both, so the ratio stays fair.
    for (let i = 0; i < n && !control.stopped; i++) {
      const round = n > 1 ? `round ${i + 1}/${n} ` : "";
      measured.push(await runLoad(target, load, line, `${round}${target.name}: `, control));
      if (reference !== undefined && !control.stopped) {
        against.push(await runLoad(reference, load, line, `${round}${reference.name}: `, control));
      }
    }
    if (control.stopped) note("Interrupted: the numbers below cover the part that ran");
    unreachable(target, measured);
    if (reference !== undefined) unreachable(reference, against);

    const sides: Side[] = [side(target, measured)];
    let r: Ratio | undefined;
    const ref = reference === undefined || against.length === 0 ? undefined : side(reference, against);
    if (ref !== undefined) {
      sides.push(ref);
      r = ratio(sides[0] as Side, ref);
    }
    if (out.json) {
      const settingsOut = {
        connections: load.connections,
        duration_s: load.durationS,
        rate: load.rate ?? null,
        method: load.method,
        rounds: n,
      };
      printJson(
        ref === undefined
          ? { settings: settingsOut, target: sides[0] }
          : { settings: settingsOut, target: sides[0], reference: ref, ratio: r },
      );
      return 0;
    }
    process.stdout.write(formatReport(sides, r));
    return 0;
  },
};

/**
 * A run in which no request got any answer and none even timed out was refused or reset on every
 * connection: the target is not there, which is a failure rather than a measurement.
 */
function unreachable(target: Target, runs: readonly RunResult[]): void {
  const answered = runs.some((r) => r.requests > 0 || r.errors.timeouts > 0);
  const failed = runs.some((r) => r.errors.total > 0);
  if (!answered && failed) {
    const kinds = Object.keys(runs[0]?.errors.connection ?? {}).join(", ");
    throw new CliError(
      "KILN_CLI_BENCH_UNREACHABLE",
      `no answer from ${target.name} at ${target.url}: every connection failed (${kinds})`,
    );
  }
}
