// Child processes of a bench: started in their own process group, their output kept for
// error messages, and every one of them stopped at the end or on SIGINT/SIGTERM.
import { type ChildProcess, spawn } from "node:child_process";
import { request } from "node:http";
import { createConnection, createServer } from "node:net";
import { BenchError } from "./errors.js";

export interface Managed {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Last bytes of stdout+stderr, for error messages. */
  tail(): string;
  /** Resolves with the exit code (or signal) once the process is gone. */
  readonly exited: Promise<number | string>;
  isAlive(): boolean;
  /** SIGTERM to its group, SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<Managed>();
const TAIL = 4096;

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called with each chunk of stdout (e.g. to read a result). */
  onStdout?: (chunk: Buffer) => void;
  /** Called with each chunk of stderr (e.g. a CLI's progress notes). */
  onStderr?: (chunk: Buffer) => void;
  /**
   * stop() sends SIGTERM to the process alone instead of its whole group: a supervisor (such as
   * `kiln up`) then stops its children in its own order (a DEA its containers) before it exits.
   */
  terminateLeaderOnly?: boolean;
  /** How long stop() waits after SIGTERM before SIGKILL to the group (default 3000 ms). */
  graceMs?: number;
}

/**
 * This process's environment without the KILN_* settings of the caller's shell, plus `extra`:
 * a Kiln component started by a bench runs on its defaults and the bench's own settings.
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) env[k] = v;
  return { ...env, ...extra };
}

let niceness = 0;

/**
 * Scheduling priority of every process started from now on (nice(1) value; negative needs
 * root). Started through `nice -n`, so every thread the process creates inherits it — on a
 * shared box this keeps other work from stealing the measured processes' cores.
 */
export function setNiceness(n: number): void {
  niceness = n;
}

export function startProcess(
  name: string,
  command: string,
  argv: readonly string[],
  opts: StartOptions = {},
): Managed {
  const cmd = niceness === 0 ? command : "nice";
  const args = niceness === 0 ? argv : ["-n", String(niceness), command, ...argv];
  // detached: its own process group, so stop() reaches nginx's workers or a router's children,
  // and a terminal's Ctrl-C reaches only the bench, which then stops everything in order.
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let tail = "";
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString("utf8")).slice(-TAIL);
  };
  child.stdout?.on("data", (c: Buffer) => {
    keep(c);
    opts.onStdout?.(c);
  });
  child.stderr?.on("data", (c: Buffer) => {
    keep(c);
    opts.onStderr?.(c);
  });
  let alive = true;
  const exited = new Promise<number | string>((resolve) => {
    child.on("error", (err) => {
      keep(Buffer.from(`spawn error: ${err.message}\n`));
      alive = false;
      resolve("spawn-error");
    });
    // Resolve on "close" (stdout fully read: a load generator's result line is the last thing
    // it prints), or 2 s after "exit" should something else still hold the pipes open.
    child.on("exit", (code, signal) => {
      alive = false;
      setTimeout(() => resolve(code ?? signal ?? "unknown"), 2000).unref();
    });
    child.on("close", (code, signal) => {
      alive = false;
      resolve(code ?? signal ?? "unknown");
    });
  });
  const m: Managed = {
    name,
    pid: child.pid ?? -1,
    child,
    tail: () => tail,
    exited,
    isAlive: () => alive,
    async stop(graceMs = opts.graceMs ?? 3000) {
      if (alive && child.pid !== undefined) {
        if (opts.terminateLeaderOnly === true) child.kill("SIGTERM");
        else signalGroup(child.pid, "SIGTERM");
        const timer = setTimeout(() => {
          if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
        }, graceMs);
        await exited;
        clearTimeout(timer);
      }
      // Workers left in the group after the leader exited.
      if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
      running.delete(m);
    },
  };
  running.add(m);
  void exited.then(() => {
    if (!alive) running.delete(m);
  });
  return m;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Stoppers of processes started by other launchers (e.g. messaging's nats-server). */
const stoppers = new Set<() => Promise<void>>();

/** Makes stopAll() (and so SIGINT) also run `stop`; returns the function that forgets it. */
export function registerStopper(stop: () => Promise<void>): () => void {
  stoppers.add(stop);
  return () => {
    stoppers.delete(stop);
  };
}

let stopping: Promise<void> | undefined;

/**
 * Stops every process still running (in reverse start order), then the registered stoppers.
 * A call while a stop is under way (a signal during a bench's own cleanup) waits for that one.
 */
export function stopAll(): Promise<void> {
  stopping ??= (async () => {
    const list = [...running].reverse();
    await Promise.all(list.map((m) => m.stop()));
    const others = [...stoppers];
    stoppers.clear();
    await Promise.all(others.map((stop) => stop().catch(() => {})));
  })().finally(() => {
    stopping = undefined;
  });
  return stopping;
}

/** Stops everything on SIGINT/SIGTERM, runs `cleanup` (temp dirs), then exits 130/143. */
export function stopAllOnSignal(cleanup: () => void | Promise<void> = () => {}): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\nbench: ${signal}, stopping every process it started\n`);
    void stopAll()
      .then(cleanup)
      .finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Waits until `port` accepts connections; throws (with the process's tail) if `proc` dies first. */
export async function waitForPort(port: number, proc: Managed | undefined, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc !== undefined && !proc.isAlive()) {
      throw new BenchError(
        "KILN_BENCH_START_FAILED",
        `${proc.name} exited before listening on ${port}:\n${proc.tail()}`,
      );
    }
    if (await tryConnect(port)) return;
    await sleep(50);
  }
  throw new BenchError(
    "KILN_BENCH_START_FAILED",
    `${proc?.name ?? "process"} did not listen on ${port} within ${timeoutMs} ms${proc ? `:\n${proc.tail()}` : ""}`,
  );
}

/** GET on 127.0.0.1 with a Host header: status and body text (status 0 on any failure). */
export function httpGet(
  port: number,
  path: string,
  host: string,
  timeoutMs = 2000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const failed = { status: 0, body: "" };
    const req = request(
      { host: "127.0.0.1", port, path, headers: { host }, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on("error", () => resolve(failed));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(failed));
    req.end();
  });
}

/** One GET; resolves with the status code (0 on a connection error). */
export async function httpStatus(
  port: number,
  path: string,
  host: string,
  timeoutMs = 2000,
): Promise<number> {
  return (await httpGet(port, path, host, timeoutMs)).status;
}

/** Waits until GET answers `want` for every host; returns false on timeout. */
export async function waitForStatus(
  port: number,
  path: string,
  hosts: readonly string[],
  want: number,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let pending = [...hosts];
  while (pending.length > 0) {
    const next: string[] = [];
    for (const h of pending) if ((await httpStatus(port, path, h)) !== want) next.push(h);
    pending = next;
    if (pending.length === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}
