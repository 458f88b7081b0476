// Test rig for the router: a real nats-server, a real router process (`node bin/kiln.js
// router` from dist/), real backend servers on random ports, routes registered by
// publishing gorouter JSON on router.register. Everything stops in t.teardown.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Agent, IncomingMessage } from "node:http";
import { createServer, type IncomingHttpHeaders, request, type Server, type ServerResponse } from "node:http";
import { connect as netConnect } from "node:net";
import { kilnBin } from "../../kernel/paths.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { ownChild } from "../helpers/children.js";
import { type NatsEndpoint, startTestNats, type TestNats } from "../helpers/nats.js";

interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
  fail(message: string): void;
}

export interface RouterProc {
  child: ChildProcess;
  port: number;
  statusPort: number;
  /** Structured log lines the router wrote (stderr), parsed. */
  logs: Record<string, unknown>[];
  /** Raw stdout (the access log when it goes there). */
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  rssKiB(): number;
}

export interface Rig {
  nats: TestNats;
  bus: KilnConnection;
  router: RouterProc;
  register(msg: RegisterMsg): Promise<void>;
  unregister(msg: RegisterMsg): Promise<void>;
}

export interface RegisterMsg {
  host?: string;
  port: number;
  uris: string[];
  app?: string;
  private_instance_id?: string;
  private_instance_index?: string;
  route_service_url?: string;
  options?: Record<string, unknown>;
}

/** Starts NATS and a router (extra flags/env as given) and waits for /health 200. */
export async function startRig(
  t: Teardownable,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<Rig> {
  const nats = await startTestNats(t);
  const bus = await nats.connect("dea");
  const router = await startRouterProc(t, nats, args, env);
  const publish = async (subject: string, msg: RegisterMsg): Promise<void> => {
    bus.publish(subject, new TextEncoder().encode(JSON.stringify({ host: "127.0.0.1", ...msg })));
    await bus.flush();
  };
  return {
    nats,
    bus,
    router,
    async register(msg) {
      await publish("router.register", msg);
      await waitForRoute(router.statusPort, msg, true);
    },
    async unregister(msg) {
      await publish("router.unregister", msg);
      await waitForRoute(router.statusPort, msg, false);
    },
  };
}

/** A `kiln router` process on random ports, with `env` added and run at nice value `nice`. */
export async function startRouterProc(
  t: Teardownable,
  nats: NatsEndpoint,
  args: string[] = [],
  env: Record<string, string> = {},
  nice = 0,
): Promise<RouterProc> {
  const cred = nats.credentials("router");
  // KILN_TEST_KILN_BIN runs another build of Kiln (e.g. a private copy while dist/ is being rebuilt).
  const bin = process.env.KILN_TEST_KILN_BIN ?? kilnBin;
  const argv = [
    bin,
    "router",
    "--nats",
    nats.url,
    "--port",
    "0",
    "--status-port",
    "0",
    "--host",
    "127.0.0.1",
    ...args,
  ];
  // nice(1) execs the router in its own process, so child.pid is the router's.
  const child = spawn(
    nice === 0 ? process.execPath : "nice",
    nice === 0 ? argv : ["-n", String(nice), process.execPath, ...argv],
    {
      // Nothing here answers router.start but the test itself, so /health need not wait the
      // default second for registrars (health.test.ts starts its router with the default).
      env: {
        ...process.env,
        KILN_NATS_USER: cred.user,
        KILN_NATS_PASS: cred.pass,
        KILN_ROUTER_START_RESPONSE_DELAY_MS: "100",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const logs: Record<string, unknown>[] = [];
  let out = "";
  let errText = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const listening = new Promise<{ port: number; statusPort: number }>((resolve, reject) => {
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      errText += d;
      let nl = errText.indexOf("\n");
      while (nl >= 0) {
        const line = errText.slice(0, nl);
        errText = errText.slice(nl + 1);
        nl = errText.indexOf("\n");
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          logs.push(rec);
          if (rec.event === "router_listening")
            resolve({ port: rec.port as number, statusPort: rec.statusPort as number });
        } catch {
          logs.push({ raw: line });
        }
      }
    });
    void exited.then((e) =>
      reject(new Error(`router exited early (${e.code ?? e.signal}): ${JSON.stringify(logs)}`)),
    );
  });
  // Everything the router says is a structured log line: a bare line is a warning from below
  // (uWS misuse such as a write outside cork, a Node warning) that must not pass.
  ownChild(t, "the router", child, exited, logs, false);
  const { port, statusPort } = await listening;
  const deadline = Date.now() + 10_000;
  while ((await statusGet(statusPort, "/health")).status !== 200) {
    if (Date.now() > deadline) throw new Error("router /health did not turn 200");
    await sleep(50);
  }
  return {
    child,
    port,
    statusPort,
    logs,
    stdout: () => out,
    exited,
    rssKiB() {
      const pid = child.pid ?? 0;
      try {
        const status = readFileSync(`/proc/${pid}/status`, "utf8");
        const m = /VmRSS:\s+(\d+)/.exec(status);
        return m === null ? 0 : Number(m[1]);
      } catch {
        return 0;
      }
    },
  };
}

export async function waitForRoute(statusPort: number, msg: RegisterMsg, present: boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  const id = msg.private_instance_id;
  for (;;) {
    const r = await statusGet(statusPort, "/routes");
    const dump = JSON.parse(r.body) as { route: string; endpoints: { port: number; instanceId: string }[] }[];
    const all = msg.uris.every((u) => {
      const route = dump.find((d) => d.route === u.toLowerCase());
      const has =
        route?.endpoints.some((e) => e.port === msg.port && (id === undefined || e.instanceId === id)) ??
        false;
      return has === present;
    });
    if (all) return;
    if (Date.now() > deadline)
      throw new Error(`route ${msg.uris.join(",")} did not become ${present ? "visible" : "absent"}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  raw: Buffer;
}

export function statusGet(port: number, path: string): Promise<Reply> {
  return send(port, { path });
}

export interface SendOptions {
  host?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** A keep-alive agent keeps the requests on one connection, so on one router worker. */
  agent?: false | Agent;
}

/** One HTTP request with a chosen Host header; resolves with status, headers and body. */
export function send(port: number, o: SendOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: o.method ?? "GET",
        path: o.path ?? "/",
        headers: { ...(o.host === undefined ? {} : { host: o.host }), ...o.headers },
        agent: o.agent ?? false,
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const raw = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString("utf8"), raw });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

/**
 * Writes raw bytes to a port and collects whatever comes back until close or `waitMs`, or, when
 * `done` says the answer is complete, 50 ms after that (time for anything extra to show).
 * Sends `data` (an array: one write per part, 5 ms apart, so they arrive in separate reads).
 */
export function rawExchange(
  port: number,
  data: string | Buffer | readonly string[],
  waitMs = 1500,
  done?: (text: string) => boolean,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const parts = typeof data === "string" || Buffer.isBuffer(data) ? [data] : [...data];
    const writeNext = (): void => {
      const part = parts.shift();
      if (part === undefined || s.destroyed) return;
      s.write(part);
      if (parts.length > 0) setTimeout(writeNext, 5);
    };
    const s = netConnect(port, "127.0.0.1", writeNext);
    let text = "";
    let closed = false;
    s.setEncoding("latin1");
    let timer: NodeJS.Timeout;
    const end = (): void => {
      s.destroy();
      resolve({ text, closed });
    };
    s.on("data", (d: string) => {
      text += d;
      if (done?.(text) === true) {
        clearTimeout(timer);
        timer = setTimeout(end, 50);
      }
    });
    s.on("error", () => {});
    timer = setTimeout(end, waitMs);
    s.on("close", () => {
      closed = true;
      clearTimeout(timer);
      resolve({ text, closed });
    });
  });
}

export interface Backend {
  server: Server;
  port: number;
  /** Requests seen (method, url, headers). */
  seen: { method: string; url: string; headers: IncomingHttpHeaders; bodyBytes: number }[];
}

/** A node:http backend on a random port; `handler` answers (default: echo JSON of the request). */
export async function startBackend(
  t: Teardownable,
  handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
  opts: { collectBody?: boolean } = {},
): Promise<Backend> {
  const seen: Backend["seen"] = [];
  const server = createServer((req, res) => {
    const entry = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, bodyBytes: 0 };
    seen.push(entry);
    if (opts.collectBody === false && handler !== undefined) {
      handler(req, res, Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      entry.bodyBytes += c.length;
      chunks.push(c);
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (handler !== undefined) handler(req, res, body);
      else {
        res.setHeader("content-type", "application/json");
        res.end(
          JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString() }),
        );
      }
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : 0;
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { server, port, seen };
}

/** A raw TCP backend that answers the first request of each connection with `response`, then closes. */
export function startCannedBackend(t: Teardownable, response: string): Promise<number> {
  return startRawBackend(t, (s) => s.once("data", () => s.end(response)));
}

/**
 * A raw TCP backend that answers each request with `start` and then one more byte ("a") every
 * 100 ms, forever: never silent for long, never done (a response timeout must be a deadline).
 */
export function startTricklingBackend(t: Teardownable, start: string): Promise<number> {
  return startRawBackend(t, (s) =>
    s.once("data", () => {
      s.write(start);
      const timer = setInterval(() => s.write("a"), 100);
      s.on("close", () => clearInterval(timer));
    }),
  );
}

/** A raw TCP backend that answers each connection with `onConnection`. */
export async function startRawBackend(
  t: Teardownable,
  onConnection: (sock: import("node:net").Socket) => void,
): Promise<number> {
  const { createServer: createNetServer } = await import("node:net");
  const socks = new Set<import("node:net").Socket>();
  const server = createNetServer((s) => {
    socks.add(s);
    s.on("close", () => socks.delete(s));
    s.on("error", () => {});
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        server.close(() => r());
      }),
  );
  const addr = server.address();
  return typeof addr === "object" && addr !== null ? addr.port : 0;
}
