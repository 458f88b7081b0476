// The addon loader: loads in the main thread and in a worker thread, KILN_NATIVE=0 gives the
// fallback, a broken addon file is a coded error and a missing one means "use the fallback".
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import t from "tap";
import { distPath } from "../../kernel/paths.js";
import { ADDON_ABI, binding, implementation, loadAddon } from "../../native/index.js";
import { attachTable, createNativeTable, createRouteTable } from "../../native/table.js";

t.test("the addon loads in the main thread", async (tt) => {
  tt.not(binding, null, "build/Release/kiln_native.node is built");
  tt.equal(implementation, "native");
  tt.equal(binding?.addonInfo().abi, ADDON_ABI);
  tt.equal(
    createRouteTable({ emptyPoolTimeoutMs: 0 }).shared,
    true,
    "createRouteTable defaults to the native table",
  );
});

t.test("the addon loads in a worker thread and attaches to the same table", async (tt) => {
  const table = createNativeTable({ emptyPoolTimeoutMs: 0 });
  tt.teardown(() => table.close());
  table.register("w.test", { ...endpointSpec(), instanceId: "w-0" }, poolOptions(), 0);
  const code = `
    import { parentPort, workerData } from "node:worker_threads";
    const { implementation } = await import(workerData.index);
    const { attachTable } = await import(workerData.table);
    const t = attachTable(workerData.id);
    const h = t.select("W.TEST", "/", "", "", 0);
    parentPort.postMessage({ implementation, id: t.endpoint(h)?.instanceId, inFlight: t.inFlight(h) });
  `;
  const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), {
    workerData: {
      id: table.id,
      index: `file://${distPath("native/index.js")}`,
      table: `file://${distPath("native/table.js")}`,
    },
  });
  tt.teardown(() => w.terminate());
  const got = await new Promise((resolve, reject) => {
    w.once("message", resolve);
    w.once("error", reject);
  });
  tt.same(got, { implementation: "native", id: "w-0", inFlight: 1 });
  tt.equal(table.dump()[0]?.endpoints[0]?.inFlight, 1, "the main thread sees the worker's in-flight count");
  await w.terminate();
  tt.equal(table.stats().routes, 1, "the table outlives the worker");
  tt.throws(() => attachTable(999_999), { code: "KILN_TABLE_UNKNOWN" });
});

t.test("KILN_NATIVE=0 gives the fallback", async (tt) => {
  const out = execFileSync(process.execPath, [distPath("test/native/workers/loader-child.js")], {
    env: { ...process.env, KILN_NATIVE: "0" },
    encoding: "utf8",
  });
  tt.same(JSON.parse(out), { implementation: "fallback", shared: false, attach: "KILN_TABLE_NOT_SHARED" });
  const native = execFileSync(process.execPath, [distPath("test/native/workers/loader-child.js")], {
    env: { ...process.env, KILN_NATIVE: "" },
    encoding: "utf8",
  });
  tt.same(JSON.parse(native), { implementation: "native", shared: true, attach: "ok" });
});

t.test("a broken addon is a coded error, a missing one means fallback", async (tt) => {
  const dir = mkdtempSync(join(tmpdir(), "kiln-native-"));
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const broken = join(dir, "broken.node");
  writeFileSync(broken, "this is not a shared object\n");
  tt.throws(() => loadAddon(broken, undefined), { code: "KILN_NATIVE_LOAD_FAILED" });
  tt.equal(loadAddon(join(dir, "missing.node"), undefined), null);
  tt.throws(() => loadAddon(join(dir, "missing.node"), "1"), { code: "KILN_NATIVE_REQUIRED" });
  tt.equal(loadAddon(broken, "0"), null, "KILN_NATIVE=0 does not even try");
});

function endpointSpec() {
  return {
    host: "10.1.1.1",
    port: 9000,
    app: "app",
    instanceId: "",
    instanceIndex: "0",
    tags: {},
    availabilityZone: "",
    staleThresholdSec: 0,
    serverCertDomainSan: "",
    tlsPort: 0,
    protocol: "",
    updatedAtNs: 0n,
  };
}

function poolOptions() {
  return {
    loadBalancing: "round-robin" as const,
    hashHeader: "",
    hashBalance: 0,
    maxConnsPerBackend: 0,
    routeServiceUrl: "",
  };
}
