// One table of raw client requests that try to make the router and the server behind it
// read a request's end differently (request smuggling), run through every request path by
// smuggling.test.ts: the native request path, the native client driven from JavaScript, the
// JavaScript client, and WebSocket upgrades. The backend reads like a lenient server
// (Transfer-Encoding chunked wins, else Content-Length, else no body), so a body the router
// forwarded without its framing shows up there as a second request.

/** What the router must do with a case. */
export type Expect =
  /**
   * The backend sees exactly one request, with this body, framed by the router's own header;
   * in a header's value HOST is the route's host and INSTANCE its instance id.
   */
  | { accept: true; body: string; method?: string; headers?: Record<string, string> }
  /** The client gets 400 and the connection closes; the backend receives no byte. */
  | { accept: false };

export interface SmugglingCase {
  name: string;
  /** The raw request; HOST is replaced by the route's host. */
  raw: string;
  expect: Expect;
}

/** A body that is itself a request: forwarded without its length, it becomes a second request. */
const inner = "GET /smuggled HTTP/1.1\r\nHost: smuggled.test\r\n\r\n";
const innerLen = inner.length;
const ok = (body: string, headers?: Record<string, string>, method?: string): Expect => ({
  accept: true,
  body,
  ...(headers === undefined ? {} : { headers }),
  ...(method === undefined ? {} : { method }),
});
const refused: Expect = { accept: false };

export const smugglingCases: SmugglingCase[] = [
  // Accepted: the framing the router forwards is its own and carries exactly the body.
  {
    name: "Content-Length body",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\n\r\nhello",
    expect: ok("hello", { "content-length": "5" }),
  },
  {
    name: "chunked body is re-chunked",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: ok("hello", { "transfer-encoding": "chunked" }),
  },
  {
    name: "Connection: content-length keeps the length (the body is a request)",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nConnection: content-length\r\nContent-Length: ${innerLen}\r\n\r\n${inner}`,
    expect: ok(inner, { "content-length": String(innerLen) }),
  },
  {
    name: "Connection: Content-Length, keep-alive keeps the length",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nConnection: Content-Length, keep-alive\r\nContent-Length: ${innerLen}\r\n\r\n${inner}`,
    expect: ok(inner, { "content-length": String(innerLen) }),
  },
  {
    name: "Connection: transfer-encoding keeps the chunked framing",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n${innerLen.toString(16)}\r\n${inner}\r\n0\r\n\r\n`,
    expect: ok(inner, { "transfer-encoding": "chunked" }),
  },
  {
    name: "Connection: host keeps Host",
    raw: "GET /a HTTP/1.1\r\nHost: HOST\r\nConnection: host\r\n\r\n",
    expect: ok("", { host: "HOST" }),
  },
  {
    name: "Connection naming the router's own headers keeps them",
    raw: "GET /a HTTP/1.1\r\nHost: HOST\r\nConnection: x-forwarded-for, x-forwarded-proto, x-request-start, x-vcap-request-id, x-cf-applicationid, x-cf-instanceid, x-cf-instanceindex, traceparent\r\n\r\n",
    expect: ok("", {
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-proto": "http",
      "x-cf-applicationid": "app-smuggle",
      "x-cf-instanceid": "INSTANCE",
      "x-cf-instanceindex": "0",
    }),
  },
  {
    name: "Connection naming another header still drops it",
    raw: "GET /a HTTP/1.1\r\nHost: HOST\r\nConnection: x-hop\r\nX-Hop: 1\r\nX-Kept: 2\r\n\r\n",
    expect: ok("", { "x-hop": "(absent)", "x-kept": "2" }),
  },
  {
    name: "identical Content-Length list members are one length",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5, 5\r\n\r\nhello",
    expect: ok("hello", { "content-length": "5" }),
  },
  {
    name: "identical Content-Length repeats are one length",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    expect: ok("hello", { "content-length": "5" }),
  },
  {
    name: "Content-Length with leading zeros",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 005\r\n\r\nhello",
    expect: ok("hello"),
  },
  {
    name: "Transfer-Encoding: Chunked in another letter case",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: ok("hello", { "transfer-encoding": "chunked" }),
  },
  {
    name: "chunk extensions are accepted",
    raw: 'POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value;q="x y"\r\nhello\r\n0;last\r\n\r\n',
    expect: ok("hello"),
  },
  {
    name: "a trailer section ends the body, not a request",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\nGET-Not-A-Request: /smuggled\r\n\r\n",
    expect: ok("hello"),
  },
  {
    name: "Content-Length: 0 is declared by the router",
    raw: "GET /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 0\r\n\r\n",
    expect: ok("", { "content-length": "0" }),
  },
  {
    name: "no framing: no body",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\n\r\n",
    expect: ok("", { "content-length": "(absent)", "transfer-encoding": "(absent)" }),
  },
  {
    name: "HTTP/1.0 with Content-Length",
    raw: "POST /a HTTP/1.0\r\nHost: HOST\r\nContent-Length: 5\r\n\r\nhello",
    expect: ok("hello", { "content-length": "5" }),
  },

  // Refused with 400 before any byte goes upstream, and the connection closes.
  {
    name: "Content-Length and Transfer-Encoding",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: ${3 + innerLen}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "Transfer-Encoding before Content-Length",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "Transfer-Encoding list gzip, chunked",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "Transfer-Encoding list chunked, chunked",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "Transfer-Encoding identity",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: identity\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "Transfer-Encoding with an unknown coding",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "Transfer-Encoding repeated",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "empty Transfer-Encoding with Content-Length",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: \r\nContent-Length: ${innerLen}\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "Transfer-Encoding with a parameter",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked;q=1\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "HTTP/1.0 with Transfer-Encoding",
    raw: "POST /a HTTP/1.0\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "two Content-Length values",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 0\r\nContent-Length: ${innerLen}\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "Content-Length list members that differ",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 0, ${innerLen}\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "Content-Length +5",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: +5\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "Content-Length -1",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: -1\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "Content-Length 0x5",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 0x5\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "Content-Length 5 5",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5 5\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "empty Content-Length",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: \r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "Content-Length of 20 digits",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 18446744073709551621\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "obs-fold",
    raw: "GET /a HTTP/1.1\r\nHost: HOST\r\nX-A: a\r\n b\r\n\r\n",
    expect: refused,
  },
  {
    name: "obs-fold carrying Content-Length",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length:\r\n\t5\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "space before the colon",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length : 5\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "tab before the colon",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding\t: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "space inside a field name",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent Length: 5\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "empty field name",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\n: x\r\nContent-Length: ${innerLen}\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "bare LF ending header lines",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\nContent-Length: 5\n\nhello",
    expect: refused,
  },
  {
    name: "bare LF ending the request line",
    raw: "POST /a HTTP/1.1\nHost: HOST\r\nContent-Length: 5\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "NUL in a field value",
    raw: "GET /a HTTP/1.1\r\nHost: HOST\r\nX-A: a\u0000b\r\n\r\n",
    expect: refused,
  },
  {
    name: "vertical tab in a field value",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\u000b\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "DEL in a field value",
    raw: "GET /a HTTP/1.1\r\nHost: HOST\r\nX-A: a\u007fb\r\n\r\n",
    expect: refused,
  },
  {
    name: "chunk size that overflows",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "chunk size that is not hex",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5g\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "chunk data not followed by CRLF",
    raw: `POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "chunk size line ended by a bare LF",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "last chunk ended by bare LFs",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\n",
    expect: refused,
  },
  {
    name: "chunk extension with a control byte",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5;a\u0001\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
  {
    name: "obs-fold in a trailer",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n",
    expect: refused,
  },
  {
    name: "space before the chunk size",
    raw: "POST /a HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
    expect: refused,
  },
];

/** WebSocket upgrades: the same rules, and an upgrade never carries a body upstream. */
const upgradeHead =
  "GET /ws HTTP/1.1\r\nHost: HOST\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

export const upgradeCases: SmugglingCase[] = [
  {
    name: "upgrade with a Content-Length body",
    raw: `${upgradeHead}Content-Length: ${innerLen}\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "upgrade with a chunked body",
    raw: `${upgradeHead}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    expect: refused,
  },
  {
    name: "upgrade with Content-Length and Transfer-Encoding",
    raw: `${upgradeHead}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    expect: refused,
  },
  {
    name: "upgrade with two Content-Length values",
    raw: `${upgradeHead}Content-Length: 0\r\nContent-Length: ${innerLen}\r\n\r\n${inner}`,
    expect: refused,
  },
  {
    name: "upgrade with obs-fold",
    raw: `${upgradeHead}X-A: a\r\n b\r\n\r\n`,
    expect: refused,
  },
  {
    name: "upgrade naming Host in Connection keeps Host",
    raw: `${upgradeHead.replace("Connection: Upgrade", "Connection: Upgrade, host, content-length")}\r\n`,
    expect: { accept: true, body: "", method: "GET", headers: { host: "HOST", upgrade: "websocket" } },
  },
];
