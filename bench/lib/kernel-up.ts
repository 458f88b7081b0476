// A whole kernel for scenario benches: `kiln up` on free ports in a given data dir, ready once
// it says so, its router's /health answers and its controller answers (the time to that is kept). Stopped with SIGTERM to
// `kiln up` alone (it stops its DEA, which stops its containers); whatever container is still
// under the data dir afterwards is removed, so an interrupted run leaves none behind.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CREDENTIALS_FILE } from "../../control/auth/bootstrap.js";
import { containerRoot } from "../../dea/config.js";
import { Runc } from "../../dea/container/runc.js";
import { kilnBin } from "../../kernel/paths.js";
import { BenchError } from "./errors.js";
import {
  cleanEnv,
  freePort,
  httpStatus,
  type Managed,
  registerStopper,
  sleep,
  startProcess,
} from "./procs.js";

export interface KernelUp {
  proc: Managed;
  dataDir: string;
  routerPort: number;
  /** The controller's base URL, for `kiln login -a`. */
  api: string;
  adminPassword: string;
  /** `kiln up` spawned → ready (said "Kiln is up", router /health 200, controller answering), ms. */
  readyMs: number;
  /** SIGTERM to `kiln up`, wait for it, then remove any container it left. */
  stop(): Promise<void>;
}

/** Removes every container under the kernel's DEA data dir (none after a clean stop). */
async function removeContainers(dataDir: string): Promise<void> {
  const runc = new Runc({ root: containerRoot(join(dataDir, "dea")) });
  const left = await runc.list().catch(() => []);
  for (const c of left) await runc.delete(c.id).catch(() => {});
}

/** How often readiness is checked while `kiln up` starts: the resolution of readyMs. */
const READY_POLL_MS = 10;

export async function startKernelUp(dataDir: string, timeoutMs = 60_000): Promise<KernelUp> {
  const [natsPort, ccPort, routerPort, statusPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  let out = "";
  let err = "";
  const spawnedAt = performance.now();
  const proc = startProcess(
    "kiln up",
    process.execPath,
    [
      kilnBin,
      "up",
      "--data-dir",
      dataDir,
      "--nats-port",
      String(natsPort),
      "--cc-port",
      String(ccPort),
      "--router-port",
      String(routerPort),
      "--router-status-port",
      String(statusPort),
    ],
    {
      env: cleanEnv({ KILN_LOG_LEVEL: "info" }),
      onStdout: (c) => {
        out += c.toString();
      },
      // Only the events waited for are kept; the rest of the log would grow for the whole run.
      onStderr: (c) => {
        if (!err.includes('"cc_listening"') || !err.includes('"router_listening"')) err += c.toString();
      },
      terminateLeaderOnly: true,
      graceMs: 30_000,
    },
  );
  const forget = registerStopper(() => removeContainers(dataDir));
  const stop = async (): Promise<void> => {
    await proc.stop();
    await removeContainers(dataDir);
    forget();
  };
  const deadline = Date.now() + timeoutMs;
  const until = async (what: string, cond: () => boolean | Promise<boolean>): Promise<void> => {
    while (!(await cond())) {
      if (!proc.isAlive() || Date.now() > deadline) {
        await stop();
        throw new BenchError("KILN_BENCH_START_FAILED", `kiln up: no ${what}:\n${proc.tail()}`);
      }
      await sleep(READY_POLL_MS);
    }
  };
  await until('"Kiln is up"', () => out.includes("Kiln is up"));
  if (out.includes("DEA       not started")) {
    await stop();
    throw new BenchError("KILN_BENCH_TOOL_MISSING", `kiln up runs no DEA here:\n${out}`);
  }
  await until("router listening", () => err.includes('"router_listening"'));
  await until(
    "router /health 200",
    async () => (await httpStatus(statusPort, "/health", "localhost")) === 200,
  );
  await until("controller listening", () => err.includes('"cc_listening"'));
  await until(
    "controller answering",
    async () => (await httpStatus(ccPort, "/v3/info", "127.0.0.1")) === 200,
  );
  const readyMs = performance.now() - spawnedAt;
  const creds = JSON.parse(readFileSync(join(dataDir, CREDENTIALS_FILE), "utf8")) as { password: string };
  return {
    proc,
    dataDir,
    routerPort,
    api: `http://127.0.0.1:${ccPort}`,
    adminPassword: creds.password,
    readyMs,
    stop,
  };
}
