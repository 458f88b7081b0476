// Ports the router cannot have: a coded KILN_ROUTER_LISTEN_FAILED and exit 1, never a stack
// trace, and never a port shared with another router. The workers' sockets use SO_REUSEPORT,
// so without the router's own check a second router (an orphan of a killed kernel, say)
// would silently split the first one's connections.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import t from "tap";
import { kilnBin } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { freePort } from "../helpers/ports.js";
import { startRouterProc, statusGet } from "./harness.js";

guardChildren(t);

/** Runs `kiln router` with `args` to its exit (10 s at most). */
function runRouter(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [kilnBin, "router", "--host", "127.0.0.1", ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", (code) => {
      clearTimeout(kill);
      resolve({ code, stderr });
    });
  });
}

t.test("a status port in use: KILN_ROUTER_LISTEN_FAILED, exit 1, no stack trace", async (t) => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
  t.teardown(() => new Promise<void>((r) => taken.close(() => r())));
  const statusPort = (taken.address() as { port: number }).port;
  const r = await runRouter([
    "--nats",
    "nats://127.0.0.1:1",
    "--port",
    "0",
    "--status-port",
    String(statusPort),
  ]);
  t.equal(r.code, 1);
  t.match(r.stderr, `cannot listen on 127.0.0.1:${statusPort} (status port): listen EADDRINUSE`);
  t.match(r.stderr, /\(KILN_ROUTER_LISTEN_FAILED\)/);
  t.notMatch(r.stderr, /\n\s+at /, "no stack trace");
});

t.test("an HTTP port another router listens on is refused, and that router keeps it", async (t) => {
  const nats = await startTestNats(t);
  const port = await freePort();
  const first = await startRouterProc(t, nats, ["--port", String(port), "--threads", "2"]);
  const r = await runRouter(["--nats", nats.url, "--port", String(port), "--status-port", "0"]);
  t.equal(r.code, 1);
  t.match(r.stderr, `cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`);
  t.match(r.stderr, /\(KILN_ROUTER_LISTEN_FAILED\)/);
  t.equal((await statusGet(first.statusPort, "/health")).status, 200, "the first router still serves");
});
