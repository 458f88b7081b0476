// The controller's DEA client against two real `kiln dea` processes: a package is staged on
// the DEA that answers discover first, four instances spread over both DEAs (each discover
// sees the taint the previous start added), a stop reaches every DEA, and with no DEA able to
// take an app the client says so with KILN_CC_NO_DEA.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { create as tarCreate } from "tar";
import { ActualState } from "../../control/runner/actual.js";
import { DeaClient } from "../../control/runner/dea-client.js";
import { createLogger } from "../../kernel/log.js";
import { projectRoot } from "../../kernel/paths.js";
import { decode } from "../../messaging/codec.js";
import { decodeRegister } from "../../messaging/gorouter.js";
import { blobStore } from "../../messaging/jetstream.js";
import { appDeaArgs, startDeaProc, testIsolation } from "../dea/harness.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { until } from "../helpers/until.js";

guardChildren(t);
const base = mkdtempSync(join(tmpdir(), "kiln-cc-dea-"));
t.teardown(() => rmSync(base, { recursive: true, force: true }));
const isolation = await testIsolation(t, base);

const nats = await startTestNats(t);
const cc = await nats.connect("cc");
const quiet = createLogger("test", { write: () => {} });
const client = new DeaClient({ bus: cc, log: quiet, discoverTimeoutMs: 1_000, discoverTries: 2 });
const actual = new ActualState({ bus: cc, log: quiet });
actual.start();
t.teardown(() => actual.stop());
const args = (name: string) => appDeaArgs(isolation, join(base, name));
const deaA = await startDeaProc(t, nats, "cc-dea-a", args("a"));
const deaB = await startDeaProc(t, nats, "cc-dea-b", args("b"));

// What the router sees (the controller's user may not read router.*).
const observer = await nats.connect("admin");
const registered: { app: string; index: string; port: number }[] = [];
observer.nc.subscribe("router.register", {
  callback: (_e, m) => {
    const r = decodeRegister(m.data);
    registered.push({ app: r.app, index: r.privateInstanceIndex, port: r.port });
  },
});
const exited: string[] = [];
cc.nc.subscribe("droplet.exited", { callback: (_e, m) => exited.push(decode("droplet.exited", m.data).app) });
await cc.flush();
await observer.flush();

t.test("stage on the first DEA to answer, start four instances spread over both, stop them", async (t) => {
  const dir = join(projectRoot, "examples/node");
  const file = join(base, "node.tar.gz");
  await tarCreate({ gzip: true, file, cwd: dir, portable: true }, readdirSync(dir));
  const blobs = await blobStore(cc.nc, 1);
  await blobs.putBlob({ name: "packages/cc-node" }, readFileSync(file));

  const dea = await client.discover({ app: "cc-app", version: "v1", memoryMb: 256, diskMb: 256, stack: "" });
  t.ok(["cc-dea-a", "cc-dea-b"].includes(dea.deaId), `discover answered by ${dea.deaId}`);
  const staged = await client.stage(
    dea.deaId,
    {
      app: "cc-app",
      taskId: "cc-task-1",
      packageKey: "packages/cc-node",
      buildpack: "",
      stack: "",
      env: {},
      memoryMb: 512,
      diskMb: 1024,
      timeoutMs: 60_000,
    },
    60_000,
  );
  t.ok(staged.ok, `staged: ${staged.error}`);

  const { placed, failed } = await client.start(
    {
      app: "cc-app",
      appName: "cc-app",
      space: "",
      version: "v1",
      dropletKey: staged.dropletKey,
      dropletSha1: staged.dropletSha1,
      memoryMb: 128,
      diskMb: 256,
      startCommand: "",
      env: {},
      uris: ["cc-app.kiln.test"],
      servicesJson: "",
      healthCheckType: "",
      healthCheckHttpEndpoint: "",
      healthCheckTimeoutMs: 0,
    },
    [0, 1, 2, 3],
  );
  t.equal(failed.size, 0, "every index placed");
  const perDea = new Set(placed.values());
  t.equal(perDea.size, 2, `spread over both DEAs: ${JSON.stringify([...placed])}`);
  await until(
    "four instances registered",
    () => new Set(registered.filter((r) => r.app === "cc-app").map((r) => r.index)).size === 4,
  );
  for (const r of registered.filter((x) => x.app === "cc-app")) {
    const res = await fetch(`http://127.0.0.1:${r.port}/`);
    t.equal(res.status, 200, `instance ${r.index} answers`);
    await res.text();
  }
  await until(
    "the heartbeats report four running",
    () => actual.instances("cc-app").filter((i) => i.state === "RUNNING").length === 4,
  );
  const seen = actual.instances("cc-app");
  t.same(
    seen.map((i) => i.index),
    [0, 1, 2, 3],
    "actual state: indices 0-3",
  );
  t.same(
    new Set(seen.map((i) => i.port)),
    new Set(registered.filter((r) => r.app === "cc-app").map((r) => r.port)),
    "on the ports the router was told",
  );
  t.same(new Set(seen.map((i) => i.deaId)), new Set(placed.values()), "on the DEAs that were asked");
  client.stop({ app: "cc-app" });
  await until("all four stopped", () => exited.filter((a) => a === "cc-app").length === 4);
  t.pass("dea.stop reached both DEAs");
  t.same(actual.instances("cc-app"), [], "and the actual state dropped them at droplet.exited");
});

t.test("no DEA with room: KILN_CC_NO_DEA after the tries", async (t) => {
  const started = Date.now();
  await t.rejects(
    client.discover({ app: "huge", version: "v1", memoryMb: 1_000_000, diskMb: 1, stack: "" }),
    { code: "KILN_CC_NO_DEA" },
  );
  t.ok(Date.now() - started >= 2_000, "it waited for each try");
});

t.teardown(async () => {
  await deaA.stop();
  await deaB.stop();
});
