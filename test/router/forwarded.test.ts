// Trusting a load balancer in front (--trusted-proxies): one table of requests, each through
// every request path (native request path, native client from JavaScript, JavaScript client)
// of a router that trusts 127.0.0.0/8 and of one that trusts nobody. X-Forwarded-For is always
// appended to; X-Forwarded-Proto and the client address (hash balancing, access log) come from
// the request only when its peer is trusted.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { forwardedClient, isTrusted, parseTrustedProxies } from "../../router/handlers/forwarded.js";
import { guardChildren } from "../helpers/children.js";
import {
  type RouterProc,
  send,
  sleep,
  startBackend,
  startRig,
  startRouterProc,
  waitForRoute,
} from "./harness.js";

guardChildren(t);

interface Case {
  name: string;
  headers: Record<string, string | string[]>;
  /** What the backend sees and the access log says, from a trusted peer and from another. */
  trusted: { xff: string; xfp: string; client: string };
  untrusted: { xff: string; xfp: string; client: string };
}

const cases: Case[] = [
  {
    name: "no forwarding headers",
    headers: {},
    trusted: { xff: "127.0.0.1", xfp: "http", client: "127.0.0.1" },
    untrusted: { xff: "127.0.0.1", xfp: "http", client: "127.0.0.1" },
  },
  {
    name: "a balancer's X-Forwarded-For and -Proto",
    headers: { "x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https" },
    trusted: { xff: "203.0.113.7, 127.0.0.1", xfp: "https", client: "203.0.113.7" },
    untrusted: { xff: "203.0.113.7, 127.0.0.1", xfp: "http", client: "127.0.0.1" },
  },
  {
    name: "a chain: the last entry is the one the balancer added",
    headers: { "x-forwarded-for": "198.51.100.1, 203.0.113.7" },
    trusted: { xff: "198.51.100.1, 203.0.113.7, 127.0.0.1", xfp: "http", client: "203.0.113.7" },
    untrusted: { xff: "198.51.100.1, 203.0.113.7, 127.0.0.1", xfp: "http", client: "127.0.0.1" },
  },
  {
    name: "two X-Forwarded-For lines are one list",
    headers: { "x-forwarded-for": ["198.51.100.1", "203.0.113.9"] },
    trusted: { xff: "198.51.100.1, 203.0.113.9, 127.0.0.1", xfp: "http", client: "203.0.113.9" },
    untrusted: { xff: "198.51.100.1, 203.0.113.9, 127.0.0.1", xfp: "http", client: "127.0.0.1" },
  },
  {
    name: "X-Forwarded-Proto without X-Forwarded-For",
    headers: { "x-forwarded-proto": "https" },
    trusted: { xff: "127.0.0.1", xfp: "https", client: "127.0.0.1" },
    untrusted: { xff: "127.0.0.1", xfp: "http", client: "127.0.0.1" },
  },
];

const logDir = mkdtempSync(join(tmpdir(), "kiln-forwarded-"));
t.teardown(() => rmSync(logDir, { recursive: true, force: true }));

const setups = [
  ["--fast-path", "on"],
  ["--fast-path", "off"],
  ["--upstream", "js"],
];
const echo = await startBackend(t);
const route = { port: echo.port, uris: ["fwd.test"], app: "app-fwd", private_instance_id: "fwd-0" };
const a = await startBackend(t, (_q, s) => s.end("A"));
const b = await startBackend(t, (_q, s) => s.end("B"));
const options = { loadbalancing: "hash", hash_header: "X-User" };
const hashA = { port: a.port, uris: ["fwd-hash.test"], private_instance_id: "fh-A", options };
const hashB = { port: b.port, uris: ["fwd-hash.test"], private_instance_id: "fh-B", options };

const routers: { name: string; router: RouterProc; trusted: boolean; log: string }[] = [];
const configs = [true, false].flatMap((trusted) => setups.map((args) => ({ trusted, args })));
const routerArgs = configs.map(({ trusted, args }, i) => [
  ...args,
  "--threads",
  "1",
  "--access-log",
  join(logDir, `access-${i}.log`),
  ...(trusted ? ["--trusted-proxies", "10.0.0.0/8,127.0.0.0/8"] : []),
]);
const rig = await startRig(t, routerArgs[0] as string[]);
// The other five start at once: each waits on its own process, not on the others.
const procs = [
  rig.router,
  ...(await Promise.all(routerArgs.slice(1).map((args) => startRouterProc(t, rig.nats, args)))),
];
// A router learns routes from registrations it hears: register once all are up.
for (const r of [route, hashA, hashB]) await rig.register(r);
await Promise.all(
  procs.slice(1).flatMap((p) => [route, hashA, hashB].map((r) => waitForRoute(p.statusPort, r, true))),
);
for (let i = 0; i < configs.length; i++) {
  const { trusted, args } = configs[i] as { trusted: boolean; args: string[] };
  routers.push({
    name: `${trusted ? "trusting" : "not trusting"} 127.0.0.0/8, ${args.join(" ")}`,
    router: procs[i] as RouterProc,
    trusted,
    log: join(logDir, `access-${i}.log`),
  });
}

// Each router has its own access log and hash state, and the backends only echo: three at once.
t.jobs = 3;
for (const { name, router, trusted, log } of routers) {
  t.test(name, async (t) => {
    for (const c of cases) {
      const want = trusted ? c.trusted : c.untrusted;
      const r = await send(router.port, { host: "fwd.test", headers: c.headers });
      t.equal(r.status, 200, c.name);
      const seen = JSON.parse(r.body) as { headers: Record<string, string> };
      t.equal(seen.headers["x-forwarded-for"], want.xff, `${c.name}: X-Forwarded-For`);
      t.equal(seen.headers["x-forwarded-proto"], want.xfp, `${c.name}: X-Forwarded-Proto`);
      const rid = seen.headers["x-vcap-request-id"] as string;
      let line = "";
      for (let i = 0; i < 40 && line === ""; i++) {
        await sleep(50);
        line =
          readFileSync(log, "utf8")
            .split("\n")
            .find((l) => l.includes(rid)) ?? "";
      }
      t.match(
        line,
        new RegExp(` client=${want.client.replaceAll(".", "\\.")}$`),
        `${c.name}: access log client`,
      );
    }

    // Hash balancing without the hash header hashes on the client address.
    const reached = new Set<string>();
    for (let i = 0; i < 24; i++) {
      const first = await send(router.port, {
        host: "fwd-hash.test",
        headers: { "x-forwarded-for": `203.0.113.${i}` },
      });
      const again = await send(router.port, {
        host: "fwd-hash.test",
        headers: { "x-forwarded-for": `198.51.100.1, 203.0.113.${i}` },
      });
      t.equal(again.body, first.body, `client 203.0.113.${i} keeps its instance`);
      reached.add(first.body);
    }
    if (trusted) t.equal(reached.size, 2, "clients behind the balancer spread over both instances");
    else t.equal(reached.size, 1, "an untrusted X-Forwarded-For does not choose the instance");
  });
}

t.test("parsing and matching", async (t) => {
  const nets = parseTrustedProxies(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::ffff:172.16.0.0/108"]);
  const v4 = (s: string): Uint8Array => new Uint8Array(s.split(".").map(Number));
  const mapped = (s: string): Uint8Array =>
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...v4(s)]);
  t.ok(isTrusted(nets, v4("10.200.0.1")));
  t.notOk(isTrusted(nets, v4("11.0.0.1")));
  t.ok(isTrusted(nets, v4("192.168.1.7")));
  t.notOk(isTrusted(nets, v4("192.168.1.8")));
  t.ok(isTrusted(nets, mapped("10.1.2.3")), "an IPv4-mapped peer matches IPv4 networks");
  t.ok(isTrusted(nets, v4("172.16.9.9")), "an IPv4-mapped network matches IPv4 peers");
  t.notOk(isTrusted(nets, v4("172.32.0.1")));
  t.ok(isTrusted(nets, new Uint8Array([0x20, 0x01, 0x0d, 0xb8, ...new Array(12).fill(1)])));
  t.notOk(isTrusted(nets, new Uint8Array([0x20, 0x01, 0x0d, 0xb9, ...new Array(12).fill(1)])));
  t.notOk(isTrusted([], v4("10.0.0.1")), "nobody is trusted by default");
  for (const bad of ["10.0.0.0/33", "10.0.0/8", "example.com", "10.0.0.0/", "10.0.0.0/x", "::1/129"])
    t.throws(() => parseTrustedProxies([bad]), { code: "KILN_ROUTER_CONFIG" }, bad);
  t.equal(forwardedClient("", "127.0.0.1"), "127.0.0.1");
  t.equal(forwardedClient("1.1.1.1, 2.2.2.2", "127.0.0.1"), "2.2.2.2");
  t.equal(forwardedClient("1.1.1.1, ", "127.0.0.1"), "127.0.0.1", "an empty last entry is no client");
});
