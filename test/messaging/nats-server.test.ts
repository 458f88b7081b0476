// The private nats-server launcher with a real server: JetStream, per-component users and
// subject permissions, credentials kept 0600 and reused, port fallback, start failures.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { connect, type NatsError } from "nats";
import t from "tap";
import { connectNats, type KilnConnection } from "../../messaging/connection.js";
import { MessagingError } from "../../messaging/errors.js";
import {
  NATS_COMPONENTS,
  type NatsComponent,
  type NatsServerHandle,
  startNatsServer,
} from "../../messaging/nats-server.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";

guardChildren(t);

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-nats-launcher-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function readPidFile(dir: string): number {
  try {
    return Number(readFileSync(join(dir, "nats-server.pid"), "utf8").trim());
  } catch {
    return -1;
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Collects what `sub` receives on `conn` into an array. */
function collect(conn: KilnConnection, subject: string): string[] {
  const got: string[] = [];
  conn.nc.subscribe(subject, { callback: (_err, msg) => got.push(`${msg.subject} ${msg.string()}`) });
  return got;
}

t.test("starts with JetStream on, on a random port, and stops without leaving a process", async (t) => {
  const nats = await startTestNats(t);
  t.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  t.ok(nats.port > 0 && nats.port !== 4222);
  t.ok(isAlive(nats.pid));
  const admin = await nats.connect("admin");
  const jsm = await admin.nc.jetstreamManager();
  const info = await jsm.getAccountInfo();
  t.ok(info.limits !== undefined, "JetStream answers");
  const kv = await admin.nc.jetstream().views.kv("kiln_apps");
  await kv.put("app-1", new TextEncoder().encode("desired"));
  t.equal((await kv.get("app-1"))?.string(), "desired");
  await admin.close();
  await nats.stop();
  await nats.stop(); // idempotent
  t.notOk(isAlive(nats.pid), "the server process is gone");
  t.ok(statSync(join(nats.dataDir, "jetstream")).isDirectory(), "the store is under the data dir");
});

t.test("a client without credentials, or with a wrong password, is refused", async (t) => {
  const nats = await startTestNats(t);
  await t.rejects(connect({ servers: nats.url, reconnect: false }), { code: "AUTHORIZATION_VIOLATION" });
  await t.rejects(
    connect({ servers: nats.url, user: "router", pass: "wrong-password-123", reconnect: false }),
    { code: "AUTHORIZATION_VIOLATION" },
  );
  await t.rejects(connectNats({ servers: nats.url, waitOnFirstConnect: false }), {
    code: "KILN_MSG_CONNECT_FAILED",
  });
  // With waitOnFirstConnect (the default) a refused login still fails, after a second attempt.
  await t.rejects(
    connectNats({ servers: nats.url, user: "router", pass: "nope-nope-nope-nope", reconnectTimeWaitMs: 50 }),
    { code: "KILN_MSG_CONNECT_FAILED", message: /AUTHORIZATION_VIOLATION/ },
  );
});

t.test("the router user cannot publish dea.stop; router.start works", async (t) => {
  const nats = await startTestNats(t);
  const admin = await nats.connect("admin");
  const got = collect(admin, ">");
  await admin.flush();

  const router = await nats.connect("router");
  const violations: { operation: string; subject: string }[] = [];
  router.on("error", (e) => {
    if (e.permission !== null) violations.push(e.permission);
  });
  const violated = new Promise<void>((resolve) => router.once("error", () => resolve()));
  router.publish("dea.stop", new TextEncoder().encode("stop everything"));
  await violated;
  router.publish("router.start", new TextEncoder().encode('{"id":"r1"}'));
  await router.flush();
  // The server delivers a connection's messages in order: router.start arriving proves dea.stop never will.
  for (let i = 0; i < 100 && !got.some((g) => g.startsWith("router.start")); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await admin.flush();
  t.same(violations, [{ operation: "publish", subject: "dea.stop" }]);
  t.same(got, ['router.start {"id":"r1"}'], "admin saw router.start and nothing on dea.stop");
  t.equal(router.state, "connected", "a permissions violation does not drop the connection");
});

t.test("each component may publish what its flows need and nothing else", async (t) => {
  const nats = await startTestNats(t);
  const admin = await nats.connect("admin");
  const got = collect(admin, ">");
  await admin.flush();
  const cases: [NatsComponent, string, boolean][] = [
    ["router", "router.start", true],
    ["router", "logs.app-1", true],
    ["router", "dea.discover", false],
    ["router", "dea.x.start", false],
    ["router", "router.register", false],
    ["router", "cc.hm.requests", false],
    ["dea", "router.register", true],
    ["dea", "router.unregister", true],
    ["dea", "dea.heartbeat", true],
    ["dea", "dea.advertise", true],
    ["dea", "droplet.exited", true],
    ["dea", "logs.app-1", true],
    ["dea", "dea.stop", false],
    ["dea", "dea.update", false],
    ["dea", "cc.hm.requests", false],
    ["cc", "dea.discover", true],
    ["cc", "dea.d1.stage", true],
    ["cc", "dea.d1.start", true],
    ["cc", "dea.stop", true],
    ["cc", "dea.update", true],
    ["cc", "router.register", false],
    ["hm", "cc.hm.requests", true],
    ["hm", "dea.stop", false],
    ["hm", "dea.update", false],
    ["hm", "router.register", false],
    ["cli", "router.greet", true],
    ["cli", "dea.stop", false],
    ["router", "dea.update", false],
    ["cli", "logs.app-1", false],
  ];
  const refused: string[] = [];
  const conns = new Map<NatsComponent, KilnConnection>();
  for (const c of NATS_COMPONENTS) {
    const conn = await nats.connect(c);
    conn.on("error", (e) => {
      if (e.permission) refused.push(`${c} ${e.permission.operation} ${e.permission.subject}`);
    });
    conns.set(c, conn);
  }
  for (const [c, subject] of cases) conns.get(c)?.publish(subject, new TextEncoder().encode(c));
  for (const conn of conns.values()) await conn.flush();
  // A marker after everything: once admin has it, every allowed message before it has arrived.
  conns.get("admin")?.publish("marker", new Uint8Array(0));
  for (let i = 0; i < 100 && !got.includes("marker "); i++) await new Promise((r) => setTimeout(r, 20));
  for (const [c, subject, allowed] of cases) {
    t.equal(
      got.includes(`${subject} ${c}`),
      allowed,
      `${c} ${allowed ? "may" : "may not"} publish ${subject}`,
    );
    if (!allowed) t.ok(refused.includes(`${c} publish ${subject}`), `${c} was told ${subject} is refused`);
  }
});

t.test("subscriptions are limited too: the router cannot listen on dea.>", async (t) => {
  const nats = await startTestNats(t);
  const router = await nats.connect("router");
  const refused = new Promise<string>((resolve) => {
    router.on("error", (e) => {
      if (e.permission) resolve(`${e.permission.operation} ${e.permission.subject}`);
    });
  });
  router.nc.subscribe("dea.>", { callback: () => {} });
  t.equal(await refused, "subscription dea.>");
  const dea = await nats.connect("dea");
  const greet = dea.nc.subscribe("dea.d1.stage", { max: 1 });
  await dea.flush();
  const cc = await nats.connect("cc");
  const reply = cc.nc.request("dea.d1.stage", new TextEncoder().encode("stage?"), { timeout: 2000 });
  for await (const m of greet) m.respond(new TextEncoder().encode("staged"));
  t.equal((await reply).string(), "staged", "cc → dea request/reply works through _INBOX");
  // dea.update: the cc publishes, every DEA listens (a route map reaches running instances).
  const update = dea.nc.subscribe("dea.update", { max: 1 });
  await dea.flush();
  cc.publish("dea.update", new TextEncoder().encode("routes"));
  for await (const m of update) t.equal(m.string(), "routes", "the dea user hears the cc's dea.update");
});

t.test("credentials are generated once, mode 0600, and reused by the next start", async (t) => {
  const dir = tempDir(t);
  const first = await startNatsServer({ dataDir: dir, port: 0 });
  t.teardown(() => first.stop());
  const file = join(dir, "credentials.json");
  t.equal(statSync(file).mode & 0o777, 0o600, "credentials.json is 0600");
  t.equal(
    statSync(join(dir, "nats-server.conf")).mode & 0o777,
    0o600,
    "the config (holding passwords) is 0600",
  );
  const saved = JSON.parse(readFileSync(file, "utf8")) as { users: Record<string, string> };
  const creds = Object.fromEntries(NATS_COMPONENTS.map((c) => [c, first.credentials(c).pass]));
  t.same(saved.users, creds);
  t.equal(new Set(Object.values(creds)).size, NATS_COMPONENTS.length, "every user has its own password");
  for (const p of Object.values(creds)) t.ok(p.length >= 32, "passwords are long random strings");
  t.same(first.credentials("dea").user, "dea");
  t.throws(() => first.credentials("nobody" as NatsComponent), { code: "KILN_NATS_UNKNOWN_COMPONENT" });
  await first.stop();

  chmodSync(file, 0o644);
  const second = await startNatsServer({ dataDir: dir, port: 0 });
  t.teardown(() => second.stop());
  for (const c of NATS_COMPONENTS) t.equal(second.credentials(c).pass, creds[c], `${c} keeps its password`);
  t.equal(statSync(file).mode & 0o777, 0o600, "a loosened mode is tightened again");
  const conn = await connectNats({
    servers: second.url,
    ...second.credentials("router"),
    waitOnFirstConnect: false,
  });
  t.equal(conn.state, "connected", "the old password still logs in");
  await conn.close();
  await second.stop();
});

t.test("a malformed credentials file is a coded error, not new passwords", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "credentials.json"), "{ not json", { mode: 0o600 });
  await t.rejects(startNatsServer({ dataDir: dir, port: 0 }), { code: "KILN_NATS_BAD_CREDENTIALS_FILE" });
  writeFileSync(join(dir, "credentials.json"), JSON.stringify({ users: { router: 5 } }), { mode: 0o600 });
  await t.rejects(startNatsServer({ dataDir: dir, port: 0 }), { code: "KILN_NATS_BAD_CREDENTIALS_FILE" });
});

t.test("a fixed free port is used; a taken one falls back to a free port", async (t) => {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const taken = (blocker.address() as { port: number }).port;
  const notes: string[] = [];
  const nats = await startTestNats(t, {
    port: taken,
    log: (l) => l.source === "launcher" && notes.push(l.msg),
  });
  t.not(nats.port, taken, "did not use the taken port");
  t.ok(
    notes.some((n) => n.includes(`port ${taken} is taken`)),
    "said so in the log",
  );
  const c = await nats.connect("admin");
  t.equal(c.state, "connected");

  // The port it got is free again once it stops: ask for it explicitly.
  const port = nats.port;
  await c.close();
  await nats.stop();
  const again = await startTestNats(t, { port });
  t.equal(again.port, port, "a free fixed port is used as asked");
  t.equal(again.url, `nats://127.0.0.1:${port}`);
});

t.test("a second server on a data dir whose server runs is refused", async (t) => {
  const dir = tempDir(t);
  const nats = await startTestNats(t, { dataDir: dir });
  await t.rejects(startNatsServer({ dataDir: dir, port: 0 }), {
    code: "KILN_NATS_START_FAILED",
    message: /already running/,
  });
  t.ok(isAlive(nats.pid), "the running one is untouched");
});

t.test("two starts racing on a fresh data dir: one wins, the other is refused", async (t) => {
  const dir = tempDir(t);
  const results = await Promise.allSettled([
    startNatsServer({ dataDir: dir, port: 0 }),
    startNatsServer({ dataDir: dir, port: 0 }),
  ]);
  for (const r of results) if (r.status === "fulfilled") t.teardown(() => r.value.stop());
  const won = results.filter((r) => r.status === "fulfilled");
  const lost = results.filter((r) => r.status === "rejected");
  t.equal(won.length, 1, "one server runs");
  t.match(lost[0]?.reason, { code: "KILN_NATS_START_FAILED", message: /in progress|already running/ });
  const nats = (won[0] as PromiseFulfilledResult<NatsServerHandle>).value;
  const saved = JSON.parse(readFileSync(join(dir, "credentials.json"), "utf8")) as {
    users: Record<string, string>;
  };
  t.equal(saved.users.admin, nats.credentials("admin").pass, "the file holds the running server's passwords");
  t.notOk(existsSync(join(dir, "start.lock")), "the start lock is released");
});

t.test("a start lock left by a dead process is taken over", async (t) => {
  const dir = tempDir(t);
  // A pid that cannot be alive: above the kernel's pid_max.
  writeFileSync(join(dir, "start.lock"), "4194305");
  const nats = await startTestNats(t, { dataDir: dir });
  t.ok(isAlive(nats.pid));
  // An old lock is stale even when its pid is alive again (reused after a reboot).
  await nats.stop();
  writeFileSync(join(dir, "start.lock"), String(process.pid));
  const old = new Date(Date.now() - 10 * 60_000);
  utimesSync(join(dir, "start.lock"), old, old);
  const again = await startTestNats(t, { dataDir: dir });
  t.ok(isAlive(again.pid));
  // A fresh lock of a live process is respected.
  writeFileSync(join(dir, "start.lock"), String(process.pid));
  await t.rejects(startNatsServer({ dataDir: dir, port: 0 }), { message: /in progress/ });
});

t.test("an orphaned server left by a killed kernel is stopped and replaced", async (t) => {
  const dir = tempDir(t);
  const first = await startNatsServer({ dataDir: dir, port: 0 });
  await first.stop();
  // Re-run the same config from a shell that exits at once: the server's parent becomes init,
  // as when the kernel that started it was killed with SIGKILL.
  const conf = join(dir, "nats-server.conf");
  const out = execFileSync("/bin/sh", ["-c", `nats-server -c '${conf}' >/dev/null 2>&1 & echo $!`], {
    encoding: "utf8",
  });
  const orphan = Number(out.trim());
  t.teardown(() => {
    if (isAlive(orphan)) process.kill(orphan, "SIGKILL");
  });
  for (let i = 0; i < 100 && readPidFile(dir) !== orphan; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(readPidFile(dir), orphan, "the orphan runs on the data dir");
  const notes: string[] = [];
  const nats = await startNatsServer({ dataDir: dir, port: 0, log: (l) => notes.push(l.msg) });
  t.teardown(() => nats.stop());
  t.notOk(isAlive(orphan) && !isZombie(orphan), "the orphan was stopped");
  t.ok(
    notes.some((n) => n.includes(`orphaned nats-server pid ${orphan}`)),
    "and the log says so",
  );
  t.equal(readPidFile(dir), nats.pid);
  const conn = await connectNats({
    servers: nats.url,
    ...nats.credentials("admin"),
    waitOnFirstConnect: false,
  });
  t.equal(conn.state, "connected");
  await conn.close();
});

t.test("start failures are coded, carry the server's output, and leave no process", async (t) => {
  const dir = tempDir(t);
  await t.rejects(startNatsServer({ dataDir: dir, binary: join(dir, "missing-binary") }), {
    code: "KILN_NATS_NOT_INSTALLED",
  });

  const dies = join(dir, "dies.sh");
  writeFileSync(dies, "#!/bin/sh\necho 'nats: something is badly wrong' >&2\nexit 3\n", { mode: 0o755 });
  const err = await startNatsServer({ dataDir: join(dir, "a"), port: 0, binary: dies }).catch(
    (e: unknown) => e,
  );
  t.ok(err instanceof MessagingError);
  t.match(err, { code: "KILN_NATS_START_FAILED", message: /exited with 3[\s\S]*something is badly wrong/ });

  const hangs = join(dir, "hangs.sh");
  writeFileSync(hangs, "#!/bin/sh\nexec sleep 30\n", { mode: 0o755 });
  const started = Date.now();
  await t.rejects(startNatsServer({ dataDir: join(dir, "b"), port: 0, binary: hangs, startTimeoutMs: 300 }), {
    code: "KILN_NATS_START_FAILED",
    message: /within 300 ms/,
  });
  t.ok(Date.now() - started < 5000, "gave up at the timeout");
  // guardChildren (file teardown) fails the file if `sleep` survived.
});

t.test("finds Debian's nats-server when PATH lacks /usr/sbin", async (t) => {
  const saved = process.env.PATH;
  process.env.PATH = "/nonexistent";
  t.teardown(() => {
    process.env.PATH = saved;
  });
  const nats = await startTestNats(t);
  t.ok(isAlive(nats.pid));
});

t.test("a relative data dir is made absolute (the server resolves config paths itself)", async (t) => {
  const dir = tempDir(t);
  const nats = await startTestNats(t, { dataDir: relative(process.cwd(), dir) });
  t.equal(nats.dataDir, dir);
  t.ok(statSync(join(dir, "jetstream")).isDirectory());
});

t.test("invalid port numbers are refused", async (t) => {
  const dir = tempDir(t);
  for (const port of [-1, 65536, 1.5]) {
    await t.rejects(
      startNatsServer({ dataDir: dir, port }),
      { code: "KILN_NATS_START_FAILED" },
      String(port),
    );
  }
});

t.test("NatsError codes surface through connectNats as KILN_MSG_CONNECT_FAILED with a cause", async (t) => {
  const nats = await startTestNats(t);
  const err = await connectNats({ servers: nats.url, waitOnFirstConnect: false }).catch((e: unknown) => e);
  t.ok(err instanceof MessagingError);
  t.equal(((err as MessagingError).cause as NatsError).code, "AUTHORIZATION_VIOLATION");
});
