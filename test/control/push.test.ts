// Push and run end to end, as a user would: a real nats-server, a real `kiln cc` (1 MiB package
// limit) and a real `kiln dea` (runc when usable). Resource matching, the node example uploaded
// as a tar.gz, staged, started, scaled, restarted; a re-upload of matched files only gives the
// same package; recent and followed logs; a route mapped, unmapped and deleted on the running app
// reaches it through a real router without a restart (dea.update); and a table of hostile
// uploads, each refused.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { decode, encode, type UpdateRequest } from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { decodeRegister, decodeUnregister, type RegistryMessage } from "../../messaging/gorouter.js";
import { appDeaArgs, startDeaProc, testIsolation } from "../dea/harness.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { file, tarball } from "../helpers/tarball.js";
import { send, startRouterProc } from "../router/harness.js";
import { adminCredentials, ccDataDir, login, startCcProc } from "./harness.js";
import { appFiles, files, HELLO, pushClient, resourcesJson, until } from "./push-client.js";

guardChildren(t);
const base = mkdtempSync(join(tmpdir(), "kiln-cc-push-"));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const isolation = await testIsolation(t, base);

const nats = await startTestNats(t);
const dataDir = ccDataDir(t);
const cc = await startCcProc(t, nats, dataDir, {}, [
  "--max-package-mb",
  "1",
  "--discover-timeout-ms",
  "1000",
]);
const dea = await startDeaProc(t, nats, "push-dea", appDeaArgs(isolation, join(base, "dea")));
t.teardown(() => dea.stop());
const A = cc.url;
const creds = adminCredentials(dataDir);
const token = await login(A, creds.user, creds.password);
const { api, upload, newPackage, running, answers } = pushClient(A, token);

const space = (await api("POST", "/v3/spaces", { name: "push" })).body.guid as string;
const app = (await api("POST", "/v3/apps", { name: "node", space_guid: space })).body.guid as string;
let firstPackage: { sha256: string; size: number } = { sha256: "", size: 0 };

t.test("resource matching", async (t) => {
  const ask = files.map((f) => ({ checksum: { value: f.sha1 }, size_in_bytes: f.body.length }));
  const none = await api("POST", "/v3/resource_matches", { resources: ask });
  t.same(none, { status: 201, body: { resources: [] } }, "nothing known yet");
  const bad = await api("POST", "/v3/resource_matches", {
    resources: [{ checksum: { value: "zz" }, size_in_bytes: 1 }],
  });
  t.equal(bad.status, 422);
  t.match(bad.body.errors[0], { code: "KILN_CC_INVALID", detail: /resources\[0\]\.checksum\.value/ });
});

t.test("upload, build, start, scale, restart", async (t) => {
  const pkg = await newPackage(app);
  t.equal((await api("GET", `/v3/packages/${pkg}`)).body.state, "AWAITING_UPLOAD");
  const up = await upload(pkg, tarball([resourcesJson([]), ...appFiles]));
  t.equal(up.status, 200, JSON.stringify(up.body));
  t.match(up.body, { state: "READY", sha256: /^[0-9a-f]{64}$/, size: Number });
  firstPackage = up.body;
  const again = await upload(pkg, tarball([resourcesJson([]), ...appFiles]));
  t.equal(again.status, 422, "a READY package takes no second upload");

  const known = await api("POST", "/v3/resource_matches", {
    resources: files.map((f) => ({ checksum: { value: f.sha1 }, size_in_bytes: f.body.length })),
  });
  t.equal(known.body.resources.length, 2, "both files are held now");

  const route = await api("POST", "/v3/routes", { host: "node", space_guid: space });
  await api("POST", `/v3/routes/${route.body.guid}/destinations`, { destinations: [{ app: { guid: app } }] });

  const build = await api("POST", "/v3/builds", { package: { guid: pkg } });
  t.match(build, { status: 201, body: { state: "STAGING", package_guid: pkg, app_guid: app } });
  const staged = await until("staged", async () => {
    const b = await api("GET", `/v3/builds/${build.body.guid}`);
    return b.body.state === "STAGING" ? null : b.body;
  });
  t.equal(staged.state, "STAGED", JSON.stringify(staged));
  const droplet = await api("GET", `/v3/droplets/${staged.droplet_guid}`);
  t.match(droplet.body, { state: "STAGED", app_guid: app, key: /^droplets\//, sha1: /^[0-9a-f]{40}$/ });
  t.equal(
    (await api("GET", `/v3/apps/${app}`)).body.droplet_guid,
    staged.droplet_guid,
    "current droplet set",
  );

  t.equal((await api("POST", `/v3/apps/${app}/actions/start`)).status, 200);
  t.same(await answers(await running(app, 1)), { 0: HELLO }, "index 0 answers");
  await api("POST", `/v3/apps/${app}/processes/web/actions/scale`, { instances: 3 });
  const three = await running(app, 3);
  t.same(
    three.map((i) => i.index),
    [0, 1, 2],
  );
  t.same(await answers(three), { 0: HELLO, 1: HELLO, 2: HELLO }, "each answers");
  await api("POST", `/v3/apps/${app}/processes/web/actions/scale`, { instances: 1 });
  t.same(
    (await running(app, 1)).map((i) => i.index),
    [0],
    "scaled down to index 0",
  );
  const restarted = await api("POST", `/v3/apps/${app}/actions/restart`);
  t.same(
    await answers(await running(app, 1, restarted.body.version)),
    { 0: HELLO },
    "the new version answers",
  );
});

t.test("cc.hm.requests: STOP stops, START starts what is missing, a repeat does nothing", async (t) => {
  const hm = await nats.connect("hm");
  t.teardown(() => hm.close());
  const version = (await api("GET", `/v3/apps/${app}`)).body.version as string;
  const send = (op: "START" | "STOP") =>
    hm.nc.publish("cc.hm.requests", encode("cc.hm.requests", { op, app, indices: [0], version }));
  send("STOP");
  await until("index 0 stopped", async () => {
    const r = await api("GET", `/v3/apps/${app}/processes/web/stats`);
    return r.body.resources.length === 0;
  });
  send("START");
  send("START");
  const one = await running(app, 1, version);
  await new Promise((r) => setTimeout(r, 1_000));
  t.same(
    (await running(app, 1, version)).map((i) => i.index),
    [0],
    "one instance at index 0, not two",
  );
  t.same(await answers(one), { 0: HELLO }, "it answers");
  hm.nc.publish("cc.hm.requests", new Uint8Array([0xff, 0xff, 0xff]));
  await hm.flush();
  await until("malformed request logged", async () => cc.logs.some((l) => l.event === "hm_request_rejected"));
  t.pass("a malformed request is counted and logged");
});

t.test("an instance no DEA has room for is on the app's audit trail with KILN_CC_NO_DEA", async (t) => {
  const big = await api("POST", `/v3/apps/${app}/processes/web/actions/scale`, { memory_in_mb: 65_536 });
  t.equal(big.status, 202, "the desired state is taken");
  const failed = await until("app.start_failed", async () => {
    const r = await api("GET", `/v3/audit_events?target_guids=${app}&types=app.start_failed`);
    return r.body.resources.find((e: { data: { version: string } }) => e.data.version === big.body.version);
  });
  t.match(failed, { actor: "cc", target_name: "node", data: { indices: [0], code: "KILN_CC_NO_DEA" } });
  t.match(failed.data.reason, /DEA/);
  const back = await api("POST", `/v3/apps/${app}/processes/web/actions/scale`, { memory_in_mb: 256 });
  t.same(await answers(await running(app, 1, back.body.version)), { 0: HELLO }, "back once it fits");
});

t.test("a second upload with every file matched gives the same package", async (t) => {
  const pkg = await newPackage(app);
  const up = await upload(
    pkg,
    tarball([resourcesJson(files.map((f) => ({ path: f.path, sha1: f.sha1, mode: f.mode })))]),
  );
  t.equal(up.status, 200, JSON.stringify(up.body));
  t.equal(up.body.sha256, firstPackage.sha256, "identical tar.gz");
  t.equal(up.body.size, firstPackage.size);

  // Same files, buildpacks and env as the current droplet: no staging, nothing restarted.
  const before = (await api("GET", `/v3/apps/${app}`)).body;
  const reused = await api("POST", "/v3/builds", { package: { guid: pkg } });
  t.match(reused, { status: 201, body: { state: "STAGED", droplet_guid: before.droplet_guid } });
  const after = (await api("GET", `/v3/apps/${app}`)).body;
  t.equal(after.version, before.version, "the app keeps its version and its instances");

  // Another env is another staging environment: the build stages again.
  await api("PATCH", `/v3/apps/${app}/environment_variables`, { var: { STAGE_ME: "1" } });
  const restaged = await api("POST", "/v3/builds", { package: { guid: pkg } });
  t.equal(restaged.body.state, "STAGING", "a changed env stages again");
  const done = await until("restaged", async () => {
    const b = await api("GET", `/v3/builds/${restaged.body.guid}`);
    return b.body.state === "STAGING" ? null : b.body;
  });
  t.equal(done.state, "STAGED", JSON.stringify(done));
  t.not(done.droplet_guid, before.droplet_guid, "a new droplet");
  await api("PATCH", `/v3/apps/${app}/environment_variables`, { var: { STAGE_ME: null } });
});

t.test("logs: recent has staging and app lines, follow streams a new one", async (t) => {
  const res = await fetch(`${A}/v3/apps/${app}/logs?recent=true`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const lines = (await res.text())
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l));
  t.ok(
    lines.some((l) => l.source === "STG"),
    "STG lines",
  );
  t.ok(
    lines.some((l) => l.source === "APP"),
    "APP lines",
  );
  const last = lines[lines.length - 1].seq as number;
  const ac = new AbortController();
  const follow = await fetch(`${A}/v3/apps/${app}/logs?follow=true&after_seq=${last}`, {
    headers: { authorization: `Bearer ${token}` },
    signal: ac.signal,
  });
  const admin = await nats.connect("admin");
  admin.nc.publish(`logs.${app}`, encode("logs", { at: Date.now(), source: "API", text: "a new line" }));
  const reader = (follow.body as ReadableStream<Uint8Array>).getReader();
  let got = "";
  while (!got.includes("a new line")) {
    const { value, done } = await reader.read();
    if (done) break;
    got += Buffer.from(value).toString();
  }
  const line = JSON.parse(got.split("\n").find((l) => l.includes("a new line")) as string);
  t.match(line, { source: "API", text: "a new line" });
  t.ok(line.seq > last, "after the recent ones");
  ac.abort();
  await admin.close();
});

t.test("hostile uploads are refused", async (t) => {
  const cases: { name: string; body: Buffer; status: number; code: string; detail?: RegExp }[] = [
    {
      name: "../x",
      body: tarball([resourcesJson([]), file("../x", "x")]),
      status: 422,
      code: "KILN_CC_INVALID",
      detail: /\.\./,
    },
    {
      name: "absolute path",
      body: tarball([resourcesJson([]), file("/etc/x", "x")]),
      status: 422,
      code: "KILN_CC_INVALID",
      detail: /absolute/,
    },
    {
      name: "symlink",
      body: tarball([
        resourcesJson([]),
        { header: { path: "l", type: "SymbolicLink", linkpath: "/etc/passwd" } },
      ]),
      status: 422,
      code: "KILN_CC_INVALID",
      detail: /SymbolicLink/,
    },
    {
      name: "over the size limit",
      body: tarball([resourcesJson([]), file("big", Buffer.alloc(2 * 1024 * 1024))]),
      status: 413,
      code: "KILN_CC_PACKAGE_TOO_LARGE",
    },
    {
      name: "over the size limit, incompressible",
      body: tarball([resourcesJson([]), file("big", randomBytes(2 * 1024 * 1024))]),
      status: 413,
      code: "KILN_CC_PACKAGE_TOO_LARGE",
    },
    {
      name: "unknown matched sha1",
      body: tarball([resourcesJson([{ path: "gone", sha1: "0".repeat(40), mode: 0o644 }])]),
      status: 422,
      code: "KILN_CC_INVALID",
      detail: /0{40}/,
    },
    {
      name: "matched path with ..",
      body: tarball([resourcesJson([{ path: "a/../../x", sha1: files[0]?.sha1 as string, mode: 0o644 }])]),
      status: 422,
      code: "KILN_CC_INVALID",
      detail: /\.\./,
    },
    { name: "not a tar.gz", body: Buffer.from("hello"), status: 422, code: "KILN_CC_INVALID" },
  ];
  for (const c of cases) {
    const pkg = await newPackage(app);
    const r = await upload(pkg, c.body);
    t.equal(r.status, c.status, `${c.name}: ${r.status}`);
    t.match(
      r.body.errors?.[0],
      { code: c.code, ...(c.detail === undefined ? {} : { detail: c.detail }) },
      c.name,
    );
    t.equal((await api("GET", `/v3/packages/${pkg}`)).body.state, "FAILED", `${c.name}: package FAILED`);
  }
});

/** Every dea.update about the app from now on. */
function updatesOf(conn: KilnConnection): UpdateRequest[] {
  const out: UpdateRequest[] = [];
  conn.nc.subscribe("dea.update", {
    callback: (_e, msg) => {
      const u = decode("dea.update", msg.data);
      if (u.app === app) out.push(u);
    },
  });
  return out;
}

t.test("map, unmap and delete of a route reach the running app at once, without a restart", async (t) => {
  const admin = await nats.connect("admin");
  t.teardown(() => admin.close());
  const updates = updatesOf(admin);
  const seen: { subject: string; m: RegistryMessage }[] = [];
  for (const subject of ["router.register", "router.unregister"] as const)
    admin.nc.subscribe(subject, {
      callback: (_e, msg) =>
        seen.push({
          subject,
          m: subject === "router.register" ? decodeRegister(msg.data) : decodeUnregister(msg.data),
        }),
    });
  const exits: string[] = [];
  admin.nc.subscribe("droplet.exited", {
    callback: (_e, msg) => {
      const e = decode("droplet.exited", msg.data);
      if (e.app === app) exits.push(e.instanceId);
    },
  });
  await admin.flush();
  // A router started now says router.start: the DEA registers what it runs with it at once.
  const router = await startRouterProc(t, nats);
  const via = async (host: string) => {
    const r = await send(router.port, { host, path: "/" });
    return r.status === 200 ? r.body : `${r.status}`;
  };
  await until("node.localhost through the router", async () => (await via("node.localhost")) === HELLO);
  const before = await running(app, 1);
  const first = seen.find((s) => s.subject === "router.register" && s.m.app === app)?.m;
  t.ok(first !== undefined, "the running instance is registered");
  const id = first?.privateInstanceId;

  const extra = await api("POST", "/v3/routes", { host: "node2", space_guid: space });
  const mapped = await api("POST", `/v3/routes/${extra.body.guid}/destinations`, {
    destinations: [{ app: { guid: app } }],
  });
  t.equal(mapped.status, 200);
  // Well inside the 20 s refresh: only dea.update can bring it this soon.
  const mapAt = Date.now();
  await until(
    "node2.localhost through the router",
    async () => (await via("node2.localhost")) === HELLO,
    5_000,
  );
  t.comment(`map → routed in ${Date.now() - mapAt} ms`);
  t.same(
    updates.map((u) => [u.version, [...u.uris].sort()]),
    [[before[0]?.version, ["node.localhost", "node2.localhost"]]],
    "one dea.update: the app's version and its complete route list",
  );
  const again = await api("POST", `/v3/routes/${extra.body.guid}/destinations`, {
    destinations: [{ app: { guid: app } }],
  });
  t.equal(again.status, 200, "mapping it again is accepted");
  await new Promise((r) => setTimeout(r, 500));
  t.equal(updates.length, 1, "and sends no dea.update: nothing changed");
  t.ok(
    seen.some(
      (s) =>
        s.subject === "router.register" &&
        s.m.privateInstanceId === id &&
        s.m.uris.includes("node2.localhost"),
    ),
    "the same instance registered the new route",
  );

  const original = (await api("GET", `/v3/routes?hosts=node&space_guids=${space}`)).body.resources[0];
  t.equal((await api("DELETE", `/v3/routes/${original.guid}/destinations/${app}`)).status, 204);
  // Gone from the router: no endpoint left (503 while the emptied pool lingers, then 404).
  const gone = async (host: string) => ["404", "503"].includes(await via(host));
  await until("node.localhost gone", () => gone("node.localhost"), 5_000);
  t.ok(
    seen.some(
      (s) =>
        s.subject === "router.unregister" &&
        s.m.privateInstanceId === id &&
        s.m.uris.join() === "node.localhost",
    ),
    "router.unregister of the unmapped route only",
  );
  t.equal(await via("node2.localhost"), HELLO, "the other route still reaches it");

  t.equal((await api("DELETE", `/v3/routes/${extra.body.guid}`)).status, 204);
  await until("node2.localhost gone", () => gone("node2.localhost"), 5_000);

  const after = await running(app, 1);
  t.same(
    after.map((i) => [i.index, i.port, i.version]),
    before.map((i) => [i.index, i.port, i.version]),
    "the same instance, on the same port, at the same version",
  );
  t.ok((after[0]?.uptime ?? -1) >= (before[0]?.uptime ?? 0), "its uptime went on");
  t.same(exits, [], "no instance of the app ended");
  // Mapped back, so the app is as it was for the tests after this one.
  await api("POST", `/v3/routes/${original.guid}/destinations`, { destinations: [{ app: { guid: app } }] });
  await until("node.localhost back", async () => (await via("node.localhost")) === HELLO, 5_000);
});

t.test("stop", async (t) => {
  t.equal((await api("POST", `/v3/apps/${app}/actions/stop`)).status, 200);
  await until("no instance left", async () => {
    const r = await api("GET", `/v3/apps/${app}/processes/web/stats`);
    return r.body.resources.length === 0;
  });
  t.pass("stopped");
  // A stopped app has no instance to update: a map sends nothing.
  const admin = await nats.connect("admin");
  t.teardown(() => admin.close());
  const updates = updatesOf(admin);
  await admin.flush();
  const later = await api("POST", "/v3/routes", { host: "node3", space_guid: space });
  const mapped = await api("POST", `/v3/routes/${later.body.guid}/destinations`, {
    destinations: [{ app: { guid: app } }],
  });
  t.equal(mapped.status, 200);
  await new Promise((r) => setTimeout(r, 1_000));
  t.same(updates, [], "no dea.update for a stopped app");
});
