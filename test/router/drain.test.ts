// SIGTERM drains: /health turns 503, the request in flight finishes, then exit 0; a request
// that never finishes does not hold the router past its drain timeout.
import t from "tap";
import { guardChildren } from "../helpers/children.js";
import { send, sleep, startBackend, startRig, statusGet } from "./harness.js";

guardChildren(t);

t.test("in-flight requests finish, /health 503, exit 0", async (t) => {
  const rig = await startRig(t, ["--threads", "2", "--drain-timeout-ms", "5000"]);
  const slow = await startBackend(t, (_req, res) => {
    setTimeout(() => res.end("finished late"), 1000);
  });
  await rig.register({ port: slow.port, uris: ["slow.test"], private_instance_id: "slow-0" });
  const inFlight = send(rig.router.port, { host: "slow.test" });
  for (let i = 0; i < 100 && slow.seen.length === 0; i++) await sleep(20);
  rig.router.child.kill("SIGTERM");
  let health = 0;
  for (let i = 0; i < 20 && health !== 503; i++) {
    health = (await statusGet(rig.router.statusPort, "/health").catch(() => ({ status: -1 }))).status;
    if (health !== 503) await sleep(25);
  }
  t.equal(health, 503, "/health reports 503 while draining");
  const r = await inFlight;
  t.equal(r.status, 200);
  t.equal(r.body, "finished late");
  const exit = await rig.router.exited;
  t.equal(exit.code, 0, "exit 0 after draining");
  t.notOk(
    rig.router.logs.some((l) => l.event === "drain_timeout"),
    "finished before the drain timeout",
  );
  t.ok(
    rig.router.logs.some((l) => l.event === "router_draining"),
    "draining was logged",
  );
});

t.test("a request that never ends does not hold the router past the drain timeout", async (t) => {
  const rig = await startRig(t, ["--threads", "1", "--drain-timeout-ms", "800"]);
  const stuck = await startBackend(t, () => {});
  await rig.register({ port: stuck.port, uris: ["stuck.test"], private_instance_id: "stuck-0" });
  const pending = send(rig.router.port, { host: "stuck.test" }).catch(() => null);
  for (let i = 0; i < 100 && stuck.seen.length === 0; i++) await sleep(20);
  const t0 = Date.now();
  rig.router.child.kill("SIGTERM");
  const exit = await rig.router.exited;
  t.equal(exit.code, 0);
  t.ok(Date.now() - t0 < 4000, `exited ${Date.now() - t0} ms after SIGTERM`);
  t.ok(
    rig.router.logs.some((l) => l.event === "drain_timeout"),
    "the drain timeout was logged",
  );
  await pending;
});
