// The client commands as a user runs them: the compiled `kiln` in a child process, KILN_HOME
// in a temp folder, against a small real Cloud Controller (test/cli/fake-cc.ts) on port 0.
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { kilnBin } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";
import { FakeCc } from "./fake-cc.js";

guardChildren(t);

const home = mkdtempSync(join(tmpdir(), "kiln-home-"));
t.teardown(() => rmSync(home, { recursive: true, force: true }));

const cleanEnv: NodeJS.ProcessEnv = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("KILN_")) cleanEnv[k] = v;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, [kilnBin, ...args], {
    cwd: options.cwd ?? home,
    env: { ...cleanEnv, KILN_HOME: home, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function finish(child: ChildProcess): Promise<Run> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) =>
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }),
  );
}

// Asynchronous: the server answering the child lives in this same process.
const kiln = (args: string[], options?: { cwd?: string; env?: NodeJS.ProcessEnv }) =>
  finish(start(args, options));

const cc = await new FakeCc().start();
t.teardown(() => cc.stop());
const devGuid = cc.addSpace("dev");

const configFile = join(home, "config.json");
const config = () => JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>;

t.test("login writes config.json with mode 0600 and targets the only space", async (t) => {
  const r = await kiln(["login", "-a", cc.url, "-u", "admin", "-p", "secret"]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, `Logged in to ${cc.url} as admin`);
  t.match(r.stdout, "Targeted space dev");
  t.equal(statSync(configFile).mode & 0o777, 0o600);
  t.equal(statSync(home).mode & 0o077, 0, "KILN_HOME is private too");
  const c = config();
  t.equal(c.api, cc.url);
  t.equal(c.user, "admin");
  t.ok(cc.tokens.has(String(c.token)));
  t.strictSame(c.space, { name: "dev", guid: devGuid });
});

t.test("a bad password is the controller's detail and code, exit 1", async (t) => {
  const r = await kiln(["login", "-a", cc.url, "-u", "admin", "-p", "wrong"]);
  t.equal(r.status, 1);
  t.equal(r.stderr, "kiln: bad user name or password (KILN_CC_UNAUTHENTICATED)\n");
});

t.test("a missing login flag off a terminal is a usage error", async (t) => {
  const r = await kiln(["login", "-a", cc.url, "-u", "admin"]);
  t.equal(r.status, 2);
  t.match(r.stderr, /kiln login: -p PASSWORD is required \(KILN_CLI_USAGE\)/);
});

t.test("an API that does not answer is named in a coded error", async (t) => {
  // A port that was free a moment ago: nothing listens there.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const api = `http://127.0.0.1:${port}`;
  const r = await kiln(["login", "-a", api, "-u", "admin", "-p", "secret"]);
  t.equal(r.status, 1);
  t.equal(
    r.stderr,
    `kiln: cannot reach the Cloud Controller at ${api}: connection refused (KILN_CLI_API_UNREACHABLE)\n`,
  );
});

t.test("spaces: every page, as a table and as JSON; target -s switches", async (t) => {
  cc.addSpace("prod");
  cc.addSpace("staging");
  const table = await kiln(["spaces"]);
  t.equal(table.status, 0, table.stderr);
  const lines = table.stdout.trimEnd().split("\n");
  t.match(lines[0], /^name\s+targeted\s+created$/);
  t.equal(lines.length, 4, "three spaces over two pages");
  t.match(lines[1], /^dev\s+\*\s+\d{4}-/);
  const json = await kiln(["spaces", "--json"]);
  t.strictSame(
    (JSON.parse(json.stdout) as { name: string }[]).map((s) => s.name),
    ["dev", "prod", "staging"],
  );
  const r = await kiln(["target", "-s", "prod"]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /space:\s+prod/);
  t.equal((config().space as { name: string }).name, "prod");
  const missing = await kiln(["target", "-s", "nope"]);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /space nope not found \(KILN_CLI_NOT_FOUND\)/);
  await kiln(["target", "-s", "dev"]);
  const shown = await kiln(["target", "--json"]);
  t.strictSame(JSON.parse(shown.stdout), { api: cc.url, user: "admin", space: "dev" });
});

t.test("create-space, create-user and add-member; a taken name is the controller's error", async (t) => {
  t.equal((await kiln(["create-space", "qa"])).status, 0);
  const taken = await kiln(["create-space", "qa"]);
  t.equal(taken.status, 1);
  t.equal(taken.stderr, "kiln: space name qa is taken (KILN_CC_NAME_TAKEN)\n");
  const u = await kiln(["create-user", "ann", "-p", "pw"]);
  t.equal(u.status, 0, u.stderr);
  t.equal(cc.users.get("ann")?.admin, false);
  t.equal((await kiln(["create-user", "ann"])).status, 2, "no password: usage");
  const m = await kiln(["add-member", "qa", "ann"]);
  t.equal(m.status, 0, m.stderr);
  t.ok(cc.spaces.find((s) => s.name === "qa")?.members.includes("ann"));
});

function appDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(home, "app-"));
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), body);
  }
  return dir;
}

t.test("push: create, route, upload, stage with live log, start, URL", async (t) => {
  const dir = appDir({
    "manifest.yml": "applications:\n- name: web\n  memory: 128M\n  instances: 2\n  env:\n    GREETING: hi\n",
    "server.js": "require('http').createServer((q, s) => s.end('hi')).listen(process.env.PORT)\n",
    "lib/util.js": "module.exports = 1\n",
    ".kilnignore": "*.log\n",
    "debug.log": "noise",
  });
  chmodSync(join(dir, "server.js"), 0o755);
  const r = await kiln(["push"], { cwd: dir });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /\[STG\] OUT -----> Installing dependencies/, "the staging log, live");
  t.match(r.stdout, /web is running\nhttp:\/\/web\.localhost:8080\n$/);
  const app = cc.apps.find((a) => a.name === "web");
  t.equal(app?.memory_in_mb, 128);
  t.equal(app?.instances, 2);
  t.equal(app?.state, "STARTED");
  t.equal(app?.environment_variables.GREETING, "hi");
  t.ok(app?.droplet_guid?.startsWith("droplet-"));
  t.strictSame(cc.routes.find((x) => x.host === "web")?.destinations, [{ app_guid: app?.guid }]);
  const up = cc.uploads.at(-1);
  t.strictSame(
    up?.entries.map((e) => e.path),
    [".kiln-resources.json", "lib/util.js", "manifest.yml", "server.js"],
  );
  t.equal(up?.entries.find((e) => e.path === "server.js")?.mode, 0o755);

  // The controller now holds two of the files: only the rest travel.
  const { createHash } = await import("node:crypto");
  for (const f of ["server.js", "lib/util.js"]) {
    cc.held.add(
      createHash("sha1")
        .update(readFileSync(join(dir, f)))
        .digest("hex"),
    );
  }
  const again = await kiln(["push", "-i", "1", "--no-route"], { cwd: dir });
  t.equal(again.status, 0, again.stderr);
  const second = cc.uploads.at(-1);
  t.strictSame(
    second?.entries.map((e) => e.path),
    [".kiln-resources.json", "manifest.yml"],
  );
  t.strictSame(
    second?.resources.map((x) => x.path),
    ["lib/util.js", "server.js"],
  );
  t.equal(cc.apps.find((a) => a.name === "web")?.instances, 1, "-i wins over the manifest");
  t.ok(cc.requests.includes(`POST /v3/apps/${app?.guid}/actions/restart`), "a started app is restarted");
});

t.test("push: a failed build prints its log tail and exits 1", async (t) => {
  const dir = appDir({ "index.txt": "nothing to run" });
  const r = await kiln(["push", "broken", "--random-route"], { cwd: dir });
  t.equal(r.status, 1);
  t.match(r.stdout + r.stderr, /-----> /);
  t.match(
    r.stderr,
    /kiln: staging broken failed: no buildpack detected the app \[KILN_DEA_NO_BUILDPACK\] \(KILN_CLI_STAGING_FAILED\)\n$/,
  );
  t.ok(
    cc.routes.some((x) => /^broken-[0-9a-f]{6}$/.test(x.host)),
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
  const r = await kiln(["apps"]);
  t.equal(r.status, 0, r.stderr);
  const [header, ...rows] = r.stdout.trimEnd().split("\n");
  t.match(header, /^name\s+state\s+instances\s+memory\s+disk\s+urls$/);
  const web = rows.find((l) => l.startsWith("web "));
  t.match(web, /^web\s+started\s+1\/1\s+128M\s+1G\s+web\.localhost$/);
  t.equal(header?.indexOf("state"), web?.indexOf("started"), "columns line up");
  const json = JSON.parse((await kiln(["apps", "--json"])).stdout) as { name: string; urls: string[] }[];
  t.strictSame(json.find((a) => a.name === "web")?.urls, ["web.localhost"]);
  const one = await kiln(["app", "web"]);
  t.equal(one.status, 0, one.stderr);
  t.match(one.stdout, /^name:\s+web$/m);
  t.match(one.stdout, /^routes:\s+web\.localhost$/m);
  t.match(
    one.stdout,
    /^#\s+state\s+since\s+cpu\s+memory\s+disk\n0\s+running\s+1m5s\s+1\.5%\s+12\.0M\s+3\.0M$/m,
  );
  const oneJson = JSON.parse((await kiln(["app", "web", "--json"])).stdout) as {
    app: { name: string };
    instances: unknown[];
  };
  t.equal(oneJson.app.name, "web");
  t.equal(oneJson.instances.length, 1);
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
  const r = await kiln(["scale", "web", "-i", "3", "-m", "512m", "-k", "2GB"]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, "web: 3 instances, 512M memory, 2G disk\n");
  t.match(
    cc.apps.find((a) => a.name === "web"),
    { instances: 3, memory_in_mb: 512, disk_in_mb: 2048 },
  );
});

t.test("env, set-env, unset-env", async (t) => {
  t.equal((await kiln(["set-env", "web", "COLOR", "blue"])).status, 0);
  t.strictSame(JSON.parse((await kiln(["env", "web", "--json"])).stdout), { GREETING: "hi", COLOR: "blue" });
  t.equal((await kiln(["unset-env", "web", "GREETING"])).status, 0);
  const table = await kiln(["env", "web"]);
  t.equal(table.stdout, "name   value\nCOLOR  blue\n");
});

t.test("routes, map-route, unmap-route", async (t) => {
  const m = await kiln(["map-route", "web", "api", "--path", "/v1"]);
  t.equal(m.status, 0, m.stderr);
  t.equal(m.stdout, "web: mapped api.localhost/v1\n");
  const list = JSON.parse((await kiln(["routes", "--json"])).stdout) as { host: string; path: string }[];
  t.ok(list.some((x) => x.host === "api" && x.path === "/v1"));
  const table = await kiln(["routes"]);
  t.match(table.stdout, /^api\s+\/v1\s+api\.localhost\/v1\s+web$/m);
  const u = await kiln(["unmap-route", "web", "api", "--path", "/v1"]);
  t.equal(u.status, 0, u.stderr);
  const again = await kiln(["unmap-route", "web", "api", "--path", "/v1"]);
  t.equal(again.status, 1);
  t.match(again.stderr, /KILN_CLI_NOT_FOUND/);
});

t.test("stop, start, restart and events", async (t) => {
  t.equal((await kiln(["stop", "web"])).stdout, "web: stopped\n");
  t.equal((await kiln(["start", "web"])).stdout, "web: started\n");
  t.equal((await kiln(["restart", "web"])).stdout, "web: started\n");
  const events = await kiln(["events", "web"]);
  t.match(events.stdout, /^time\s+event\s+actor$/m);
  t.match(events.stdout, /audit\.app\.stop\s+admin/);
  const json = JSON.parse((await kiln(["events", "web", "--json"])).stdout) as { type: string }[];
  t.ok(json.some((e) => e.type === "audit.app.restart"));
});

t.test("logs --recent: stored lines, then the tail from the last seq, no gap, no duplicate", async (t) => {
  const app = cc.apps.find((a) => a.name === "web");
  if (app === undefined) throw new Error("no web app");
  const child = start(["logs", "web", "--recent"]);
  const done = finish(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  const until = async (test: () => boolean) => {
    for (let i = 0; i < 200 && !test(); i++) await new Promise((r) => setTimeout(r, 25));
  };
  const stored = cc.logs.get(app.guid)?.length ?? 0;
  await until(() => out.split("\n").length > stored);
  await until(() =>
    cc.requests.some((r) => r.startsWith(`GET /v3/apps/${app.guid}/logs?follow=true&after_seq=`)),
  );
  cc.log(app.guid, "APP", "a live line", 1);
  await until(() => out.includes("a live line"));
  child.kill("SIGINT");
  const r = await done;
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  t.equal(lines.length, stored + 1, "each line once");
  t.match(lines.at(-1), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\+0000 \[APP\/1\] OUT a live line$/);
  const lastSeq = cc.logs.get(app.guid)?.at(-2)?.seq;
  t.ok(cc.requests.includes(`GET /v3/apps/${app.guid}/logs?follow=true&after_seq=${lastSeq}`));
});

t.test("delete -f; without -f off a terminal it is a usage error", async (t) => {
  t.equal((await kiln(["delete", "web"])).status, 2);
  const r = await kiln(["delete", "web", "-f"]);
  t.equal(r.status, 0, r.stderr);
  t.notOk(cc.apps.some((a) => a.name === "web"));
});

t.test("a revoked token: one coded line, exit 1", async (t) => {
  cc.tokens.clear();
  const r = await kiln(["apps"]);
  t.equal(r.status, 1);
  t.equal(r.stderr, "kiln: not logged in or token expired: run kiln login (KILN_CLI_NOT_LOGGED_IN)\n");
  const json = await kiln(["apps", "--json"]);
  t.equal(json.stdout, "", "nothing on stdout");
});

t.test("logout revokes the token and forgets it", async (t) => {
  await kiln(["login", "-a", cc.url, "-u", "admin", "-p", "secret", "-s", "dev"]);
  const token = String(config().token);
  t.ok(cc.tokens.has(token));
  const r = await kiln(["logout"]);
  t.equal(r.status, 0, r.stderr);
  t.notOk(cc.tokens.has(token), "revoked");
  t.equal(config().token, undefined);
  t.equal(config().api, cc.url, "the API is kept for the next login");
  t.equal(statSync(configFile).mode & 0o777, 0o600);
  const after = await kiln(["apps"]);
  t.equal(after.status, 1);
  t.match(after.stderr, /KILN_CLI_NOT_LOGGED_IN/);
});

t.test("a malformed config.json is a coded error", async (t) => {
  writeFileSync(configFile, "{not json");
  const r = await kiln(["apps"]);
  t.equal(r.status, 1);
  t.match(r.stderr, /config\.json is not JSON \(KILN_CLI_CONFIG\)/);
});
