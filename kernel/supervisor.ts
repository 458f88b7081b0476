// Runs the kernel's components as child processes and restarts one that dies, at
// once the first time (recovery well under a second), then with a growing backoff.
import { type ChildProcess, spawn } from "node:child_process";
import type { Logger } from "./log.js";

export interface ChildSpec {
  /** Component name, also the log field. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /**
   * When it stops among the others, lowest first; equal ones stop together (default 0). The
   * kernel stops what acts on the others first and the router last, so it serves to the end.
   */
  stopOrder?: number;
}

const backoffMs = [0, 250, 1000, 5000, 15000];
/** A child alive this long has its restart count reset. */
const healthyAfterMs = 30_000;

export class Supervisor {
  private readonly children = new Map<
    string,
    {
      spec: ChildSpec;
      proc: ChildProcess | null;
      restarts: number;
      startedAt: number;
      timer: NodeJS.Timeout | null;
    }
  >();
  private stopping = false;

  constructor(private readonly log: Logger) {}

  start(spec: ChildSpec): void {
    const entry = { spec, proc: null, restarts: 0, startedAt: 0, timer: null };
    this.children.set(spec.name, entry);
    this.launch(spec.name);
  }

  /** Pids of the running children (for status lines and tests). */
  pids(): Record<string, number | undefined> {
    const out: Record<string, number | undefined> = {};
    for (const [name, c] of this.children) out[name] = c.proc?.pid;
    return out;
  }

  private launch(name: string): void {
    const c = this.children.get(name);
    if (c === undefined || this.stopping) return;
    c.timer = null;
    c.startedAt = Date.now();
    // The IPC channel carries nothing: it closes when this process ends, however it ends,
    // and that is how a child knows to stop (kernel/supervised.ts).
    const proc = spawn(c.spec.command, c.spec.args, {
      env: { ...process.env, ...c.spec.env },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    c.proc = proc;
    proc.on("error", (err) => this.log.error("child_spawn_failed", { child: name, error: err }));
    proc.on("exit", (code, signal) => {
      c.proc = null;
      if (this.stopping) return;
      if (Date.now() - c.startedAt > healthyAfterMs) c.restarts = 0;
      const delay = backoffMs[Math.min(c.restarts, backoffMs.length - 1)] ?? 15000;
      c.restarts++;
      this.log.error("child_exited", { child: name, code, signal, restartInMs: delay, restarts: c.restarts });
      c.timer = setTimeout(() => this.launch(name), delay);
    });
  }

  /**
   * Stops the children group by group in their stopOrder: SIGTERM to a group, SIGKILL to those
   * still alive after `timeoutMs`, then the next group. Resolves when all have exited.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    for (const c of this.children.values()) if (c.timer !== null) clearTimeout(c.timer);
    const orders = [...new Set([...this.children.values()].map((c) => c.spec.stopOrder ?? 0))].sort(
      (a, b) => a - b,
    );
    for (const order of orders) {
      const group = [...this.children.values()].filter((c) => (c.spec.stopOrder ?? 0) === order);
      await Promise.all(group.map((c) => this.stopOne(c.spec.name, c.proc, timeoutMs)));
    }
  }

  private stopOne(name: string, proc: ChildProcess | null, timeoutMs: number): Promise<void> {
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const kill = setTimeout(() => {
        this.log.warn("child_killed", { child: name, afterMs: timeoutMs });
        proc.kill("SIGKILL");
      }, timeoutMs);
      proc.once("exit", (code, signal) => {
        clearTimeout(kill);
        this.log.info("child_stopped", { child: name, code, signal });
        resolve();
      });
      proc.kill("SIGTERM");
    });
  }
}
