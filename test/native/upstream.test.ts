// The native upstream client against real backends: node:http servers and raw `net`
// servers that misbehave on purpose, all on random loopback ports.
import { createHash } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { Worker } from "node:worker_threads";
import t, { type Test } from "tap";
import { distPath } from "../../kernel/paths.js";
import {
  RequestFlag,
  ResponseFlag,
  UpstreamError,
  upstreamAvailable,
  upstreamErrors,
} from "../../native/upstream.js";
import { freePort } from "../helpers/ports.js";
import { TestClient } from "./upstream-client.js";

const skip = !upstreamAvailable && "addon not built";

function sha(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

function pattern(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

const KB16 = pattern(16 * 1024);
const MB1 = pattern(1024 * 1024);

interface Backend {
  port: number;
  connections: number;
  server: http.Server;
}

async function httpBackend(
  tt: Test,
  handler: http.RequestListener = defaultHandler,
  tweak?: (s: http.Server) => void,
): Promise<Backend> {
  const server = http.createServer(handler);
  tweak?.(server);
  const b: Backend = { port: 0, connections: 0, server };
  server.on("connection", () => b.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  b.port = (server.address() as net.AddressInfo).port;
  tt.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return b;
}

function defaultHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? "/";
  if (url === "/tiny") {
    res.setHeader("X-Test", "a");
    res.setHeader("Connection", "keep-alive, X-Hop");
    res.setHeader("X-Hop", "drop me");
    res.end("ok");
  } else if (url === "/16k") {
    res.end(KB16);
  } else if (url === "/1m") {
    res.end(MB1);
  } else if (url === "/chunked") {
    res.setHeader("Content-Type", "text/plain");
    res.write("hello ");
    setTimeout(() => {
      res.write(KB16);
      res.end(" bye");
    }, 5);
  } else if (url === "/head") {
    res.setHeader("Content-Length", "1234");
    res.end(req.method === "HEAD" ? undefined : Buffer.alloc(1234));
  } else if (url === "/204") {
    res.statusCode = 204;
    res.end();
  } else if (url === "/304") {
    res.statusCode = 304;
    res.setHeader("ETag", '"x"');
    res.end();
  } else if (url === "/echo") {
    const h = createHash("sha256");
    let n = 0;
    req.on("data", (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    req.on("end", () =>
      res.end(JSON.stringify({ n, sha: h.digest("hex"), te: req.headers["transfer-encoding"] })),
    );
  } else if (url.startsWith("/big/")) {
    // /big/<MiB>: streamed with the server's own backpressure.
    const total = Number(url.slice(5)) * 1024 * 1024;
    res.setHeader("Content-Length", String(total));
    const chunk = Buffer.alloc(256 * 1024, 7);
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once("drain", pump);
          return;
        }
      }
      res.end();
    };
    pump();
  } else {
    res.statusCode = 404;
    res.end("nope");
  }
}

/** A raw TCP backend: `onSocket` decides what each connection gets. */
async function rawBackend(tt: Test, onSocket: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    onSocket(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  tt.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** Answers every request head it reads with `reply` (raw bytes). */
function replyWith(reply: string | Buffer, thenClose = false): (s: net.Socket) => void {
  return (s) => {
    s.once("data", () => {
      s.write(reply);
      if (thenClose) s.end();
    });
  };
}

function client(tt: Test, opts = {}): TestClient {
  const c = new TestClient(opts);
  tt.teardown(() => c.up.close());
  return c;
}

t.test("GET tiny, 16 KiB, 1 MiB", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const c = client(tt);
  const tiny = await c.get(b.port, "/tiny");
  tt.equal(tiny.status, 200);
  tt.equal(tiny.body.toString(), "ok");
  tt.equal(tiny.callbacks, 1, "small response in one callback");
  tt.ok(tiny.flags & ResponseFlag.COMPLETE);
  tt.equal(tiny.length, 2);
  tt.match(tiny.head, /^200 OK\r\n/);
  tt.match(tiny.head, /\r\nX-Test: a(\r\n|$)/);
  tt.notMatch(tiny.head, /content-length|connection|x-hop|keep-alive/i, "hop-by-hop and framing removed");
  tt.notMatch(tiny.head, /\r\n$/, "no trailing CRLF: ready for writeStatus");

  const k16 = await c.get(b.port, "/16k");
  tt.equal(k16.callbacks, 1, "16 KiB in one callback");
  tt.equal(sha(k16.body), sha(KB16));

  const m1 = await c.get(b.port, "/1m");
  tt.equal(m1.length, MB1.length);
  tt.ok(m1.callbacks > 1, "1 MiB streamed in chunks");
  tt.equal(sha(m1.body), sha(MB1));
  tt.equal(b.connections, 1, "one connection for all three");
});

t.test("transientBodies: views of the read buffer, same bytes", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const c = client(tt, { transientBodies: true });
  const tiny = await c.get(b.port, "/tiny");
  tt.equal(tiny.body.toString(), "ok");
  tt.equal(tiny.callbacks, 1);
  tt.equal(sha((await c.get(b.port, "/16k")).body), sha(KB16));
  tt.equal(sha((await c.get(b.port, "/1m")).body), sha(MB1));
  const ch = await c.get(b.port, "/chunked");
  tt.equal(ch.body.toString("latin1"), `hello ${KB16.toString("latin1")} bye`);
});

t.test("dropDate leaves the backend's Date out of the head block", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const plain = await client(tt).get(b.port, "/tiny");
  tt.match(plain.head, /\r\nDate: /);
  const r = await client(tt, { dropDate: true }).get(b.port, "/tiny");
  tt.notMatch(r.head, /date:/i);
  tt.match(r.head, /\r\nX-Test: a/);
});

t.test("chunked response is decoded", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const c = client(tt);
  const r = await c.get(b.port, "/chunked");
  tt.equal(r.status, 200);
  tt.ok(r.flags & ResponseFlag.CHUNKED);
  tt.equal(r.length, -1);
  tt.equal(r.body.toString("latin1"), `hello ${KB16.toString("latin1")} bye`);
  tt.notMatch(r.head, /transfer-encoding/i);
  const again = await c.get(b.port, "/tiny");
  tt.equal(again.body.toString(), "ok");
  tt.equal(b.connections, 1, "connection reused after a chunked body");
});

t.test("HEAD, 204 and 304 have no body", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const c = client(tt);
  const head = await c.send(b.port, "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n", {
    flags: RequestFlag.END | RequestFlag.HEAD,
  });
  tt.equal(head.status, 200);
  tt.equal(head.length, 1234, "declared length passed on");
  tt.equal(head.body.length, 0);
  tt.ok(head.flags & ResponseFlag.NO_BODY);
  tt.ok(head.flags & ResponseFlag.COMPLETE);
  const r204 = await c.get(b.port, "/204");
  tt.equal(r204.status, 204);
  tt.ok(r204.flags & ResponseFlag.NO_BODY);
  const r304 = await c.get(b.port, "/304");
  tt.equal(r304.status, 304);
  tt.match(r304.head, /ETag: "x"/);
  const tiny = await c.get(b.port, "/tiny");
  tt.equal(tiny.body.toString(), "ok");
  tt.equal(b.connections, 1, "still one connection");
});

t.test("keep-alive: 100 sequential requests use one connection", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const c = client(tt);
  for (let i = 0; i < 100; i++) {
    const r = await c.get(b.port, "/tiny");
    if (r.status !== 200) tt.fail(`request ${i}: ${r.status} ${r.error}`);
    if (i > 0 && (r.flags & ResponseFlag.REUSED) === 0) tt.fail(`request ${i} not on a pooled connection`);
  }
  tt.equal(b.connections, 1);
  tt.same(c.up.stats(), { pools: 1, connections: 1, idle: 1, active: 0, resent: 0 });
});

t.test("a connection the backend closed while idle is replaced", { skip }, async (tt) => {
  let accepted = 0;
  // Answers once, then closes the idle connection shortly after, as a keep-alive timeout does.
  const port = await rawBackend(tt, (s) => {
    accepted++;
    s.on("data", () => {
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      setTimeout(() => s.end(), 20);
    });
  });
  const c = client(tt);
  tt.equal((await c.get(port)).status, 200);
  tt.equal(c.up.stats().idle, 1, "pooled");
  await new Promise((r) => setTimeout(r, 100));
  tt.equal(c.up.stats().connections, 0, "closed idle connection dropped");
  const r = await c.get(port);
  tt.equal(r.status, 200);
  tt.equal(accepted, 2);
});

t.test("a pooled connection that dies under a request is retried once on a new one", { skip }, async (tt) => {
  let accepted = 0;
  // Each connection answers its first request and drops the second unanswered, as a backend
  // does when its keep-alive timeout fires just as the request arrives.
  const port = await rawBackend(tt, (s) => {
    accepted++;
    let n = 0;
    s.on("data", () => {
      if (++n === 1) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      else s.destroy();
    });
  });
  const c = client(tt);
  tt.equal((await c.get(port)).status, 200);
  const r = await c.get(port);
  tt.equal(r.status, 200, "the client never saw the dead connection");
  tt.equal(r.body.toString(), "ok");
  tt.equal(r.flags & ResponseFlag.REUSED, 0, "answered on the fresh connection");
  tt.equal(accepted, 2);
  tt.equal(c.up.stats().resent, 1, "stats() counts the resend");
  // A streamed body cannot be replayed: the failure is reported instead.
  let id = -1;
  const p = c.send(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n", {
    flags: 0,
    started: (i) => {
      id = i;
    },
  });
  c.up.end(id, Buffer.from("body"));
  tt.equal((await p).error, UpstreamError.CLOSED_BEFORE_RESPONSE);
});

t.test("a request that is not idempotent is never resent on a new connection", { skip }, async (tt) => {
  const seen: string[] = [];
  // As above: each connection answers its first request and drops the second unanswered.
  const port = await rawBackend(tt, (s) => {
    let n = 0;
    s.on("data", (d: Buffer) => {
      seen.push(d.toString("latin1").split(" ", 1)[0] as string);
      if (++n === 1) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      else s.destroy();
    });
  });
  const c = client(tt);
  const post = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  tt.equal((await c.send(port, post)).status, 200);
  const r = await c.send(port, post);
  tt.equal(r.error, UpstreamError.STALE_CONNECTION, "reported, not sent again (RFC 9110 9.2.2)");
  tt.same(seen, ["POST", "POST"], "the backend saw it once");
  tt.equal(c.up.stats().resent, 0, "nothing resent");
  // A lowercase method is another method (methods are case-sensitive): not resent either.
  tt.equal((await c.send(port, "get / HTTP/1.1\r\nHost: x\r\n\r\n")).status, 200);
  tt.equal((await c.send(port, "get / HTTP/1.1\r\nHost: x\r\n\r\n")).error, UpstreamError.STALE_CONNECTION);
  tt.equal(upstreamErrors[UpstreamError.STALE_CONNECTION]?.retriable, false);
});

t.test("connect refused is retriable", { skip }, async (tt) => {
  const c = client(tt);
  const port = await freePort();
  const r = await c.get(port);
  tt.equal(r.error, UpstreamError.CONNECT_REFUSED);
  tt.equal(upstreamErrors[r.error]?.retriable, true);
  tt.equal(c.up.stats().connections, 0);
  const bad = await c.send(80, "GET / HTTP/1.1\r\n\r\n", { host: "not-an-ip.example" });
  tt.equal(bad.error, UpstreamError.BAD_ADDRESS);
});

t.test("pools without connections are dropped once there are many", { skip }, async (tt) => {
  const c = client(tt, { connectTimeoutMs: 1000, headerTimeoutMs: 1000 });
  const closed = await freePort();
  // Distinct loopback addresses on a closed port: each makes a pool whose only connection is
  // refused. A sweep runs when a new pool would pass 1024 (then twice the pools left).
  const wave = async (from: number, to: number): Promise<void> => {
    const all: Promise<unknown>[] = [];
    for (let i = from; i <= to; i++)
      all.push(c.send(closed, "GET / HTTP/1.1\r\n\r\n", { host: `127.0.${i >> 8}.${(i & 255) + 1}` }));
    await Promise.all(all);
  };
  await wave(1, 1100);
  tt.equal(c.up.stats().connections, 0);
  await wave(1101, 2200);
  tt.ok(c.up.stats().pools < 1200, `${c.up.stats().pools} pools after 2200 backends`);
  const b = await httpBackend(tt);
  tt.equal((await c.get(b.port, "/tiny")).status, 200);
});

t.test("backend closes before answering", { skip }, async (tt) => {
  const port = await rawBackend(tt, (s) => s.once("data", () => s.destroy()));
  const c = client(tt);
  const r = await c.get(port);
  tt.equal(r.error, UpstreamError.CLOSED_BEFORE_RESPONSE);
  tt.equal(upstreamErrors[r.error]?.retriable, false);
  const cut = await rawBackend(tt, replyWith("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", true));
  const r2 = await c.get(cut);
  tt.equal(r2.error, UpstreamError.RESPONSE_TRUNCATED, "body cut short");
});

t.test("garbage responses are BAD_RESPONSE", { skip }, async (tt) => {
  const c = client(tt);
  const cases: [string, string][] = [
    ["junk", "SSH-2.0-OpenSSH\r\n\r\n"],
    ["bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"],
    ["bare CR in value", "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n"],
    ["obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"],
    ["bad status", "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"],
    ["status 600", "HTTP/1.1 600 OK\r\nContent-Length: 0\r\n\r\n"],
    ["space before colon", "HTTP/1.1 200 OK\r\nX : a\r\nContent-Length: 0\r\n\r\n"],
    ["CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
    ["conflicting CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"],
    ["CL not a number", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nab"],
    ["TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"],
    ["bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    ["NUL in name", "HTTP/1.1 200 OK\r\nX\0: a\r\nContent-Length: 0\r\n\r\n"],
    ["101 unasked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"],
  ];
  for (const [name, reply] of cases) {
    const port = await rawBackend(tt, replyWith(reply));
    const r = await c.get(port);
    tt.equal(r.error, UpstreamError.BAD_RESPONSE, name);
  }
  const big = await rawBackend(tt, replyWith(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(70 * 1024)}\r\n\r\n`));
  tt.equal((await c.get(big)).error, UpstreamError.BAD_RESPONSE, "head over maxHeaderBytes");
  tt.equal(c.up.stats().connections, 0, "every bad connection closed");
});

t.test("mutated responses: every exchange ends with a response or an error", { skip }, async (tt) => {
  const valid = [
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=b\r\n\r\nhello",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n",
  ];
  const specials = ["\r", "\n", "\0", " ", ":", "0", "f", ";", "\t", "\x80"];
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const payloads: string[] = [];
  for (let i = 0; i < 300; i++) {
    let v = valid[i % valid.length] as string;
    for (let k = 1 + rand(3); k > 0; k--) {
      const at = rand(v.length);
      const op = rand(3);
      const ch = specials[rand(specials.length)] as string;
      if (op === 0) v = v.slice(0, at) + ch + v.slice(at + 1);
      else if (op === 1) v = v.slice(0, at) + ch + v.slice(at);
      else v = v.slice(0, at) + v.slice(at + 1);
    }
    payloads.push(v);
  }
  let next = 0;
  const port = await rawBackend(tt, (s) => {
    const reply = payloads[next++] as string;
    s.once("data", () => s.end(Buffer.from(reply, "latin1")));
  });
  const c = client(tt, { headerTimeoutMs: 2000 });
  let responses = 0;
  let errors = 0;
  for (let i = 0; i < payloads.length; i++) {
    const r = await c.get(port);
    if (r.error !== 0) errors++;
    else if (r.status >= 200) responses++;
  }
  tt.equal(responses + errors, payloads.length, `${responses} responses, ${errors} errors`);
  tt.ok(errors > 0 && responses > 0);
  await new Promise((r) => setTimeout(r, 50));
  tt.equal(c.up.stats().connections, 0, "every connection closed");
});

t.test(
  "flags and lenient-but-valid framing: Set-Cookie, obs-text, chunk extensions, trailers",
  { skip },
  async (tt) => {
    const c = client(tt);
    const cookie = await rawBackend(
      tt,
      replyWith(
        Buffer.from(
          "HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=1; Path=/\r\nX-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n",
          "latin1",
        ),
      ),
    );
    const r = await c.get(cookie);
    tt.ok(r.flags & ResponseFlag.SET_COOKIE);
    tt.ok(r.flags & ResponseFlag.NON_ASCII);
    tt.equal(
      Buffer.from(r.head, "latin1").includes(Buffer.from("caf\xe9", "latin1")),
      true,
      "bytes kept as latin1",
    );
    const chunked = await rawBackend(
      tt,
      replyWith(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\nA \r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
      ),
    );
    const r2 = await c.get(chunked);
    tt.equal(r2.body.toString(), "abc0123456789");
    tt.equal(r2.flags & ResponseFlag.CLOSE, 0, "kept alive after the trailer");
  },
);

t.test("interim 100 Continue, close-delimited body, HTTP/1.0", { skip }, async (tt) => {
  const c = client(tt);
  const cont = await rawBackend(
    tt,
    replyWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi"),
  );
  const r = await c.get(cont);
  tt.equal(r.status, 201);
  tt.equal(r.body.toString(), "hi");
  const eof = await rawBackend(tt, replyWith("HTTP/1.1 200 OK\r\nX: y\r\n\r\nuntil close", true));
  const r2 = await c.get(eof);
  tt.equal(r2.body.toString(), "until close");
  tt.ok(r2.flags & ResponseFlag.CLOSE);
  const h10 = await rawBackend(tt, replyWith("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"));
  const r3 = await c.get(h10);
  tt.equal(r3.body.toString(), "x");
  tt.ok(r3.flags & ResponseFlag.CLOSE, "HTTP/1.0 without keep-alive is not pooled");
  tt.equal(c.up.stats().connections, 1, "only the HTTP/1.1 201 connection is pooled");
});

t.test("response header timeout", { skip }, async (tt) => {
  const port = await rawBackend(tt, () => {});
  const c = client(tt, { headerTimeoutMs: 150 });
  const r = await c.get(port);
  tt.equal(r.error, UpstreamError.RESPONSE_TIMEOUT);
  tt.equal(upstreamErrors[r.error]?.status, 504);
});

t.test("pool limit: maxConnections", { skip }, async (tt) => {
  const port = await rawBackend(tt, () => {});
  const c = client(tt, { maxConnections: 1, headerTimeoutMs: 100 });
  const first = c.get(port);
  const second = await c.get(port);
  tt.equal(second.error, UpstreamError.POOL_FULL);
  tt.equal((await first).error, UpstreamError.RESPONSE_TIMEOUT);
});

t.test(
  "request bodies: inline, streamed with Content-Length, chunked with backpressure",
  { skip },
  async (tt) => {
    const b = await httpBackend(tt);
    const c = client(tt);
    const small = Buffer.from("inline body");
    const r1 = await c.send(
      b.port,
      `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${small.length}\r\n\r\n`,
      {
        body: small,
      },
    );
    tt.same(JSON.parse(r1.body.toString()), { n: small.length, sha: sha(small) });

    const parts = [pattern(1000), pattern(70000), pattern(5)];
    const all = Buffer.concat(parts);
    let id = -1;
    const p2 = c.send(b.port, `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${all.length}\r\n\r\n`, {
      flags: 0,
      started: (i) => {
        id = i;
      },
    });
    for (const part of parts) await c.write(id, part);
    c.up.end(id);
    tt.same(JSON.parse((await p2).body.toString()), { n: all.length, sha: sha(all) });

    // 16 MiB chunked in 256 KiB pieces, always waiting for onDrain when write says so.
    const piece = pattern(256 * 1024);
    const p3 = c.send(b.port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", {
      flags: RequestFlag.CHUNKED,
      started: (i) => {
        id = i;
      },
    });
    let waited = 0;
    for (let i = 0; i < 64; i++) {
      if (!c.up.write(id, piece)) {
        waited++;
        await new Promise<void>((resolve) => c.drains.set(id, resolve));
      }
    }
    c.up.end(id);
    const r3 = await p3;
    const expect = createHash("sha256");
    for (let i = 0; i < 64; i++) expect.update(piece);
    tt.same(JSON.parse(r3.body.toString()), {
      n: 64 * piece.length,
      sha: expect.digest("hex"),
      te: "chunked",
    });
    tt.ok(waited > 0, "write reported backpressure");
    tt.equal(b.connections, 1);
  },
);

t.test("concurrent requests across pools", { skip }, async (tt) => {
  const backends = await Promise.all([httpBackend(tt), httpBackend(tt), httpBackend(tt)]);
  const c = client(tt, { maxIdle: 8 });
  const all: Promise<void>[] = [];
  let ok = 0;
  for (let i = 0; i < 150; i++) {
    const b = backends[i % 3] as Backend;
    const path = i % 10 === 0 ? "/16k" : "/tiny";
    all.push(
      c.get(b.port, path).then((r) => {
        if (r.status === 200 && r.body.length === (path === "/16k" ? KB16.length : 2)) ok++;
      }),
    );
  }
  await Promise.all(all);
  tt.equal(ok, 150);
  const s = c.up.stats();
  tt.equal(s.pools, 3);
  tt.equal(s.active, 0);
  tt.ok(s.idle <= 24, "idle connections capped by maxIdle per pool");
});

t.test("a 256 MiB download with pause/resume keeps memory bounded", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const c = client(tt, { transientBodies: true });
  const size = 256 * 1024 * 1024;
  const before = process.memoryUsage().rss;
  let peak = before;
  let sinceResume = 0;
  let received = 0;
  const r = await c.send(b.port, `GET /big/${size >> 20} HTTP/1.1\r\nHost: x\r\n\r\n`, {
    keepBody: false,
    onChunk: (id, chunk) => {
      received += chunk.length;
      sinceResume += chunk.length;
      if (sinceResume > 4 * 1024 * 1024) {
        // A slow client: stop reading, let the socket fill up, then carry on.
        c.up.pause(id);
        sinceResume = 0;
        setTimeout(() => {
          peak = Math.max(peak, process.memoryUsage().rss);
          c.up.resume(id);
        }, 1);
      }
    },
  });
  tt.equal(r.error, 0);
  tt.equal(r.length, size);
  tt.equal(received, size);
  tt.ok(peak - before < 32 * 1024 * 1024, `rss growth ${(peak - before) >> 20} MiB`);
});

t.test("abort and close stop every callback and connection", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const c = client(tt);
  let id = -1;
  let after = 0;
  const p = c.send(b.port, "GET /big/64 HTTP/1.1\r\nHost: x\r\n\r\n", {
    started: (i) => {
      id = i;
    },
    onChunk: () => {
      after++;
      if (after === 1) {
        c.up.abort(id);
        setTimeout(() => {
          const pending = c.pending.get(id);
          if (pending !== undefined) pending.resolve(pending.result);
        }, 50);
      }
    },
  });
  await p;
  tt.equal(after, 1, "no callback after abort");
  await new Promise((r) => setTimeout(r, 20));
  tt.equal(c.up.stats().connections, 0);

  const hang = await rawBackend(tt, () => {});
  let called = false;
  void c.get(hang).then(() => {
    called = true;
  });
  await new Promise((r) => setTimeout(r, 30));
  tt.equal(c.up.stats().active, 1);
  c.up.close();
  await new Promise((r) => setTimeout(r, 30));
  tt.equal(called, false, "no callback after close");
  tt.equal(c.up.request(1000, "127.0.0.1", hang, "GET / HTTP/1.1\r\n\r\n", null, 2), UpstreamError.CLOSED);
  tt.throws(() => c.up.request(-1, "127.0.0.1", hang, "x", null, 2), TypeError);
});

t.test("worker threads: use, exit with open connections, terminate mid-request", { skip }, async (tt) => {
  const b = await httpBackend(tt);
  const hang = await rawBackend(tt, () => {});
  const run = (mode: string) =>
    new Promise<{ code: number; message: unknown }>((resolve, reject) => {
      const w = new Worker(distPath("test/native/workers/upstream-worker.js"), {
        workerData: { port: b.port, hang, mode },
        // Compiled JS needs none of the test runner's loaders (each would cost a second per worker).
        execArgv: [],
      });
      let message: unknown = null;
      w.on("message", (m) => {
        message = m;
        if (mode === "terminate") void w.terminate();
      });
      w.on("error", reject);
      w.on("exit", (code) => resolve({ code, message }));
    });
  const used = await run("exit");
  tt.equal(used.code, 0);
  tt.same(used.message, { ok: 20, connections: 1 });
  const term = await run("terminate");
  tt.equal(term.code, 1, "terminated");
  tt.same(term.message, { started: true });
  // Several at once, each with its own loop and pools.
  const many = await Promise.all([run("exit"), run("exit"), run("exit")]);
  tt.same(
    many.map((m) => m.code),
    [0, 0, 0],
  );
});
