// Test rig for the Cloud Controller: real `kiln cc` processes (from dist/) on port 0 against a
// private nats-server, their log lines parsed, a small JSON client, SIGTERM and an exit check in
// t.teardown.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { kilnBin } from "../../kernel/paths.js";
import { ownChild } from "../helpers/children.js";
import { readLogRecords } from "../helpers/log-records.js";
import type { NatsEndpoint } from "../helpers/nats.js";

interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
  fail(message: string): void;
}

export interface CcProc {
  child: ChildProcess;
  port: number;
  url: string;
  dataDir: string;
  logs: Record<string, unknown>[];
  stdout: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL, as a crash: the teardown then expects no clean exit. */
  kill(): Promise<void>;
}

/** A fresh data dir for one or more controllers, removed in teardown. */
export function ccDataDir(t: Teardownable): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-cc-test-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A `kiln cc --port 0` process with the `cc` NATS user; resolves once it logged cc_listening. */
export async function startCcProc(
  t: Teardownable,
  nats: NatsEndpoint,
  dataDir: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<CcProc> {
  const cred = nats.credentials("cc");
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) clean[k] = v;
  const child = spawn(
    process.execPath,
    [kilnBin, "cc", "--nats", nats.url, "--port", "0", "--data-dir", dataDir, ...args],
    {
      env: { ...clean, KILN_NATS_USER: cred.user, KILN_NATS_PASS: cred.pass, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const logs: Record<string, unknown>[] = [];
  const stdout: string[] = [];
  child.stdout?.setEncoding("utf8").on("data", (d: string) => stdout.push(d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`kiln cc: no cc_listening: ${JSON.stringify(logs)}`)),
      20_000,
    );
    void readLogRecords(child.stderr as Readable, (rec) => {
      logs.push(rec);
      if (rec.event === "cc_listening") {
        clearTimeout(timer);
        resolve(rec.port as number);
      }
    });
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`kiln cc exited (${e.code ?? e.signal}) before listening: ${JSON.stringify(logs)}`));
    });
  });
  const { stop, kill } = ownChild(t, "kiln cc", child, exited, logs, true);
  const port = await listening;
  return { child, port, url: `http://127.0.0.1:${port}`, dataDir, logs, stdout, exited, stop, kill };
}

export function adminCredentials(dataDir: string): { user: string; password: string } {
  return JSON.parse(readFileSync(join(dataDir, "admin-credentials.json"), "utf8")) as {
    user: string;
    password: string;
  };
}

/** One instance in GET /v3/apps/:guid/processes/web/stats, as the tests read it. */
export interface InstanceStat {
  index: number;
  state: string;
  host: string;
  port: number;
  version: string;
  uptime: number;
}

export interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: test answers are inspected field by field
  body: any;
}

/** One JSON request; `body` a value (JSON-encoded) or a raw string sent as is. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  let parsed: unknown = null;
  if (text !== "") {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, body: parsed };
}

/** Logs in and returns the token. */
export async function login(base: string, username: string, password: string): Promise<string> {
  const r = await call(base, "POST", "/v3/tokens", { body: { username, password } });
  if (r.status !== 201) throw new Error(`login ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token as string;
}
