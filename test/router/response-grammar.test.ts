// The response table (response-grammar.ts) against both response parsers: the JavaScript
// one and the native one called directly, then a real router over raw backends in its three
// setups (native request path, native client from JavaScript, JavaScript client).
import { request } from "node:http";
import t, { type Test } from "tap";
import { RequestFlag, UpstreamError, upstreamAvailable } from "../../native/upstream.js";
import {
  ChunkedDecoder,
  HEAD_INCOMPLETE,
  HEAD_MALFORMED,
  MAX_RESPONSE_HEAD,
  parseResponseHead,
  ResponseHead,
  relayedHeader,
} from "../../router/proxy/response-head.js";
import { guardChildren } from "../helpers/children.js";
import { TestClient } from "../native/upstream-client.js";
import { startRawBackend, startRig } from "./harness.js";
import { type Relayed, type ResponseCase, responseCases } from "./response-grammar.js";

guardChildren(t);

/** What a client got: relayed, the router's 502 bad_response, or something else (named). */
type Outcome = Relayed | string;

function check(t: Test, c: ResponseCase, got: Outcome, where: string): void {
  const label = `${where}: ${c.name}`;
  const want = c.expect;
  if (typeof want === "string" || typeof got === "string") {
    t.equal(
      typeof got === "string" ? got : `relayed ${got.status}`,
      want === "bad_response" ? want : `relayed ${want.status}`,
      label,
    );
    return;
  }
  t.equal(got.status, want.status, `${label} (status)`);
  t.equal(got.body, want.body, `${label} (body)`);
  for (const [name, value] of Object.entries(want.headers ?? {}))
    t.equal(got.headers?.[name] ?? null, value, `${label} (${name})`);
}

function addHeader(headers: Record<string, string | null>, name: string, value: string): void {
  const had = headers[name];
  headers[name] = had === undefined || had === null ? value : `${had}, ${value}`;
}

/** The response as the JavaScript client frames it (router/proxy/exchange.ts), all bytes at once. */
function viaJsParser(c: ResponseCase): Outcome {
  const h = new ResponseHead();
  let buf = Buffer.from(c.wire, "latin1");
  for (;;) {
    const n = parseResponseHead(buf, h);
    if (n === HEAD_INCOMPLETE || n === HEAD_MALFORMED || n > MAX_RESPONSE_HEAD) return "bad_response";
    buf = buf.subarray(n);
    if (h.status === 101) return "bad_response";
    if (h.status >= 200) break;
  }
  const headers: Record<string, string | null> = {};
  for (let i = 0; i < h.names.length; i++) {
    const lower = h.lower[i] as string;
    if (relayedHeader(h, lower)) addHeader(headers, lower, h.values[i] as string);
  }
  if (c.head === true || h.status === 204 || h.status === 304) {
    if (c.head === true && h.contentLength >= 0) headers["content-length"] = String(h.contentLength);
    return { status: h.status, body: "", headers };
  }
  let body = "";
  if (h.chunked) {
    const r = new ChunkedDecoder().decode(buf, 0, {
      onBodyPiece: (p: Buffer) => {
        body += p.toString("latin1");
      },
    });
    if (r < 0) return r === -1 ? "cut (chunked body incomplete)" : "bad_response";
  } else if (h.contentLength >= 0) {
    if (buf.length < h.contentLength) return "cut (body shorter than Content-Length)";
    body = buf.toString("latin1", 0, h.contentLength);
  } else body = buf.toString("latin1");
  return { status: h.status, body, headers };
}

t.test("the JavaScript parser", async (t) => {
  for (const c of responseCases) check(t, c, viaJsParser(c), "js parser");
});

/** A raw backend per case: it answers the first request of each connection with the case's bytes and closes. */
async function startBackends(t: Test): Promise<number[]> {
  const ports: number[] = [];
  for (const c of responseCases) {
    const wire = Buffer.from(c.wire, "latin1");
    ports.push(await startRawBackend(t, (s) => s.once("data", () => s.end(wire))));
  }
  return ports;
}

t.test("the native parser", { skip: !upstreamAvailable && "addon not built" }, async (t) => {
  const ports = await startBackends(t);
  const client = new TestClient();
  t.teardown(() => client.up.close());
  for (let i = 0; i < responseCases.length; i++) {
    const c = responseCases[i] as ResponseCase;
    const r = await client.send(
      ports[i] as number,
      `${c.head === true ? "HEAD" : "GET"} / HTTP/1.1\r\nHost: grammar.test\r\n\r\n`,
      { flags: c.head === true ? RequestFlag.HEAD | RequestFlag.END : RequestFlag.END },
    );
    let got: Outcome;
    if (r.error === UpstreamError.BAD_RESPONSE) got = "bad_response";
    else if (r.error !== 0) got = `native error ${r.error}`;
    else {
      const headers: Record<string, string | null> = {};
      const lines = r.head.split("\r\n");
      for (let k = 1; k < lines.length; k++) {
        const line = lines[k] as string;
        const colon = line.indexOf(": ");
        addHeader(headers, line.slice(0, colon).toLowerCase(), line.slice(colon + 2));
      }
      if (c.head === true && r.length >= 0) headers["content-length"] = String(r.length);
      got = { status: r.status, body: r.body.toString("latin1"), headers };
    }
    check(t, c, got, "native parser");
  }
});

/** One request through the router; a cut connection or another router error is named. */
function fetchCase(port: number, host: string, head: boolean): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: head ? "HEAD" : "GET",
        path: "/",
        headers: { host },
        agent: false,
        maxHeaderSize: 256 * 1024,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("error", (e) => resolve(`cut (${e.message})`));
        res.on("end", () => {
          const cause = res.headers["x-kiln-router-error"];
          if (typeof cause === "string") {
            resolve(
              cause === "bad_response" && res.statusCode === 502
                ? cause
                : `router error ${res.statusCode} ${cause}`,
            );
            return;
          }
          const headers: Record<string, string | null> = {};
          for (const [name, value] of Object.entries(res.headers))
            if (typeof value === "string") headers[name] = value;
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("latin1"), headers });
        });
      },
    );
    req.on("error", (e) => resolve(`cut (${e.message})`));
    req.end();
  });
}

const setups: { name: string; args: string[]; native: boolean }[] = [
  { name: "native request path", args: ["--upstream", "auto", "--fast-path", "on"], native: true },
  {
    name: "native client, --fast-path off",
    args: ["--upstream", "auto", "--fast-path", "off"],
    native: true,
  },
  { name: "JavaScript client, --upstream js", args: ["--upstream", "js"], native: false },
];

t.test("through the router", async (t) => {
  const ports = await startBackends(t);
  for (const setup of setups) {
    await t.test(setup.name, { skip: setup.native && !upstreamAvailable && "addon not built" }, async (t) => {
      const rig = await startRig(t, [...setup.args, "--threads", "1"]);
      const listening = rig.router.logs.find((l) => l.event === "router_listening");
      t.equal(listening?.upstream, setup.native ? "native" : "js", "the upstream client of this setup");
      for (let i = 0; i < responseCases.length; i++)
        await rig.register({
          port: ports[i] as number,
          uris: [`r${i}.grammar.test`],
          private_instance_id: `r${i}`,
        });
      for (let i = 0; i < responseCases.length; i++) {
        const c = responseCases[i] as ResponseCase;
        check(t, c, await fetchCase(rig.router.port, `r${i}.grammar.test`, c.head === true), setup.name);
      }
    });
  }
});
