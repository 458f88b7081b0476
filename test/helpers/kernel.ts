// `kiln up` for tests: a whole kernel on a temp data dir and the given ports, its output kept
// so a test can wait for the events it logs (test/kernel/up.test.ts, test/platform/*).
import { type ChildProcess, spawn } from "node:child_process";
import { kilnBin } from "../../kernel/paths.js";
import { freePort } from "./ports.js";

interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
}

export interface UpPorts {
  nats: number;
  router: number;
  status: number;
  /** The Cloud Controller's API port; a free one when left out. */
  cc?: number;
}

export interface StartedUp {
  up: ChildProcess;
  /** Resolves with kiln up's exit code. */
  exited: Promise<number | null>;
  /** Polls `cond` every 50 ms; throws once `ms` have passed or kiln up has exited. */
  until(what: string, cond: () => boolean | Promise<boolean>, ms?: number): Promise<void>;
  stdout(): string;
  stderr(): string;
}

/**
 * `kiln up` on `dataDir` and the given ports; resolves once it says it is up, its router
 * says it listens, and /health answers 200. SIGKILLed on teardown should it still run.
 */
export async function startUp(
  t: Teardownable,
  dataDir: string,
  ports: UpPorts,
  extra: { args?: string[]; env?: Record<string, string> } = {},
): Promise<StartedUp> {
  const up = spawn(
    process.execPath,
    [
      kilnBin,
      "up",
      "--data-dir",
      dataDir,
      "--nats-port",
      String(ports.nats),
      "--cc-port",
      String(ports.cc ?? (await freePort())),
      "--router-port",
      String(ports.router),
      "--router-status-port",
      String(ports.status),
      ...(extra.args ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...extra.env } },
  );
  let out = "";
  up.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  let errText = "";
  up.stderr.on("data", (d: Buffer) => {
    errText += d.toString();
  });
  const exited = new Promise<number | null>((r) => up.once("exit", (code) => r(code)));
  t.teardown(() => {
    if (up.exitCode === null && up.signalCode === null) up.kill("SIGKILL");
  });

  const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end || up.exitCode !== null)
        throw new Error(
          `timed out waiting for ${what} (exit ${up.exitCode}); stderr: ${errText.slice(-2000)}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await until("Kiln is up", () => out.includes("Kiln is up"));
  // Its own router, not some other process on the status port.
  await until("its router listening", () => errText.includes('"event":"router_listening"'));
  await until("router /health", async () => (await health(ports.status)) === 200);
  return { up, exited, until, stdout: () => out, stderr: () => errText };
}

/** The status of GET /health on `port`, 0 when nothing answers. */
export async function health(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/health`)).status;
  } catch {
    return 0;
  }
}
