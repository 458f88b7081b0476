// Slow clients: a connection that trickles its request head, or a body below the minimum
// rate, is closed by the router after its idle timeout (10 s, uWS's HTTP_IDLE_TIMEOUT_S)
// however steadily it keeps sending, so slowloris connections cannot pile up.
import { connect, type Socket } from "node:net";
import t from "tap";
import { guardChildren } from "../helpers/children.js";
import { send, sleep, startBackend, startRig } from "./harness.js";

guardChildren(t);

const rig = await startRig(t, ["--threads", "1"]);
const port = rig.router.port;
// The harness calls the handler once the whole body is in, so a trickled body is never answered.
const backend = await startBackend(t, (_req, res) => res.end("ok"));
await rig.register({ port: backend.port, uris: ["slow.test"], private_instance_id: "slow-0" });

interface Trickle {
  socket: Socket;
  /** Resolves with when the router closed the connection (ms after connect) and what it sent. */
  closed: Promise<{ afterMs: number; text: string }>;
}

/** Connects and writes `first`, then one byte of `drip` every 500 ms until closed. */
function trickle(first: string, drip: string): Trickle {
  const started = Date.now();
  const socket = connect(port, "127.0.0.1", () => socket.write(first));
  let text = "";
  socket.setEncoding("latin1").on("data", (d: string) => {
    text += d;
  });
  socket.on("error", () => {});
  let i = 0;
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write(drip[i++ % drip.length] as string);
  }, 500);
  const closed = new Promise<{ afterMs: number; text: string }>((resolve) => {
    socket.on("close", () => {
      clearInterval(timer);
      resolve({ afterMs: Date.now() - started, text });
    });
  });
  return { socket, closed };
}

t.test("a trickled head or a trickled body is closed after the idle timeout", async (t) => {
  const heads = Array.from({ length: 20 }, () =>
    trickle("GET / HTTP/1.1\r\nHost: slow.test\r\n", "X-a: b\r\n"),
  );
  const body = trickle("POST / HTTP/1.1\r\nHost: slow.test\r\nContent-Length: 100000\r\n\r\n", "x");
  t.teardown(() => {
    for (const c of [...heads, body]) c.socket.destroy();
  });
  await sleep(1000);
  t.equal((await send(port, { host: "slow.test" })).status, 200, "others are served meanwhile");
  const guard = setTimeout(() => {
    for (const c of [...heads, body]) c.socket.destroy();
  }, 20_000);
  const ends = await Promise.all([...heads, body].map((c) => c.closed));
  clearTimeout(guard);
  for (const [i, e] of ends.entries()) {
    const which = i < heads.length ? `head ${i}` : "body";
    t.ok(
      e.afterMs >= 9_000 && e.afterMs < 15_000,
      `${which} closed after ${e.afterMs} ms (10 s idle timeout)`,
    );
    t.notMatch(e.text, /^HTTP\/1\.1 200/, `${which} got no answer`);
  }
  t.equal((await send(port, { host: "slow.test" })).status, 200, "still serving");
});
