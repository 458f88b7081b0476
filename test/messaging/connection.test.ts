// The NATS connection against a real server that goes away and comes back: state events,
// publishes buffered while down and delivered after the restart, buffer limit, close.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { type ConnectionEvent, connectNats, type KilnConnection } from "../../messaging/connection.js";
import { type NatsServerHandle, startNatsServer } from "../../messaging/nats-server.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { freePort } from "../helpers/ports.js";

guardChildren(t);

const enc = (s: string) => new TextEncoder().encode(s);

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-nats-conn-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function nextEvent<E extends ConnectionEvent>(conn: KilnConnection, event: E): Promise<unknown> {
  return new Promise((resolve) => conn.once(event, ((...args: unknown[]) => resolve(args[0])) as never));
}

/** Starts a server on `port` in `dataDir` and stops it in teardown. */
async function serverAt(
  t: { teardown(fn: () => Promise<void>): void },
  dataDir: string,
  port: number,
): Promise<NatsServerHandle> {
  const s = await startNatsServer({ dataDir, port });
  t.teardown(() => s.stop());
  return s;
}

t.test("publishes made while NATS is down are delivered after it restarts on the same port", async (t) => {
  const dir = tempDir(t);
  const first = await startTestNats(t, { dataDir: dir });
  const conn = await first.connect("admin", { reconnectTimeWaitMs: 50, reconnectJitterMs: 20 });
  const events: string[] = [];
  for (const e of ["disconnected", "reconnecting", "reconnected", "closed"] as const)
    conn.on(e, () => events.push(e));
  const got: string[] = [];
  // The same connection listens: nats.js re-sends its subscriptions before our buffer is flushed,
  // so the delivery does not depend on another client's reconnect timing.
  conn.nc.subscribe("orders.>", { callback: (_e, m) => got.push(`${m.subject}=${m.string()}`) });
  conn.publish("orders.1", enc("before"));
  await conn.flush();
  t.same(got, ["orders.1=before"]);

  const down = nextEvent(conn, "disconnected");
  await first.stop();
  await down;
  t.not(conn.state, "connected");
  conn.publish("orders.2", enc("while down"));
  conn.publish("orders.3", enc("also while down"));
  t.same(conn.buffered, { messages: 2, bytes: "orders.2".length + 10 + "orders.3".length + 15 });

  const back = nextEvent(conn, "reconnected");
  await serverAt(t, dir, first.port);
  t.same(await back, { server: `127.0.0.1:${first.port}`, flushed: 2 });
  t.equal(conn.state, "connected");
  t.same(conn.buffered, { messages: 0, bytes: 0 });
  await conn.flush();
  for (let i = 0; i < 50 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(got, ["orders.1=before", "orders.2=while down", "orders.3=also while down"], "in order, none lost");
  t.ok(events.includes("disconnected") && events.includes("reconnecting"), events.join(","));
  t.equal(events.at(-1), "reconnected");
});

t.test("the buffer is bounded: beyond reconnectBufSize a publish is refused", async (t) => {
  const nats = await startTestNats(t);
  const conn = await nats.connect("admin", { reconnectBufSize: 64 });
  const down = nextEvent(conn, "disconnected");
  await nats.stop();
  await down;
  conn.publish("a", new Uint8Array(40));
  t.throws(() => conn.publish("b", new Uint8Array(40)), { code: "KILN_MSG_BUFFER_FULL" });
  t.equal(conn.buffered.messages, 1);
  const closed = nextEvent(conn, "closed");
  await conn.close();
  t.same(await closed, { error: null, dropped: 1 }, "close reports what was never sent");
});

t.test("close: state, event, and publish afterwards is a coded error", async (t) => {
  const nats = await startTestNats(t);
  const conn = await nats.connect("router");
  t.equal(conn.state, "connected");
  t.match(conn.server, /127\.0\.0\.1/);
  const closed = nextEvent(conn, "closed");
  await conn.close();
  await closed;
  t.equal(conn.state, "closed");
  t.throws(() => conn.publish("router.start", enc("{}")), { code: "KILN_MSG_CONNECTION_CLOSED" });
  await conn.close(); // idempotent
});

t.test("drain sends what is pending, then closes", async (t) => {
  const nats = await startTestNats(t);
  const admin = await nats.connect("admin");
  const got: string[] = [];
  admin.nc.subscribe("d", { callback: (_e, m) => got.push(m.string()) });
  await admin.flush();
  const conn = await nats.connect("admin");
  for (let i = 0; i < 100; i++) conn.publish("d", enc(String(i)));
  await conn.drain();
  t.equal(conn.state, "closed");
  await admin.flush();
  for (let i = 0; i < 50 && got.length < 100; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(got.length, 100);
});

t.test("waitOnFirstConnect: a component started before NATS connects once NATS is up", async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  // Credentials must exist before the client starts: generate them with a short first run.
  const boot = await startNatsServer({ dataDir: dir, port: 0 });
  const creds = boot.credentials("hm");
  await boot.stop();

  const seen: string[] = [];
  const pending = connectNats({
    servers: `nats://127.0.0.1:${port}`,
    ...creds,
    reconnectTimeWaitMs: 50,
    reconnectJitterMs: 10,
    listeners: { connected: ({ server }) => seen.push(server) },
  });
  let settled = false;
  void pending.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(settled, "still waiting while no server listens");
  const nats = await serverAt(t, dir, port);
  const conn = await pending;
  t.teardown(() => conn.close());
  t.equal(nats.port, port);
  t.equal(conn.state, "connected");
  t.same(seen, [`127.0.0.1:${port}`], "the connected event reached the listener given in options");
});

t.test("without waitOnFirstConnect an absent server fails fast with a coded error", async (t) => {
  const port = await freePort();
  await t.rejects(connectNats({ servers: `nats://127.0.0.1:${port}`, waitOnFirstConnect: false }), {
    code: "KILN_MSG_CONNECT_FAILED",
  });
});
