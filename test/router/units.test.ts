// The router's pure parts: configuration, error codes and the failure table, the response
// head parser and chunked decoder, header helpers, sticky cookies, WebSocket frames.
import t from "tap";
import { allCodes } from "../../kernel/errors.js";
import { SelectError } from "../../native/types.js";
import { millis, pipePieceEnd } from "../../router/access-log.js";
import { parseRouterArgs, routerConfig, routerDefaults } from "../../router/config.js";
import { failureClasses, Refusals, RouterCodes, replaySafe, Upstream } from "../../router/errors.js";
import { addressText } from "../../router/handlers/client-address.js";
import {
  parseAppInstance,
  requestIdFor,
  stickyIdFrom,
  traceparentFor,
} from "../../router/handlers/request-headers.js";
import { setCookieAttributes, setCookieName, vcapCookie } from "../../router/handlers/sticky.js";
import { refusalFor } from "../../router/proxy/exchange.js";
import {
  CHUNKED_ERROR,
  CHUNKED_MORE,
  ChunkedDecoder,
  HEAD_INCOMPLETE,
  HEAD_MALFORMED,
  parseResponseHead,
  ResponseHead,
} from "../../router/proxy/response-head.js";
import { encodeClose, encodeFrame, FrameReader, Op } from "../../router/ws/frames.js";

t.test("config: defaults, environment, flags, bad values", async (t) => {
  const d = routerConfig({}, {});
  t.equal(d.port, 8080);
  t.equal(d.statusPort, 8081);
  t.same(d.stickyCookies, ["JSESSIONID"]);
  t.equal(d.accessLog, "off");
  t.ok(d.threads >= 1);
  const e = routerConfig(
    {},
    {
      KILN_ROUTER_PORT: "9000",
      KILN_ROUTER_STICKY_COOKIES: "JSESSIONID, SESSION",
      KILN_ROUTER_ACCESS_LOG: "stdout",
      KILN_NATS_URL: "nats://x:1",
    },
  );
  t.equal(e.port, 9000);
  t.same(e.stickyCookies, ["JSESSIONID", "SESSION"]);
  t.equal(e.accessLog, "stdout");
  t.equal(e.natsUrl, "nats://x:1");
  const f = parseRouterArgs([
    "--nats",
    "nats://y:2",
    "--port",
    "0",
    "--threads",
    "3",
    "--access-log",
    "/tmp/a.log",
  ]);
  t.same(f, { natsUrl: "nats://y:2", port: 0, threads: 3, accessLog: { file: "/tmp/a.log" } });
  t.equal(routerConfig(f, { KILN_ROUTER_PORT: "9000" }).port, 0, "flags win over the environment");
  t.throws(() => parseRouterArgs(["--port", "70000"]), { code: "KILN_ROUTER_CONFIG" });
  t.throws(() => parseRouterArgs(["--threads", "0"]), { code: "KILN_ROUTER_CONFIG" });
  t.throws(() => parseRouterArgs(["--bogus", "1"]), { code: "KILN_ROUTER_CONFIG" });
  t.throws(() => routerConfig({}, { KILN_ROUTER_DRAIN_TIMEOUT_MS: "soon" }), { code: "KILN_ROUTER_CONFIG" });
  t.equal(routerDefaults.maxAttempts, 3);
  t.equal(d.emptyPoolTimeoutMs, 30_000);
  t.equal(routerConfig({}, { KILN_ROUTER_EMPTY_POOL_TIMEOUT_MS: "0" }).emptyPoolTimeoutMs, 0);
  t.same(parseRouterArgs(["--empty-pool-timeout-ms", "300"]), { emptyPoolTimeoutMs: 300 });
  t.throws(() => parseRouterArgs(["--empty-pool-timeout-ms", "-1"]), { code: "KILN_ROUTER_CONFIG" });
});

t.test("error codes and the failure table", async (t) => {
  for (const code of Object.keys(RouterCodes)) {
    t.match(code, /^KILN_ROUTER_/);
    t.equal(allCodes().get(code)?.area, "router");
  }
  t.equal(failureClasses.length, Object.keys(Upstream).length, "one row per upstream failure");
  const causes = new Set(failureClasses.map((f) => f.cause));
  t.equal(causes.size, failureClasses.length, "causes are unique");
  for (const f of failureClasses)
    if (f.markFailed) t.ok(f.retriable, `${f.cause}: marked endpoints are retried`);
  for (const f of failureClasses)
    if (f.idempotentOnly) t.ok(f.retriable, `${f.cause}: retried only for idempotent requests`);
  t.ok(failureClasses[Upstream.StaleConnection]?.idempotentOnly, "a stale connection may have delivered it");
  t.notOk(failureClasses[Upstream.ConnectRefused]?.idempotentOnly, "nothing was sent: any method");
  for (const m of ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]) t.ok(replaySafe(m, false), m);
  for (const m of ["POST", "PATCH", "CONNECT", "get", "LOCK"]) t.notOk(replaySafe(m, false), m);
  t.notOk(replaySafe("PUT", true), "a request with a body is never sent twice");
  t.equal(failureClasses[Upstream.ResponseTimeout]?.refusal.status, "504 Gateway Timeout");
  t.equal(failureClasses[Upstream.ConnectRefused]?.refusal.status, "502 Bad Gateway");
  t.equal(refusalFor(SelectError.NoRoute, Refusals).cause, "unknown_route");
  t.equal(refusalFor(SelectError.NoEndpoints, Refusals).status, "503 Service Unavailable");
  t.equal(refusalFor(SelectError.AllFull, Refusals).cause, "backend_full");
  t.equal(refusalFor(SelectError.UnknownInstance, Refusals).status, "404 Not Found");
});

t.test("response head parser", async (t) => {
  const h = new ResponseHead();
  const ok = Buffer.from(
    "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nX:  y \r\n\r\nhello",
  );
  const n = parseResponseHead(ok, h);
  t.equal(n, ok.length - 5);
  t.equal(h.status, 201);
  t.equal(h.statusLine, "201 Created");
  t.equal(h.contentLength, 5);
  t.same(h.names, ["Content-Length", "Set-Cookie", "X"]);
  t.same(h.values, ["5", "a=1", "y"]);
  t.equal(h.close, false);
  t.equal(parseResponseHead(Buffer.from("HTTP/1.1 200 OK\r\nContent-Len"), h), HEAD_INCOMPLETE);
  t.equal(parseResponseHead(Buffer.from("garbage\r\n\r\n"), h), HEAD_MALFORMED);
  t.equal(parseResponseHead(Buffer.from("HTTP/1.1 2x0 OK\r\n\r\n"), h), HEAD_MALFORMED);
  t.equal(parseResponseHead(Buffer.from("HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n"), h), HEAD_MALFORMED);
  t.equal(
    parseResponseHead(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), h),
    HEAD_MALFORMED,
  );
  // Framing rules (both Content-Length and Transfer-Encoding, and the rest) are in the table
  // response-grammar.test.ts runs against this parser and the native one.
  t.equal(
    parseResponseHead(
      Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
      h,
    ),
    HEAD_MALFORMED,
    "Transfer-Encoding and Content-Length together are refused",
  );
  parseResponseHead(Buffer.from("HTTP/1.0 200 OK\r\n\r\n"), h);
  t.equal(h.close, true, "HTTP/1.0 without keep-alive closes");
  parseResponseHead(Buffer.from("HTTP/1.1 204\r\nConnection: close\r\n\r\n"), h);
  t.equal(h.statusLine, "204");
  t.equal(h.close, true);
  t.same(h.connectionNames, []);
  parseResponseHead(Buffer.from("HTTP/1.0 200 OK\r\nConnection: Keep-Alive, X-Private ,x-b\r\n\r\n"), h);
  t.equal(h.close, false, "keep-alive among other Connection names");
  t.same(h.connectionNames, ["x-private", "x-b"], "the other names, lower-cased");
  parseResponseHead(Buffer.from("HTTP/1.1 200 OK\r\nConnection: x-a, CLOSE\r\n\r\n"), h);
  t.equal(h.close, true);
  t.same(h.connectionNames, ["x-a"], "reset per head");
});

t.test("chunked decoder, split at every byte", async (t) => {
  const wire = Buffer.from(
    "5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\nNEXT",
  );
  const end = wire.indexOf("NEXT");
  for (let cut = 1; cut < wire.length; cut++) {
    const d = new ChunkedDecoder();
    let out = "";
    const sink = { onBodyPiece: (p: Buffer) => (out += p.toString()) };
    const r1 = d.decode(wire.subarray(0, cut), 0, sink);
    let done: number;
    if (r1 >= 0) done = r1;
    else {
      t.equal(r1, CHUNKED_MORE);
      const r2 = d.decode(wire.subarray(cut), 0, sink);
      done = r2 + cut;
    }
    if (out !== "helloabcdefghijklmnopqrstuvwxyz" || done !== end) {
      t.fail(`cut at ${cut}: ${out} ${done}`);
      return;
    }
  }
  t.pass("every split decodes the same");
  const bad = new ChunkedDecoder();
  t.equal(bad.decode(Buffer.from("zz\r\n"), 0, { onBodyPiece: () => {} }), CHUNKED_ERROR);
});

t.test("request header helpers", async (t) => {
  t.equal(stickyIdFrom("a=1; __VCAP_ID__=abc-123; JSESSIONID=x"), "abc-123");
  t.equal(stickyIdFrom("x__VCAP_ID__=no"), "");
  t.equal(stickyIdFrom("__VCAP_ID__=first"), "first");
  t.same(parseAppInstance("guid-1:3"), { app: "guid-1", index: "3" });
  t.equal(parseAppInstance("guid-1"), null);
  t.equal(parseAppInstance("guid-1:x"), null);
  t.equal(parseAppInstance(":1"), null);
  const id = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";
  t.equal(requestIdFor(id), id);
  t.not(requestIdFor("nope"), "nope");
  const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  t.equal(traceparentFor(tp, id), tp);
  t.match(
    traceparentFor("00-00000000000000000000000000000000-b7ad6b7169203331-01", id),
    /^00-6f1a2b3c4d5e4f608a7b9c0d1e2f3a4b-/,
  );
});

t.test("sticky cookie helpers", async (t) => {
  const v = "JSESSIONID=xyz; Path=/; Secure; SameSite=None";
  t.equal(setCookieName(v), "JSESSIONID");
  t.equal(setCookieAttributes(v), "; Path=/; Secure; SameSite=None");
  t.equal(vcapCookie("i-1", setCookieAttributes(v)), "__VCAP_ID__=i-1; Path=/; Secure; SameSite=None");
});

t.test("WebSocket frames: masked out, read back (all length encodings, fragments)", async (t) => {
  for (const len of [0, 5, 125, 126, 65535, 65536, 200_000]) {
    const payload = Buffer.alloc(len, 7);
    const frame = encodeFrame(Op.Binary, payload);
    t.equal((frame[1] as number) & 0x80, 0x80, "masked");
    const got: Buffer[] = [];
    const r = new FrameReader(1 << 20);
    // Split in two to exercise buffering.
    const mid = Math.floor(frame.length / 2);
    const sink = {
      onMessage: (p: Buffer) => got.push(Buffer.from(p)),
      onPing: () => {},
      onClose: () => {},
      onProtocolError: () => t.fail("protocol error"),
    };
    r.push(frame.subarray(0, mid), sink);
    r.push(frame.subarray(mid), sink);
    t.ok(got[0]?.equals(payload), `length ${len}`);
  }
  // An unmasked fragmented message from a server.
  const r = new FrameReader(1024);
  const msgs: string[] = [];
  let closeCode = 0;
  const sink = {
    onMessage: (p: Buffer) => msgs.push(p.toString()),
    onPing: () => {},
    onClose: (c: number) => {
      closeCode = c;
    },
    onProtocolError: () => t.fail("protocol error"),
  };
  r.push(Buffer.from([0x01, 3, 104, 101, 108, 0x80, 2, 108, 111]), sink);
  t.same(msgs, ["hello"]);
  const close = encodeClose(4001, Buffer.from("bye"));
  r.push(close, sink);
  t.equal(closeCode, 4001);
});

t.test(
  "access log pieces for a pipe: whole lines, at most 4096 bytes unless one line is longer",
  async (t) => {
    const line = (n: number): string => `${"x".repeat(n - 1)}\n`;
    const buf = Buffer.from(line(1000) + line(3000) + line(200) + line(9000) + line(10));
    const ends: number[] = [];
    for (let off = 0; off < buf.length; off = pipePieceEnd(buf, off)) ends.push(pipePieceEnd(buf, off));
    // 1000 + 3000 fit in one piece, 200 alone (a 9000-byte line follows), the long line on its own, then the rest.
    t.same(ends, [4000, 4200, 13200, 13210]);
    for (const [i, e] of ends.entries()) t.equal(buf[e - 1], 10, `piece ${i} ends at a line end`);
    t.equal(pipePieceEnd(Buffer.from("short\n"), 0), 6, "less than 4096 bytes: all of it");
  },
);

t.test("access log duration text and client address text", async (t) => {
  for (const v of [0, 0.0004, 0.0005, 0.0015, 0.723456, 1, 2.5, 12.0499, 999.9996, 3333.3339, 86400000.25]) {
    t.equal(millis(v), v.toFixed(3), `millis(${v})`);
  }
  let seed = 7;
  for (let i = 0; i < 2000; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const v = (seed / 2147483648) * 10 ** (i % 6);
    if (millis(v) !== v.toFixed(3)) t.fail(`millis(${v}) = ${millis(v)}, toFixed ${v.toFixed(3)}`);
  }
  t.equal(addressText(new Uint8Array([127, 0, 0, 1])), "127.0.0.1");
  t.equal(addressText(new Uint8Array([127, 0, 0, 1])), "127.0.0.1");
  t.equal(addressText(new Uint8Array([10, 1, 200, 255])), "10.1.200.255");
  const v6 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 127, 0, 0, 1]);
  t.equal(addressText(v6), "0000:0000:0000:0000:0000:ffff:7f00:0001");
  const v6b = new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0x0c]);
  t.equal(addressText(v6b), "2001:0db8:0000:0000:0000:0000:0000:ab0c");
  t.equal(addressText(new Uint8Array(0)), "");
});
