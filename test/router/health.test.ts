// /health before the first route sync: a router started while NATS is not up yet serves
// 503 with its reason, and turns 200 once NATS comes up and the registry has synced.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { kilnBin } from "../../kernel/paths.js";
import { startNatsServer } from "../../messaging/nats-server.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { freePort } from "../helpers/ports.js";
import { type Reply, sleep, statusGet } from "./harness.js";

guardChildren(t);

t.test("503 until NATS is up and routes synced, then 200", async (t) => {
  const natsPort = await freePort();
  const statusPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-router-health-"));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  // Start NATS once to learn the router user's password (kept in dataDir), then stop it.
  const first = await startNatsServer({ dataDir, port: natsPort });
  const cred = first.credentials("router");
  await first.stop();

  const child = spawn(
    process.execPath,
    [
      process.env.KILN_TEST_KILN_BIN ?? kilnBin,
      "router",
      "--nats",
      `nats://127.0.0.1:${natsPort}`,
      "--port",
      "0",
      "--status-port",
      String(statusPort),
      "--host",
      "127.0.0.1",
      "--threads",
      "1",
    ],
    {
      stdio: ["ignore", "ignore", "ignore"],
      env: { ...process.env, KILN_NATS_USER: cred.user, KILN_NATS_PASS: cred.pass },
    },
  );
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
  });
  const none: Reply = { status: 0, headers: {}, body: "", raw: Buffer.alloc(0) };
  let before = none;
  for (let i = 0; i < 200 && before.status === 0; i++) {
    await sleep(50);
    before = await statusGet(statusPort, "/health").catch(() => none);
  }
  t.equal(before.status, 503, "no NATS yet: 503");
  t.match(before.body, /not synced/);

  // NATS comes up on the port the router keeps trying.
  await startTestNats(t, { dataDir, port: natsPort });
  let after = before;
  for (let i = 0; i < 200 && after.status !== 200; i++) {
    await sleep(50);
    after = await statusGet(statusPort, "/health");
  }
  t.equal(after.status, 200, "NATS up and routes synced: 200");
  child.kill("SIGTERM");
  t.equal(await exited, 0, "SIGTERM: exit 0");
});

t.test("SIGTERM while still waiting for NATS: exit 0", async (t) => {
  const statusPort = await freePort();
  const deadNats = await freePort();
  const child = spawn(
    process.execPath,
    [
      process.env.KILN_TEST_KILN_BIN ?? kilnBin,
      "router",
      "--nats",
      `nats://127.0.0.1:${deadNats}`,
      "--port",
      "0",
      "--status-port",
      String(statusPort),
      "--host",
      "127.0.0.1",
      "--threads",
      "1",
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  const none: Reply = { status: 0, headers: {}, body: "", raw: Buffer.alloc(0) };
  let h = none;
  for (let i = 0; i < 200 && h.status === 0; i++) {
    await sleep(50);
    h = await statusGet(statusPort, "/health").catch(() => none);
  }
  t.equal(h.status, 503);
  child.kill("SIGTERM");
  t.equal(await exited, 0);
});
