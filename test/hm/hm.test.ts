// The Health Manager with real processes: a nats-server, a `kiln cc`, a `kiln dea` (runc when
// usable) and two `kiln hm`. An instance killed with SIGKILL is replaced quickly by the leader's
// START; a scale-down is stopped by the controller alone; malformed heartbeats and exits are
// counted and do not stop the HM; the leader killed, the other HM takes over within about one
// lease; with no HM running, a killed instance stays dead (so it was the HM that restarted it).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { kilnBin } from "../../kernel/paths.js";
import { adminCredentials, ccDataDir, login, startCcProc } from "../control/harness.js";
import { pushClient, type Stat, until } from "../control/push-client.js";
import { appDeaArgs, startDeaProc, testIsolation } from "../dea/harness.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { type HmProc, startHmProc } from "./harness.js";

guardChildren(t);
const base = mkdtempSync(join(tmpdir(), "kiln-hm-"));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const isolation = await testIsolation(t, base);

const LEASE_MS = 1_500;
const hmArgs = [
  "--heartbeat-ms",
  "300",
  "--analysis-ms",
  "300",
  "--grace-ms",
  "3000",
  "--lease-ms",
  String(LEASE_MS),
];
const nats = await startTestNats(t);
const dataDir = ccDataDir(t);
const cc = await startCcProc(t, nats, dataDir);
const dea = await startDeaProc(t, nats, "hm-dea", appDeaArgs(isolation, join(base, "dea")));
t.teardown(() => dea.stop());
const hms: HmProc[] = [await startHmProc(t, nats, hmArgs), await startHmProc(t, nats, hmArgs)];
const token = await login(cc.url, adminCredentials(dataDir).user, adminCredentials(dataDir).password);
const { api, running, pushNode } = pushClient(cc.url, token);
const space = (await api("POST", "/v3/spaces", { name: "hm" })).body.guid as string;
const app = await pushNode(space, "node", 2);

const leader = (): HmProc => {
  const l = hms.filter((h) => h.child.exitCode === null && h.child.signalCode === null && held(h));
  if (l.length !== 1) throw new Error(`${l.length} leaders`);
  return l[0] as HmProc;
};
/** Whether its last lease event was an acquisition. */
const held = (h: HmProc): boolean =>
  h.logs.filter((l) => l.event === "lease_acquired" || l.event === "lease_lost").at(-1)?.event ===
  "lease_acquired";

/** The host pid listening on the instance's port (instances share the host network). */
function pidOn(port: number): number {
  const out = execFileSync("ss", ["-ltnpH", `sport = :${port}`], { encoding: "utf8" });
  const m = /pid=(\d+)/.exec(out);
  if (m === null) throw new Error(`nothing listens on ${port}: ${out}`);
  return Number(m[1]);
}

const runningLogs = (index: number) =>
  dea.logs.filter((l) => l.event === "instance_running" && l.app === app && l.index === index).length;

/** Kills index `index` with SIGKILL; resolves with ms until the DEA logged a new RUNNING instance there, or null. */
async function killAndTime(instances: Stat[], index: number, waitMs: number): Promise<number | null> {
  const target = instances.find((i) => i.index === index);
  if (target === undefined) throw new Error(`no index ${index}`);
  const before = runningLogs(index);
  const at = Date.now();
  process.kill(pidOn(target.port), "SIGKILL");
  try {
    await until("a new instance RUNNING", () => runningLogs(index) > before, waitMs);
    return Date.now() - at;
  } catch {
    return null;
  }
}

t.test("one HM leads", async (t) => {
  await until("a leader", () => hms.some(held), 5_000);
  t.ok(leader(), "exactly one holds the lease");
});

t.test("malformed heartbeats and exits are counted, logged with a code, and the HM goes on", async (t) => {
  const bus = await nats.connect("dea");
  t.teardown(() => bus.close());
  bus.nc.publish("dea.heartbeat", new Uint8Array([0xff, 0xff, 0xff]));
  bus.nc.publish("droplet.exited", new Uint8Array([0x0a, 0xff]));
  await bus.flush();
  for (const h of hms) {
    const r = await h.waitFor("heartbeat_rejected");
    t.equal(r.code, "KILN_HM_BAD_MESSAGE");
  }
  t.ok(
    hms.every((h) => h.child.exitCode === null),
    "both still run",
  );
});

t.test("an instance killed with SIGKILL is replaced at once", async (t) => {
  const ms = await killAndTime(await running(app, 2), 0, 10_000);
  t.not(ms, null, "a new instance at index 0");
  t.comment(`kill -9 → new instance RUNNING: ${ms} ms`);
  t.ok(
    leader().logs.some((l) => l.event === "hm_request" && l.why === "exited" && l.op === "START"),
    "started on its droplet.exited",
  );
  t.equal((await running(app, 2)).length, 2, "two instances, not three");
});

t.test(
  "crash policy: 3 immediate restarts, then a back-off; 3 crashes in 180 s is an app.flapping event",
  async (t) => {
    // Index 0 crashed once above (another index keeps its own count): index 1 crashes 3 times.
    for (let n = 1; n <= 3; n++)
      t.not(await killAndTime(await running(app, 2), 1, 10_000), null, `crash ${n} restarted at once`);
    const flapping = await until("app.flapping", async () => {
      const r = await api("GET", `/v3/audit_events?types=app.flapping&target_guids=${app}`);
      return r.body.resources[0];
    });
    t.match(flapping, {
      type: "app.flapping",
      actor: "hm",
      target_name: "node",
      space_guid: space,
      data: { index: 1 },
    });
    const home = mkdtempSync(join(tmpdir(), "kiln-hm-home-"));
    t.teardown(() => rmSync(home, { recursive: true, force: true }));
    const kiln = (...args: string[]) =>
      spawnSync(process.execPath, [kilnBin, ...args], {
        env: { ...process.env, KILN_HOME: home },
        encoding: "utf8",
      });
    const { user, password } = adminCredentials(dataDir);
    t.equal(kiln("login", "-a", cc.url, "-u", user, "-p", password, "-s", "hm").status, 0);
    const shown = kiln("app", "node");
    t.match(shown.stdout, /FLAPPING: index 1\n/, "kiln app shows it");
    t.same(JSON.parse(kiln("app", "node", "--json").stdout).flapping, [1]);
    const fourth = await killAndTime(await running(app, 2), 1, 2_000);
    t.equal(fourth, null, "the 4th crash is not restarted at once");
    t.ok(
      leader().logs.some((l) => l.event === "restart_delayed" && l.index === 1 && l.crashes === 4),
      "it waits its back-off",
    );
    // Each crash is in the audit trail with when its replacement may start.
    const last = await until("the app.crash event of index 1's 4th crash", async () => {
      const r = await api("GET", `/v3/audit_events?types=app.crash&target_guids=${app}`);
      return (r.body.resources as { created_at: string; data: Record<string, unknown> }[]).find(
        (e) => e.data.index === 1 && e.data.crashes === 4,
      );
    });
    t.match(last, { type: "app.crash", actor: "hm", data: { index: 1, crashes: 4, exit_status: -9 } });
    const wait = Date.parse(String(last.data.restart_at)) - Date.parse(last.created_at);
    t.ok(wait >= 25_000 && wait <= 35_000, `the 4th crash's restart waits the 30 s back-off (${wait} ms)`);
  },
);

t.test("a scale-down is stopped by the controller, not stopped again by the HM", async (t) => {
  // Index 1 waits out its back-off: scaling down to 1 drops it from the desired state.
  await api("POST", `/v3/apps/${app}/processes/web/actions/scale`, { instances: 1 });
  await running(app, 1);
  // Past the grace the HM gives a changed app, and some analyses.
  await new Promise((r) => setTimeout(r, 3_500));
  t.same(
    hms.flatMap((h) => h.logs.filter((l) => l.event === "hm_request" && l.op === "STOP")),
    [],
    "no STOP from the HM",
  );
  t.equal((await running(app, 1)).length, 1);
});

t.test("the leader killed, the other HM takes over within about one lease", async (t) => {
  const old = leader();
  const at = Date.now();
  await old.kill();
  const next = hms.find((h) => h !== old) as HmProc;
  await next.waitFor("lease_acquired", undefined, 3 * LEASE_MS);
  const took = Date.now() - at;
  t.comment(`take-over after ${took} ms (lease ${LEASE_MS} ms)`);
  t.ok(took <= LEASE_MS + LEASE_MS / 2, `within a lease and a half (${took} ms)`);
  const ms = await killAndTime(await running(app, 1), 0, 10_000);
  t.not(ms, null, "the new leader restarts a killed instance");
  t.comment(`kill -9 → new instance RUNNING under the new leader: ${ms} ms`);
});

t.test("with no HM running, a killed instance stays dead", async (t) => {
  const last = hms.find((h) => h.child.exitCode === null && h.child.signalCode === null) as HmProc;
  await last.stop();
  const stopped = await last.waitFor("hm_stopped");
  t.ok((stopped.counters as { rejected: number }).rejected >= 1, "its rejections were counted");
  const ms = await killAndTime(await running(app, 1), 0, 3_000);
  t.equal(ms, null, "nothing restarted it");
  await api("POST", `/v3/apps/${app}/actions/stop`);
  await until("no instance left", async () => {
    const r = await api("GET", `/v3/apps/${app}/processes/web/stats`);
    return r.body.resources.every((i: Stat) => i.state !== "RUNNING");
  });
});

t.test("with no DEA heard from, the HM holds its STARTs back; a DEA that beats gets them", async (t) => {
  await dea.stop();
  const hm = await startHmProc(t, nats, hmArgs);
  await hm.waitFor("lease_acquired", undefined, 3 * LEASE_MS);
  // The controller finds no DEA to place it on; the HM sees it missing and no DEA alive.
  await api("POST", `/v3/apps/${app}/actions/start`);
  await hm.waitFor("no_dea", undefined, 10_000);
  // Past the grace of the app's change, analyses run and must send nothing.
  await new Promise((r) => setTimeout(r, 4_000));
  t.same(
    hm.logs.filter((l) => l.event === "hm_request" && l.op === "START"),
    [],
    "no START while no DEA beats",
  );
  const next = await startDeaProc(t, nats, "hm-dea-2", appDeaArgs(isolation, join(base, "dea-2")));
  t.teardown(() => next.stop());
  const started = await hm.waitFor("hm_request", (l) => l.op === "START" && l.why === "analysis", 10_000);
  t.same(started.app, app, "the START goes out once a DEA beats");
  t.equal((await running(app, 1)).length, 1, "and the app runs");
});
