// The real `kiln` CLI as a scenario bench drives it: a child process with the bench's own
// KILN_HOME, every output line stamped as it arrives, a failed command a coded error.
import { kilnBin } from "../../kernel/paths.js";
import { BenchError } from "./errors.js";
import { cleanEnv, startProcess } from "./procs.js";
import { LineStamper, type StampedLine } from "./push-phases.js";

export interface CliRun {
  startedAt: number;
  exitedAt: number;
  code: number | string;
  /** stdout and stderr, line by line, stamped with performance.now() on arrival. */
  lines: StampedLine[];
  /** stdout alone (a `--json` result). */
  stdout: string;
  tail: string;
}

export interface Started {
  startedAt: number;
  /** Performance time of its exit, Infinity while it runs. */
  exitedAt(): number;
  /** It exited with a status other than 0. */
  failed(): boolean;
  /** Sends `signal` to the command alone (SIGINT ends a `kiln bench` early with its result). */
  signal(signal: NodeJS.Signals): void;
  done: Promise<CliRun>;
}

export interface KilnCli {
  /** `kiln ARGS`, started. */
  start(args: readonly string[]): Started;
  /** `kiln ARGS` to its exit; a status other than 0 is KILN_BENCH_STEP_FAILED. */
  run(args: readonly string[]): Promise<CliRun>;
}

/** Throws KILN_BENCH_STEP_FAILED, with the output's tail, when `r` exited with a status other than 0. */
export function checked(args: readonly string[], r: CliRun): CliRun {
  if (r.code !== 0)
    throw new BenchError("KILN_BENCH_STEP_FAILED", `kiln ${args.join(" ")} exited ${r.code}:\n${r.tail}`);
  return r;
}

/** The CLI with `kilnHome` as its KILN_HOME (its login and target). */
export function kilnCli(kilnHome: string): KilnCli {
  const start = (args: readonly string[]): Started => {
    const stamper = new LineStamper();
    let stdout = "";
    let exitedAt = Number.POSITIVE_INFINITY;
    let code: number | string | undefined;
    const startedAt = performance.now();
    const proc = startProcess("kiln", process.execPath, [kilnBin, ...args], {
      env: cleanEnv({ KILN_HOME: kilnHome }),
      onStdout: (c) => {
        stdout += c.toString();
        stamper.push(c.toString(), performance.now());
      },
      onStderr: (c) => stamper.push(c.toString(), performance.now()),
    });
    proc.child.once("exit", (c, signal) => {
      exitedAt = performance.now();
      code = c ?? signal ?? "unknown";
    });
    const done = proc.exited.then(() => {
      stamper.end(exitedAt);
      return {
        startedAt,
        exitedAt,
        code: code ?? "unknown",
        lines: stamper.lines,
        stdout,
        tail: proc.tail(),
      };
    });
    return {
      startedAt,
      exitedAt: () => exitedAt,
      failed: () => code !== undefined && code !== 0,
      signal: (s) => {
        if (proc.isAlive()) proc.child.kill(s);
      },
      done,
    };
  };
  return { start, run: async (args) => checked(args, await start(args).done) };
}
