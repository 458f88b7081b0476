// Runs the compiled `kiln` as a user does, in a child process with KILN_HOME in a temp folder,
// against a real private nats-server and a real `kiln cc` (and, when asked, one real `kiln dea`)
// started for the test file and stopped at its end. Checks read the controller's own API.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";
import { kilnBin } from "../../kernel/paths.js";
import {
  type Answer,
  adminCredentials,
  type CcProc,
  call,
  ccDataDir,
  login,
  startCcProc,
} from "../control/harness.js";
import { appDeaArgs, type DeaProc, startDeaProc, testIsolation } from "../dea/harness.js";
import { startTestNats, type TestNats } from "../helpers/nats.js";

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface Harness {
  nats: TestNats;
  cc: CcProc;
  /** Present when the harness was asked for one. */
  dea: DeaProc | undefined;
  admin: { user: string; password: string };
  /** An admin token of the test's own, apart from the CLI's. */
  token: string;
  /** One request to the controller with the test's admin token. */
  api(method: string, path: string, body?: unknown): Promise<Answer>;
  home: string;
  configFile: string;
  config(): Record<string, unknown>;
  /** Starts `kiln ARGS`; stdout and stderr are piped. */
  start(args: string[], options?: { cwd?: string }): ChildProcess;
  /** Waits for the child's exit (SIGKILL after 60 s) with what it printed. */
  finish(child: ChildProcess): Promise<Run>;
  /** Runs `kiln ARGS` to its end. */
  kiln(args: string[], options?: { cwd?: string }): Promise<Run>;
}

const cleanEnv: NodeJS.ProcessEnv = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) cleanEnv[k] = v;

export async function harness(t: Test, options: { dea?: boolean } = {}): Promise<Harness> {
  const home = mkdtempSync(join(tmpdir(), "kiln-home-"));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const nats = await startTestNats(t);
  const dataDir = ccDataDir(t);
  const cc = await startCcProc(t, nats, dataDir);
  let dea: DeaProc | undefined;
  if (options.dea === true) {
    // runc when this machine allows it, as test/control/push.test.ts does; plain processes otherwise.
    const deaDir = mkdtempSync(join(tmpdir(), "kiln-cli-dea-"));
    t.teardown(() => rmSync(deaDir, { recursive: true, force: true }));
    dea = await startDeaProc(
      t,
      nats,
      "cli-dea",
      appDeaArgs(await testIsolation(t, deaDir), join(deaDir, "dea")),
    );
  }
  const admin = adminCredentials(dataDir);
  const token = await login(cc.url, admin.user, admin.password);
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
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    return new Promise((resolve) =>
      child.on("close", (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      }),
    );
  };
  return {
    nats,
    cc,
    dea,
    admin,
    token,
    api: (method, path, body) => call(cc.url, method, path, { token, body }),
    home,
    configFile,
    config: () => JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>,
    start,
    finish,
    kiln: (args, options) => finish(start(args, options)),
  };
}
