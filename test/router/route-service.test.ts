// Route services through real routers (native fast path, --fast-path off, --upstream js) on
// one nats-server: a route registered with route_service_url goes to the service first, signed;
// the service calls back through the router, which checks the signature and its age before the
// app sees anything. Without a key such a registration is refused and counted.
import { type IncomingMessage, request, type ServerResponse } from "node:http";
import t from "tap";
import { routeServiceKey, signRouteService } from "../../router/handlers/route-service.js";
import { guardChildren } from "../helpers/children.js";
import { type Backend, send, startBackend, startRig, startRouterProc, statusGet } from "./harness.js";

guardChildren(t);

const SECRET = "route-service-test-secret";
const keyArgs = ["--threads", "1", "--route-service-key", SECRET];
const rig = await startRig(t, keyArgs);
const setups = [{ name: "native fast path", port: rig.router.port, statusPort: rig.router.statusPort }];
for (const [name, extra] of [
  ["--fast-path off", ["--fast-path", "off"]],
  ["--upstream js", ["--upstream", "js"]],
] as const) {
  const r = await startRouterProc(t, rig.nats, [...keyArgs, ...extra]);
  setups.push({ name, port: r.port, statusPort: r.statusPort });
}
const noKey = await startRouterProc(t, rig.nats, ["--threads", "1"]);

const app = await startBackend(t);

/** What a route service saw, per request. */
const serviceSaw: { url: string; headers: IncomingMessage["headers"] }[] = [];

/**
 * A route service: records the request, adds x-rs-added and calls the forwarded URL back
 * through the router named by ?router=<port> (Host from the URL, as a real service does).
 */
function passThrough(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  serviceSaw.push({ url: req.url ?? "", headers: req.headers });
  const routerPort = Number(new URL(req.url ?? "/", "http://x").searchParams.get("router"));
  const fwd = new URL(String(req.headers["x-cf-forwarded-url"]));
  const headers = { ...req.headers, host: fwd.host, "x-rs-added": "yes" };
  delete headers["content-length"];
  const back = request(
    {
      host: "127.0.0.1",
      port: routerPort,
      method: req.method,
      path: `${fwd.pathname}${fwd.search}`,
      headers,
    },
    (r) => {
      res.writeHead(r.statusCode ?? 502, {
        "x-router-error": String(r.headers["x-kiln-router-error"] ?? ""),
      });
      r.pipe(res);
    },
  );
  back.end(body);
}
const passing = await startBackend(t, passThrough);
const refusing = await startBackend(t, (_req, res) => {
  res.writeHead(403, { "content-type": "text/plain" });
  res.end("denied by the route service");
});

function rsUrl(service: Backend, routerPort: number): string {
  return `http://127.0.0.1:${service.port}/auth?router=${routerPort}`;
}

// One pair of hosts per router: the service calls back through the router that sent it.
for (const [i, s] of setups.entries()) {
  await rig.register({ port: app.port, uris: [`pass-${i}.test`], route_service_url: rsUrl(passing, s.port) });
  await rig.register({
    port: app.port,
    uris: [`deny-${i}.test`],
    route_service_url: rsUrl(refusing, s.port),
  });
}

async function routerCounter(statusPort: number, name: string): Promise<number> {
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec((await statusGet(statusPort, "/metrics")).body);
  return Number(m?.[1] ?? -1);
}

for (const [i, s] of setups.entries()) {
  t.test(`${s.name}: a route service that adds a header and calls back`, async (t) => {
    serviceSaw.length = 0;
    app.seen.length = 0;
    const r = await send(s.port, {
      host: `pass-${i}.test:8080`,
      path: "/hello?x=1",
      headers: { "x-custom": "1" },
    });
    t.equal(r.status, 200);
    t.equal(serviceSaw.length, 1, "the service saw the request first");
    const rs = serviceSaw[0] as (typeof serviceSaw)[number];
    t.equal(rs.url, `/auth?router=${s.port}`, "sent to the service's own path");
    t.equal(rs.headers.host, `127.0.0.1:${passing.port}`);
    t.equal(rs.headers["x-cf-forwarded-url"], `http://pass-${i}.test/hello?x=1`);
    t.match(rs.headers["x-cf-proxy-signature"], /^[A-Za-z0-9_-]{40,}=*$/);
    const meta = JSON.parse(Buffer.from(String(rs.headers["x-cf-proxy-metadata"]), "base64url").toString());
    t.equal(Buffer.from(meta.nonce, "base64").length, 12, "metadata carries the nonce, as gorouter's");
    t.equal(rs.headers["x-custom"], "1");
    t.equal(app.seen.length, 1);
    const seen = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
    t.equal(seen.url, "/hello?x=1");
    t.equal(seen.headers["x-rs-added"], "yes", "the app sees what the service added");
    t.notOk("x-cf-proxy-signature" in seen.headers, "signature headers are stripped before the app");
    t.notOk("x-cf-proxy-metadata" in seen.headers);
    t.notOk("x-cf-forwarded-url" in seen.headers);

    const post = await send(s.port, {
      host: `pass-${i}.test`,
      path: "/form",
      method: "POST",
      body: "a=1&b=2",
    });
    t.equal(post.status, 200);
    t.equal((JSON.parse(post.body) as { body: string }).body, "a=1&b=2", "a body goes through both hops");
  });

  t.test(`${s.name}: a route service that refuses`, async (t) => {
    app.seen.length = 0;
    const r = await send(s.port, { host: `deny-${i}.test`, path: "/secret" });
    t.equal(r.status, 403);
    t.equal(r.body, "denied by the route service");
    t.equal(app.seen.length, 0, "the app saw nothing");
  });

  t.test(`${s.name}: bad, forged, stale or other-URL signatures get 400`, async (t) => {
    app.seen.length = 0;
    serviceSaw.length = 0;
    const key = routeServiceKey(SECRET);
    const url = `http://pass-${i}.test/hello`;
    const good = signRouteService(key, url, Date.now());
    const cases: [string, Record<string, string>, string][] = [
      [
        "garbled",
        { "x-cf-proxy-signature": "bm90IGEgc2lnbmF0dXJl", "x-cf-proxy-metadata": "e30" },
        "route_service_signature",
      ],
      [
        "forged with another key",
        (() => {
          const f = signRouteService(routeServiceKey("not-the-key"), url, Date.now());
          return { "x-cf-proxy-signature": f.signature, "x-cf-proxy-metadata": f.metadata };
        })(),
        "route_service_signature",
      ],
      [
        "a flipped byte",
        {
          "x-cf-proxy-signature": `${good.signature.slice(0, 10)}${good.signature[10] === "A" ? "B" : "A"}${good.signature.slice(11)}`,
          "x-cf-proxy-metadata": good.metadata,
        },
        "route_service_signature",
      ],
      [
        "signed for another URL",
        (() => {
          const o = signRouteService(key, `http://pass-${i}.test/other`, Date.now());
          return { "x-cf-proxy-signature": o.signature, "x-cf-proxy-metadata": o.metadata };
        })(),
        "route_service_signature",
      ],
      [
        "signed two minutes ago",
        (() => {
          const o = signRouteService(key, url, Date.now() - 120_000);
          return { "x-cf-proxy-signature": o.signature, "x-cf-proxy-metadata": o.metadata };
        })(),
        "route_service_expired",
      ],
      [
        "signed a minute ahead",
        (() => {
          const o = signRouteService(key, url, Date.now() + 60_000);
          return { "x-cf-proxy-signature": o.signature, "x-cf-proxy-metadata": o.metadata };
        })(),
        "route_service_expired",
      ],
    ];
    for (const [what, headers, cause] of cases) {
      const r = await send(s.port, { host: `pass-${i}.test`, path: "/hello", headers });
      t.equal(r.status, 400, what);
      t.equal(r.headers["x-kiln-router-error"], cause, what);
    }
    t.equal(app.seen.length, 0, "the app saw none of them");
    t.equal(serviceSaw.length, 0, "nor did the service");
    // The same signature, fresh and for this URL, passes: the cases above fail for their fault only.
    const ok = await send(s.port, {
      host: `pass-${i}.test`,
      path: "/hello",
      headers: { "x-cf-proxy-signature": good.signature, "x-cf-proxy-metadata": good.metadata },
    });
    t.equal(ok.status, 200);
    t.equal(app.seen.length, 1);
  });
}

t.test("a route service the router cannot use is refused and counted, never routed to the app", async (t) => {
  app.seen.length = 0;
  const before = await routerCounter(noKey.statusPort, "kiln_router_registry_route_service_refused_total");
  // Registered (and seen by every router) after the routes above: without a key, this router refused them all.
  await rig.register({ port: app.port, uris: ["plain.test"] });
  const listed = JSON.parse((await statusGet(noKey.statusPort, "/routes")).body) as { route: string }[];
  t.same(
    listed.map((r) => r.route).filter((r) => r.startsWith("pass-") || r.startsWith("deny-")),
    [],
    "no route with a service in the keyless router",
  );
  t.ok(before >= setups.length * 2, `keyless router counted its refusals (${before})`);
  const r = await send(noKey.port, { host: "pass-0.test", path: "/" });
  t.equal(r.status, 404);
  t.equal(app.seen.length, 0, "the app was never reached directly");
  t.ok(
    noKey.logs.some(
      (l) => l.event === "route_service_refused" && l.code === "KILN_ROUTER_ROUTE_SERVICE_REFUSED",
    ),
    "logged",
  );

  // With a key, an https service (no TLS to backends) or a host name is refused too.
  const s0 = setups[0] as (typeof setups)[number];
  const keyed = await routerCounter(s0.statusPort, "kiln_router_registry_route_service_refused_total");
  for (const url of ["https://127.0.0.1:9443/", "http://auth.example.com/"]) {
    rig.bus.publish(
      "router.register",
      new TextEncoder().encode(
        JSON.stringify({ host: "127.0.0.1", port: app.port, uris: ["tls-rs.test"], route_service_url: url }),
      ),
    );
  }
  await rig.register({ port: app.port, uris: ["plain2.test"] });
  t.equal(await routerCounter(s0.statusPort, "kiln_router_registry_route_service_refused_total"), keyed + 2);
  t.equal((await send(s0.port, { host: "tls-rs.test", path: "/" })).status, 404);
  t.equal(app.seen.length, 0);
});
