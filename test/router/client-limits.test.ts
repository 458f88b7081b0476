// --client-idle-timeout and --min-upload-rate (uWS's idle timeout and upload floor, fixed
// upstream at 10 s and 16 KiB/s): a body at 8 KiB/s for 16 s passes with a lower floor (past
// the 10 s timeout at which the floor is checked) and is cut with the default; an idle keep-alive
// connection outlives 10 s with a 30 s timeout and is closed after 8 to 12 s (4 s ticks) with the
// default. Each flag has its own router, so each is seen to act alone. All four run at once
// (about 17 s).
import { connect, type Socket } from "node:net";
import t from "tap";
import { guardChildren } from "../helpers/children.js";
import { sleep, startBackend, startRig } from "./harness.js";

guardChildren(t);

const [byDefault, lowFloor, longIdle] = await Promise.all([
  startRig(t, ["--threads", "1"]),
  startRig(t, ["--threads", "1", "--min-upload-rate", "4096"]),
  startRig(t, ["--threads", "1", "--client-idle-timeout", "30"]),
]);
const backend = await startBackend(t, (_req, res, body) => res.end(`got ${body.length}`));
const route = { port: backend.port, uris: ["limits.test"], private_instance_id: "limits-0" };
await Promise.all([byDefault.register(route), lowFloor.register(route), longIdle.register(route)]);

interface Conn {
  socket: Socket;
  text(): string;
  /** Resolves with ms since connect when the router closes the connection. */
  closed: Promise<number>;
  /** Resolves when `re` matches what came back so far. */
  waitFor(re: RegExp): Promise<void>;
}

function open(port: number, t: { teardown(fn: () => void): void }): Conn {
  const started = Date.now();
  const socket = connect(port, "127.0.0.1");
  t.teardown(() => socket.destroy());
  let text = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  socket.setEncoding("latin1").on("data", (d: string) => {
    text += d;
    for (const w of waiters.splice(0)) {
      if (w.re.test(text)) w.resolve();
      else waiters.push(w);
    }
  });
  socket.on("error", () => {});
  const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now() - started)));
  return {
    socket,
    text: () => text,
    closed,
    waitFor: (re) =>
      new Promise<void>((resolve) => (re.test(text) ? resolve() : waiters.push({ re, resolve }))),
  };
}

const rate = 8 * 1024;
const seconds = 16;
const size = rate * seconds;

/** POSTs `size` bytes at 8 KiB/s (1 KiB every 125 ms); resolves when answered or closed. */
async function slowUpload(port: number, t: { teardown(fn: () => void): void }) {
  const c = open(port, t);
  c.socket.write(`POST /up HTTP/1.1\r\nHost: limits.test\r\nContent-Length: ${size}\r\n\r\n`);
  const chunk = Buffer.alloc(1024, 0x78);
  let sent = 0;
  const timer = setInterval(() => {
    if (c.socket.destroyed || sent >= size) return clearInterval(timer);
    c.socket.write(chunk);
    sent += chunk.length;
  }, 125);
  t.teardown(() => clearInterval(timer));
  const answered = c.waitFor(new RegExp(`got ${size}$`)).then(() => -1);
  const closedAfterMs = await Promise.race([answered, c.closed]);
  clearInterval(timer);
  return { closedAfterMs, sent, text: c.text() };
}

/** One request, then silence: resolves with how long the connection stayed open after the answer. */
async function idleAfterAnswer(port: number, t: { teardown(fn: () => void): void }, askAgainAfterMs: number) {
  const c = open(port, t);
  const get = "GET /idle HTTP/1.1\r\nHost: limits.test\r\n\r\n";
  c.socket.write(get);
  await c.waitFor(/got 0$/);
  const answeredAt = Date.now();
  const again = sleep(askAgainAfterMs).then(async () => {
    if (c.socket.destroyed) return false;
    c.socket.write(get);
    await Promise.race([c.waitFor(/got 0[\s\S]*got 0$/), c.closed]);
    return /got 0[\s\S]*got 0$/.test(c.text());
  });
  const closedAfterMs = await Promise.race([
    c.closed.then(() => Date.now() - answeredAt),
    again.then(() => -1),
  ]);
  return { closedAfterMs, servedAgain: await again };
}

t.test("upload floor and idle timeout, default and set", async (t) => {
  const [cut, passed, idleDefault, idleLong] = await Promise.all([
    slowUpload(byDefault.router.port, t),
    slowUpload(lowFloor.router.port, t),
    idleAfterAnswer(byDefault.router.port, t, 16_000),
    idleAfterAnswer(longIdle.router.port, t, 16_000),
  ]);

  t.ok(
    cut.closedAfterMs >= 7_500 && cut.closedAfterMs < 16_500,
    `default floor (16 KiB/s): an 8 KiB/s body is cut after ${cut.closedAfterMs} ms, ${cut.sent} bytes sent`,
  );
  t.notMatch(cut.text, /HTTP\/1\.1 200/, "and gets no answer");

  t.equal(passed.closedAfterMs, -1, "--min-upload-rate 4096: the 8 KiB/s body is not cut");
  t.match(
    passed.text,
    new RegExp(`^HTTP/1\\.1 200 OK[\\s\\S]*got ${size}$`),
    `all ${size} bytes reached the backend`,
  );

  t.ok(
    idleDefault.closedAfterMs >= 7_500 && idleDefault.closedAfterMs < 12_500,
    `default idle timeout (10 s): closed ${idleDefault.closedAfterMs} ms after the answer`,
  );
  t.equal(idleDefault.servedAgain, false);

  t.equal(idleLong.closedAfterMs, -1, "--client-idle-timeout 30: still open 16 s after the answer");
  t.equal(idleLong.servedAgain, true, "and serves the next request on it");
});
