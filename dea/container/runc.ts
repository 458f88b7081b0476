// The runc command line under a Kiln-owned state root (`runc --root <root>/runc`), so the
// DEA lists only its own containers and finds them again after a restart. A container runs
// under a foreground `runc run` child: runc stays its parent, forwards signals and exits
// with the container's status (128+signal when killed), which the DEA reports.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { bundleDir } from "./bundle.js";
import { ContainerError } from "./errors.js";

export type ContainerStatus = "creating" | "created" | "running" | "paused" | "stopped";

/** One container as `runc state` and `runc list` describe it. */
export interface ContainerState {
  id: string;
  /** Host pid of the container's first process (0 once stopped). */
  pid: number;
  status: ContainerStatus;
  bundle: string;
  created: string;
}

export interface RuncOptions {
  /** The DEA's container directory: runc state under runc/, bundles under bundles/. */
  root: string;
  /** runc executable. */
  runc?: string;
}

/** A container started by `run`: its `runc run` child and how it ended. */
export interface RunningContainer {
  id: string;
  /** The `runc run` process; its stdout and stderr are the app's. */
  child: ChildProcess;
  /** Resolves with the container's exit status (128+signal when a signal ended it). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export class Runc {
  readonly root: string;
  readonly stateRoot: string;
  readonly bin: string;

  constructor(options: RuncOptions) {
    this.root = options.root;
    this.stateRoot = join(options.root, "runc");
    this.bin = options.runc ?? "runc";
  }

  /** Runs runc with `args` under the Kiln state root, to its exit; rejects with runc's error line. */
  exec(args: string[], timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        this.bin,
        ["--root", this.stateRoot, ...args],
        { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err === null) {
            resolve(stdout);
            return;
          }
          const line = runcErrorLine(stderr) || err.message;
          const code = /does not exist|not exist/.test(line)
            ? "KILN_DEA_CONTAINER_NOT_FOUND"
            : "KILN_DEA_CONTAINER_RUNC";
          reject(new ContainerError(code, `runc ${args[0]}: ${line}`, err));
        },
      );
    });
  }

  /**
   * Starts the container whose bundle is written (see writeBundle), attached: the returned
   * child is `runc run`, which lives as long as the container.
   */
  run(id: string): RunningContainer {
    const child = spawn(
      this.bin,
      [
        "--root",
        this.stateRoot,
        "run",
        "--keep",
        "--bundle",
        bundleDir(this.root, id),
        "--pid-file",
        this.pidFile(id),
        id,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("error", () => resolve({ code: null, signal: null }));
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    return { id, child, exited };
  }

  pidFile(id: string): string {
    return join(this.root, "bundles", id, "pid");
  }

  async state(id: string): Promise<ContainerState> {
    return JSON.parse(await this.exec(["state", id])) as ContainerState;
  }

  /** Every container under the Kiln state root (optionally only those whose id starts with `prefix`). */
  async list(prefix = ""): Promise<ContainerState[]> {
    const out = await this.exec(["list", "--format", "json"]);
    const all = (JSON.parse(out) as ContainerState[] | null) ?? [];
    return all.filter((c) => c.id.startsWith(prefix));
  }

  /** Sends `signal` to the container's first process (`all`: to every process in it). */
  async kill(id: string, signal: NodeJS.Signals = "SIGTERM", all = false): Promise<void> {
    await this.exec(["kill", ...(all ? ["--all"] : []), id, signal]);
  }

  /** Removes the container whatever its state (killing what runs), with its cgroups; a missing one is no error. */
  async delete(id: string): Promise<void> {
    try {
      await this.exec(["delete", "--force", id]);
    } catch (err) {
      if (!(err instanceof ContainerError && err.code === "KILN_DEA_CONTAINER_NOT_FOUND")) throw err;
    }
  }
}

/** runc's JSON or logfmt error output reduced to its message. */
function runcErrorLine(stderr: string): string {
  const lines = stderr.trim().split("\n");
  const last = lines[lines.length - 1] ?? "";
  const msg = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return (msg?.[1] ?? last).replaceAll('\\"', '"');
}
