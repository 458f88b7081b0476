// Runs the compiled `kiln` as a user does, in a child process with KILN_HOME in a temp folder,
// against a FakeCc on port 0 started for the test file and stopped at its end.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";
import { kilnBin } from "../../kernel/paths.js";
import { FakeCc } from "./fake-cc.js";

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface Harness {
  cc: FakeCc;
  home: string;
  configFile: string;
  config(): Record<string, unknown>;
  /** Starts `kiln ARGS`; stdout and stderr are piped. */
  start(args: string[], options?: { cwd?: string }): ChildProcess;
  /** Waits for the child's exit (SIGKILL after 30 s) with what it printed. */
  finish(child: ChildProcess): Promise<Run>;
  /** Runs `kiln ARGS` to its end. Asynchronous: the server answering it lives in this process. */
  kiln(args: string[], options?: { cwd?: string }): Promise<Run>;
}

const cleanEnv: NodeJS.ProcessEnv = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) cleanEnv[k] = v;

export async function harness(t: Test): Promise<Harness> {
  const home = mkdtempSync(join(tmpdir(), "kiln-home-"));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const cc = await new FakeCc().start();
  t.teardown(() => cc.stop());
  const configFile = join(home, "config.json");
  const start = (args: string[], options: { cwd?: string } = {}): ChildProcess =>
    spawn(process.execPath, [kilnBin, ...args], {
      cwd: options.cwd ?? home,
      env: { ...cleanEnv, KILN_HOME: home },
      stdio: ["ignore", "pipe", "pipe"],
    });
  const finish = (child: ChildProcess): Promise<Run> => {
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    return new Promise((resolve) =>
      child.on("close", (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      }),
    );
  };
  return {
    cc,
    home,
    configFile,
    config: () => JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>,
    start,
    finish,
    kiln: (args, options) => finish(start(args, options)),
  };
}
