// The request smuggling table (smuggling.ts) through every request path: a router with the
// native request path (bodiless requests stay in C++), one with the native client driven
// from JavaScript (--fast-path off), one with the JavaScript client (--upstream js); WebSocket
// upgrades on all three. The backend is a raw lenient reader that records every byte.
import { createHash } from "node:crypto";
import { connect, type Socket } from "node:net";
import t, { type Test } from "tap";
import { guardChildren } from "../helpers/children.js";
import {
  type RouterProc,
  sleep,
  startRawBackend,
  startRig,
  startRouterProc,
  waitForRoute,
} from "./harness.js";
import { type SmugglingCase, smugglingCases, upgradeCases } from "./smuggling.js";

guardChildren(t);

interface Seen {
  method: string;
  target: string;
  headers: Map<string, string[]>;
  body: string;
}

/**
 * A backend that reads like a lenient server: the head ends at the first blank line,
 * Transfer-Encoding containing "chunked" wins, else the first Content-Length, else no body.
 * Each request it reads is recorded and answered "ok"; an upgrade is answered 101.
 */
class LenientBackend {
  seen: Seen[] = [];
  bytes = 0;
  port = 0;

  async start(tt: Test): Promise<void> {
    this.port = await startRawBackend(tt, (s) => this.serve(s));
  }

  reset(): void {
    this.seen = [];
    this.bytes = 0;
  }

  private serve(s: Socket): void {
    let buf = "";
    let upgraded = false;
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      this.bytes += d.length;
      if (upgraded) return;
      buf += d;
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const lines = buf.slice(0, end).split("\r\n");
        const [method = "", target = ""] = (lines[0] ?? "").split(" ");
        const headers = new Map<string, string[]>();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(":");
          const name = line.slice(0, colon).trim().toLowerCase();
          headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
        }
        let rest = buf.slice(end + 4);
        let body = "";
        const te = (headers.get("transfer-encoding") ?? []).join(",").toLowerCase();
        if (te.includes("chunked")) {
          for (;;) {
            const nl = rest.indexOf("\r\n");
            if (nl < 0) return;
            const size = Number.parseInt(rest.slice(0, nl), 16);
            if (size === 0) {
              const fin = rest.indexOf("\r\n\r\n", Math.max(nl - 2, 0));
              if (fin < 0) return;
              rest = rest.slice(fin + 4);
              break;
            }
            if (rest.length < nl + 2 + size + 2) return;
            body += rest.slice(nl + 2, nl + 2 + size);
            rest = rest.slice(nl + 2 + size + 2);
          }
        } else {
          const cl = Number.parseInt((headers.get("content-length") ?? ["0"])[0] ?? "0", 10) || 0;
          if (rest.length < cl) return;
          body = rest.slice(0, cl);
          rest = rest.slice(cl);
        }
        buf = rest;
        this.seen.push({ method, target, headers, body });
        if ((headers.get("upgrade") ?? [])[0]?.toLowerCase() === "websocket") {
          const key = (headers.get("sec-websocket-key") ?? [""])[0] ?? "";
          const accept = createHash("sha1")
            .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
            .digest("base64");
          s.write(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
          );
          upgraded = true;
          return;
        }
        s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      }
    });
  }
}

/** Sends `raw` on a new connection; resolves with what came back and whether the router closed. */
function exchange(port: number, raw: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1", () => s.write(Buffer.from(raw, "latin1")));
    let text = "";
    let closed = false;
    let idle: NodeJS.Timeout | null = null;
    const done = (): void => {
      if (idle !== null) clearTimeout(idle);
      clearTimeout(limit);
      s.destroy();
      resolve({ text, closed });
    };
    const limit = setTimeout(done, 2000);
    s.setEncoding("latin1");
    s.on("error", () => {});
    s.on("data", (d: string) => {
      text += d;
      // A whole answer is in: wait a little for anything that should not come.
      if (/\r\n\r\n(ok)?$/.test(text)) {
        if (idle !== null) clearTimeout(idle);
        idle = setTimeout(done, 150);
      }
    });
    s.on("end", () => {
      closed = true;
      done();
    });
    s.on("close", () => {
      closed = true;
      done();
    });
  });
}

async function runCase(
  tt: Test,
  router: RouterProc,
  backend: LenientBackend,
  host: string,
  instance: string,
  c: SmugglingCase,
): Promise<void> {
  backend.reset();
  const raw = c.raw.replaceAll("HOST", host);
  const r = await exchange(router.port, raw);
  await sleep(50);
  const responses = r.text.match(/HTTP\/1\.[01] \d{3}/g) ?? [];
  if (c.expect.accept) {
    const upgrade = /upgrade: websocket/i.test(raw);
    tt.match(r.text, upgrade ? /^HTTP\/1\.1 101 / : /^HTTP\/1\.[01] 200 /, `${c.name}: answered`);
    tt.equal(responses.length, 1, `${c.name}: one answer`);
    tt.equal(backend.seen.length, 1, `${c.name}: the backend saw one request`);
    const seen = backend.seen[0];
    if (seen === undefined) return;
    tt.equal(seen.body, c.expect.body.replaceAll("HOST", host), `${c.name}: body`);
    if (c.expect.method !== undefined) tt.equal(seen.method, c.expect.method, `${c.name}: method`);
    for (const [name, want] of Object.entries(c.expect.headers ?? {})) {
      const got = seen.headers.get(name);
      if (want === "(absent)") tt.equal(got, undefined, `${c.name}: no ${name}`);
      else
        tt.same(got, [want.replaceAll("HOST", host).replaceAll("INSTANCE", instance)], `${c.name}: ${name}`);
    }
    // Whatever the client sent, the framing upstream is one header the router wrote.
    const framing =
      (seen.headers.get("content-length")?.length ?? 0) +
      (seen.headers.get("transfer-encoding")?.length ?? 0);
    tt.ok(framing <= 1, `${c.name}: one framing header upstream`);
  } else {
    tt.match(r.text, /^HTTP\/1\.1 400 /, `${c.name}: 400`);
    tt.equal(responses.length, 1, `${c.name}: nothing answered after the 400`);
    tt.ok(r.closed, `${c.name}: connection closed`);
    tt.equal(backend.bytes, 0, `${c.name}: no byte reached the backend`);
  }
}

const setups: { name: string; args: string[] }[] = [
  { name: "native request path", args: ["--fast-path", "on"] },
  { name: "native client from JavaScript", args: ["--fast-path", "off"] },
  { name: "JavaScript client", args: ["--upstream", "js"] },
];

const rig = await startRig(t, ["--threads", "1", ...(setups[0] as { args: string[] }).args]);
// The other two start at once: each waits on its own process, not on the other.
const routers: RouterProc[] = [
  rig.router,
  ...(await Promise.all(
    setups.slice(1).map((s) => startRouterProc(t, rig.nats, ["--threads", "1", ...s.args])),
  )),
];
// Each request path has a backend and a host of its own, so the three run at once.
const backends = setups.map(() => new LenientBackend());
const routes = await Promise.all(
  backends.map(async (backend, i) => {
    await backend.start(t);
    return {
      port: backend.port,
      uris: [`smuggle-${i}.test`],
      // The table expects this one in X-CF-ApplicationID.
      app: "app-smuggle",
      private_instance_id: `smuggle-${i}`,
      private_instance_index: "0",
    };
  }),
);
for (const route of routes) await rig.register(route);
await Promise.all(
  routers.slice(1).flatMap((r) => routes.map((route) => waitForRoute(r.statusPort, route, true))),
);

t.jobs = setups.length;
for (let i = 0; i < setups.length; i++) {
  const setup = setups[i] as { name: string };
  const router = routers[i] as RouterProc;
  const backend = backends[i] as LenientBackend;
  const host = `smuggle-${i}.test`;
  t.test(setup.name, async (tt) => {
    for (const c of smugglingCases) await runCase(tt, router, backend, host, `smuggle-${i}`, c);
    for (const c of upgradeCases) await runCase(tt, router, backend, host, `smuggle-${i}`, c);
    // The router keeps serving.
    await runCase(tt, router, backend, host, `smuggle-${i}`, smugglingCases[0] as SmugglingCase);
    tt.equal(router.child.exitCode, null, "the router is still running");
  });
}

t.test("the table covers the issue's cases", async (tt) => {
  tt.ok(smugglingCases.length >= 30, `${smugglingCases.length} request cases`);
  tt.ok(smugglingCases.some((c) => !c.expect.accept) && smugglingCases.some((c) => c.expect.accept));
});
