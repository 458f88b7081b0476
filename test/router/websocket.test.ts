// WebSocket through the router: upgrade passed to a real uWS backend, messages echoed
// both ways (text, large binary), a clean close from either side.
import { connect, type Socket } from "node:net";
import t from "tap";
import { loadUws } from "../../router/uws.js";
import { encodeClose, encodeFrame, FrameReader, type FrameSink, Op } from "../../router/ws/frames.js";
import { guardChildren } from "../helpers/children.js";
import {
  rawExchange,
  sleep,
  startCannedBackend,
  startRawBackend,
  startRig,
  startTricklingBackend,
} from "./harness.js";

guardChildren(t);

const rig = await startRig(t, ["--threads", "2", "--response-timeout-ms", "1500"]);
const port = rig.router.port;

const uWS = loadUws();

// The backend: uWS in this process; echoes, and closes with 4001 when asked to.
const closes: { code: number; reason: string }[] = [];
const upgradeHeaders: Record<string, string>[] = [];
const app = uWS.App();
app.ws<Record<string, never>>("/*", {
  maxPayloadLength: 1024 * 1024,
  upgrade(res, req, context) {
    const h: Record<string, string> = {};
    req.forEach((k, v) => {
      h[k] = v;
    });
    upgradeHeaders.push(h);
    res.upgrade(
      {},
      req.getHeader("sec-websocket-key"),
      req.getHeader("sec-websocket-protocol"),
      req.getHeader("sec-websocket-extensions"),
      context,
    );
  },
  message(ws, msg, isBinary) {
    if (!isBinary && Buffer.from(msg).toString() === "close-me") {
      ws.end(4001, "bye from backend");
      return;
    }
    ws.send(msg, isBinary);
  },
  close(_ws, code, msg) {
    closes.push({ code, reason: Buffer.from(msg).toString() });
  },
});
const backendPort = await new Promise<number>((resolve, reject) =>
  app.listen("127.0.0.1", 0, (ls) =>
    ls === false ? reject(new Error("listen")) : resolve(uWS.us_socket_local_port(ls)),
  ),
);
t.teardown(() => (app as unknown as { close(): void }).close());
await rig.register({ port: backendPort, uris: ["ws.test"], app: "app-ws", private_instance_id: "ws-0" });

interface Client {
  sock: Socket;
  head: string;
  next(): Promise<{ kind: "msg" | "close"; data: Buffer; binary: boolean; code: number }>;
}

async function open(host: string, extraHeaders = ""): Promise<Client> {
  const sock = connect(port, "127.0.0.1");
  await new Promise<void>((r) => sock.once("connect", () => r()));
  sock.write(
    `GET /chat?room=1 HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
  );
  const queue: Awaited<ReturnType<Client["next"]>>[] = [];
  const waiters: ((v: Awaited<ReturnType<Client["next"]>>) => void)[] = [];
  const deliver = (v: Awaited<ReturnType<Client["next"]>>): void => {
    const w = waiters.shift();
    if (w !== undefined) w(v);
    else queue.push(v);
  };
  const sink: FrameSink = {
    onMessage: (data, binary) => deliver({ kind: "msg", data: Buffer.from(data), binary, code: 0 }),
    onPing: () => {},
    onClose: (code, reason) => deliver({ kind: "close", data: Buffer.from(reason), binary: false, code }),
    onProtocolError: () => deliver({ kind: "close", data: Buffer.alloc(0), binary: false, code: -1 }),
  };
  const reader = new FrameReader(64 * 1024 * 1024);
  let head = "";
  let buf = Buffer.alloc(0);
  const headDone = new Promise<void>((resolve) => {
    sock.on("data", (d: Buffer) => {
      if (head === "" || !head.endsWith("\r\n\r\n")) {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        head = buf.subarray(0, end + 4).toString("latin1");
        const rest = buf.subarray(end + 4);
        resolve();
        if (rest.length > 0) reader.push(rest, sink);
        return;
      }
      reader.push(d, sink);
    });
    sock.on("close", () => {
      resolve();
      deliver({ kind: "close", data: Buffer.alloc(0), binary: false, code: -2 });
    });
  });
  await headDone;
  return {
    sock,
    head,
    next: () =>
      new Promise((resolve) => {
        const q = queue.shift();
        if (q !== undefined) resolve(q);
        else waiters.push(resolve);
      }),
  };
}

t.test("echo through the router, text and large binary, client closes", async (t) => {
  const c = await open("ws.test");
  t.match(c.head, /^HTTP\/1\.1 101 /);
  t.match(c.head, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
  const seen = upgradeHeaders.at(-1) ?? {};
  t.equal(seen["x-cf-applicationid"], "app-ws", "the backend's upgrade request carries the X-CF headers");
  t.equal(seen["x-forwarded-for"], "127.0.0.1");
  c.sock.write(encodeFrame(Op.Text, Buffer.from("hello")));
  const m1 = await c.next();
  t.equal(m1.kind, "msg");
  t.equal(m1.data.toString(), "hello");
  t.equal(m1.binary, false);
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = i & 255;
  c.sock.write(encodeFrame(Op.Binary, big));
  const m2 = await c.next();
  t.equal(m2.binary, true);
  t.ok(m2.data.equals(big), "300 kB binary message echoed intact");
  c.sock.write(encodeClose(1000, Buffer.from("done")));
  const cl = await c.next();
  t.equal(cl.kind, "close");
  t.equal(cl.code, 1000, "the router answers the close");
  for (let i = 0; i < 40 && !closes.some((x) => x.code === 1000); i++) await sleep(25);
  t.ok(
    closes.some((x) => x.code === 1000 && x.reason === "done"),
    "the backend saw the client's close code and reason",
  );
  c.sock.destroy();
});

t.test("backend closes: the client gets its code", async (t) => {
  const c = await open("ws.test");
  c.sock.write(encodeFrame(Op.Text, Buffer.from("close-me")));
  const cl = await c.next();
  t.equal(cl.kind, "close");
  t.equal(cl.code, 4001);
  t.equal(cl.data.toString(), "bye from backend");
  c.sock.destroy();
});

t.test("upgrade to an unknown host: 404 with X-Kiln-Router-Error", async (t) => {
  const c = await open("nowhere.test");
  t.match(c.head, /^HTTP\/1\.1 404 /);
  t.match(c.head, /X-Kiln-Router-Error: unknown_route/);
  c.sock.destroy();
});

t.test("a refused upgrade is relayed without the backend's hop-by-hop headers", async (t) => {
  const refuser = await startCannedBackend(
    t,
    "HTTP/1.1 403 Forbidden\r\nConnection: close, x-private\r\nX-Private: 1\r\n" +
      "Keep-Alive: timeout=5\r\nX-Public: 2\r\nContent-Length: 4\r\n\r\nnope",
  );
  await rig.register({ port: refuser, uris: ["wsrefuse.test"], private_instance_id: "wsr-0" });
  const c = await open("wsrefuse.test");
  t.match(c.head, /^HTTP\/1\.1 403 /);
  t.match(c.head, /\r\nX-Public: 2\r\n/i, "the backend's own headers come back");
  t.notMatch(c.head, /x-private/i, "a header its Connection lists does not");
  t.notMatch(c.head, /keep-alive/i, "nor Keep-Alive");
  c.sock.destroy();
});

t.test("a refused upgrade with a chunked body is relayed decoded, with its length", async (t) => {
  const refuser = await startRawBackend(t, (s) =>
    s.once("data", () => {
      s.write("HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\nX-Public: 3\r\n\r\n5\r\nlog i");
      setTimeout(() => s.end("\r\n6\r\nn firs\r\n1\r\nt\r\n0\r\n\r\n"), 50);
    }),
  );
  await rig.register({ port: refuser, uris: ["wschunk.test"], private_instance_id: "wsc-0" });
  const { text } = await rawExchange(
    port,
    "GET /chat HTTP/1.1\r\nHost: wschunk.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    1000,
  );
  const end = text.indexOf("\r\n\r\n");
  const head = text.slice(0, end + 2);
  t.match(head, /^HTTP\/1\.1 401 /);
  t.match(head, /\r\nX-Public: 3\r\n/i);
  t.notMatch(head, /transfer-encoding/i, "the backend's framing is not passed on");
  t.match(head, /\r\nContent-Length: 12\r\n/i);
  t.equal(text.slice(end + 4), "log in first", "the body, decoded");
});

t.test(
  "a backend trickling its answer to the upgrade gets 504 once the response timeout is up",
  async (t) => {
    // One header byte every 100 ms, forever: never silent for long, never done.
    const trickle = await startTricklingBackend(t, "HTTP/1.1 101 Switching Protocols\r\nX-Trickle: ");
    await rig.register({ port: trickle, uris: ["wstrickle.test"], private_instance_id: "wst-0" });
    const t0 = Date.now();
    const c = await Promise.race([open("wstrickle.test"), sleep(6000).then(() => null)]);
    const ms = Date.now() - t0;
    if (c === null) {
      t.fail(`no answer after ${ms} ms`);
      return;
    }
    t.match(c.head, /^HTTP\/1\.1 504 /);
    t.match(c.head, /X-Kiln-Router-Error: response_timeout/);
    t.ok(ms >= 1400 && ms < 2500, `answered after ${ms} ms, about the response timeout (1500 ms)`);
    c.sock.destroy();
  },
);

t.test(
  "an upgrade on a hash-balanced route without the hash header hashes on the client address",
  async (t) => {
    // The same backend app on a second port: two endpoints, told apart by X-CF-InstanceID.
    const secondPort = await new Promise<number>((resolve, reject) =>
      app.listen("127.0.0.1", 0, (ls) =>
        ls === false ? reject(new Error("listen")) : resolve(uWS.us_socket_local_port(ls)),
      ),
    );
    const options = { loadbalancing: "hash", hash_header: "X-User" };
    await rig.register({ port: backendPort, uris: ["wshash.test"], private_instance_id: "wsh-A", options });
    await rig.register({ port: secondPort, uris: ["wshash.test"], private_instance_id: "wsh-B", options });
    const reached = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const c = await open("wshash.test");
      t.match(c.head, /^HTTP\/1\.1 101 /, "upgraded, not refused for want of a hash key");
      reached.add(upgradeHeaders.at(-1)?.["x-cf-instanceid"] ?? "");
      c.sock.write(encodeClose(1000, Buffer.alloc(0)));
      await c.next();
      c.sock.destroy();
    }
    t.equal(reached.size, 1, `one client, one endpoint (${[...reached].join(",")})`);
  },
);

t.test("an upgrade whose endpoint cannot be reached goes to another, with that one's headers", async (t) => {
  const { freePort } = await import("../helpers/ports.js");
  const dead = await freePort();
  await rig.register({ port: dead, uris: ["wsretry.test"], app: "app-wsr", private_instance_id: "wsr-dead" });
  await rig.register({
    port: backendPort,
    uris: ["wsretry.test"],
    app: "app-wsr",
    private_instance_id: "wsr-live",
  });
  // The sticky cookie sends the first attempt to the dead endpoint.
  const c = await open("wsretry.test", "Cookie: __VCAP_ID__=wsr-dead\r\n");
  t.match(c.head, /^HTTP\/1\.1 101 /, "upgraded on the second endpoint");
  t.equal(
    upgradeHeaders.at(-1)?.["x-cf-instanceid"],
    "wsr-live",
    "the upgrade carries the live endpoint's X-CF-InstanceID",
  );
  c.sock.write(encodeFrame(Op.Text, Buffer.from("again")));
  const m = await c.next();
  t.equal(m.data.toString(), "again");
  c.sock.destroy();

  // Every endpoint dead: 502 after the attempts run out.
  const [d1, d2] = [await freePort(), await freePort()];
  await rig.register({ port: d1, uris: ["wsdead.test"], private_instance_id: "wsd-1" });
  await rig.register({ port: d2, uris: ["wsdead.test"], private_instance_id: "wsd-2" });
  const refused = await open("wsdead.test");
  t.match(refused.head, /^HTTP\/1\.1 502 /);
  t.match(refused.head, /X-Kiln-Router-Error: connect_refused/i);
  refused.sock.destroy();
});
