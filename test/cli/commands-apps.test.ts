// Push and the app commands run as a user runs them: the compiled `kiln` in a child process
// against a small real Cloud Controller (test/cli/fake-cc.ts) on port 0.
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { guardChildren } from "../helpers/children.js";
import { harness } from "./harness.js";

guardChildren(t);

const { cc, home, kiln, start, finish } = await harness(t);
cc.addSpace("dev");
const login = await kiln(["login", "-a", cc.url, "-u", "admin", "-p", "secret"]);
if (login.status !== 0) throw new Error(`login failed: ${login.stderr}`);

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
  const out = r.stdout + r.stderr;
  t.notOk(out.includes("\r") || out.includes("\u001b["), "no progress bar or colour off a terminal");
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
  // The controller replaces a started app's instances on a new droplet: the CLI only waits.
  t.match(again.stderr, /Restarting web\n/);
  t.notOk(cc.requests.includes(`POST /v3/apps/${app?.guid}/actions/restart`), "no second restart asked");
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
