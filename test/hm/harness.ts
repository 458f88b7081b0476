// Test rig for the Health Manager: a real `kiln hm` process (from dist/) with the `hm` NATS
// user, its log lines parsed, SIGTERM (or SIGKILL, as a crash) and an exit check in t.teardown.
import { type ChildProcess, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { kilnBin } from "../../kernel/paths.js";
import { ownChild } from "../helpers/children.js";
import { readLogRecords } from "../helpers/log-records.js";
import type { NatsEndpoint } from "../helpers/nats.js";
import { until } from "../helpers/until.js";

interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
  fail(message: string): void;
}

export interface HmProc {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first log line of `event` that `match` accepts, already come or to come. */
  waitFor(
    event: string,
    match?: (r: Record<string, unknown>) => boolean,
    ms?: number,
  ): Promise<Record<string, unknown>>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): Promise<void>;
}

export async function startHmProc(t: Teardownable, nats: NatsEndpoint, args: string[] = []): Promise<HmProc> {
  const cred = nats.credentials("hm");
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) clean[k] = v;
  const child = spawn(process.execPath, [kilnBin, "hm", "--nats", nats.url, ...args], {
    env: { ...clean, KILN_NATS_USER: cred.user, KILN_NATS_PASS: cred.pass },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  void readLogRecords(child.stderr as Readable, (rec) => {
    logs.push(rec);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const waitFor = (event: string, match: (r: Record<string, unknown>) => boolean = () => true, ms = 20_000) =>
    until(
      `hm ${event}`,
      () => {
        const found = logs.find((l) => l.event === event && match(l));
        if (found === undefined && (child.exitCode !== null || child.signalCode !== null))
          throw new Error(`kiln hm exited before ${event}: ${JSON.stringify(logs)}`);
        return found;
      },
      ms,
      20,
    );
  const { stop, kill } = ownChild(t, "kiln hm", child, exited, logs, true);
  await waitFor("hm_running");
  return { child, logs, exited, waitFor, stop, kill };
}
