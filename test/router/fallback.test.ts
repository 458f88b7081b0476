// The router on the TypeScript route table (KILN_NATIVE=0): the main thread posts every
// batch of route updates to each worker's own table. Access log to stdout.
import t from "tap";
import { guardChildren } from "../helpers/children.js";
import { type Reply, send, sleep, startBackend, startRig, statusGet } from "./harness.js";

guardChildren(t);

t.test("routes reach every worker's own table; unregister empties them, a prune removes them", async (t) => {
  const rig = await startRig(
    t,
    [
      "--threads",
      "2",
      "--access-log",
      "stdout",
      "--empty-pool-timeout-ms",
      "1500",
      "--prune-interval-ms",
      "100",
    ],
    { KILN_NATIVE: "0" },
  );
  t.ok(
    rig.router.logs.some((l) => l.event === "router_listening" && l.table === "fallback"),
    "running on the fallback table",
  );
  const a = await startBackend(t, (_q, res) => res.end("fb-A"));
  const b = await startBackend(t, (_q, res) => res.end("fb-B"));
  await rig.register({ port: a.port, uris: ["fb.test"], private_instance_id: "fb-A" });
  await rig.register({ port: b.port, uris: ["fb.test"], private_instance_id: "fb-B" });
  const bodies = new Set<string>();
  for (let i = 0; i < 20; i++) bodies.add((await send(rig.router.port, { host: "fb.test" })).body);
  t.same([...bodies].sort(), ["fb-A", "fb-B"], "both endpoints serve, from both workers");
  await rig.unregister({ port: b.port, uris: ["fb.test"], private_instance_id: "fb-B" });
  // The main table has it; each worker applies the posted batch a moment later.
  const settled = async (want: (r: Reply) => boolean): Promise<boolean> => {
    for (let round = 0; round < 60; round++) {
      let all = true;
      for (let i = 0; i < 8 && all; i++) all = want(await send(rig.router.port, { host: "fb.test" }));
      if (all) return true;
      await sleep(50);
    }
    return false;
  };
  t.ok(await settled((r) => r.body === "fb-A"), "only A answers once B is unregistered");
  await rig.unregister({ port: a.port, uris: ["fb.test"], private_instance_id: "fb-A" });
  t.ok(
    await settled((r) => r.status === 503 && r.headers["x-kiln-router-error"] === "no_endpoints"),
    "503 no_endpoints once A is unregistered too: the route is kept, empty",
  );
  t.ok(await settled((r) => r.status === 404), "no route once it has been empty for the empty-pool timeout");
  const m = (await statusGet(rig.router.statusPort, "/metrics")).body;
  t.match(m, /kiln_router_worker_threads 2/);
  for (let i = 0; i < 20 && !rig.router.stdout().includes('"GET /" 404'); i++) await sleep(50);
  t.match(
    rig.router.stdout(),
    /fb\.test "GET \/" 200 4 [\d.]+ms backend=127\.0\.0\.1:\d+ request_id=[0-9a-f-]{36} client=127\.0\.0\.1\n/,
  );
  t.match(rig.router.stdout(), /fb\.test "GET \/" 503 /);
  t.match(rig.router.stdout(), /fb\.test "GET \/" 404 /);
});
