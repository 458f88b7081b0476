// Test rig for the DEA: real `kiln dea` processes (from dist/) against a private nats-server,
// their structured log lines parsed, SIGTERM and an exit check in t.teardown.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { probeIsolation } from "../../dea/container/probe.js";
import { Runc } from "../../dea/container/runc.js";
import { kilnBin } from "../../kernel/paths.js";
import { ownChild } from "../helpers/children.js";
import { readLogRecords } from "../helpers/log-records.js";
import type { NatsEndpoint } from "../helpers/nats.js";

interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
  fail(message: string): void;
}

/**
 * How the DEAs of a test isolate apps: runc when this machine allows it (probed with a runc root
 * under `base`), plain processes otherwise, said once in the test's output.
 */
export async function testIsolation(
  t: { comment(message: string): void },
  base: string,
): Promise<"runc" | "none"> {
  const unusable = await probeIsolation(new Runc({ root: join(base, "probe") }));
  if (unusable !== null) t.comment(`runc unusable (${unusable}): DEAs run with --isolation none`);
  return unusable === null ? "runc" : "none";
}

/**
 * The flags of a DEA that runs a test's apps: its isolation, its data dir, room for several small
 * apps, and heartbeats every 300 ms (so the controller sees instances quickly); `extra` last wins.
 */
export function appDeaArgs(isolation: "runc" | "none", dataDir: string, extra: string[] = []): string[] {
  return [
    "--isolation",
    isolation,
    "--data-dir",
    dataDir,
    "--memory-mb",
    "4096",
    "--disk-mb",
    "20000",
    "--heartbeat-interval-ms",
    "300",
    ...extra,
  ];
}

export interface DeaProc {
  child: ChildProcess;
  id: string;
  /** Structured log lines the DEA wrote (stderr), parsed; a bare line is kept as { raw }. */
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log line of this event that arrives from now on (or already came). */
  waitFor(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A `kiln dea --id ID` process with the `dea` NATS user; resolves once it logged dea_started. */
export async function startDeaProc(
  t: Teardownable,
  nats: NatsEndpoint,
  id: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<DeaProc> {
  const cred = nats.credentials("dea");
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) clean[k] = v;
  const child = spawn(process.execPath, [kilnBin, "dea", "--nats", nats.url, "--id", id, ...args], {
    env: { ...clean, KILN_NATS_USER: cred.user, KILN_NATS_PASS: cred.pass, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: { event: string; resolve: (r: Record<string, unknown>) => void }[] = [];
  void readLogRecords(child.stderr as Readable, (rec) => {
    logs.push(rec);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (w !== undefined && w.event === rec.event) {
        waiters.splice(i, 1);
        w.resolve(rec);
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const waitFor = (event: string, timeoutMs = 10_000): Promise<Record<string, unknown>> => {
    const seen = logs.find((l) => l.event === event);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`DEA ${id}: no ${event} within ${timeoutMs} ms: ${JSON.stringify(logs)}`)),
        timeoutMs,
      );
      waiters.push({
        event,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
      void exited.then((e) => {
        clearTimeout(timer);
        reject(
          new Error(`DEA ${id} exited (${e.code ?? e.signal}) before ${event}: ${JSON.stringify(logs)}`),
        );
      });
    });
  };
  const { stop } = ownChild(t, `DEA ${id}`, child, exited, logs, false);
  await waitFor("dea_started");
  return { child, id, logs, exited, waitFor, stop };
}

/** Lines of one event, in order. */
export function events(logs: Record<string, unknown>[], event: string): Record<string, unknown>[] {
  return logs.filter((l) => l.event === event);
}
