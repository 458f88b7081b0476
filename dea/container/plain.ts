// `--isolation none`: where runc cannot run, an app runs as a plain process under its
// unprivileged user, its memory bounded by util-linux prlimit. RLIMIT_DATA rather than
// RLIMIT_AS: V8 reserves far more address space than it uses, so an address-space limit
// near the app's memory stops Node before it starts. No namespaces, no seccomp, no cgroup:
// the DEA warns that apps are not isolated.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { ContainerError } from "./errors.js";
import type { ContainerSpec } from "./spec.js";

/** coreutils env(1), which runs a command with variables removed. */
const envBin = "/usr/bin/env";

export interface PlainProcess {
  id: string;
  pid: number;
  stdout: NodeJS.ReadableStream;
  stderr: NodeJS.ReadableStream;
  /** Exit status, 128+signal when a signal ended it. */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts `spec`'s command in its app directory (the directory itself, not /home/vcap/app). */
export function startPlain(spec: ContainerSpec, prlimit = "prlimit"): PlainProcess {
  if (spec.command.length === 0)
    throw new ContainerError("KILN_DEA_CONTAINER_SPEC", "container spec: command must not be empty");
  const bytes = spec.memoryMiB * 1024 * 1024;
  // The app gets exactly the environment the DEA gives it: a NODE_OPTIONS that a wrapper
  // around the DEA (a test runner's coverage loader, an APM agent) slips into every spawn is
  // removed, and the app's own, if it has one, put back.
  const own = spec.env.NODE_OPTIONS;
  const clean = ["-u", "NODE_OPTIONS", ...(own === undefined ? [] : [`NODE_OPTIONS=${own}`])];
  const child = spawn(
    envBin,
    [...clean, prlimit, `--data=${bytes}`, "--nofile=16384", "--", ...spec.command],
    {
      cwd: spec.appDir,
      env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: spec.appDir, ...spec.env },
      uid: spec.uid,
      gid: spec.gid,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<number | null>((resolve) => {
    child.once("error", () => resolve(null));
    child.once("exit", (code, signal) => {
      resolve(code ?? (signal === null ? null : 128 + constants.signals[signal]));
    });
  });
  return {
    id: spec.id,
    pid: child.pid ?? 0,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill: (signal = "SIGTERM") => {
      child.kill(signal);
    },
  };
}
