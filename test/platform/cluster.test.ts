// Kiln on a NATS cluster, as on several machines: three `kiln nats` nodes routed on loopback
// (one set of users), the router, controller, DEA and Health Manager each against a different
// node, JetStream assets R3. An app under continuous load through the router; one node is
// SIGKILLed; the app keeps answering, a new push and a scale work, and nothing stored is lost.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import t, { type Test } from "tap";
import { containerRoot } from "../../dea/config.js";
import { Runc } from "../../dea/container/runc.js";
import { kilnBin } from "../../kernel/paths.js";
import type { NatsComponent, NatsCredentials } from "../../messaging/nats-server.js";
import { adminCredentials, startCcProc } from "../control/harness.js";
import { appDeaArgs, startDeaProc, testIsolation } from "../dea/harness.js";
import { guardChildren, stopChild } from "../helpers/children.js";
import { type NatsEndpoint, untilClusterFormed } from "../helpers/nats.js";
import { type Run, runKiln } from "../helpers/platform.js";
import { freePort } from "../helpers/ports.js";
import { until } from "../helpers/until.js";
import { startHmProc } from "../hm/harness.js";
import { startRouterProc } from "../router/harness.js";

guardChildren(t);
// Two stagings on a busy 2-core machine; a file killed for its timeout never reaches the
// teardown that stops its containers.
t.setTimeout(240_000);

const base = mkdtempSync(join(tmpdir(), "kiln-cluster-"));
const deaDir = join(base, "dea");
const runc = new Runc({ root: containerRoot(deaDir) });
// Every kiln process here runs without tap's NODE_OPTIONS hook (a second more per CLI run).
const childEnv: NodeJS.ProcessEnv = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) childEnv[k] = v;
childEnv.NODE_OPTIONS = "";

interface Node extends NatsEndpoint {
  name: string;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The nats-server's own pid (the child is `kiln nats`, its parent). */
  serverPid(): number;
}
const nodes: Node[] = [];
const stoppers: (() => Promise<unknown>)[] = [];
t.teardown(async () => {
  // Components first (the DEA stops its instances), then the nodes, then any container left.
  for (const stop of stoppers.reverse()) await stop().catch(() => {});
  await Promise.all(nodes.map((n) => stopChild(n.child, n.exited)));
  for (const c of await runc.list().catch(() => [])) await runc.delete(c.id).catch(() => {});
  rmSync(base, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------
// Three `kiln nats` nodes: the first writes the credentials, the others take them.

const clientPorts = [await freePort(), await freePort(), await freePort()];
const clusterPorts = [await freePort(), await freePort(), await freePort()];
const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`).join(",");

async function startNode(i: number, credentials?: string): Promise<Node> {
  const dataDir = join(base, `n${i}`);
  const args = ["nats", "--data-dir", dataDir, "--port", String(clientPorts[i]), "--name", `n${i}`];
  args.push("--cluster-port", String(clusterPorts[i]), "--routes", routes);
  if (credentials !== undefined) args.push("--credentials", credentials);
  const child = spawn(process.execPath, [kilnBin, ...args], {
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const m = await until(
    `node n${i} listening`,
    () => {
      if (child.exitCode !== null) throw new Error(`kiln nats n${i} exited ${child.exitCode}: ${err}`);
      return /^nats-server listening on (\S+)$/m.exec(out);
    },
    30_000,
    50,
  );
  const credsFile = join(dataDir, "nats", "credentials.json");
  const users = (JSON.parse(readFileSync(credsFile, "utf8")) as { users: Record<NatsComponent, string> })
    .users;
  const node: Node = {
    name: `n${i}`,
    url: m[1] as string,
    child,
    exited,
    credentials: (c: NatsComponent): NatsCredentials => ({ user: c, pass: users[c] }),
    serverPid: () => Number(readFileSync(join(dataDir, "nats", "nats-server.pid"), "utf8").trim()),
  };
  nodes.push(node);
  return node;
}

const n0 = await startNode(0);
const sharedCreds = join(base, "n0", "nats", "credentials.json");
const [n1, n2] = await Promise.all([startNode(1, sharedCreds), startNode(2, sharedCreds)]);

/** An admin connection to `node` (nats.js alone: reconnects to the other nodes it learns of). */
async function adminTo(node: Node): Promise<NatsConnection> {
  const nc = await connect({ servers: node.url, ...node.credentials("admin"), reconnectTimeWait: 200 });
  stoppers.push(() => nc.close());
  return nc;
}

// The cluster is formed when a client's INFO lists the three servers, and JetStream is ready
// once its meta leader is elected (account info answers).
await untilClusterFormed(n0, 3, 30_000);
const admin = await adminTo(n0);
// No API check here: before the meta leader is elected it times out; the wait below is the check.
const jsm = await admin.jetstreamManager({ checkAPI: false });
await until(
  "a JetStream meta leader",
  () =>
    jsm.getAccountInfo().then(
      () => true,
      () => false,
    ),
  30_000,
  200,
);

// ---------------------------------------------------------------------------------------
// The components, each on another node: router → n0, controller and HM → n1, DEA → n2.

const isolation = await testIsolation(t, base);
const router = await startRouterProc(t, n0, ["--threads", "1"], { NODE_OPTIONS: "" });
stoppers.push(async () => {
  router.child.kill("SIGTERM");
  await router.exited;
});
const ccDir = join(base, "cc");
const [cc, dea, hm] = await Promise.all([
  startCcProc(t, n1, ccDir, { NODE_OPTIONS: "" }, ["--router-port", String(router.port)]),
  startDeaProc(t, n2, "dea-cluster", appDeaArgs(isolation, deaDir), { NODE_OPTIONS: "" }),
  startHmProc(t, n1, ["--heartbeat-ms", "1000", "--analysis-ms", "1000"]),
]);
stoppers.push(
  () => cc.stop(),
  () => dea.stop(),
  () => hm.stop(),
);
await hm.waitFor("jetstream_replicas");

const home = join(base, "home");
/** `kiln ...args` as the admin. */
const kiln = (args: string[], timeoutMs = 120_000): Promise<Run> =>
  runKiln(childEnv, home, args, { timeoutMs });

/** The components' warnings and errors, and the controller's last lines: a failed step's diagnostics. */
function troubles(): Record<string, unknown>[] {
  const bad = (l: Record<string, unknown>) => l.level === "warn" || l.level === "error";
  return [...dea.logs, ...hm.logs].filter(bad).slice(-10).concat(cc.logs.slice(-30));
}

async function succeeds(t: Test, args: string[]): Promise<Run> {
  const r = await kiln(args);
  t.equal(r.code, 0, `kiln ${args.join(" ")}: exit 0`, {
    stdout: r.stdout,
    stderr: r.stderr,
    ...(r.code === 0 ? {} : { components: troubles() }),
  });
  return r;
}

/** `kiln ...args --json`, parsed; throws when it fails (polled, so it asserts nothing). */
async function json<T>(args: string[]): Promise<T> {
  const r = await kiln([...args, "--json"]);
  if (r.code !== 0) throw new Error(`kiln ${args.join(" ")} --json: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

interface AppView {
  app: { guid: string; name: string; instances: number };
  routes: { host: string }[];
  instances: { index: number; state: string }[];
}

/** GET / through the router for `host`.localhost; status 0 when nothing answered. */
function viaRouter(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: router.port,
        path: "/",
        agent: false,
        timeout: 10_000,
        headers: { host: `${host}.localhost:${router.port}` },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", () => resolve({ status: 0, body }));
      },
    );
    req.on("error", () => resolve({ status: 0, body: "" }));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

const BODY = "hello from the node example\n";
const runningCount = (v: AppView) => v.instances.filter((i) => i.state === "RUNNING").length;

if (isolation === "none" && process.getuid?.() !== 0) {
  t.comment("DEA runs apps as plain processes here");
}

t.test("every stream, bucket and object store Kiln created is R3", async (t) => {
  for (const proc of [cc.logs, dea.logs, hm.logs]) {
    const rec = proc.find((l) => l.event === "jetstream_replicas");
    t.equal(rec?.replicas, 3, `${String(rec?.component)} decided on 3 replicas`);
  }
  const expected = [
    "KILN_LOGS",
    "KILN_EVENTS",
    "KV_kiln_apps",
    "KV_kiln_routes",
    "KV_kiln_spaces",
    "KV_kiln_users",
    "KV_kiln_hm",
    "OBJ_kiln_blobs",
  ];
  for (const name of expected) {
    const si = await jsm.streams.info(name);
    t.equal(si.config.num_replicas, 3, `${name}: 3 replicas`);
  }
});

let appEvents: string[] = [];
t.test("the admin logs in and pushes an app with 2 instances", async (t) => {
  const { user, password } = adminCredentials(ccDir);
  await succeeds(t, ["login", "-a", cc.url, "-u", user, "-p", password]);
  await succeeds(t, ["create-space", "cluster"]);
  await succeeds(t, ["target", "-s", "cluster"]);
  const r = await succeeds(t, ["push", "web", "-p", "examples/node", "-i", "2"]);
  t.match(r.stdout, "web is running");
  await until(
    "2 RUNNING instances of web",
    async () => runningCount(await json<AppView>(["app", "web"])) === 2,
  );
  const answer = await until("web through the router", async () => {
    const a = await viaRouter("web");
    return a.status === 200 ? a : null;
  });
  t.equal(answer.body, BODY);
  appEvents = (await json<{ guid: string }[]>(["events", "web"])).map((e) => e.guid);
  t.ok(appEvents.length > 0, "web has audit events");
});

t.test("a node dies under load: the app answers, push and scale work, nothing is lost", async (t) => {
  // Continuous load through the router: 2 clients, one request after another each with a short
  // pause, so a 2-core machine still has room for the stagings below.
  const statuses = new Map<number, number>();
  let loading = true;
  let answered = 0;
  const client = async () => {
    while (loading) {
      const r = await viaRouter("web");
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 200 && r.body === BODY) answered++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  const clients = [client(), client()];
  // However the steps below end, the load stops with them.
  t.teardown(async () => {
    loading = false;
    await Promise.all(clients);
  });
  await until("load flowing", () => answered >= 20, 30_000, 20);

  // n1 carries the controller and the HM (and maybe stream leaders): killed as a machine dies.
  const pid = n1.serverPid();
  process.kill(pid, "SIGKILL");
  const nodeExit = await n1.exited;
  t.equal(nodeExit.code, 1, "kiln nats reports its server's death with exit 1");
  const before = answered;
  await until("the app answering after the kill", () => answered >= before + 50, 60_000, 20);

  // The controller and the HM find another node on their own.
  await until(
    "the controller back on NATS",
    () => cc.logs.some((l) => l.event === "nats_reconnected"),
    60_000,
    100,
  );
  await until("the HM back on NATS", () => hm.logs.some((l) => l.event === "nats_reconnected"), 60_000, 100);

  const second = await succeeds(t, ["push", "api", "-p", "examples/node"]);
  t.match(second.stdout, "api is running", "a second app pushes with one node down");
  const api = await until("api through the router", async () => {
    const a = await viaRouter("api");
    return a.status === 200 ? a : null;
  });
  t.equal(api.body, BODY);

  const scaled = await succeeds(t, ["scale", "web", "-i", "3"]);
  t.match(scaled.stdout, /^web: 3 instances, /);
  await until(
    "3 RUNNING instances of web",
    async () => runningCount(await json<AppView>(["app", "web"])) === 3,
    60_000,
    500,
  );

  loading = false;
  await Promise.all(clients);
  const summary = Object.fromEntries(statuses);
  t.equal(
    statuses.get(200),
    [...statuses.values()].reduce((a, b) => a + b, 0),
    "every request answered 200",
    {
      statuses: summary,
    },
  );
  t.comment(`requests through the router during the test: ${JSON.stringify(summary)}`);

  const view = await json<AppView>(["app", "web"]);
  t.equal(view.app.instances, 3, "web's record holds the new instance count");
  t.ok(
    view.routes.some((r) => r.host === "web"),
    "web keeps its route",
  );
  const hosts = (await json<{ host: string }[]>(["routes"])).map((r) => r.host);
  t.ok(hosts.includes("web") && hosts.includes("api"), "both routes listed", { hosts });
  // Each read of the audit log makes a consumer, which nats-server 2.9 may place on the lost
  // peer: several reads in a row, each of which must ride that out.
  for (let read = 1; read <= 5; read++) {
    const events = (await json<{ guid: string }[]>(["events", "web"])).map((e) => e.guid);
    t.ok(
      appEvents.every((g) => events.includes(g)),
      `read ${read}: every event of web from before the kill is still there`,
    );
    t.ok(events.length > appEvents.length, `read ${read}: and the scale added one`);
  }
  const apps = (await json<{ name: string }[]>(["apps"])).map((a) => a.name).sort();
  t.same(apps, ["api", "web"], "kiln apps lists both");
});
