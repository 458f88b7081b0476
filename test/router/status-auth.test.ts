import t from "tap";
import { guardChildren, runKilnToExit } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { accepts, otherAddress } from "../helpers/ports.js";
import { send, startRouterProc, statusGet } from "./harness.js";

guardChildren(t);

const user = "kiln-status";
// A colon and a space: the password runs to the end, past any colon (RFC 7617).
const pass = "pa:ss wo:rd";
const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
const good = b64(`${user}:${pass}`);
const credsEnv = { KILN_ROUTER_STATUS_USER: user, KILN_ROUTER_STATUS_PASS: pass };

/** Authorization values that must not open /routes or /metrics. */
const hostile: [string, string | undefined][] = [
  ["no header", undefined],
  ["empty header", ""],
  ["another scheme", "Bearer x"],
  ["another scheme with the right credentials", `Bearer ${good}`],
  ["scheme only", "Basic"],
  ["scheme and nothing", "Basic "],
  ["the credentials in clear", `Basic ${user}:${pass}`],
  ["malformed base64 around the right credentials", `Basic ${good.slice(0, 4)}*${good.slice(4)}`],
  ["the right credentials with trailing junk", `Basic ${good}!!`],
  ["user only", `Basic ${b64(user)}`],
  ["user and an empty password", `Basic ${b64(`${user}:`)}`],
  ["empty user and the password", `Basic ${b64(`:${pass}`)}`],
  ["wrong user", `Basic ${b64(`other:${pass}`)}`],
  ["user in another case", `Basic ${b64(`${user.toUpperCase()}:${pass}`)}`],
  ["wrong password", `Basic ${b64(`${user}:wrong`)}`],
  ["password cut at its first colon", `Basic ${b64(`${user}:pa`)}`],
  ["password cut at its last colon", `Basic ${b64(`${user}:pa:ss wo`)}`],
  ["password with more after it", `Basic ${b64(`${user}:${pass}x`)}`],
  ["user and password swapped", `Basic ${b64(`${pass}:${user}`)}`],
];

/** Authorization values that must open them. */
const accepted: [string, string][] = [
  ["the right credentials", `Basic ${good}`],
  ["the scheme in lower case", `basic ${good}`],
  ["two spaces after the scheme", `Basic  ${good}`],
];

/** Paths other than /health, asked without credentials. */
const guardedPaths = [
  "/routes",
  "/metrics",
  "/routes?format=json",
  "/routes/",
  "//routes",
  "/ROUTES",
  "/health/../routes",
  "/nothing-here",
];

/** A request to the status port with an Authorization header when one is given. */
function ask(port: number, path: string, authorization: string | undefined) {
  return send(port, { path, headers: authorization === undefined ? {} : { authorization } });
}

t.test("the status port binds 127.0.0.1 by default, whatever --host says", async (t) => {
  const nats = await startTestNats(t);
  const router = await startRouterProc(t, nats, ["--host", "0.0.0.0"]);
  const listening = router.logs.find((l) => l.event === "router_listening");
  t.equal(listening?.statusHost, "127.0.0.1", "router_listening names the status host");
  t.equal(listening?.statusAuth, false, "no credentials on loopback: no auth");
  t.equal((await statusGet(router.statusPort, "/routes")).status, 200, "/routes open on loopback");
  const other = otherAddress();
  if (other === undefined) {
    t.pass("the status port is not reachable on another address", {
      skip: "this machine has no non-loopback IPv4 address to try it on",
    });
    return;
  }
  t.ok(await accepts(other, router.port), `the HTTP port (--host 0.0.0.0) answers on ${other}`);
  t.notOk(await accepts(other, router.statusPort), `the status port does not answer on ${other}`);
});

t.test(
  "--status-host 0.0.0.0 with credentials: /health open, every other path behind basic auth",
  async (t) => {
    const nats = await startTestNats(t);
    const router = await startRouterProc(t, nats, ["--status-host", "0.0.0.0"], credsEnv);
    const port = router.statusPort;
    t.equal(router.logs.find((l) => l.event === "router_listening")?.statusAuth, true);

    const other = otherAddress();
    if (other === undefined)
      t.pass("the status port answers off loopback", { skip: "no non-loopback IPv4 address here" });
    else t.ok(await accepts(other, port), `the status port answers on ${other}`);

    const health = await ask(port, "/health", undefined);
    t.equal(health.status, 200, "/health without credentials: 200");
    t.equal((await ask(port, "/health", "Bearer x")).status, 200, "/health with junk credentials: 200");

    for (const path of ["/routes", "/metrics"]) {
      for (const [name, authorization] of hostile) {
        const r = await ask(port, path, authorization);
        t.equal(r.status, 401, `${path}, ${name}: 401`);
        t.equal(r.headers["www-authenticate"], 'Basic realm="kiln-router"', `${path}, ${name}: challenge`);
        t.match(r.body, /KILN_ROUTER_STATUS_UNAUTHORIZED/, `${path}, ${name}: coded body`);
        t.notMatch(r.body, /^\[|# (HELP|TYPE)/, `${path}, ${name}: nothing of the table`);
      }
      for (const [name, authorization] of accepted)
        t.equal((await ask(port, path, authorization)).status, 200, `${path}, ${name}: 200`);
    }
    const routes = await ask(port, "/routes", `Basic ${good}`);
    t.ok(Array.isArray(JSON.parse(routes.body)), "/routes with credentials: the table");
    t.match((await ask(port, "/metrics", `Basic ${good}`)).body, /kiln_router_/, "/metrics: the counters");

    for (const path of guardedPaths)
      t.equal((await ask(port, path, undefined)).status, 401, `${path} without credentials: 401`);
  },
);

t.test("credentials configured on loopback are required there too", async (t) => {
  const nats = await startTestNats(t);
  const router = await startRouterProc(t, nats, [], credsEnv);
  t.equal((await ask(router.statusPort, "/health", undefined)).status, 200);
  t.equal((await ask(router.statusPort, "/routes", undefined)).status, 401);
  t.equal((await ask(router.statusPort, "/routes", `Basic ${b64(`${user}:wrong`)}`)).status, 401);
  t.equal((await ask(router.statusPort, "/routes", `Basic ${good}`)).status, 200);
});

/** Runs `kiln router` with `args` and `env` to its exit, no status settings inherited. */
function runRouter(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const base = { ...process.env };
  for (const k of ["KILN_ROUTER_STATUS_HOST", "KILN_ROUTER_STATUS_USER", "KILN_ROUTER_STATUS_PASS"])
    delete base[k];
  return runKilnToExit(
    ["router", "--nats", "nats://127.0.0.1:1", "--port", "0", "--status-port", "0", ...args],
    { ...base, ...env },
  );
}

t.test("a status port off loopback without full credentials does not start: exit 2, one line", async (t) => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    [
      "--status-host 0.0.0.0, no credentials",
      ["--status-host", "0.0.0.0"],
      {},
      /binds 0\.0\.0\.0, off loopback/,
    ],
    ["--status-host ::, no credentials", ["--status-host", "::"], {}, /binds ::, off loopback/],
    ["a host name, no credentials", ["--status-host", "status.example"], {}, /off loopback/],
    [
      "KILN_ROUTER_STATUS_HOST=0.0.0.0, no credentials",
      [],
      { KILN_ROUTER_STATUS_HOST: "0.0.0.0" },
      /off loopback/,
    ],
    [
      "user only",
      ["--status-host", "0.0.0.0", "--status-user", "u"],
      {},
      /go together; only the user is set/,
    ],
    [
      "password only",
      ["--status-host", "0.0.0.0"],
      { KILN_ROUTER_STATUS_PASS: "p" },
      /go together; only the password is set/,
    ],
    [
      "a colon in the user",
      ["--status-host", "0.0.0.0", "--status-user", "a:b", "--status-pass", "p"],
      {},
      /must not contain a colon/,
    ],
    ["user only on loopback", ["--status-user", "u"], {}, /go together/],
  ];
  for (const [name, args, env, message] of cases) {
    const r = await runRouter(args, env);
    t.equal(r.code, 2, `${name}: exit 2`);
    t.equal(r.stderr.trim().split("\n").length, 1, `${name}: one line`);
    t.match(r.stderr, /\(KILN_ROUTER_CONFIG\)/, `${name}: coded`);
    t.match(r.stderr, message, `${name}: says why`);
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack trace`);
  }
});
