// Two controllers on one NATS, and one of them killed (SIGKILL) in the middle of a push: first
// mid-upload, then mid-staging. The other controller reads the app, its package and its build
// the whole time, sees the dead one's work marked FAILED once its lease ran out
// (control/store/lease.ts), and finishes the push itself. A real nats-server, real `kiln cc`
// processes and a real `kiln dea`; the staging is made slow by a buildpack that sleeps.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { projectRoot } from "../../kernel/paths.js";
import { appDeaArgs, startDeaProc, testIsolation } from "../dea/harness.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { file, tarball } from "../helpers/tarball.js";
import { until as waitUntil } from "../helpers/until.js";
import { adminCredentials, type CcProc, call, ccDataDir, login, startCcProc } from "./harness.js";

guardChildren(t);
const base = mkdtempSync(join(tmpdir(), "kiln-cc-failover-"));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const isolation = await testIsolation(t, base);

const LEASE_MS = 1500;
// A controller killed mid-upload cannot remove its temp file: give the doomed ones a temp dir
// of the test's own, removed with it.
const doomedTmp = join(base, "tmp");
mkdirSync(doomedTmp);

// The custom example buildpack, with a compile that takes a while: time to kill its controller.
const buildpack = join(base, "slow-buildpack");
cpSync(join(projectRoot, "examples/custom-buildpack/buildpack"), buildpack, { recursive: true });
const compile = join(buildpack, "bin/compile");
writeFileSync(compile, readFileSync(compile, "utf8").replace("set -eu\n", "set -eu\nsleep 3\n"));
const greeting = file("greeting.txt", "hello from a push that survived its controller\n");
const pkgBytes = tarball([file(".kiln-resources.json", "[]"), greeting]);

const until = <T>(
  what: string,
  f: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  ms = 30_000,
) => waitUntil(what, f, ms, 100);

const nats = await startTestNats(t);
const dataDir = ccDataDir(t);
const ccArgs = ["--lease-ms", String(LEASE_MS), "--discover-timeout-ms", "1000"];
const survivor = await startCcProc(t, nats, dataDir, {}, ccArgs);
const dea = await startDeaProc(t, nats, "failover-dea", appDeaArgs(isolation, join(base, "dea")));
t.teardown(() => dea.stop());
const creds = adminCredentials(dataDir);
const token = await login(survivor.url, creds.user, creds.password);
const on = (cc: CcProc) => (method: string, path: string, body?: unknown) =>
  call(cc.url, method, path, { token, body });
const B = on(survivor);
const space = (await B("POST", "/v3/spaces", { name: "failover" })).body.guid as string;
const app = (
  await B("POST", "/v3/apps", { name: "greeter", space_guid: space, lifecycle: { buildpacks: [buildpack] } })
).body.guid as string;
const appBefore = (await B("GET", `/v3/apps/${app}`)).body;

async function newPackage(api: ReturnType<typeof on>): Promise<string> {
  const r = await api("POST", "/v3/packages", {
    type: "bits",
    relationships: { app: { data: { guid: app } } },
  });
  if (r.status !== 201) throw new Error(`package: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.guid as string;
}

async function upload(cc: CcProc, pkg: string, body: Buffer) {
  const res = await fetch(`${cc.url}/v3/packages/${pkg}/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/gzip" },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The app as the survivor reads it: whole, and still what it was apart from the droplet. */
async function appIsWhole(t: Test) {
  const a = await B("GET", `/v3/apps/${app}`);
  t.equal(a.status, 200, "the app reads");
  t.match(a.body, { guid: app, name: "greeter", space_guid: space, buildpacks: [buildpack] });
  t.equal(a.body.version, appBefore.version, "nothing half-changed");
  const listed = await B("GET", `/v3/apps?space_guids=${space}`);
  t.same(
    listed.body.resources.map((x: { guid: string }) => x.guid),
    [app],
    "and lists",
  );
}

t.test("killed mid-upload: the package is FAILED after the lease, the app reads whole", async (t) => {
  const doomed = await startCcProc(t, nats, dataDir, { TMPDIR: doomedTmp }, ccArgs);
  const pkg = await newPackage(on(doomed));
  // Half of the package, then the controller receiving it dies.
  const req = request(`${doomed.url}/v3/packages/${pkg}/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/gzip" },
  });
  req.on("error", () => {});
  req.write(pkgBytes.subarray(0, pkgBytes.length >> 1));
  await until("the upload under way", async () => {
    const p = await B("GET", `/v3/packages/${pkg}`);
    return p.body.state === "PROCESSING_UPLOAD";
  });
  await doomed.kill();
  req.destroy();
  const seen = await B("GET", `/v3/packages/${pkg}`);
  t.equal(seen.body.state, "PROCESSING_UPLOAD", "still in progress within the lease");
  const failed = await until("the package FAILED", async () => {
    const p = await B("GET", `/v3/packages/${pkg}`);
    return p.body.state === "FAILED" ? p.body : null;
  });
  t.match(failed.error, /stopped before it finished/);
  await appIsWhole(t);
});

t.test("killed mid-staging: the build is FAILED after the lease; the survivor stages it", async (t) => {
  const doomed = await startCcProc(t, nats, dataDir, { TMPDIR: doomedTmp }, ccArgs);
  const A = on(doomed);
  const pkg = await newPackage(A);
  const up = await upload(doomed, pkg, pkgBytes);
  t.equal(up.status, 200, JSON.stringify(up.body));
  const build = await A("POST", "/v3/builds", { package: { guid: pkg } });
  t.equal(build.body.state, "STAGING");
  // Well past a refresh of the lease: a live controller's build stays STAGING.
  await new Promise((r) => setTimeout(r, LEASE_MS));
  t.equal((await B("GET", `/v3/builds/${build.body.guid}`)).body.state, "STAGING", "alive while staging");
  await doomed.kill();
  const lost = await until("the build FAILED", async () => {
    const b = await B("GET", `/v3/builds/${build.body.guid}`);
    return b.body.state === "FAILED" ? b.body : null;
  });
  t.equal(lost.error_code, "KILN_CC_STAGING_LOST");
  await appIsWhole(t);
  t.equal((await B("GET", `/v3/apps/${app}`)).body.droplet_guid, null, "no droplet from the dead one");

  // The survivor finishes the push from the same package.
  const again = await B("POST", "/v3/builds", { package: { guid: pkg } });
  const staged = await until("staged by the survivor", async () => {
    const b = await B("GET", `/v3/builds/${again.body.guid}`);
    return b.body.state === "STAGING" ? null : b.body;
  });
  t.equal(staged.state, "STAGED", JSON.stringify(staged));
  t.equal((await B("POST", `/v3/apps/${app}/actions/start`)).status, 200);
  const running = await until("running", async () => {
    const r = await B("GET", `/v3/apps/${app}/processes/web/stats`);
    const up = (r.body.resources as { state: string; host: string; port: number }[]).find(
      (i) => i.state === "RUNNING" && i.port > 0,
    );
    return up ?? null;
  });
  const page = await (await fetch(`http://${running.host}:${running.port}/index.html`)).text();
  t.match(page, /hello from a push that survived its controller/);
  await B("POST", `/v3/apps/${app}/actions/stop`);
});
