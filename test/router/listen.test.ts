import { createServer } from "node:net";
import t from "tap";
import { guardChildren, runKilnToExit } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { freePort } from "../helpers/ports.js";
import { startRouterProc, statusGet } from "./harness.js";

guardChildren(t);

/** Runs `kiln router` with `args` to its exit (10 s at most). */
function runRouter(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return runKilnToExit(["router", "--host", "127.0.0.1", ...args]);
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
