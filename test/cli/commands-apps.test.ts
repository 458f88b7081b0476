// Push and the app commands run as a user runs them: the compiled `kiln` in a child process
// against a real nats-server, `kiln cc` and `kiln dea` (runc when usable). What a command did is
// read back through the controller's API, or from the running app itself.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import type { InstanceStat } from "../control/harness.js";
import { guardChildren } from "../helpers/children.js";
import { until } from "../helpers/until.js";
import { harness } from "./harness.js";

guardChildren(t);

const { api, admin, cc, token, home, kiln, start, finish } = await harness(t, { dea: true });
const dev = (await api("POST", "/v3/spaces", { name: "dev" })).body.guid as string;
const login = await kiln(["login", "-a", cc.url, "-u", "admin", "-p", admin.password]);
if (login.status !== 0) throw new Error(`login failed: ${login.stderr}`);

interface AppRecord {
  guid: string;
  name: string;
  state: string;
  instances: number;
  memory_in_mb: number;
  disk_in_mb: number;
  environment_variables: Record<string, string>;
  droplet_guid: string | null;
  version: string;
}
type Stat = InstanceStat;

async function appRecord(name: string): Promise<AppRecord | undefined> {
  const r = await api("GET", `/v3/apps?names=${name}&space_guids=${dev}`);
  return (r.body.resources as AppRecord[])[0];
}

async function stats(guid: string): Promise<Stat[]> {
  return (await api("GET", `/v3/apps/${guid}/processes/web/stats`)).body.resources as Stat[];
}

/** Waits until exactly `n` instances run, all of the app's current version. */
async function runningOnly(name: string, n: number): Promise<Stat[]> {
  return until(
    `${n} running instance(s) of ${name}`,
    async () => {
      const app = await appRecord(name);
      if (app === undefined) return null;
      const all = await stats(app.guid);
      const up = all.filter((s) => s.state === "RUNNING" && s.port > 0 && s.version === app.version);
      return all.length === n && up.length === n ? up : null;
    },
    60_000,
    100,
  );
}

function appDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(home, "app-"));
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), body);
  }
  return dir;
}

// A Node app that logs each request, so a live log line can be made on demand, and answers with
// what it sees of its own files and environment.
const server = `const fs = require("node:fs");
require("node:http")
  .createServer((req, res) => {
    console.log("hit " + req.url);
    res.end(JSON.stringify({
      mode: fs.statSync(__filename).mode & 0o777,
      files: fs.readdirSync(__dirname).sort(),
      greeting: process.env.GREETING,
    }));
  })
  .listen(Number(process.env.PORT));
`;
const web = appDir({
  "manifest.yml": "applications:\n- name: web\n  memory: 64M\n  instances: 2\n  env:\n    GREETING: hi\n",
  "package.json": '{ "name": "web", "private": true, "scripts": { "start": "node server.js" } }\n',
  "server.js": server,
  "lib/util.js": "module.exports = 1\n",
  ".kilnignore": "*.log\n",
  "debug.log": "noise",
});
chmodSync(join(web, "server.js"), 0o755);

t.test("push: create, route, upload, stage with live log, start, URL", async (t) => {
  const r = await kiln(["push"], { cwd: web });
  t.equal(r.status, 0, r.stderr);
  t.match(
    r.stderr,
    /Uploading 4 of 4 files \(\d+\.\d MiB; 0 already held\)/,
    ".kilnignore and its pattern left out",
  );
  t.match(r.stdout, /\[STG\/\d+\] OUT -----> Detected node$/m, "the staging log, live, from the DEA");
  t.match(r.stdout, /\[STG\/\d+\] OUT -----> Droplet [0-9a-f]{12}: /m);
  t.match(r.stdout, /web is running\nhttp:\/\/web\.localhost:8080\n$/);
  const out = r.stdout + r.stderr;
  t.notOk(out.includes("\r") || out.includes("\u001b["), "no progress bar or colour off a terminal");
  const app = await appRecord("web");
  t.equal(app?.memory_in_mb, 64);
  t.equal(app?.instances, 2);
  t.equal(app?.state, "STARTED");
  t.equal(app?.environment_variables.GREETING, "hi");
  const droplet = await api("GET", `/v3/droplets/${app?.droplet_guid}`);
  t.equal(droplet.status, 200, "the app runs a droplet the controller knows");
  const routes = await api("GET", `/v3/routes?hosts=web&space_guids=${dev}`);
  t.strictSame(
    routes.body.resources.map((x: { destinations: unknown }) => x.destinations),
    [[{ app_guid: app?.guid }]],
  );
  // What was uploaded, as the running app sees it: modes kept, ignored files absent.
  const [one] = await runningOnly("web", 2);
  const seen = (await (await fetch(`http://${one?.host}:${one?.port}/`)).json()) as {
    mode: number;
    files: string[];
    greeting: string;
  };
  t.equal(seen.mode, 0o755, "server.js keeps its mode");
  t.notOk(seen.files.includes("debug.log") || seen.files.includes(".kilnignore"), JSON.stringify(seen.files));
  t.ok(["lib", "manifest.yml", "package.json", "server.js"].every((f) => seen.files.includes(f)));
  t.equal(seen.greeting, "hi");
});

t.test("push again: only the changed file travels; unchanged, nothing is staged or restarted", async (t) => {
  const app = await appRecord("web");
  writeFileSync(join(web, "lib/util.js"), "module.exports = 2\n");
  const again = await kiln(["push", "-i", "1", "--no-route"], { cwd: web });
  t.equal(again.status, 0, again.stderr);
  t.match(
    again.stderr,
    /Uploading 1 of 4 files \(\d+\.\d MiB; 3 already held\)/,
    "the controller holds the rest",
  );
  t.match(again.stdout, /\[STG\/\d+\] OUT -----> Detected node$/m, "a new package is staged");
  const after = await appRecord("web");
  t.equal(after?.instances, 1, "-i wins over the manifest");
  t.not(after?.droplet_guid, app?.droplet_guid, "a new droplet");
  // The controller replaces a started app's instances on a new droplet: the CLI only waits.
  t.match(again.stderr, /Restarting web\n/);
  const restarts = await api("GET", `/v3/audit_events?target_guids=${app?.guid}&types=app.restart`);
  t.equal(restarts.body.resources.length, 0, "no restart asked");
  await runningOnly("web", 1);

  const same = await kiln(["push", "-i", "1", "--no-route"], { cwd: web });
  t.equal(same.status, 0, same.stderr);
  t.match(same.stderr, /Uploading 0 of 4 files \(0\.0 MiB; 4 already held\)/);
  t.match(same.stderr, /Staging skipped: droplet \S+ was built from the same files and settings\n/);
  t.match(same.stderr, /Unchanged: web keeps running\n/);
  t.notMatch(same.stdout, /\[STG/, "nothing staged");
  const unchanged = await appRecord("web");
  t.equal(unchanged?.droplet_guid, after?.droplet_guid);
  t.equal(unchanged?.version, after?.version, "what runs did not change");
});

t.test("push: a failed build prints its log tail and exits 1", async (t) => {
  const dir = appDir({ "index.txt": "nothing to run" });
  const r = await kiln(["push", "broken", "--random-route"], { cwd: dir });
  t.equal(r.status, 1);
  t.match(r.stdout, /\[STG\/\d+\] OUT -----> Unpacked /, "the log up to the failure, live");
  t.match(r.stdout, /\[STG\/\d+\] ERR no buildpack detected this app/);
  t.match(
    r.stderr,
    /kiln: staging broken failed: .+ \[KILN_DEA_STAGING_NO_BUILDPACK\] \(KILN_CLI_STAGING_FAILED\)\n$/,
  );
  const routes = await api("GET", `/v3/routes?space_guids=${dev}`);
  t.ok(
    routes.body.resources.some((x: { host: string }) => /^broken-[0-9a-f]{6}$/.test(x.host)),
    "a random route",
  );
});

t.test("push: a bad manifest names file, line and field", async (t) => {
  const dir = appDir({ "manifest.yml": "applications:\n- name: web\n  memory: lots\n" });
  const r = await kiln(["push"], { cwd: dir });
  t.equal(r.status, 1);
  t.equal(
    r.stderr,
    'kiln: manifest.yml:3: applications[0].memory: "lots" is not a size like 256M (KILN_CLI_MANIFEST)\n',
  );
});

t.test("apps and app: aligned tables and JSON", async (t) => {
  await runningOnly("web", 1);
  const r = await kiln(["apps"]);
  t.equal(r.status, 0, r.stderr);
  const [header, ...rows] = r.stdout.trimEnd().split("\n");
  t.match(header, /^name\s+state\s+instances\s+memory\s+disk\s+urls$/);
  const line = rows.find((l) => l.startsWith("web "));
  t.match(line, /^web\s+started\s+1\/1\s+64M\s+1G\s+web\.localhost$/);
  t.equal(header?.indexOf("state"), line?.indexOf("started"), "columns line up");
  const json = JSON.parse((await kiln(["apps", "--json"])).stdout) as { name: string; urls: string[] }[];
  t.strictSame(json.find((a) => a.name === "web")?.urls, ["web.localhost"]);
  const one = await kiln(["app", "web"]);
  t.equal(one.status, 0, one.stderr);
  t.match(one.stdout, /^name:\s+web$/m);
  t.match(one.stdout, /^routes:\s+web\.localhost$/m);
  t.match(
    one.stdout,
    /^#\s+state\s+since\s+cpu\s+memory\s+disk\n0\s+running\s+\S+\s+\d+\.\d%\s+\d+\.\dM\s+\d+\.\dM$/m,
  );
  const oneJson = JSON.parse((await kiln(["app", "web", "--json"])).stdout) as {
    app: { name: string };
    instances: Stat[];
  };
  t.equal(oneJson.app.name, "web");
  t.equal(oneJson.instances.length, 1);
  t.match(oneJson.instances[0], { index: 0, state: "RUNNING", host: String, port: Number });
  const none = await kiln(["app", "ghost"]);
  t.equal(none.status, 1);
  t.equal(none.stderr, "kiln: app ghost not found in space dev (KILN_CLI_NOT_FOUND)\n");
});

t.test("scale: sizes in cf's syntax; a bad one is a usage error naming it", async (t) => {
  const bad = await kiln(["scale", "web", "-m", "lots"]);
  t.equal(bad.status, 2);
  t.equal(bad.stderr, 'kiln: kiln scale: -m "lots" is not a size like 256M (KILN_CLI_USAGE)\n');
  t.equal((await kiln(["scale", "web", "-i", "two"])).status, 2);
  t.equal((await kiln(["scale", "web"])).status, 2, "nothing to change");
  const r = await kiln(["scale", "web", "-i", "2", "-m", "96m", "-k", "2GB"]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, "web: 2 instances, 96M memory, 2G disk\n");
  t.match(await appRecord("web"), { instances: 2, memory_in_mb: 96, disk_in_mb: 2048 });
});

t.test("env, set-env, unset-env", async (t) => {
  t.equal((await kiln(["set-env", "web", "COLOR", "blue"])).status, 0);
  t.strictSame(JSON.parse((await kiln(["env", "web", "--json"])).stdout), { GREETING: "hi", COLOR: "blue" });
  t.strictSame((await appRecord("web"))?.environment_variables, { GREETING: "hi", COLOR: "blue" });
  t.equal((await kiln(["unset-env", "web", "GREETING"])).status, 0);
  const table = await kiln(["env", "web"]);
  t.equal(table.stdout, "name   value\nCOLOR  blue\n");
  t.strictSame((await appRecord("web"))?.environment_variables, { COLOR: "blue" });
});

t.test("routes, map-route, unmap-route", async (t) => {
  const m = await kiln(["map-route", "web", "api", "--path", "/v1"]);
  t.equal(m.status, 0, m.stderr);
  t.equal(m.stdout, "web: mapped api.localhost/v1\n");
  const held = await api("GET", `/v3/routes?hosts=api&space_guids=${dev}`);
  const app = await appRecord("web");
  t.match(held.body.resources, [{ host: "api", path: "/v1", destinations: [{ app_guid: app?.guid }] }]);
  const list = JSON.parse((await kiln(["routes", "--json"])).stdout) as { host: string; path: string }[];
  t.ok(list.some((x) => x.host === "api" && x.path === "/v1"));
  const table = await kiln(["routes"]);
  t.match(table.stdout, /^api\s+\/v1\s+api\.localhost\/v1\s+web$/m);
  const u = await kiln(["unmap-route", "web", "api", "--path", "/v1"]);
  t.equal(u.status, 0, u.stderr);
  const left = await api("GET", `/v3/routes?app_guids=${app?.guid}`);
  t.strictSame(
    left.body.resources.map((x: { host: string }) => x.host),
    ["web"],
    "only the app's own route is left mapped",
  );
  const again = await kiln(["unmap-route", "web", "api", "--path", "/v1"]);
  t.equal(again.status, 1);
  t.match(again.stderr, /KILN_CLI_NOT_FOUND/);
});

t.test("stop, start, restart and events", async (t) => {
  t.equal((await kiln(["stop", "web"])).stdout, "web: stopped\n");
  t.equal((await appRecord("web"))?.state, "STOPPED");
  t.equal((await kiln(["start", "web"])).stdout, "web: started\n");
  t.equal((await appRecord("web"))?.state, "STARTED");
  const before = (await appRecord("web"))?.version;
  t.equal((await kiln(["restart", "web"])).stdout, "web: started\n");
  t.not((await appRecord("web"))?.version, before, "a restart replaces every instance");
  const events = await kiln(["events", "web"]);
  t.match(events.stdout, /^time\s+event\s+actor$/m);
  t.match(events.stdout, /app\.stop\s+admin/);
  const json = JSON.parse((await kiln(["events", "web", "--json"])).stdout) as { type: string }[];
  t.ok(json.some((e) => e.type === "app.restart"));
});

interface LogLine {
  seq: number;
  source: string;
  text: string;
}

async function storedLines(guid: string): Promise<LogLine[]> {
  const res = await fetch(`${cc.url}/v3/apps/${guid}/logs?recent=true`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return (await res.text())
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as LogLine);
}

t.test("logs --recent: stored lines, then the live tail, no gap, no duplicate", async (t) => {
  const [instance] = await runningOnly("web", 2);
  const app = await appRecord("web");
  if (app === undefined || instance === undefined) throw new Error("web is not running");
  const stored = await storedLines(app.guid);
  t.ok(stored.length > 0, "staging and start left lines");
  const child = start(["logs", "web", "--recent"]);
  const done = finish(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  await until("the stored lines", () => out.split("\n").length > stored.length);
  // The app logs each request it answers: asked directly, it makes a live line.
  await fetch(`http://${instance.host}:${instance.port}/live-line`);
  await until("the live line", () => out.includes("hit /live-line"));
  child.kill("SIGINT");
  const r = await done;
  t.equal(r.status, 0, r.stderr);
  const printed = r.stdout.trimEnd().split("\n");
  // Every stored line up to the live one, each once and in order.
  const all = await storedLines(app.guid);
  const upTo = all.slice(0, all.findIndex((l) => l.text.includes("hit /live-line")) + 1);
  t.equal(printed.length, upTo.length, "each line once");
  t.strictSame(
    printed.map((l) => l.replace(/^\S+ \[[^\]]+\] (OUT|ERR) /, "")),
    upTo.map((l) => l.text.replace(/\n$/, "")),
  );
  t.match(printed.at(-1), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\+0000 \[APP\/\d\] OUT hit \/live-line$/);
});

t.test("delete -f; without -f off a terminal it is a usage error", async (t) => {
  t.equal((await kiln(["delete", "web"])).status, 2);
  t.ok(await appRecord("web"), "still there");
  const r = await kiln(["delete", "web", "-f"]);
  t.equal(r.status, 0, r.stderr);
  t.equal(await appRecord("web"), undefined);
  const routes = await api("GET", `/v3/routes?hosts=web&space_guids=${dev}`);
  t.strictSame(
    routes.body.resources.flatMap((x: { destinations: unknown[] }) => x.destinations),
    [],
    "its route is unmapped",
  );
});
