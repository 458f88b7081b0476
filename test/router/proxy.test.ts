// The router as a client and a backend see it: a real router process, real NATS, real
// backends. Forwarding, request headers, framing, sticky sessions, retries, coded errors,
// malformed requests, status endpoints and the access log.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { guardChildren } from "../helpers/children.js";
import { freePort } from "../helpers/ports.js";
import {
  rawExchange,
  send,
  sleep,
  startBackend,
  startCannedBackend,
  startRawBackend,
  startRig,
  startTricklingBackend,
  statusGet,
} from "./harness.js";

guardChildren(t);

const logDir = mkdtempSync(join(tmpdir(), "kiln-router-log-"));
t.teardown(() => rmSync(logDir, { recursive: true, force: true }));
const accessLog = join(logDir, "access.log");

// proxy-js.test.ts runs this file again with the JavaScript upstream client, and
// proxy-nofast.test.ts with the native upstream client but no native request path.
const upstream = process.env.KILN_TEST_UPSTREAM ?? "auto";
const fastPath = process.env.KILN_TEST_FAST_PATH ?? "on";
/** The setup's own flags (upstream client, native request path), for every router here. */
const setupArgs = ["--upstream", upstream, "--fast-path", fastPath];
const rig = await startRig(
  t,
  [
    ...setupArgs,
    "--threads",
    "2",
    "--response-timeout-ms",
    "1500",
    "--connect-timeout-ms",
    "1000",
    "--access-log",
    accessLog,
  ],
  { KILN_ROUTER_FAST_MAX_HOSTS: "3" },
);
const port = rig.router.port;
const listening = rig.router.logs.find((l) => l.event === "router_listening");
t.comment(
  `upstream client: ${String(listening?.upstream)}, native request path: ${String(listening?.fastPath)}`,
);
/** Requests without a body, cookie or pinning go the native way in this setup. */
const nativePath = fastPath === "on" && listening?.upstream === "native";

const echo = await startBackend(t);
await rig.register({
  port: echo.port,
  uris: ["echo.test"],
  app: "app-echo",
  private_instance_id: "echo-0",
  private_instance_index: "0",
});

/**
 * The request as echo.test's backend saw it, checked for what every forwarded request from
 * 127.0.0.1 carrying X-Forwarded-For 1.2.3.4, Host ECHO.test:8080 and x-custom has: the
 * headers the router sets, the client's kept, the forged X-CF-* replaced.
 */
function forwardedAsEcho(
  t: Test,
  r: { status: number; body: string },
  url: string,
  requestId: string,
): { url: string; headers: Record<string, string> } {
  t.equal(r.status, 200);
  const seen = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
  t.equal(seen.url, url);
  t.equal(seen.headers.host, "ECHO.test:8080");
  t.equal(seen.headers["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
  t.equal(seen.headers["x-forwarded-proto"], "http");
  t.ok(Math.abs(Number(seen.headers["x-request-start"]) - Date.now()) < 5000, "X-Request-Start is ms epoch");
  t.equal(seen.headers["x-vcap-request-id"], requestId, "a valid request id is kept, in any letter case");
  t.equal(seen.headers["x-cf-applicationid"], "app-echo");
  t.equal(seen.headers["x-cf-instanceindex"], "0");
  t.equal(seen.headers["x-cf-instanceid"], "echo-0");
  t.equal(seen.headers["x-custom"], "kept");
  return seen;
}

t.test("forwards a request and rewrites the request headers", async (t) => {
  if (upstream === "js") t.equal(listening?.upstream, "js", "the JavaScript upstream client is in use");
  const rid = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";
  const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const r = await send(port, {
    host: "ECHO.test:8080",
    path: "/a/b?x=1&y=2",
    headers: {
      "x-forwarded-for": "1.2.3.4",
      "x-vcap-request-id": rid,
      traceparent: tp,
      connection: "keep-alive, x-hop",
      "x-hop": "secret",
      "keep-alive": "timeout=5",
      te: "trailers",
      "x-cf-applicationid": "forged",
      "x-custom": "kept",
    },
  });
  const seen = forwardedAsEcho(t, r, "/a/b?x=1&y=2", rid);
  t.equal(seen.headers.traceparent, tp, "a valid traceparent passes");
  for (const hop of ["x-hop", "keep-alive", "te"]) t.notOk(hop in seen.headers, `${hop} is not forwarded`);
  t.notOk("keep-alive" in r.headers, "no hop-by-hop header comes back");

  // The backend names a header of its own hop in Connection (RFC 9110 7.6.1).
  const hop = await startCannedBackend(
    t,
    "HTTP/1.1 200 OK\r\nConnection: close, x-private\r\nX-Private: 1\r\nX-Public: 2\r\n" +
      "Content-Length: 2\r\n\r\nok",
  );
  await rig.register({ port: hop, uris: ["hop.test"], private_instance_id: "hop-0" });
  const h = await send(port, { host: "hop.test" });
  t.equal(h.status, 200);
  t.equal(h.body, "ok");
  t.notOk("x-private" in h.headers, "a header the backend's Connection lists is not forwarded");
  t.equal(h.headers["x-public"], "2", "the others are");

  const r2 = await send(port, {
    host: "echo.test",
    headers: { "x-vcap-request-id": "not-a-uuid", traceparent: "garbage", "x-forwarded-proto": "https" },
  });
  const seen2 = JSON.parse(r2.body) as { headers: Record<string, string> };
  t.match(
    seen2.headers["x-vcap-request-id"],
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  );
  t.not(seen2.headers["x-vcap-request-id"], "not-a-uuid");
  t.match(seen2.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, "a trace is started");
  t.equal(
    seen2.headers["x-forwarded-proto"],
    "http",
    "an untrusted client's X-Forwarded-Proto is replaced by the listener's (forwarded.test.ts: trusted ones)",
  );
  t.equal(seen2.headers["x-forwarded-for"], "127.0.0.1");
});

t.test(
  "bodies: content-length, chunked both ways, HEAD, 204, 304, 100-continue, close-delimited",
  async (t) => {
    const b = await startBackend(t, (req, res, body) => {
      if (req.url === "/chunked") {
        res.write("part1-");
        setTimeout(() => res.end("part2"), 20);
      } else if (req.method === "HEAD") {
        res.writeHead(200, { "content-length": "11" }).end();
      } else if (req.url === "/204") {
        res.writeHead(204).end();
      } else if (req.url === "/304") {
        res.writeHead(304, { etag: '"x"' }).end();
      } else {
        res.setHeader("x-len", String(body.length));
        res.setHeader("x-te", req.headers["transfer-encoding"] ?? "");
        res.end(body.length === 0 ? "hello there" : body);
      }
    });
    await rig.register({ port: b.port, uris: ["body.test"], private_instance_id: "body-0" });
    const post = await send(port, {
      host: "body.test",
      method: "POST",
      path: "/x",
      body: "abc".repeat(1000),
    });
    t.equal(post.status, 200);
    t.equal(post.body, "abc".repeat(1000));
    t.equal(post.headers["x-len"], "3000");

    const chunkedUp = await new Promise<{ status: number; body: string; te: string }>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port, method: "PUT", path: "/up", headers: { host: "body.test" }, agent: false },
        (res) => {
          let s = "";
          res.setEncoding("utf8").on("data", (d: string) => {
            s += d;
          });
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body: s, te: String(res.headers["x-te"]) }),
          );
        },
      );
      req.on("error", reject);
      req.write("one-");
      setTimeout(() => req.end("two"), 30);
    });
    t.equal(chunkedUp.body, "one-two", "a chunked request body arrives whole");
    t.equal(chunkedUp.te, "chunked");

    const chunkedDown = await send(port, { host: "body.test", path: "/chunked" });
    t.equal(chunkedDown.body, "part1-part2");
    t.equal(chunkedDown.headers["transfer-encoding"], "chunked");

    const head = await send(port, { host: "body.test", method: "HEAD", path: "/h" });
    t.equal(head.status, 200);
    t.equal(head.body, "");
    t.equal(head.headers["content-length"], "11", "HEAD keeps the backend's Content-Length");

    const nc = await send(port, { host: "body.test", path: "/204" });
    t.equal(nc.status, 204);
    t.equal(nc.body, "");
    const nm = await send(port, { host: "body.test", path: "/304" });
    t.equal(nm.status, 304);
    t.equal(nm.headers.etag, '"x"');

    const cont = await rawExchange(
      port,
      "POST /c HTTP/1.1\r\nHost: body.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
      800,
    );
    t.match(cont.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/, "100 Continue, then the answer");
    t.match(cont.text, /\r\n\r\nhello$/);

    const early = await startRawBackend(t, (s) => {
      s.once("data", () =>
        s.write(
          "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter",
        ),
      );
    });
    await rig.register({ port: early, uris: ["hints.test"], private_instance_id: "hints-0" });
    const hints = await send(port, { host: "hints.test" });
    t.equal(hints.status, 200, "an interim 103 is passed over");
    t.equal(hints.body, "after");

    const closeDelim = await startRawBackend(t, (s) => {
      s.once("data", () => s.end("HTTP/1.1 200 OK\r\nConnection: close\r\nX-Raw: 1\r\n\r\nuntil-close body"));
    });
    await rig.register({ port: closeDelim, uris: ["closedelim.test"], private_instance_id: "cd-0" });
    const cd = await send(port, { host: "closedelim.test" });
    t.equal(cd.status, 200);
    t.equal(cd.body, "until-close body");
    t.equal(cd.headers["x-raw"], "1");
  },
);

t.test("an instance that moves (same id, new port and index) gets the next requests", async (t) => {
  const a = await startBackend(t);
  const b = await startBackend(t);
  const msg = { uris: ["move.test"], app: "app-move", private_instance_id: "mover-0" };
  await rig.register({ ...msg, port: a.port, private_instance_index: "0" });
  for (let i = 0; i < 3; i++) t.equal((await send(port, { host: "move.test" })).status, 200);
  t.equal(a.seen.length, 3, "served by the first address");
  await rig.register({ ...msg, port: b.port, private_instance_index: "1" });
  const deadline = Date.now() + 5000;
  while (b.seen.length === 0 && Date.now() < deadline) {
    await send(port, { host: "move.test" });
    await sleep(20);
  }
  const aBefore = a.seen.length;
  for (let i = 0; i < 5; i++) t.equal((await send(port, { host: "move.test" })).status, 200);
  t.equal(a.seen.length, aBefore, "the old address gets nothing once the move is seen");
  t.equal(b.seen.length >= 5, true, "the new address serves");
  t.equal(b.seen.at(-1)?.headers["x-cf-instanceindex"], "1", "X-CF-InstanceIndex follows the update");
});

t.test("HTTP/1.0 clients: served, kept alive when asked and the length is known, else closed", async (t) => {
  const streamer = await startBackend(t, (_req, res) => {
    // No content-length: the backend answers chunked; an HTTP/1.0 client must get raw bytes.
    res.write("part-one;");
    setTimeout(() => res.end("part-two"), 20);
  });
  await rig.register({ port: streamer.port, uris: ["stream10.test"], private_instance_id: "stream10-0" });
  const known = await rawExchange(port, "GET /ten HTTP/1.0\r\nHost: echo.test\r\n\r\n", 3000);
  t.match(known.text, /^HTTP\/1\.1 200 /, "answered");
  t.ok(known.closed, "the connection is closed after the response");
  const len = /content-length: (\d+)/i.exec(known.text);
  const body = known.text.slice(known.text.indexOf("\r\n\r\n") + 4);
  t.equal(Number(len?.[1]), Buffer.byteLength(body), "with its Content-Length");
  t.match(JSON.parse(body), { url: "/ten" });
  const streamed = await rawExchange(port, "GET / HTTP/1.0\r\nHost: stream10.test\r\n\r\n", 3000);
  t.match(streamed.text, /^HTTP\/1\.1 200 /);
  t.notMatch(streamed.text, /transfer-encoding/i, "no chunked framing for an HTTP/1.0 client");
  t.equal(streamed.text.slice(streamed.text.indexOf("\r\n\r\n") + 4), "part-one;part-two", "raw body");
  t.ok(streamed.closed, "closed: the end of the body");
  const post = await rawExchange(
    port,
    "POST /p10 HTTP/1.0\r\nHost: echo.test\r\nContent-Length: 5\r\n\r\nhello",
    3000,
  );
  t.match(post.text, /^HTTP\/1\.1 200 /);
  t.match(post.text, /"body":"hello"/, "a request body reaches the backend");
  // Keep-alive asked for (ApacheBench -k does): kept while the length is known.
  const ka = await rawExchange(
    port,
    [
      "GET /ka1 HTTP/1.0\r\nHost: echo.test\r\nConnection: Keep-Alive\r\n\r\n",
      "GET /ka2 HTTP/1.0\r\nHost: echo.test\r\nConnection: keep-alive\r\n\r\n",
    ],
    800,
  );
  const answers = ka.text.split(/(?=HTTP\/1\.1 )/);
  t.equal(answers.length, 2, "two answers on one connection");
  for (const [i, a] of answers.entries()) {
    t.match(a, /^HTTP\/1\.1 200 /);
    t.match(a, /\r\nConnection: keep-alive\r\n/i, "says it keeps the connection");
    t.match(a, /\r\nContent-Length: \d+\r\n/i, "with a length");
    t.match(a, new RegExp(`"url":"/ka${i + 1}"`));
  }
  t.notOk(ka.closed, "the connection stays open");
  const kaStream = await rawExchange(
    port,
    "GET / HTTP/1.0\r\nHost: stream10.test\r\nConnection: keep-alive\r\n\r\n",
    3000,
  );
  t.notMatch(kaStream.text, /keep-alive/i, "a body of unknown length cannot keep it");
  t.equal(kaStream.text.slice(kaStream.text.indexOf("\r\n\r\n") + 4), "part-one;part-two");
  t.ok(kaStream.closed, "closed: the end of the body");
  // The same router still keeps HTTP/1.1 connections alive and chunked.
  const again = await send(port, { host: "stream10.test" });
  t.equal(again.body, "part-one;part-two");
  t.equal(again.headers["transfer-encoding"], "chunked");
});

t.test(
  "absolute-form targets: routed by their host, forwarded in origin-form (RFC 9112 3.2.2)",
  async (t) => {
    const seen = (text: string): { url: string; headers: Record<string, string> } =>
      JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as {
        url: string;
        headers: Record<string, string>;
      };
    const accepted: [string, string, { url: string; headers?: Record<string, string> }, string][] = [
      // The target's host wins over the Host header, which names no route here.
      [
        "http://echo.test/abs/path?q=1",
        "nowhere.test",
        { url: "/abs/path?q=1", headers: { host: "echo.test" } },
        "origin-form, Host from the target",
      ],
      [
        "HTTP://ECHO.test:8080",
        "echo.test",
        { url: "/", headers: { host: "ECHO.test:8080" } },
        "no path: /, any letter case",
      ],
      ["https://echo.test?x=2", "echo.test", { url: "/?x=2" }, "a query with no path: /?x=2"],
    ];
    for (const [target, host, want, why] of accepted) {
      const r = await rawExchange(
        port,
        `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
        3000,
      );
      t.match(r.text, /^HTTP\/1\.1 200 /, `${target}: routed by the target's host`);
      t.match(seen(r.text), want, why);
    }
    // Split over many reads: the head is parsed again as it grows, and must still come out right.
    const split = await rawExchange(
      port,
      ["GET http://ech", "o.test/sp", "lit HTTP/1.1\r\nHo", "st: x\r\nConnection: close\r\n", "\r\n"],
      3000,
    );
    t.match(seen(split.text), { url: "/split", headers: { host: "echo.test" } }, "a head in five reads");
    const before = echo.seen.length;
    for (const [target, why] of [
      ["ftp://echo.test/", "another scheme"],
      ["http://user@echo.test/", "userinfo"],
      ["http:///x", "no host"],
      ["hello", "not a URI"],
    ]) {
      const r = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: echo.test\r\n\r\n`, 600);
      t.match(r.text, /^HTTP\/1\.1 400 /, `${why}: 400`);
    }
    t.equal(echo.seen.length, before, "none of them reached the backend");
    // Keep-alive: a second request on the connection after an absolute-form one.
    const two = await rawExchange(port, "GET http://echo.test/one HTTP/1.1\r\nHost: echo.test\r\n\r\n", 600);
    t.match(two.text, /^HTTP\/1\.1 200 /);
    t.notOk(two.closed, "the connection stays open");
  },
);

t.test("pipelined requests are answered in order, one at a time to the backend", async (t) => {
  // The first answer waits 60 ms, the second none: order must still hold.
  let inFlight = 0;
  let maxInFlight = 0;
  const lagged = await startBackend(t, (req, res, body) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const delay = req.url === "/slow" ? 60 : 0;
    setTimeout(() => {
      inFlight--;
      res.setHeader("content-type", "text/plain");
      res.end(`${req.url}:${body.length}`);
    }, delay);
  });
  await rig.register({ port: lagged.port, uris: ["pipe.test"], private_instance_id: "pipe-0" });
  const bodies = (text: string): string[] =>
    text
      .split(/(?=HTTP\/1\.1 )/)
      .map((a) => a.slice(a.indexOf("\r\n\r\n") + 4))
      .filter((b) => b !== "");
  const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: pipe.test\r\n\r\n`;
  /** Complete once every wanted body is in. */
  const all = (want: string[]) => (text: string) => bodies(text).join("|") === want.join("|");
  const three = await rawExchange(
    port,
    get("/slow") + get("/b") + get("/c"),
    1000,
    all(["/slow:0", "/b:0", "/c:0"]),
  );
  t.same(bodies(three.text), ["/slow:0", "/b:0", "/c:0"], "three in one write, answered in order");
  t.notOk(three.closed, "the connection stays open");
  t.equal(maxInFlight, 1, "the backend saw them one at a time");

  const split = await rawExchange(
    port,
    [
      `${get("/slow")}GET /d HTT`,
      "P/1.1\r\nHost: pipe.test\r\n\r\nGET /e",
      " HTTP/1.1\r\nHost: pipe.test\r\n\r\n",
    ],
    1000,
    all(["/slow:0", "/d:0", "/e:0"]),
  );
  t.same(bodies(split.text), ["/slow:0", "/d:0", "/e:0"], "split across writes while the first waits");

  const withBody = await rawExchange(
    port,
    `POST /slow HTTP/1.1\r\nHost: pipe.test\r\nContent-Length: 5\r\n\r\nhello${get("/f")}POST /g HTTP/1.1\r\nHost: pipe.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n${get("/h")}`,
    1000,
    all(["/slow:5", "/f:0", "/g:3", "/h:0"]),
  );
  t.same(bodies(withBody.text), ["/slow:5", "/f:0", "/g:3", "/h:0"], "bodies stay with their requests");

  // Random pipelines cut at random points (seeded, so a failure repeats): GETs, some answered
  // late, and POSTs with length or chunked bodies, every answer in order with its own body.
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let round = 0; round < 8; round++) {
    const want: string[] = [];
    let wire = "";
    const count = 3 + rand(6);
    for (let i = 0; i < count; i++) {
      const path = rand(3) === 0 ? "/slow" : `/r${round}-${i}`;
      const kind = rand(3);
      if (kind === 0) {
        wire += get(path);
        want.push(`${path}:0`);
      } else if (kind === 1) {
        const body = "x".repeat(rand(40));
        wire += `POST ${path} HTTP/1.1\r\nHost: pipe.test\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
        want.push(`${path}:${body.length}`);
      } else {
        const a = "y".repeat(1 + rand(20));
        const b = "z".repeat(1 + rand(20));
        wire += `POST ${path} HTTP/1.1\r\nHost: pipe.test\r\nTransfer-Encoding: chunked\r\n\r\n${a.length.toString(16)}\r\n${a}\r\n${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`;
        want.push(`${path}:${a.length + b.length}`);
      }
    }
    const cuts = [...new Set(Array.from({ length: rand(6) }, () => 1 + rand(wire.length - 1)))].sort(
      (x, y) => x - y,
    );
    const parts = [0, ...cuts].map((from, k) => wire.slice(from, k < cuts.length ? cuts[k] : wire.length));
    const r = await rawExchange(port, parts, 400 + 80 * count, all(want));
    t.same(bodies(r.text), want, `random pipeline ${round}: ${count} requests in ${parts.length} writes`);
    t.notOk(r.closed, "still open");
  }

  // A client that keeps sending while it waits is cut off past 64 KiB.
  const flood = await rawExchange(port, [get("/slow"), get("/x").repeat(2000)], 1000);
  t.ok(flood.closed, "more than 64 KiB waiting: closed");
  const after = await send(port, { host: "pipe.test", path: "/after" });
  t.equal(after.body, "/after:0", "and the router keeps serving");
});

t.test("errors: 404, 502, 503, 504 each with X-Kiln-Router-Error", async (t) => {
  const nf = await send(port, { host: "nowhere.test" });
  t.equal(nf.status, 404);
  t.equal(nf.headers["x-kiln-router-error"], "unknown_route");
  t.match(nf.body, /KILN_ROUTER_NO_ROUTE/);

  const garbage = await startCannedBackend(t, "garbage that is not http\r\n\r\n");
  await rig.register({ port: garbage, uris: ["garbage.test"], private_instance_id: "g-0" });
  const g = await send(port, { host: "garbage.test" });
  t.equal(g.status, 502);
  t.equal(g.headers["x-kiln-router-error"], "bad_response");

  const hugeHead = await startCannedBackend(
    t,
    `HTTP/1.1 200 OK\r\nX-Huge: ${"h".repeat(80 * 1024)}\r\nContent-Length: 0\r\n\r\n`,
  );
  await rig.register({ port: hugeHead, uris: ["hugehead.test"], private_instance_id: "hh-0" });
  const hh = await send(port, { host: "hugehead.test" });
  t.equal(hh.status, 502, "an 80 KiB response head is refused");
  t.equal(hh.headers["x-kiln-router-error"], "bad_response");

  const early = await startRawBackend(t, (s) => s.once("data", () => s.destroy()));
  await rig.register({ port: early, uris: ["early.test"], private_instance_id: "e-0" });
  const e = await send(port, { host: "early.test" });
  t.equal(e.status, 502);
  t.equal(e.headers["x-kiln-router-error"], "backend_closed");

  const silent = await startRawBackend(t, () => {});
  await rig.register({ port: silent, uris: ["silent.test"], private_instance_id: "s-0" });
  const s = await send(port, { host: "silent.test" });
  t.equal(s.status, 504);
  t.equal(s.headers["x-kiln-router-error"], "response_timeout");

  const dead = await startRawBackend(t, () => {});
  await rig.register({ port: 1, uris: ["dead.test"], private_instance_id: "d-0" });
  void dead;
  const d1 = await send(port, { host: "dead.test" });
  t.equal(d1.status, 502);
  t.equal(d1.headers["x-kiln-router-error"], "connect_refused");
  const d2 = await send(port, { host: "dead.test" });
  t.equal(d2.status, 502, "every endpoint failed: the balancer offers the dead one once more, no loop");
  t.equal(d2.headers["x-kiln-router-error"], "connect_refused");

  // The router's own answer to HEAD has the body's length and no body: on a kept connection
  // the next answer follows the head at once (the worker's refusals, an upstream failure, and
  // on the native path the same refusal written in C++).
  /** Both answers are in: a second one whose body is as long as its Content-Length says. */
  const twoAnswers = (text: string): boolean => {
    const parts = text.split(/(?=HTTP\/1\.1 )/);
    const last = parts[1];
    if (last === undefined) return false;
    const head = last.indexOf("\r\n\r\n");
    const length = head < 0 ? null : /\r\ncontent-length: (\d+)\r\n/i.exec(last.slice(0, head + 2));
    return length != null && last.length - head - 4 >= Number(length[1]);
  };
  for (const h of ["nowhere.test", "dead.test", "silent.test"]) {
    const both = await rawExchange(
      port,
      `HEAD /h HTTP/1.1\r\nHost: ${h}\r\n\r\nGET /h HTTP/1.1\r\nHost: nowhere.test\r\n\r\n`,
      h === "silent.test" ? 3500 : 1500,
      twoAnswers,
    );
    const [first = "", second = ""] = both.text.split(/(?=HTTP\/1\.1 )/);
    t.match(
      first,
      /^HTTP\/1\.1 (404|502|504) [\s\S]*\r\nContent-Length: [1-9]\d*\r\n/i,
      `HEAD to ${h}: its length`,
    );
    t.ok(first.endsWith("\r\n\r\n"), `HEAD to ${h}: a head alone, no body`);
    t.match(second, /^HTTP\/1\.1 404 /, `HEAD to ${h}: the next answer follows it`);
  }

  let release: () => void = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  const slow = await startBackend(t, (_req, res) => {
    void held.then(() => res.end("late"));
  });
  await rig.register({
    port: slow.port,
    uris: ["full.test"],
    private_instance_id: "f-0",
    options: { max_conns_per_backend: 1 },
  });
  const first = send(port, { host: "full.test" });
  // The backend holding the first request means the router counts it in flight.
  for (let i = 0; i < 100 && slow.seen.length === 0; i++) await sleep(20);
  const second = await send(port, { host: "full.test" });
  t.equal(second.status, 503);
  t.equal(second.headers["x-kiln-router-error"], "backend_full");
  release();
  t.equal((await first).body, "late");
});

t.test("a route whose last endpoint went answers 503 no_endpoints until one registers", async (t) => {
  const a = await startBackend(t, (_q, res) => res.end("empty-A"));
  const api = await startBackend(t, (_q, res) => res.end("empty-api"));
  await rig.register({ port: a.port, uris: ["empty.test"], private_instance_id: "empty-A" });
  await rig.register({ port: api.port, uris: ["empty.test/api"], private_instance_id: "empty-api" });
  t.equal((await send(port, { host: "empty.test", path: "/api/x" })).body, "empty-api");
  await rig.unregister({ port: a.port, uris: ["empty.test"], private_instance_id: "empty-A" });
  await rig.unregister({ port: api.port, uris: ["empty.test/api"], private_instance_id: "empty-api" });
  // Twice each: the first request may take the native path, the second the cached JS one.
  for (const path of ["/", "/", "/api/x", "/api/x"]) {
    const r = await send(port, { host: "empty.test", path });
    t.equal(r.status, 503, path);
    t.equal(r.headers["x-kiln-router-error"], "no_endpoints", path);
    t.match(r.body, /KILN_ROUTER_NO_ENDPOINTS/);
  }
  const routes = JSON.parse((await statusGet(rig.router.statusPort, "/routes")).body) as {
    route: string;
    endpoints: unknown[];
  }[];
  t.same(
    routes
      .filter((r) => r.route.startsWith("empty.test"))
      .map((r) => `${r.route} ${r.endpoints.length}`)
      .sort(),
    ["empty.test 0", "empty.test/api 0"],
    "kept in /routes with no endpoints",
  );
  await rig.register({ port: a.port, uris: ["empty.test"], private_instance_id: "empty-A" });
  const back = await send(port, { host: "empty.test" });
  t.equal(back.status, 200, "a registration fills the route again");
  t.equal(back.body, "empty-A");
  t.equal(
    (await send(port, { host: "empty.test", path: "/api/x" })).status,
    503,
    "the empty path route answers, not the host's root (as gorouter)",
  );
});

t.test("an empty route goes after the empty-pool timeout: 503, then 404", async (t) => {
  const short = await startRig(t, [
    ...setupArgs,
    "--threads",
    "2",
    "--empty-pool-timeout-ms",
    "800",
    "--prune-interval-ms",
    "100",
  ]);
  const b = await startBackend(t, (_q, res) => res.end("brief"));
  await short.register({ port: b.port, uris: ["brief.test"], private_instance_id: "brief-0" });
  t.equal((await send(short.router.port, { host: "brief.test" })).body, "brief");
  await short.unregister({ port: b.port, uris: ["brief.test"], private_instance_id: "brief-0" });
  const first = await send(short.router.port, { host: "brief.test" });
  t.equal(first.status, 503);
  t.equal(first.headers["x-kiln-router-error"], "no_endpoints");
  let last = first;
  for (let i = 0; i < 100 && last.status !== 404; i++) {
    await sleep(20);
    last = await send(short.router.port, { host: "brief.test" });
  }
  t.equal(last.status, 404, "removed by a prune once empty for longer than the timeout");
  t.equal(last.headers["x-kiln-router-error"], "unknown_route");
  const routes = JSON.parse((await statusGet(short.router.statusPort, "/routes")).body) as {
    route: string;
  }[];
  t.notOk(
    routes.some((r) => r.route === "brief.test"),
    "gone from /routes",
  );
});

t.test("a body may pause longer than the response timeout (the idle timeout applies to it)", async (t) => {
  // Heads sent alone, then 2 s of silence (the rig's response timeout is 1.5 s), then the body:
  // as a server-sent event stream or a long poll does.
  const paused = await startRawBackend(t, (s) =>
    s.once("data", (d: Buffer) => {
      const chunked = d.toString("latin1").startsWith("GET /chunked");
      const close = d.toString("latin1").startsWith("GET /close");
      s.write(
        chunked
          ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          : close
            ? "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
            : "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
      );
      setTimeout(() => {
        if (chunked) s.end("5\r\nafter\r\n0\r\n\r\n");
        else s.end("after");
      }, 2000);
    }),
  );
  await rig.register({ port: paused, uris: ["paused.test"], private_instance_id: "pa-0" });
  const paths = ["/length", "/chunked", "/close"];
  const rs = await Promise.all(paths.map((path) => send(port, { host: "paused.test", path })));
  for (const [i, r] of rs.entries()) {
    t.equal(r.status, 200, paths[i] as string);
    t.equal(r.body, "after", `${paths[i]}: the whole body after the pause`);
  }
});

t.test("a backend trickling its response head gets 504 once the response timeout is up", async (t) => {
  // One header byte every 100 ms, forever: never silent for long, never done.
  const trickle = await startTricklingBackend(t, "HTTP/1.1 200 OK\r\nX-Trickle: ");
  await rig.register({ port: trickle, uris: ["trickle.test"], private_instance_id: "tr-0" });
  const t0 = Date.now();
  const r = await Promise.race([
    send(port, { host: "trickle.test" }).catch(() => null),
    sleep(6000).then(() => null),
  ]);
  const ms = Date.now() - t0;
  if (r === null) {
    t.fail(`no answer after ${ms} ms`);
    return;
  }
  t.equal(r.status, 504);
  t.equal(r.headers["x-kiln-router-error"], "response_timeout");
  // The router runs with --response-timeout-ms 1500.
  t.ok(ms >= 1400 && ms < 2500, `answered after ${ms} ms, about the response timeout`);
});

t.test(
  "a backend that stops mid-body, a client that leaves mid-body: the router keeps serving",
  async (t) => {
    const cut = await startRawBackend(t, (s) =>
      s.once("data", () => {
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${"x".repeat(1000)}`);
        setTimeout(() => s.destroy(), 50);
      }),
    );
    await rig.register({ port: cut, uris: ["cut.test"], private_instance_id: "cut-0" });
    const got = await new Promise<{ status: number; bytes: number; complete: boolean }>((resolve) => {
      const req = request({ port, path: "/", headers: { host: "cut.test" } }, (res) => {
        let bytes = 0;
        res.on("data", (d: Buffer) => {
          bytes += d.length;
        });
        res.on("error", () => {});
        res.on("close", () => resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete }));
      });
      req.on("error", () => resolve({ status: 0, bytes: 0, complete: false }));
      req.end();
    });
    t.equal(got.status, 200, "the head had gone out");
    t.notOk(got.complete, "the client sees the body cut short, not a complete response");
    t.ok(got.bytes < 100000);

    // The backend streams until its client goes away; the client reads a little and leaves.
    let backendSawClose = false;
    const endless = await startBackend(t, (_req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 120);
      const timer = setInterval(() => res.write(chunk), 5);
      res.on("close", () => {
        clearInterval(timer);
        backendSawClose = true;
      });
    });
    await rig.register({ port: endless.port, uris: ["endless.test"], private_instance_id: "endless-0" });
    await new Promise<void>((resolve) => {
      const req = request({ port, path: "/", headers: { host: "endless.test" } }, (res) => {
        let bytes = 0;
        res.on("data", (d: Buffer) => {
          bytes += d.length;
          if (bytes > 256 * 1024) req.destroy();
        });
        res.on("error", () => {});
        res.on("close", () => resolve());
      });
      req.on("error", () => resolve());
      req.end();
    });
    for (let i = 0; i < 100 && !backendSawClose; i++) await sleep(20);
    t.ok(backendSawClose, "the backend's connection is dropped when the client leaves");

    t.equal((await send(port, { host: "echo.test" })).status, 200, "and the router keeps serving");
    const m = (await statusGet(rig.router.statusPort, "/metrics")).body;
    t.match(m, /kiln_router_upstream_errors_total\{cause="body_interrupted"\} [1-9]/);
    t.match(m, /kiln_router_upstream_errors_total\{cause="client_aborted"\} [1-9]/);
  },
);

t.test("X-CF-APP-INSTANCE targets one instance", async (t) => {
  const a = await startBackend(t, (_q, res) => res.end("instance-0"));
  const b = await startBackend(t, (_q, res) => res.end("instance-1"));
  await rig.register({
    port: a.port,
    uris: ["inst.test"],
    app: "app-i",
    private_instance_id: "i-0",
    private_instance_index: "0",
  });
  await rig.register({
    port: b.port,
    uris: ["inst.test"],
    app: "app-i",
    private_instance_id: "i-1",
    private_instance_index: "1",
  });
  for (let i = 0; i < 4; i++) {
    const r = await send(port, { host: "inst.test", headers: { "x-cf-app-instance": "app-i:1" } });
    t.equal(r.body, "instance-1");
  }
  const bad = await send(port, { host: "inst.test", headers: { "x-cf-app-instance": "no-colon" } });
  t.equal(bad.status, 400);
  t.equal(bad.headers["x-kiln-router-error"], "bad_instance_header");
  const unknown = await send(port, { host: "inst.test", headers: { "x-cf-app-instance": "app-i:7" } });
  t.equal(unknown.status, 404);
  t.equal(unknown.headers["x-kiln-router-error"], "unknown_instance");
});

t.test(
  "sticky sessions: __VCAP_ID__ copies the session cookie's attributes and pins the instance",
  async (t) => {
    const attrs =
      "; Path=/shop; Domain=sticky.test; Max-Age=600; Secure; HttpOnly; SameSite=Strict; Partitioned";
    const mk = (name: string) =>
      startBackend(t, (req, res) => {
        if (req.url === "/login")
          res.setHeader("set-cookie", [`JSESSIONID=s-${name}${attrs}`, "other=1; Path=/"]);
        res.end(name);
      });
    const a = await mk("A");
    const b = await mk("B");
    await rig.register({ port: a.port, uris: ["sticky.test"], private_instance_id: "sticky-A" });
    await rig.register({ port: b.port, uris: ["sticky.test"], private_instance_id: "sticky-B" });
    const login = await send(port, { host: "sticky.test", path: "/login" });
    const cookies = login.headers["set-cookie"] ?? [];
    const vcap = cookies.find((c) => c.startsWith("__VCAP_ID__="));
    t.equal(
      vcap,
      `__VCAP_ID__=sticky-${login.body}${attrs}`,
      "same Path, Domain, Max-Age, Secure, HttpOnly, SameSite, Partitioned",
    );
    t.equal(cookies.length, 3);
    for (let i = 0; i < 6; i++) {
      const r = await send(port, {
        host: "sticky.test",
        headers: { cookie: "a=1; __VCAP_ID__=sticky-B; JSESSIONID=x" },
      });
      t.equal(r.body, "B", "pinned to B");
      t.notOk(r.headers["set-cookie"], "no cookie while the instance is the one asked for");
    }
    await rig.unregister({ port: b.port, uris: ["sticky.test"], private_instance_id: "sticky-B" });
    const moved = await send(port, { host: "sticky.test", headers: { cookie: "__VCAP_ID__=sticky-B" } });
    t.equal(moved.body, "A", "B is gone: another instance answers");
    t.match(String(moved.headers["set-cookie"]), /^__VCAP_ID__=sticky-A;/, "and the cookie is replaced");
  },
);

t.test("sticky sessions follow the configured cookie list (--sticky-cookies)", async (t) => {
  const own = await startRig(t, [...setupArgs, "--threads", "1", "--sticky-cookies", "SESSION,PHPSESSID"]);
  const session = await startBackend(t, (_q, res) => {
    res.setHeader("set-cookie", "SESSION=abc; Path=/x");
    res.end("session");
  });
  const java = await startBackend(t, (_q, res) => {
    res.setHeader("set-cookie", "JSESSIONID=s1; Path=/y");
    res.end("java");
  });
  await own.register({ port: session.port, uris: ["session.test"], private_instance_id: "ses-0" });
  await own.register({ port: java.port, uris: ["java.test"], private_instance_id: "jav-0" });
  const s = await send(own.router.port, { host: "session.test" });
  t.equal(s.body, "session");
  t.same(
    s.headers["set-cookie"],
    ["SESSION=abc; Path=/x", "__VCAP_ID__=ses-0; Path=/x"],
    "a listed cookie gets __VCAP_ID__ with its Path",
  );
  const j = await send(own.router.port, { host: "java.test" });
  t.equal(j.body, "java");
  t.same(
    j.headers["set-cookie"],
    ["JSESSIONID=s1; Path=/y"],
    "JSESSIONID is not on the list: no __VCAP_ID__",
  );
});

t.test("retries: a dead endpoint is retried on another, never once the body began", async (t) => {
  const good = await startBackend(t, (req, res, body) => res.end(`good ${req.method} ${body.length}`));
  await rig.register({ port: good.port, uris: ["retry.test"], private_instance_id: "r-good" });
  await rig.register({ port: 2, uris: ["retry.test"], private_instance_id: "r-dead" });
  const r = await send(port, { host: "retry.test", headers: { cookie: "__VCAP_ID__=r-dead" } });
  t.equal(r.status, 200, "the client sees 200");
  t.equal(r.body, "good GET 0");
  t.match(String(r.headers["set-cookie"]), /^__VCAP_ID__=r-good;/);
  for (let i = 0; i < 6; i++) t.equal((await send(port, { host: "retry.test" })).status, 200);

  // A small request body is kept until the response starts, so a POST is retried too.
  await rig.register({ port: good.port, uris: ["retrypost.test"], private_instance_id: "rp-good" });
  await rig.register({ port: 3, uris: ["retrypost.test"], private_instance_id: "rp-dead" });
  const post = await send(port, {
    host: "retrypost.test",
    method: "POST",
    headers: { cookie: "__VCAP_ID__=rp-dead" },
    body: "x".repeat(10_000),
  });
  t.equal(post.status, 200, "a POST to a dead endpoint is retried");
  t.equal(post.body, "good POST 10000", "with its whole body");
  await rig.register({ port: good.port, uris: ["retrychunk.test"], private_instance_id: "rc-good" });
  await rig.register({ port: 4, uris: ["retrychunk.test"], private_instance_id: "rc-dead" });
  const chunked = await new Promise<string>((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/",
        headers: { host: "retrychunk.test", cookie: "__VCAP_ID__=rc-dead" },
        agent: false,
      },
      (res) => {
        let b = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          b += d;
        });
        res.on("end", () => resolve(`${res.statusCode} ${b}`));
      },
    );
    req.on("error", reject);
    req.write("a".repeat(300));
    setTimeout(() => req.end("b".repeat(200)), 30);
  });
  t.equal(chunked, "200 good POST 500", "a chunked POST is retried with its whole body");

  // An endpoint that takes the head and some body bytes, then resets: no second attempt.
  const breaker = await startRawBackend(t, (s) => {
    let got = 0;
    s.on("data", (d: Buffer) => {
      got += d.length;
      if (got > 2000) s.resetAndDestroy();
    });
  });
  await rig.register({ port: breaker, uris: ["noretry.test"], private_instance_id: "nr-bad" });
  await rig.register({ port: good.port, uris: ["noretry.test"], private_instance_id: "nr-good" });
  const before = good.seen.filter((s) => s.method === "POST").length;
  const big = Buffer.alloc(4 * 1024 * 1024, 120);
  const res = await send(port, {
    host: "noretry.test",
    method: "POST",
    headers: { cookie: "__VCAP_ID__=nr-bad" },
    body: big,
  }).catch((err: Error) => ({ status: -1, headers: {}, body: err.message, raw: Buffer.alloc(0) }));
  t.ok(res.status === 502 || res.status === -1, `no success without a retry (got ${res.status})`);
  await sleep(100);
  t.equal(
    good.seen.filter((s) => s.method === "POST").length,
    before,
    "the body was never sent to another endpoint",
  );
});

/** Connect-refused and stale-connection failures, retries and native-path requests so far, from /metrics. */
async function retryCounts(): Promise<{ refused: number; stale: number; retries: number; native: number }> {
  const m = (await statusGet(rig.router.statusPort, "/metrics")).body;
  const count = (re: RegExp): number => Number(re.exec(m)?.[1]);
  return {
    refused: count(/^kiln_router_upstream_errors_total\{cause="connect_refused"\} (\d+)$/m),
    stale: count(/^kiln_router_upstream_errors_total\{cause="stale_connection"\} (\d+)$/m),
    retries: count(/^kiln_router_retries_total (\d+)$/m),
    native: count(/^kiln_router_native_requests_total (\d+)$/m),
  };
}

/** Ports with nothing listening, all different. */
async function deadPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

t.test("retries on the plain request path: a dead endpoint is tried once, then skipped", async (t) => {
  const live = await startBackend(t, (_q, res) => res.end("live"));
  const [dead] = await deadPorts(1);
  await rig.register({ port: live.port, uris: ["skip.test"], private_instance_id: "skip-live" });
  await rig.register({ port: dead as number, uris: ["skip.test"], private_instance_id: "skip-dead" });
  const before = await retryCounts();
  // No cookie, no body: in the default setup the native request path takes these.
  for (let i = 0; i < 10; i++) {
    const r = await send(port, { host: "skip.test" });
    t.equal(r.status, 200, `request ${i}: 200`);
    t.equal(r.body, "live");
  }
  const after = await retryCounts();
  t.equal(after.refused - before.refused, 1, "one connect failure: then the endpoint is skipped for 30 s");
  t.equal(after.retries - before.retries, 1, "one retry");
  if (nativePath) t.equal(after.native - before.native, 10, "all ten went the native way");
});

t.test("retries stop at 3 attempts, also when every endpoint is being skipped", async (t) => {
  const ports = await deadPorts(4);
  for (const [i, p] of ports.entries())
    await rig.register({ port: p, uris: ["cap.test"], private_instance_id: `cap-${i}` });
  let last = await retryCounts();
  const attempt = async (what: string): Promise<void> => {
    const r = await send(port, { host: "cap.test" });
    t.equal(r.status, 502, what);
    t.equal(r.headers["x-kiln-router-error"], "connect_refused");
    const now = await retryCounts();
    t.equal(now.refused - last.refused, 3, `${what}: 3 connect attempts, not 4`);
    t.equal(now.retries - last.retries, 2, `${what}: 2 retries`);
    if (nativePath) t.equal(now.native - last.native, 1, `${what} went the native way`);
    last = now;
  };
  await attempt("the first request");
  // The balancer offers the one endpoint not yet skipped, then, all being skipped, one anyway
  // (like gorouter), a different one each time: the cap still ends it.
  await attempt("the second request");
  await attempt("a request with every endpoint skipped");
});

t.test("a route whose one endpoint is dead: 502 after one attempt, and no retry counted", async (t) => {
  const [dead] = await deadPorts(1);
  await rig.register({ port: dead as number, uris: ["lone.test"], private_instance_id: "lone-0" });
  let last = await retryCounts();
  for (const what of ["the first request", "a request while it is skipped"]) {
    const r = await send(port, { host: "lone.test" });
    t.equal(r.status, 502, what);
    t.equal(r.headers["x-kiln-router-error"], "connect_refused");
    const now = await retryCounts();
    t.equal(now.refused - last.refused, 1, `${what}: one connect attempt`);
    // The balancer can only offer the endpoint that just failed: nothing is tried again.
    t.equal(now.retries - last.retries, 0, `${what}: no retry`);
    last = now;
  }
});

t.test("malformed requests get 400/431, and the router keeps serving", async (t) => {
  const seenBefore = echo.seen.length;
  // uWS answers a head over the router's --max-header-bytes (32 KiB) itself, in one read or many.
  const big = await rawExchange(
    port,
    `GET / HTTP/1.1\r\nHost: echo.test\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`,
  );
  t.match(big.text, /^HTTP\/1\.1 431 /, "64 KiB of headers: 431");
  const split = await rawExchange(port, [
    "GET / HTTP/1.1\r\nHost: echo.test\r\n",
    ...Array.from({ length: 12 }, (_, i) => `X-Part-${i}: ${"b".repeat(4000)}\r\n`),
    "\r\n",
  ]);
  t.match(split.text, /^HTTP\/1\.1 431 /, "48 KiB of headers in many writes: 431");
  const fits = await rawExchange(port, [
    "GET /fits HTTP/1.1\r\nHost: echo.test\r\n",
    ...Array.from({ length: 4 }, (_, i) => `X-Part-${i}: ${"c".repeat(3000)}\r\n`),
    "Connection: close\r\n\r\n",
  ]);
  t.match(
    fits.text,
    /^HTTP\/1\.1 200 /,
    "12 KiB of headers in many writes (under the limit, over uWS's own 4 KiB default): forwarded",
  );
  t.equal(echo.seen.length, seenBefore + 1, "only the head under the limit was forwarded");

  const dupCl = await rawExchange(
    port,
    "POST / HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
  );
  t.match(dupCl.text, /^HTTP\/1\.1 400 /, "conflicting Content-Length: 400");

  const before = echo.seen.length;
  const smuggle = await rawExchange(
    port,
    "POST / HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: echo.test\r\n\r\n",
  );
  t.match(smuggle.text, /^HTTP\/1\.1 400 /, "Content-Length with Transfer-Encoding: 400");
  t.notMatch(smuggle.text, /HTTP\/1\.1 200/, "and nothing after it is answered");
  const ctl = await rawExchange(port, "GET / HTTP/1.1\r\nHost: echo.test\r\nX-Bad: a\x01b\r\n\r\n", 600);
  t.match(ctl.text, /^HTTP\/1\.1 400 /, "a control byte in a header value: 400");
  const badName = await rawExchange(port, "GET / HTTP/1.1\r\nHost: echo.test\r\nBad Name: 1\r\n\r\n", 600);
  t.match(badName.text, /^HTTP\/1\.1 400 /, "a space in a header name: 400");
  const noHost = await rawExchange(port, "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 600);
  t.match(noHost.text, /^HTTP\/1\.1 400 /, "no Host: 400");
  const badCl = await rawExchange(
    port,
    "POST / HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 1x\r\n\r\n",
    600,
  );
  t.match(badCl.text, /^HTTP\/1\.1 400 /, "a non-numeric Content-Length: 400");

  await sleep(50);
  t.notOk(
    echo.seen.slice(before).some((s) => s.url === "/smuggled"),
    "no smuggled request reached the backend",
  );
  t.equal(echo.seen.length, before, "no malformed request reached the backend");

  // Slowloris: connections that never finish their head do not stop others.
  const { connect } = await import("node:net");
  const slow = Array.from({ length: 40 }, () => {
    const s = connect(port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nHost: echo.test\r\nX-Slow: "));
    s.on("error", () => {});
    return s;
  });
  await sleep(100);
  const ok = await send(port, { host: "echo.test" });
  t.equal(ok.status, 200, "still serving");
  for (const s of slow) s.destroy();
});

t.test("status port: /health, /routes, /metrics; access log lines", async (t) => {
  const h = await statusGet(rig.router.statusPort, "/health");
  t.equal(h.status, 200);
  const routes = JSON.parse((await statusGet(rig.router.statusPort, "/routes")).body) as { route: string }[];
  t.ok(routes.some((r) => r.route === "echo.test"));
  const m = (await statusGet(rig.router.statusPort, "/metrics")).body;
  t.match(m, /kiln_router_requests_total\{class="2xx"\} [1-9]/);
  t.match(m, /kiln_router_route_requests_total\{route="echo.test",class="2xx"\} [1-9]/);
  t.match(m, /kiln_router_route_requests_total\{route="\(unknown\)",class="4xx"\} [1-9]/);
  t.notMatch(m, /route="nowhere.test"/, "unknown hosts do not become labels");
  t.match(m, /kiln_router_request_duration_seconds_bucket\{le="\+Inf"\} [1-9]/);
  t.match(m, /kiln_router_upstream_errors_total\{cause="connect_refused"\} [1-9]/);
  t.match(m, /kiln_router_upstream_errors_total\{cause="response_timeout"\} [1-9]/);
  t.match(m, /kiln_router_routes [1-9]/);
  t.match(m, /kiln_router_endpoints [1-9]/);
  t.match(m, /kiln_router_nats_state\{state="connected"\} 1/);
  t.match(m, /kiln_router_retries_total [1-9]/);

  const rid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
  await send(port, { host: "echo.test", path: "/logged?q=1", headers: { "x-vcap-request-id": rid } });
  let text = "";
  for (let i = 0; i < 40 && !text.includes(rid); i++) {
    await sleep(50);
    text = readFileSync(accessLog, "utf8");
  }
  const line = text.split("\n").find((l) => l.includes(rid)) ?? "";
  t.match(
    line,
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z echo\.test "GET \/logged\?q=1" 200 \d+ [\d.]+ms backend=127\.0\.0\.1:\d+ request_id=/,
  );
});

t.test(
  "keep-alive pools: connections are reused, and a backend closing idle ones costs no error",
  async (t) => {
    let conns = 0;
    const b = await startBackend(t, (_req, res) => res.end("pooled"));
    b.server.on("connection", () => {
      conns++;
    });
    b.server.keepAliveTimeout = 150;
    await rig.register({ port: b.port, uris: ["pool.test"], private_instance_id: "pool-0" });
    for (let i = 0; i < 30; i++) t.equal((await send(port, { host: "pool.test" })).body, "pooled");
    t.ok(conns <= 2, `30 sequential requests over ${conns} backend connection(s) (one per worker at most)`);
    await sleep(400); // the backend closes its idle keep-alive connections
    for (let i = 0; i < 4; i++) t.equal((await send(port, { host: "pool.test" })).status, 200, "still 200");
  },
);

t.test(
  "a pooled connection dropped under a request: sent again only when idempotent and without a body",
  async (t) => {
    let n = 0;
    /**
     * A backend that answers the first request on each connection (keep-alive) and drops the
     * connection unanswered once it has read the next one, as a keep-alive timeout firing just
     * as a request arrives does. The same request goes twice over one client connection (one
     * router worker, the same upstream pool): the second finds the pooled connection.
     */
    const dropSecond = async (method: string, body?: string) => {
      const seen: string[] = [];
      const backend = await startRawBackend(t, (s) => {
        let requests = 0;
        s.setEncoding("latin1");
        s.on("data", (d: string) => {
          for (const m of d.matchAll(/^([A-Z]+) (\S+) HTTP\/1\.1\r\n/gm)) {
            seen.push(`${m[1]} ${m[2]}`);
            if (++requests === 1) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            else {
              s.destroy();
              return;
            }
          }
        });
      });
      const host = `drop${++n}.test`;
      await rig.register({ port: backend, uris: [host], private_instance_id: `drop-${n}` });
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      t.teardown(() => agent.destroy());
      const first = await send(port, { host, method, path: "/first", body, agent });
      t.equal(first.status, 200, `${method}: the first request is answered`);
      const r = await send(port, { host, method, path: "/second", body, agent });
      await sleep(50);
      return { r, seen };
    };

    const c0 = await retryCounts();
    const get = await dropSecond("GET");
    t.equal(get.r.status, 200, "a GET is sent again on a new connection: the client sees 200");
    t.same(get.seen, ["GET /first", "GET /second", "GET /second"]);
    const c1 = await retryCounts();
    t.same(
      [c1.stale - c0.stale, c1.retries - c0.retries],
      [1, 1],
      "/metrics counts one stale connection and one retry",
    );

    const post = await dropSecond("POST");
    t.equal(post.r.status, 502, "a POST without a body is not sent again");
    t.equal(post.r.headers["x-kiln-router-error"], "stale_connection");
    t.same(post.seen, ["POST /first", "POST /second"], "the backend saw it once");
    const c2 = await retryCounts();
    t.same([c2.stale - c1.stale, c2.retries - c1.retries], [1, 0], "one stale connection, no retry");

    const withBody = await dropSecond("POST", "x".repeat(100));
    t.equal(withBody.r.status, 502, "nor a POST with a small body");
    // Its body had gone out: the backend closed on a request it received.
    t.equal(withBody.r.headers["x-kiln-router-error"], "backend_closed");
    t.same(withBody.seen, ["POST /first", "POST /second"], "the backend saw it once");
  },
);

t.test(
  "a backend closing on a request without answering: a GET goes to another endpoint, a POST is not sent again",
  async (t) => {
    // An instance killed with the request on it (kill -9): its socket closes with no answer.
    const seen: string[] = [];
    const closing = await startRawBackend(t, (sock) =>
      sock.once("data", (d: Buffer) => {
        seen.push(d.toString("latin1").split(" ", 2).join(" "));
        sock.destroy();
      }),
    );
    const good = await startBackend(t, (_q, res) => res.end("good"));
    const host = "closing-pair.test";
    await rig.register({ port: closing, uris: [host], private_instance_id: "cp-closing" });
    await rig.register({ port: good.port, uris: [host], private_instance_id: "cp-good" });
    // Round robin over two endpoints: four requests reach the closing one at least once.
    const gets = [];
    for (let i = 0; i < 4; i++) gets.push(await send(port, { host, path: `/get${i}` }));
    t.same(
      gets.map((r) => r.status),
      [200, 200, 200, 200],
      "every GET is answered, by the other endpoint when the first closed",
    );
    t.ok(
      seen.some((l) => l.startsWith("GET")),
      "the closing endpoint did get a GET",
    );
    const posts = [];
    for (let i = 0; i < 4; i++)
      posts.push(await send(port, { host, method: "POST", path: `/post${i}`, body: "x".repeat(100) }));
    const refused = posts.filter((r) => r.status === 502);
    t.ok(refused.length > 0, "a POST the closing endpoint got is not sent again: 502");
    t.ok(
      refused.every((r) => r.headers["x-kiln-router-error"] === "backend_closed"),
      "with cause backend_closed",
    );
    t.equal(seen.filter((l) => l.startsWith("POST")).length, refused.length, "each seen once");
  },
);

t.test("hash balancing: the same header value reaches the same endpoint", async (t) => {
  const a = await startBackend(t, (_q, res) => res.end("h-A"));
  const b = await startBackend(t, (_q, res) => res.end("h-B"));
  const options = { loadbalancing: "hash", hash_header: "X-User" };
  await rig.register({ port: a.port, uris: ["hash.test"], private_instance_id: "h-A", options });
  await rig.register({ port: b.port, uris: ["hash.test"], private_instance_id: "h-B", options });
  const seen = new Map<string, Set<string>>();
  for (const user of ["alice", "bob", "carol", "dave"])
    for (let i = 0; i < 4; i++) {
      const r = await send(port, { host: "hash.test", headers: { "x-user": user } });
      const set = seen.get(user) ?? new Set<string>();
      set.add(r.body);
      seen.set(user, set);
    }
  for (const [user, set] of seen) t.equal(set.size, 1, `${user} always lands on one endpoint`);
  const without = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const r = await send(port, { host: "hash.test" });
    t.equal(r.status, 200, "a request without the hash header is served");
    without.add(r.body);
  }
  t.equal(without.size, 1, "and hashes on the client address: one client, one endpoint");
});

t.test("the native request path serves plain requests, with the same request headers", async (t) => {
  const expectFast = fastPath === "on" && listening?.upstream === "native";
  t.equal(listening?.fastPath, expectFast, "the native request path is on exactly when asked and possible");
  const served = async (): Promise<number> => {
    const m = (await statusGet(rig.router.statusPort, "/metrics")).body;
    return Number(/^kiln_router_native_requests_total (\d+)$/m.exec(m)?.[1]);
  };
  const before = await served();
  // A request the native path takes: no body, no sticky cookie, no pinning, plain Connection.
  const rid = "6F1A2B3C-4D5E-4F60-8A7B-9C0D1E2F3A4B";
  const r = await send(port, {
    host: "ECHO.test:8080",
    path: "/n/p?q=1",
    headers: {
      "x-forwarded-for": "1.2.3.4",
      "x-vcap-request-id": rid,
      traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      connection: "keep-alive",
      "keep-alive": "timeout=5",
      te: "trailers",
      "x-request-start": "1",
      "x-cf-applicationid": "forged",
      "x-cf-instanceindex": "9",
      "x-cf-instanceid": "forged",
      "x-custom": "kept",
      cookie: "a=b",
    },
  });
  const seen = forwardedAsEcho(t, r, "/n/p?q=1", rid);
  t.match(seen.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, "an all-zero trace id is replaced");
  t.equal(seen.headers.traceparent?.slice(3, 35), rid.replace(/-/g, "").toLowerCase(), "from the request id");
  t.equal(seen.headers.cookie, "a=b");
  for (const hop of ["keep-alive", "te"]) t.notOk(hop in seen.headers, `${hop} is not forwarded`);
  for (let i = 0; i < 5; i++) t.equal((await send(port, { host: "echo.test", method: "HEAD" })).status, 200);
  const after = await served();
  if (expectFast) t.ok(after - before >= 6, `the native path served them (${after - before})`);
  else t.equal(after, 0, "no request went the native way");

  // Counted by route (the native path counts by host, keeping at most 3 hosts here between
  // reads, and hands totals over in batches; the last host is longer than a slot holds inline).
  const uris = ["m0.test", "m1.test", "m2.test", "m3.test", "m4.test", `long-${"x".repeat(50)}.m5.test`];
  await rig.register({ port: echo.port, uris, app: "app-echo", private_instance_id: "echo-m" });
  for (let round = 0; round < 2; round++)
    for (let i = 0; i < uris.length; i++)
      for (let k = 0; k <= i; k++)
        t.equal((await send(port, { host: uris[i] as string })).status, 200, "served");
  const m = (await statusGet(rig.router.statusPort, "/metrics")).body;
  for (let i = 0; i < uris.length; i++)
    t.match(
      m,
      `kiln_router_route_requests_total{route="${uris[i]}",class="2xx"} ${2 * (i + 1)}\n`,
      `${uris[i]}`,
    );
});

t.test("requests keep being served while the route table grows and churns under them", async (t) => {
  // 24,000 new hosts arrive in bursts and half of them leave again while eight keep-alive
  // clients request them and echo.test: every shard's buckets grow several times under
  // live lookups (the native path reads a bucket before taking the shard's lock to warm
  // the cache), and no request may fail other than with a 404 for a host not there yet or a
  // 503 for one whose endpoint left (kept, empty, for the empty-pool timeout).
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  const get = (host: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: "/g", headers: { host }, agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  const total = 24_000;
  const host = (i: number): string => `g${i}.grow.test`;
  const publish = (subject: string, from: number, to: number): void => {
    const uris: string[] = [];
    for (let i = from; i < to; i++) uris.push(host(i));
    const msg = { host: "127.0.0.1", port: echo.port, uris, private_instance_id: "grow-0" };
    rig.bus.publish(subject, new TextEncoder().encode(JSON.stringify(msg)));
  };
  let published = 0;
  let done = false;
  const statuses = new Map<number, number>();
  let echoBad = 0;
  let seed = 7;
  const client = async (): Promise<void> => {
    while (!done) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const i = published === 0 ? 0 : seed % published;
      const s = await get(host(i));
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
      if ((await get("echo.test")) !== 200) echoBad++;
    }
  };
  const clients = Array.from({ length: 8 }, client);
  for (let from = 0; from < total; from += 2000) {
    publish("router.register", from, from + 2000);
    published = from + 2000;
    await rig.bus.flush();
    await sleep(100);
  }
  for (let from = 0; from < total; from += 4000) {
    publish("router.unregister", from, from + 2000);
    await rig.bus.flush();
    await sleep(100);
  }
  await rig.register({ port: echo.port, uris: [host(total - 1)], private_instance_id: "grow-0" });
  done = true;
  await Promise.all(clients);
  const served = statuses.get(200) ?? 0;
  const others = [...statuses].filter(([s]) => s !== 200 && s !== 404 && s !== 503);
  t.same(
    others,
    [],
    `only 200, 404 and 503 (${served} served, ${statuses.get(404) ?? 0} not there yet, ${statuses.get(503) ?? 0} emptied)`,
  );
  t.ok(served > 100, "the new hosts were served while they arrived");
  t.equal(echoBad, 0, "echo.test was served throughout");
  t.equal(await get(host(1000)), 503, "an unregistered host is kept, empty (the empty-pool timeout)");
  t.equal(await get(host(total - 1)), 200, "a kept host is served");
  t.equal((await statusGet(rig.router.statusPort, "/health")).status, 200, "the router is healthy");
});
