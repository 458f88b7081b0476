// Fails a test file that leaves a child process running (nats-server, a router, an app):
// on the file's teardown every descendant of this process is listed, reported and killed.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { kilnBin } from "../../kernel/paths.js";

interface ProcInfo {
  pid: number;
  ppid: number;
  command: string;
}

function readProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // Format: pid (comm) state ppid ...; comm may hold spaces and parentheses.
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      if (fields[0] === "Z") continue; // a zombie is already dead, only not yet reaped
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      out.push({
        pid: Number(name),
        ppid: Number(fields[1]),
        command: cmdline || stat.slice(stat.indexOf("(") + 1, close),
      });
    } catch {
      // The process ended while we read it.
    }
  }
  return out;
}

/** Every live descendant of `root` (default: this process). */
export function descendants(root: number = process.pid): ProcInfo[] {
  const procs = readProcs();
  const byParent = new Map<number, ProcInfo[]>();
  for (const p of procs) {
    const list = byParent.get(p.ppid);
    if (list === undefined) byParent.set(p.ppid, [p]);
    else list.push(p);
  }
  const found: ProcInfo[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of byParent.get(pid) ?? []) {
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
  fail(message: string): void;
}

/**
 * Call once at the top of a test file with tap's root `t`. At the end of the file it
 * fails the file if any process it started is still running (after a short grace for
 * processes that are exiting), then kills them so they cannot leak into later files.
 * A file that dies before its teardown (an error thrown at top level) still takes its
 * processes with it: they are killed as the test process exits.
 */
export function guardChildren(t: Teardownable, graceMs = 2000): void {
  process.once("exit", () => {
    for (const p of descendants()) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {}
    }
  });
  t.teardown(async () => {
    const deadline = Date.now() + graceMs;
    let left = descendants();
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      left = descendants();
    }
    if (left.length === 0) return;
    for (const p of left) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {}
    }
    const list = left.map((p) => `${p.pid} ${p.command}`).join("; ");
    t.fail(`test file left ${left.length} process(es) running: ${list}`);
    process.exitCode = 1;
  });
}

/** Runs `node bin/kiln.js ...argv` with `env` as its whole environment, to its exit (10 s at most). */
export function runKilnToExit(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [kilnBin, ...argv], { stdio: ["ignore", "ignore", "pipe"], env });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", (code) => {
      clearTimeout(kill);
      resolve({ code, stderr });
    });
  });
}

/**
 * Stops a component process as a supervisor would: SIGTERM, SIGKILL if it is still running
 * after `graceMs`; resolves with how it exited (at once when it already had).
 */
export async function stopChild<E>(
  child: {
    exitCode: number | null;
    signalCode: NodeJS.Signals | null;
    kill(signal: NodeJS.Signals): boolean;
  },
  exited: Promise<E>,
  graceMs = 5000,
): Promise<E> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  const e = await exited;
  clearTimeout(timer);
  return e;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A component process a test harness started, ended on the test's teardown (stopChild). Then the
 * test fails should the component have written a line that is not a JSON log record (the
 * harnesses parse a bare line as `{raw}`: a warning from below, such as uWS misuse or a Node
 * warning), or, with `cleanExit`, should it have exited other than 0 without `kill()`.
 */
export function ownChild(
  t: { teardown(fn: () => void | Promise<void>): void; fail(message: string): void },
  name: string,
  child: Parameters<typeof stopChild>[0],
  exited: Promise<ChildExit>,
  logs: Record<string, unknown>[],
  cleanExit: boolean,
): { stop(): Promise<ChildExit>; kill(): Promise<void> } {
  let killed = false;
  const stop = () => stopChild(child, exited);
  t.teardown(async () => {
    const e = await stop();
    if (cleanExit && !killed && e.code !== 0)
      t.fail(`${name} exited ${e.code ?? e.signal}: ${JSON.stringify(logs.slice(-5))}`);
    const bare = logs.filter((l) => "raw" in l && String(l.raw).trim() !== "");
    if (bare.length > 0) t.fail(`${name} wrote lines that are not log records: ${JSON.stringify(bare)}`);
  });
  return {
    stop,
    kill: async () => {
      killed = true;
      child.kill("SIGKILL");
      await exited;
    },
  };
}
