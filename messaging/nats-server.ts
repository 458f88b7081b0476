// The private nats-server of `kiln up`, `kiln nats` and the tests: JetStream on, one user
// per component with the subject permissions its flows need, passwords kept in the data dir.
//
//   const nats = await startNatsServer({ dataDir, port: 4222 });
//   nats.url                  // "nats://127.0.0.1:4222" (the port actually bound)
//   nats.port, nats.host, nats.dataDir, nats.pid
//   nats.credentials("router") // { user, pass } for connectNats()
//   await nats.stop()         // SIGTERM, SIGKILL after stopTimeoutMs; resolves once it exited
//   nats.exited               // resolves when the server exits (for whatever reason)
//
// Options: dataDir (required; created 0700), port (default 4222; 0 = random free port; a taken
// port falls back to a random free one and says so in the log), host (default 127.0.0.1),
// log (receives the server's own lines and the launcher's notes), binary (default nats-server
// on PATH, else /usr/sbin or /usr/bin), startTimeoutMs (15 s), stopTimeoutMs (5 s).
// A node of a cluster (docs/several-machines.md) also takes serverName (unique and stable per
// node: JetStream knows its peers by it), cluster {port, routes, name, host} and
// credentialsFile (the credentials.json of the first node, so every node has the same users;
// copied into dataDir). Routes authenticate with a password derived from the admin's.
//
// Files in dataDir: credentials.json (mode 0600; generated once, reused by later starts),
// nats-server.conf (0600, rewritten each start), nats-server.pid, jetstream/ (the store),
// start.lock (only while starting). One server per data dir: a start while another runs
// or starts there is refused; a server orphaned by a kernel killed hard is stopped first.
// Errors: KILN_NATS_START_FAILED (exit or timeout, with the tail of the server's output),
// KILN_NATS_NOT_INSTALLED, KILN_NATS_BAD_CREDENTIALS_FILE, KILN_NATS_UNKNOWN_COMPONENT.
import { type ChildProcess, spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer } from "node:net";
import { hostname } from "node:os";
import { delimiter, join, resolve as resolvePath } from "node:path";
import { MessagingError } from "./errors.js";
import {
  CC_HM_REQUESTS,
  DEA_ADVERTISE,
  DEA_DISCOVER,
  DEA_HEARTBEAT,
  DEA_STAGE_ANY,
  DEA_START_ANY,
  DEA_STOP,
  DEA_UPDATE,
  DROPLET_EXITED,
  EVENTS_ANY,
  INBOX_PREFIX,
  KV_BUCKETS,
  KV_HM,
  LOGS_ANY,
  OBJECT_STORE_BLOBS,
  ROUTER_GREET,
  ROUTER_REGISTER,
  ROUTER_START,
  ROUTER_UNREGISTER,
} from "./subjects.js";

export type NatsComponent = "router" | "cc" | "dea" | "hm" | "cli" | "admin";
export const NATS_COMPONENTS: readonly NatsComponent[] = ["router", "cc", "dea", "hm", "cli", "admin"];

export interface NatsCredentials {
  user: string;
  pass: string;
}

export interface NatsServerLogLine {
  level: "debug" | "info" | "warn" | "error";
  /** "nats-server" for the server's own output, "launcher" for the launcher's notes. */
  source: "nats-server" | "launcher";
  msg: string;
}

export interface StartNatsServerOptions {
  dataDir: string;
  /** Default 4222; 0 = a random free port; a taken port falls back to a random free one. */
  port?: number;
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  log?: (line: NatsServerLogLine) => void;
  binary?: string;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  /** server_name; default "kiln", or kiln-<hostname>-<cluster port> in a cluster. */
  serverName?: string;
  /** Makes this server a node of a JetStream cluster. */
  cluster?: NatsClusterOptions;
  /**
   * Users and passwords to use (another node's credentials.json, complete) instead of generating
   * them; copied into dataDir. Without it the data dir's own file is used or created.
   */
  credentialsFile?: string;
}

export interface NatsClusterOptions {
  /** Cluster name, the same on every node; default "kiln". */
  name?: string;
  /** Port for routes from the other nodes (0 = random). */
  port: number;
  /** Interface the route port listens on; default the client `host`. */
  host?: string;
  /**
   * The other nodes' route ports, nats://host:port (listing this node too is harmless). At least
   * one: nats-server 2.9 does not start JetStream in a cluster without routes. Routes without
   * user info get the cluster's user and password added.
   */
  routes: readonly string[];
}

export interface NatsServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface NatsServerHandle {
  /** nats://host:port to connect to (127.0.0.1 when listening on every interface). */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly pid: number;
  credentials(component: NatsComponent): NatsCredentials;
  /** Stops the server (SIGTERM, then SIGKILL after stopTimeoutMs); idempotent. */
  stop(): Promise<void>;
  /** Resolves when the server process has exited. */
  readonly exited: Promise<NatsServerExit>;
}

export const DEFAULT_NATS_PORT = 4222;
export const DEFAULT_CLUSTER_NAME = "kiln";
/** Server and cluster names: nats-server takes more, but these survive URLs, paths and logs. */
export const NATS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** User of the route connections between cluster nodes. */
const ROUTE_USER = "route";
const DEFAULT_START_TIMEOUT_MS = 15_000;
const DEFAULT_STOP_TIMEOUT_MS = 5_000;
const TAIL_LINES = 30;
const STALE_LOCK_MS = 120_000;

// ---------------------------------------------------------------------------------------
// Permissions: what each component may publish and subscribe to (DESIGN.md "Messages").

interface Permissions {
  publish: readonly string[];
  subscribe: readonly string[];
}

const INBOX = `${INBOX_PREFIX}.>`;
/** JetStream API, acks and flow control (KV watchers and ordered consumers need the last two). */
const JETSTREAM = ["$JS.API.>", "$JS.ACK.>", "$JS.FC.>"];
const KV_WRITE = KV_BUCKETS.map((b) => `$KV.${b}.>`);
const BLOBS_WRITE = `$O.${OBJECT_STORE_BLOBS}.>`;

export const PERMISSIONS: Readonly<Record<NatsComponent, Permissions>> = {
  // Learns routes, answers greet, announces itself; nothing else (never dea.>).
  router: {
    publish: [ROUTER_START, LOGS_ANY, INBOX],
    subscribe: [ROUTER_REGISTER, ROUTER_UNREGISTER, ROUTER_GREET, INBOX],
  },
  // Cloud Controller: placement, staging, start/stop, route updates; desired state in KV, blobs in the object store.
  cc: {
    publish: [
      DEA_DISCOVER,
      DEA_STAGE_ANY,
      DEA_START_ANY,
      DEA_STOP,
      DEA_UPDATE,
      LOGS_ANY,
      EVENTS_ANY,
      INBOX,
      ...JETSTREAM,
      ...KV_WRITE,
      BLOBS_WRITE,
    ],
    subscribe: [CC_HM_REQUESTS, DEA_ADVERTISE, DEA_HEARTBEAT, DROPLET_EXITED, LOGS_ANY, INBOX],
  },
  // DEA: answers placement, stages (droplets to the object store), runs, registers routes, reports.
  dea: {
    publish: [
      DEA_ADVERTISE,
      DEA_HEARTBEAT,
      DROPLET_EXITED,
      ROUTER_REGISTER,
      ROUTER_UNREGISTER,
      ROUTER_GREET,
      LOGS_ANY,
      EVENTS_ANY,
      INBOX,
      ...JETSTREAM,
      BLOBS_WRITE,
    ],
    subscribe: [DEA_DISCOVER, DEA_STAGE_ANY, DEA_START_ANY, DEA_STOP, DEA_UPDATE, ROUTER_START, INBOX],
  },
  // Health Manager: watches actual state, reads desired state from KV, asks a CC to act.
  hm: {
    publish: [CC_HM_REQUESTS, EVENTS_ANY, LOGS_ANY, INBOX, ...JETSTREAM, `$KV.${KV_HM}.>`],
    subscribe: [DEA_HEARTBEAT, DEA_ADVERTISE, DROPLET_EXITED, INBOX],
  },
  // Tooling on the bus (tail logs, read streams, greet the router); read-only JetStream.
  cli: {
    publish: [
      ROUTER_GREET,
      INBOX,
      "$JS.API.INFO",
      "$JS.API.STREAM.NAMES",
      "$JS.API.STREAM.LIST",
      "$JS.API.STREAM.INFO.*",
      "$JS.API.STREAM.MSG.GET.*",
      "$JS.API.DIRECT.GET.>",
      "$JS.API.CONSUMER.CREATE.>",
      "$JS.API.CONSUMER.INFO.>",
      "$JS.API.CONSUMER.DELETE.>",
      "$JS.API.CONSUMER.MSG.NEXT.>",
      "$JS.ACK.>",
      "$JS.FC.>",
    ],
    subscribe: [LOGS_ANY, ROUTER_START, INBOX],
  },
  // Operators and tests: everything.
  admin: { publish: [">"], subscribe: [">"] },
};

// ---------------------------------------------------------------------------------------
// Credentials: generated once per data dir, mode 0600.

interface CredentialsFile {
  version: 1;
  users: Record<NatsComponent, string>;
}

function newPassword(): string {
  return randomBytes(24).toString("base64url");
}

/** The users of a credentials file; `complete` also requires every component's. */
function readCredentials(
  path: string,
  complete: boolean,
  fix: string,
): Partial<Record<NatsComponent, string>> {
  const users: Partial<Record<NatsComponent, string>> = {};
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as unknown;
    const u = (parsed as { users?: unknown } | null)?.users;
    if (typeof u !== "object" || u === null || Array.isArray(u)) throw new Error("no users object");
    for (const c of NATS_COMPONENTS) {
      const p = (u as Record<string, unknown>)[c];
      if (p === undefined) {
        if (complete) throw new Error(`no password for ${c}`);
        continue;
      }
      if (typeof p !== "string" || p.length < 16)
        throw new Error(`password of ${c} is not a string of 16+ chars`);
      users[c] = p;
    }
  } catch (err) {
    throw new MessagingError(
      "KILN_NATS_BAD_CREDENTIALS_FILE",
      `${path} is unreadable or malformed (${(err as Error).message}); ${fix}`,
      err,
    );
  }
  return users;
}

/**
 * Takes another node's credentials as this data dir's: a cluster's nodes must all accept the
 * same users, and the components on this machine read them from the usual place.
 */
function adoptCredentials(dataDir: string, from: string): CredentialsFile {
  const users = readCredentials(
    from,
    true,
    "give the credentials.json written by the first node of the cluster",
  ) as Record<NatsComponent, string>;
  const file: CredentialsFile = { version: 1, users };
  const path = join(dataDir, "credentials.json");
  if (resolvePath(from) !== path) writePrivate(path, `${JSON.stringify(file, null, 2)}\n`);
  return file;
}

/** The route password of a cluster: derived from the admin's, so shared credentials suffice. */
function routePassword(creds: CredentialsFile): string {
  return createHmac("sha256", creds.users.admin).update("kiln nats route").digest("base64url");
}

function loadOrCreateCredentials(dataDir: string): CredentialsFile {
  const path = join(dataDir, "credentials.json");
  let users: Partial<Record<NatsComponent, string>> = {};
  let dirty = true;
  if (existsSync(path)) {
    users = readCredentials(path, false, "fix it or delete it to generate new passwords");
    dirty = NATS_COMPONENTS.some((c) => users[c] === undefined);
    // Someone loosened the mode: tighten it again rather than run with readable passwords.
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  }
  for (const c of NATS_COMPONENTS) users[c] ??= newPassword();
  const file: CredentialsFile = { version: 1, users: users as Record<NatsComponent, string> };
  const text = `${JSON.stringify(file, null, 2)}\n`;
  if (!existsSync(path)) {
    // Complete file under a temporary name, then link(2): atomic and exclusive, so of two
    // starts racing on a fresh data dir one set of passwords wins and no one reads half a file.
    const tmp = `${path}.${process.pid}.new`;
    writeFileSync(tmp, text, { mode: 0o600 });
    try {
      linkSync(tmp, path);
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return loadOrCreateCredentials(dataDir);
      throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  if (dirty) writePrivate(path, text);
  return file;
}

/** Writes a file readable by its owner only, atomically (tmp + rename). */
function writePrivate(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

// ---------------------------------------------------------------------------------------
// Config file.

const q = (s: string): string => JSON.stringify(s);

interface RenderedCluster {
  name: string;
  host: string;
  port: number;
  routes: readonly string[];
}

interface ConfigInput {
  serverName: string;
  host: string;
  port: number;
  dataDir: string;
  creds: CredentialsFile;
  cluster: RenderedCluster | null;
}

/** A route URL with the cluster's user and password, unless it already names a user. */
function routeWithAuth(route: string, pass: string): string {
  const u = new URL(route.includes("://") ? route : `nats://${route}`);
  if (u.username === "") {
    u.username = ROUTE_USER;
    u.password = pass;
  }
  return u.toString().replace(/\/$/, "");
}

function renderCluster(c: RenderedCluster, creds: CredentialsFile): string[] {
  const pass = routePassword(creds);
  return [
    "cluster {",
    `  name: ${q(c.name)}`,
    `  host: ${q(c.host)}`,
    `  port: ${c.port}`,
    `  authorization { user: ${q(ROUTE_USER)}, password: ${q(pass)} }`,
    `  routes: [${c.routes.map((r) => q(routeWithAuth(r, pass))).join(", ")}]`,
    "}",
  ];
}

function renderConfig(opts: ConfigInput): string {
  const users = NATS_COMPONENTS.map((c) => {
    const p = PERMISSIONS[c];
    return [
      "    {",
      `      user: ${q(c)}`,
      `      password: ${q(opts.creds.users[c])}`,
      "      permissions: {",
      `        publish: { allow: [${p.publish.map(q).join(", ")}] }`,
      `        subscribe: { allow: [${p.subscribe.map(q).join(", ")}] }`,
      "      }",
      "    }",
    ].join("\n");
  });
  return [
    "# Kiln's private nats-server. Generated at every start from credentials.json; edits are lost.",
    `server_name: ${q(opts.serverName)}`,
    `host: ${q(opts.host)}`,
    `port: ${opts.port}`,
    `pid_file: ${q(join(opts.dataDir, "nats-server.pid"))}`,
    "jetstream {",
    `  store_dir: ${q(opts.dataDir)}`,
    "}",
    ...(opts.cluster === null ? [] : renderCluster(opts.cluster, opts.creds)),
    "authorization {",
    "  users: [",
    users.join("\n"),
    "  ]",
    "}",
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------
// Process handling.

/** Servers still running; killed synchronously if this process exits without stopping them. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const c of live) c.kill("SIGKILL");
    });
  }
}

function findBinary(explicit: string | undefined): string {
  if (explicit !== undefined) {
    if (!existsSync(explicit))
      throw new MessagingError("KILN_NATS_NOT_INSTALLED", `nats-server not found at ${explicit}`);
    return explicit;
  }
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, "nats-server");
    if (existsSync(p)) return p;
  }
  // Debian installs it in /usr/sbin, which a non-root PATH often lacks.
  for (const p of ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]) {
    if (existsSync(p)) return p;
  }
  throw new MessagingError(
    "KILN_NATS_NOT_INSTALLED",
    "nats-server is not installed; run `npm run setup` (as root it installs Debian's nats-server) or `apt-get install -y nats-server`",
  );
}

/** Whether a TCP port can be bound on `host` right now. */
function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** State letter and parent pid of a process (from /proc), or null when it does not exist. */
function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Format: pid (comm) state ppid ...; comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

/** Waits until `pid` has exited (a zombie counts as exited); false on timeout. */
async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let s = procStat(pid); s !== null && s.state !== "Z"; s = procStat(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/**
 * Guards the data dir against two servers. A server of this data dir that is still alive
 * is either another kernel's (refused) or an orphan left by a kernel that was killed hard
 * (its parent is init): that one is stopped so the kernel recovers without a human.
 */
async function takeOverDataDir(
  dataDir: string,
  stopTimeoutMs: number,
  log: ((line: NatsServerLogLine) => void) | undefined,
): Promise<void> {
  const pidFile = join(dataDir, "nats-server.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number.parseInt(readFileSync(pidFile, "utf8").trim(), 10);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return;
  let cmd = "";
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return; // not running (or no /proc): nothing to protect
  }
  if (!cmd.includes("nats-server") || !cmd.includes(join(dataDir, "nats-server.conf"))) return;
  const parent = procStat(pid)?.ppid ?? -1;
  if (parent !== 1) {
    throw new MessagingError(
      "KILN_NATS_START_FAILED",
      `a nats-server (pid ${pid}, parent ${parent}) is already running on ${dataDir}; stop it first`,
    );
  }
  log?.({
    level: "warn",
    source: "launcher",
    msg: `stopping orphaned nats-server pid ${pid} left on ${dataDir}`,
  });
  try {
    process.kill(pid, "SIGTERM");
  } catch {}
  if (!(await waitGone(pid, stopTimeoutMs))) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
    await waitGone(pid, stopTimeoutMs);
  }
}

const LEVELS: Record<string, NatsServerLogLine["level"]> = {
  INF: "info",
  WRN: "warn",
  ERR: "error",
  FTL: "error",
  DBG: "debug",
  TRC: "debug",
};
const LOG_LINE = /^\[\d+\] \S+ \S+ \[([A-Z]{3})\] (.*)$/;
const LISTENING = /Listening for client connections on (\S+):(\d+)\s*$/;

/** Connects and reads the server's INFO line: the server really answers clients. */
function answersInfo(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    let buf = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      buf += d;
      if (buf.includes("\r\n")) done(buf.startsWith("INFO {"));
    });
    sock.on("error", () => done(false));
    sock.on("close", () => done(false));
  });
}

/**
 * setpriv (util-linux) when the machine has it: it has the kernel send the server SIGTERM
 * when the thread that started it ends, even by SIGKILL, then execs it (same pid). Without
 * it a killed kernel or test run leaves the server holding its port and store until the next
 * start finds it by its pid file (takeOverDataDir).
 */
const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

interface Launched {
  child: ChildProcess;
  port: number;
  exited: Promise<NatsServerExit>;
}

async function launch(
  binary: string,
  confPath: string,
  host: string,
  timeoutMs: number,
  log: ((line: NatsServerLogLine) => void) | undefined,
): Promise<Launched> {
  // Own process group: a terminal's Ctrl-C reaches the kernel only, which stops the
  // components first and NATS last (they may still publish while shutting down).
  const argv = [binary, "-c", confPath];
  if (setpriv !== undefined) argv.unshift(setpriv, "--pdeathsig", "TERM", "--");
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  track(child);
  child.once("error", () => live.delete(child));
  const tail: string[] = [];
  let listening = -1;
  let onListening: (() => void) | null = null;
  let exitInfo: NatsServerExit | null = null;

  const exited = new Promise<NatsServerExit>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));

  const onLine = (line: string) => {
    if (line.length === 0) return;
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    const m = LOG_LINE.exec(line);
    const msg = m ? (m[2] as string) : line;
    if (listening < 0) {
      const l = LISTENING.exec(msg);
      if (l) {
        listening = Number(l[2]);
        onListening?.();
      }
    }
    log?.({ level: m ? (LEVELS[m[1] as string] ?? "info") : "info", source: "nats-server", msg });
  };
  for (const stream of [child.stdout, child.stderr]) {
    let pending = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      pending += chunk;
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        onLine(pending.slice(0, nl).trimEnd());
        pending = pending.slice(nl + 1);
        nl = pending.indexOf("\n");
      }
    });
    stream?.on("end", () => {
      if (pending.length > 0) onLine(pending.trimEnd());
      pending = "";
    });
  }

  const failure = (why: string, cause?: unknown): MessagingError =>
    new MessagingError(
      "KILN_NATS_START_FAILED",
      `nats-server did not start: ${why}${tail.length > 0 ? `\n--- last lines of its output ---\n${tail.join("\n")}` : ""}`,
      cause,
    );

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const listeningP = new Promise<"listening">((resolve) => {
    if (listening >= 0) resolve("listening");
    else onListening = () => resolve("listening");
  });
  const killNow = async () => {
    if (exitInfo === null) {
      child.kill("SIGKILL");
      await exited;
    }
  };
  try {
    const first = await Promise.race([listeningP, exited, spawnError, timedOut]);
    if (first === "timeout") {
      await killNow();
      throw failure(`no "Listening for client connections" line within ${timeoutMs} ms`);
    }
    if (first instanceof Error) throw failure(`cannot run ${binary}: ${first.message}`, first);
    if (first !== "listening") {
      // Let the pipes drain so the tail holds the server's last words.
      await new Promise((r) => setImmediate(r));
      throw failure(`it exited with ${first.code ?? first.signal}`);
    }
    // The log line comes from the accept loop; also check a client really gets INFO.
    const deadline = Date.now() + timeoutMs;
    while (!(await answersInfo(connectHost(host), listening, 1000))) {
      if (exitInfo !== null) throw failure(`it exited with ${(exitInfo as NatsServerExit).code}`);
      if (Date.now() > deadline) {
        await killNow();
        throw failure(`port ${listening} did not answer with INFO within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    clearTimeout(timer);
  }
  return { child, port: listening, exited };
}

interface LaunchOnPort {
  binary: string;
  dataDir: string;
  host: string;
  wanted: number;
  creds: CredentialsFile;
  serverName: string;
  cluster: RenderedCluster | null;
  timeoutMs: number;
  log: ((line: NatsServerLogLine) => void) | undefined;
}

/** Writes the config for the wanted port (or a random one when taken) and launches. */
async function launchOnPort(o: LaunchOnPort): Promise<Launched> {
  const { binary, dataDir, host, wanted, creds, serverName, cluster, timeoutMs, log } = o;
  const confPath = join(dataDir, "nats-server.conf");
  // -1 asks nats-server for a random free port (no race: it binds it itself).
  let port = wanted === 0 ? -1 : wanted;
  if (port > 0 && !(await portIsFree(host, port))) {
    log?.({ level: "warn", source: "launcher", msg: `port ${wanted} is taken; using a random free port` });
    port = -1;
  }
  writePrivate(confPath, renderConfig({ serverName, host, port, dataDir, creds, cluster }));
  try {
    return await launch(binary, confPath, host, timeoutMs, log);
  } catch (err) {
    // Lost a race for the fixed port between the check and the server's bind: go random.
    if (port > 0 && err instanceof MessagingError && /address already in use/i.test(err.message)) {
      log?.({
        level: "warn",
        source: "launcher",
        msg: `port ${wanted} was taken meanwhile; using a random free port`,
      });
      writePrivate(confPath, renderConfig({ serverName, host, port: -1, dataDir, creds, cluster }));
      return await launch(binary, confPath, host, timeoutMs, log);
    }
    throw err;
  }
}

/**
 * Serialises starts on one data dir (two `kiln up` at once): a lock file made with link(2),
 * taken over when its holder is dead. Returns the release function.
 */
function acquireStartLock(dataDir: string): () => void {
  const lock = join(dataDir, "start.lock");
  const tmp = `${lock}.${process.pid}.${randomBytes(4).toString("hex")}`;
  writeFileSync(tmp, String(process.pid), { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, lock);
        return () => rmSync(lock, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      let holder = -1;
      try {
        holder = Number.parseInt(readFileSync(lock, "utf8"), 10);
      } catch {}
      const s = Number.isSafeInteger(holder) && holder > 0 ? procStat(holder) : null;
      let age = 0;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {}
      // A start never holds the lock this long; an old lock's pid may belong to someone else now.
      if (s !== null && s.state !== "Z" && age < STALE_LOCK_MS) {
        throw new MessagingError(
          "KILN_NATS_START_FAILED",
          `another start of nats-server on ${dataDir} is in progress (pid ${holder}); wait for it or stop it`,
        );
      }
      rmSync(lock, { force: true }); // its holder died mid-start
    }
    throw new MessagingError("KILN_NATS_START_FAILED", `cannot take the start lock ${lock}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

async function stopChild(
  child: ChildProcess,
  exited: Promise<NatsServerExit>,
  timeoutMs: number,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const slow = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (slow) {
    child.kill("SIGKILL");
    await exited;
  }
}

/** The cluster block to render, checked; null without a cluster. */
function clusterOf(c: NatsClusterOptions | undefined, host: string): RenderedCluster | null {
  if (c === undefined) return null;
  const fail = (why: string) => new MessagingError("KILN_NATS_START_FAILED", `cluster: ${why}`);
  if (!Number.isInteger(c.port) || c.port < 0 || c.port > 65535)
    throw fail(`port ${c.port} is not in 0..65535`);
  const name = c.name ?? DEFAULT_CLUSTER_NAME;
  if (!NATS_NAME.test(name)) throw fail(`name ${JSON.stringify(name)} must match ${NATS_NAME}`);
  if (c.routes.length === 0)
    throw fail("at least one route is needed (JetStream in a cluster requires routes)");
  for (const r of c.routes) {
    try {
      const u = new URL(r.includes("://") ? r : `nats://${r}`);
      if (u.hostname === "" || u.port === "") throw new Error("no host or port");
    } catch {
      throw fail(`route ${JSON.stringify(r)} is not nats://host:port`);
    }
  }
  // -1: nats-server picks a free port itself.
  return { name, host: c.host ?? host, port: c.port === 0 ? -1 : c.port, routes: c.routes };
}

/** Starts the private nats-server; see the file header for the contract. */
export async function startNatsServer(options: StartNatsServerOptions): Promise<NatsServerHandle> {
  const host = options.host ?? "127.0.0.1";
  const wanted = options.port ?? DEFAULT_NATS_PORT;
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > 65535) {
    throw new MessagingError("KILN_NATS_START_FAILED", `port ${wanted} is not in 0..65535`);
  }
  const log = options.log;
  // Absolute: the server resolves paths in its config against its own working directory.
  const dataDir = resolvePath(options.dataDir);
  const binary = findBinary(options.binary);
  const timeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  const cluster = clusterOf(options.cluster, host);
  const serverName = options.serverName ?? (cluster === null ? "kiln" : `kiln-${hostname()}-${cluster.port}`);
  if (!NATS_NAME.test(serverName))
    throw new MessagingError(
      "KILN_NATS_START_FAILED",
      `server name ${JSON.stringify(serverName)} must match ${NATS_NAME}`,
    );

  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new MessagingError(
      "KILN_NATS_START_FAILED",
      `cannot create ${dataDir}: ${(err as Error).message}`,
      err,
    );
  }
  const release = acquireStartLock(dataDir);
  let creds: CredentialsFile;
  let launched: Launched;
  try {
    await takeOverDataDir(dataDir, stopTimeoutMs, log);
    creds =
      options.credentialsFile === undefined
        ? loadOrCreateCredentials(dataDir)
        : adoptCredentials(dataDir, options.credentialsFile);
    launched = await launchOnPort({
      binary,
      dataDir,
      host,
      wanted,
      creds,
      serverName,
      cluster,
      timeoutMs,
      log,
    });
  } finally {
    // From here the server's pid file guards the data dir.
    release();
  }
  const { child, exited } = launched;
  const url = `nats://${connectHost(host)}:${launched.port}`;
  log?.({ level: "info", source: "launcher", msg: `nats-server ready on ${url} (pid ${child.pid})` });

  let stopping: Promise<void> | null = null;
  return {
    url,
    port: launched.port,
    host,
    dataDir,
    pid: child.pid ?? -1,
    exited,
    credentials(component: NatsComponent): NatsCredentials {
      const pass = (creds.users as Record<string, string | undefined>)[component];
      if (pass === undefined) {
        throw new MessagingError(
          "KILN_NATS_UNKNOWN_COMPONENT",
          `no NATS user for ${JSON.stringify(component)}; one of ${NATS_COMPONENTS.join(", ")}`,
        );
      }
      return { user: component, pass };
    },
    stop(): Promise<void> {
      stopping ??= stopChild(child, exited, stopTimeoutMs);
      return stopping;
    },
  };
}
