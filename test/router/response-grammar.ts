// The one table of backend responses the router's two response parsers must agree on: the
// native client's (native/src/upstream_parser.cc) and the JavaScript client's
// (router/proxy/response-head.ts). response-grammar.test.ts runs it against each parser
// directly and through a router in its three setups. Where RFC 9112 leaves a choice, the
// stricter one is taken: a proxy that cannot tell where a response ends must not relay it.

/** What a client gets for a response relayed: its status, exact body and some headers. */
export interface Relayed {
  status: number;
  /** The body, as latin1 text. */
  body: string;
  /** Headers the client must see with these values (null: must not see), names lower-case. */
  headers?: Record<string, string | null>;
}

/** A relayed response, or the router's own 502 with `X-Kiln-Router-Error: bad_response`. */
export type Expected = Relayed | "bad_response";

export interface ResponseCase {
  name: string;
  /** The bytes the backend answers with (latin1: one char per byte), then it closes. */
  wire: string;
  /** The request is HEAD instead of GET. */
  head?: boolean;
  expect: Expected;
}

const refused = "bad_response";
const hello: Relayed = { status: 200, body: "hello" };
/** A 200 with `lines` (each ending in CRLF) before a 5-byte Content-Length body. */
const withFields = (lines: string): string => `HTTP/1.1 200 OK\r\n${lines}Content-Length: 5\r\n\r\nhello`;
/** A 200 with `length` as its Content-Length value and "hello" after the head. */
const withLength = (length: string): string => `HTTP/1.1 200 OK\r\nContent-Length:${length}\r\n\r\nhello`;
/** A chunked 200 whose body is `body` (the chunks as sent). */
const chunked = (body: string): string => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
const HELLO_CHUNKS = "5\r\nhello\r\n0\r\n\r\n";
/** A 200 with Transfer-Encoding `te` and a chunked "hello". */
const withCoding = (te: string): string =>
  `HTTP/1.1 200 OK\r\nTransfer-Encoding:${te}\r\n\r\n${HELLO_CHUNKS}`;
/** Status line `line` (without CRLF) before a 5-byte Content-Length body. */
const statusLine = (line: string): string => `${line}\r\nContent-Length: 5\r\n\r\nhello`;
const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-F${i}: ${i}\r\n`).join("");

export const responseCases: readonly ResponseCase[] = [
  // Framing: Content-Length and Transfer-Encoding (RFC 9112 6).
  { name: "Content-Length body", wire: withLength(" 5"), expect: hello },
  { name: "chunked body", wire: chunked("2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"), expect: hello },
  { name: "Transfer-Encoding in another letter case", wire: withCoding(" ChUnKeD"), expect: hello },
  {
    name: "Transfer-Encoding and Content-Length",
    wire: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n${HELLO_CHUNKS}`,
    expect: refused,
  },
  {
    name: "Content-Length and Transfer-Encoding",
    wire: `HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${HELLO_CHUNKS}`,
    expect: refused,
  },
  { name: "Transfer-Encoding gzip, chunked", wire: withCoding(" gzip, chunked"), expect: refused },
  { name: "Transfer-Encoding chunked, chunked", wire: withCoding(" chunked, chunked"), expect: refused },
  {
    name: "Transfer-Encoding chunked twice",
    wire: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${HELLO_CHUNKS}`,
    expect: refused,
  },
  { name: "Transfer-Encoding identity", wire: withCoding(" identity"), expect: refused },
  { name: "Transfer-Encoding of an unknown coding", wire: withCoding(" x-kiln"), expect: refused },
  { name: "Transfer-Encoding empty", wire: withCoding(""), expect: refused },
  {
    name: "Transfer-Encoding in HTTP/1.0",
    wire: `HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${HELLO_CHUNKS}`,
    expect: refused,
  },
  {
    name: "two Content-Length that differ",
    wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    expect: refused,
  },
  {
    // RFC 9110 8.6 lets a recipient accept repeats of one value; a list is not 1*DIGIT.
    name: "two Content-Length that agree",
    wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    expect: hello,
  },
  { name: "Content-Length list of one value", wire: withLength(" 5, 5"), expect: refused },
  { name: "Content-Length +5", wire: withLength(" +5"), expect: refused },
  { name: "Content-Length -1", wire: withLength(" -1"), expect: refused },
  { name: "Content-Length 0x5", wire: withLength(" 0x5"), expect: refused },
  { name: "Content-Length 5 5", wire: withLength(" 5 5"), expect: refused },
  { name: "Content-Length empty", wire: withLength(""), expect: refused },
  { name: "Content-Length of 16 digits", wire: withLength(" 0000000000000005"), expect: refused },
  { name: "Content-Length with OWS around it", wire: withLength(" \t5 \t"), expect: hello },
  {
    name: "bytes past Content-Length are not relayed",
    wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello world",
    expect: hello,
  },
  {
    name: "no length and Connection: close: the body ends with the connection",
    wire: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world",
    expect: { status: 200, body: "hello world" },
  },
  {
    name: "no length in HTTP/1.1 without Connection: close",
    wire: "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nhello world",
    expect: { status: 200, body: "hello world" },
  },
  {
    name: "no length in HTTP/1.0",
    wire: "HTTP/1.0 200 OK\r\n\r\nhello world",
    expect: { status: 200, body: "hello world" },
  },

  // Status line (RFC 9112 4).
  { name: "status line without a reason phrase", wire: statusLine("HTTP/1.1 200"), expect: hello },
  { name: "status line with an empty reason phrase", wire: statusLine("HTTP/1.1 200 "), expect: hello },
  { name: "reason phrase with obs-text", wire: statusLine("HTTP/1.1 200 Tr\xe8s bien"), expect: hello },
  { name: "status code of two digits", wire: statusLine("HTTP/1.1 20 OK"), expect: refused },
  { name: "status code of four digits", wire: statusLine("HTTP/1.1 2000 OK"), expect: refused },
  { name: "status code 600", wire: statusLine("HTTP/1.1 600 Nope"), expect: refused },
  { name: "status code 099", wire: statusLine("HTTP/1.1 099 Nope"), expect: refused },
  { name: "HTTP/2.0", wire: statusLine("HTTP/2.0 200 OK"), expect: refused },
  { name: "HTTP/1.2", wire: statusLine("HTTP/1.2 200 OK"), expect: refused },
  { name: "lower-case http", wire: statusLine("http/1.1 200 OK"), expect: refused },
  { name: "HXXP instead of HTTP", wire: statusLine("HXXP/1.1 200 OK"), expect: refused },
  { name: "no space after the status code", wire: statusLine("HTTP/1.1 200OK"), expect: refused },
  { name: "two spaces before the status code", wire: statusLine("HTTP/1.1  200 OK"), expect: refused },
  { name: "control byte in the reason phrase", wire: statusLine("HTTP/1.1 200 O\x01K"), expect: refused },
  { name: "DEL in the reason phrase", wire: statusLine("HTTP/1.1 200 O\x7fK"), expect: refused },
  {
    name: "status line ending in a bare LF",
    wire: "HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\nhello",
    expect: refused,
  },
  {
    name: "status line ending in a bare CR",
    wire: "HTTP/1.1 200 OK\rContent-Length: 5\r\n\r\nhello",
    expect: refused,
  },
  { name: "empty line before the status line", wire: `\r\n${withLength(" 5")}`, expect: refused },

  // Field lines (RFC 9112 5, RFC 9110 5.5).
  { name: "obs-fold", wire: withFields("X-A: 1\r\n 2\r\n"), expect: refused },
  { name: "obs-fold with HTAB", wire: withFields("X-A: 1\r\n\t2\r\n"), expect: refused },
  { name: "space before the colon", wire: withFields("X-A : 1\r\n"), expect: refused },
  { name: "HTAB before the colon", wire: withFields("X-A\t: 1\r\n"), expect: refused },
  { name: "field line ending in a bare LF", wire: withFields("X-A: 1\nX-B: 2\r\n"), expect: refused },
  { name: "bare CR inside a value", wire: withFields("X-A: 1\r2\r\n"), expect: refused },
  { name: "NUL in a value", wire: withFields("X-A: 1\x002\r\n"), expect: refused },
  { name: "control byte in a value", wire: withFields("X-A: 1\x1b2\r\n"), expect: refused },
  { name: "DEL in a value", wire: withFields("X-A: 1\x7f2\r\n"), expect: refused },
  {
    name: "HTAB inside a value, OWS around it trimmed",
    wire: withFields("X-A: \t1\t2 \t\r\n"),
    expect: { ...hello, headers: { "x-a": "1\t2" } },
  },
  {
    name: "obs-text in a value",
    wire: withFields("X-A: caf\xe9\r\n"),
    expect: { ...hello, headers: { "x-a": "caf\xe9" } },
  },
  { name: "non-token byte in a name", wire: withFields("X@A: 1\r\n"), expect: refused },
  { name: "quote in a name", wire: withFields('X"A: 1\r\n'), expect: refused },
  { name: "obs-text in a name", wire: withFields("X\xe9A: 1\r\n"), expect: refused },
  { name: "NUL in a name", wire: withFields("X\x00A: 1\r\n"), expect: refused },
  { name: "empty name", wire: withFields(": 1\r\n"), expect: refused },
  { name: "field line without a colon", wire: withFields("X-A 1\r\n"), expect: refused },
  {
    name: "128 fields",
    wire: withFields(fields(127)),
    expect: { ...hello, headers: { "x-f0": "0", "x-f126": "126" } },
  },
  { name: "129 fields", wire: withFields(fields(128)), expect: refused },
  {
    name: "fields the Connection header lists are not relayed",
    wire: withFields("Connection: close, X-Private\r\nX-Private: 1\r\nX-Public: 2\r\n"),
    expect: { ...hello, headers: { "x-private": null, "x-public": "2" } },
  },
  {
    name: "Connection value that is not a token list",
    wire: withFields("Connection: close; x\r\n"),
    expect: refused,
  },
  {
    name: "head just under the size limit",
    wire: withFields(`X-Big: ${"b".repeat(60 * 1024)}\r\n`),
    expect: { ...hello, headers: { "x-big": "b".repeat(60 * 1024) } },
  },
  {
    name: "head over the size limit",
    wire: withFields(`X-Big: ${"b".repeat(80 * 1024)}\r\n`),
    expect: refused,
  },

  // Chunked bodies (RFC 9112 7.1).
  { name: "chunk extensions", wire: chunked("5;name=value\r\nhello\r\n0;x\r\n\r\n"), expect: hello },
  { name: "chunk extension after whitespace", wire: chunked("5 ;x\r\nhello\r\n0\r\n\r\n"), expect: hello },
  { name: "whitespace after the chunk size", wire: chunked("5 \t\r\nhello\r\n0\r\n\r\n"), expect: hello },
  { name: "junk after the chunk size", wire: chunked("5 x\r\nhello\r\n0\r\n\r\n"), expect: refused },
  {
    name: "control byte in a chunk extension",
    wire: chunked("5;a\x01\r\nhello\r\n0\r\n\r\n"),
    expect: refused,
  },
  { name: "chunk size with a non-hex byte", wire: chunked("5x\r\nhello\r\n0\r\n\r\n"), expect: refused },
  { name: "chunk size 0x5", wire: chunked("0x5\r\nhello\r\n0\r\n\r\n"), expect: refused },
  { name: "chunk size missing", wire: chunked("\r\nhello\r\n0\r\n\r\n"), expect: refused },
  { name: "chunk size of 12 hex digits", wire: chunked("000000000005\r\nhello\r\n0\r\n\r\n"), expect: hello },
  {
    name: "chunk size of 13 hex digits",
    wire: chunked("0000000000005\r\nhello\r\n0\r\n\r\n"),
    expect: refused,
  },
  {
    name: "chunk size of 17 hex digits",
    wire: chunked("10000000000000005\r\nhello\r\n0\r\n\r\n"),
    expect: refused,
  },
  { name: "chunk size line ending in a bare LF", wire: chunked("5\nhello\r\n0\r\n\r\n"), expect: refused },
  { name: "no CRLF after chunk data", wire: chunked("5\r\nhello0\r\n\r\n"), expect: refused },
  { name: "chunk data ending in a bare LF", wire: chunked("5\r\nhello\n0\r\n\r\n"), expect: refused },
  { name: "chunk longer than its size", wire: chunked("5\r\nhello!\r\n0\r\n\r\n"), expect: refused },
  {
    name: "trailers are dropped",
    wire: chunked("5\r\nhello\r\n0\r\nX-Trailer: t\r\nX-Other:\r\n\r\n"),
    expect: { ...hello, headers: { "x-trailer": null, "x-other": null } },
  },
  {
    name: "trailer without a colon",
    wire: chunked("5\r\nhello\r\n0\r\nX-Trailer t\r\n\r\n"),
    expect: refused,
  },
  {
    name: "space before a trailer's colon",
    wire: chunked("5\r\nhello\r\n0\r\nX-T : t\r\n\r\n"),
    expect: refused,
  },
  {
    name: "control byte in a trailer",
    wire: chunked("5\r\nhello\r\n0\r\nX-T: \x01\r\n\r\n"),
    expect: refused,
  },
  {
    name: "obs-fold in the trailers",
    wire: chunked("5\r\nhello\r\n0\r\nX-T: t\r\n u\r\n\r\n"),
    expect: refused,
  },
  { name: "bytes past the last chunk are not relayed", wire: chunked(`${HELLO_CHUNKS}junk`), expect: hello },

  // Interim responses and responses without a body (RFC 9110 15.2, 6.4.1).
  {
    name: "100 Continue before the response",
    wire: `HTTP/1.1 100 Continue\r\n\r\n${withLength(" 5")}`,
    expect: hello,
  },
  {
    name: "103 Early Hints, twice, before the response",
    wire: `HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n${withLength(" 5")}`,
    expect: hello,
  },
  {
    name: "malformed interim response",
    wire: `HTTP/1.1 100 Continue\r\nX : y\r\n\r\n${withLength(" 5")}`,
    expect: refused,
  },
  {
    name: "101 Switching Protocols to a request that asked for no upgrade",
    wire: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    expect: refused,
  },
  {
    name: "204 with a Content-Length and bytes after it",
    wire: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
    expect: { status: 204, body: "" },
  },
  {
    name: "304 with a Content-Length",
    wire: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    expect: { status: 304, body: "" },
  },
  {
    name: "204 with Transfer-Encoding: chunked",
    wire: "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
    expect: { status: 204, body: "" },
  },
  {
    name: "HEAD answered with a Content-Length",
    wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    head: true,
    expect: { status: 200, body: "", headers: { "content-length": "5" } },
  },
  {
    name: "HEAD answered with chunked and no body",
    wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    head: true,
    expect: { status: 200, body: "" },
  },
];
