// The instance health check's wait: an app that starts listening late is found healthy within
// one short interval of it, not after a long back-off (the routing delay of every start and
// of every crashed instance's replacement).
import { createServer } from "node:net";
import t from "tap";
import { waitHealthy } from "../../dea/instances/health.js";
import { guardChildren } from "../helpers/children.js";

guardChildren(t);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

t.test("a port that opens late is healthy within about a tenth of a second of opening", async (t) => {
  const port = await freePort();
  const server = createServer((s) => s.destroy());
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  let listeningAt = Number.NaN;
  // 750 ms: a back-off growing to 0.5 s looks at about 620 ms, then at 1120 ms, 370 ms late.
  setTimeout(() => server.listen(port, "127.0.0.1", () => (listeningAt = performance.now())), 750);
  const healthy = await waitHealthy({ type: "port", port, endpoint: "/" }, 10_000, () => false);
  const lateMs = performance.now() - listeningAt;
  t.ok(healthy);
  t.ok(lateMs < 250, `found ${Math.round(lateMs)} ms after it listened`);
});

t.test("false once the timeout passes, or once the instance is gone", async (t) => {
  const port = await freePort();
  t.notOk(await waitHealthy({ type: "port", port, endpoint: "/" }, 300, () => false));
  let gone = false;
  setTimeout(() => (gone = true), 100);
  const started = performance.now();
  t.notOk(await waitHealthy({ type: "port", port, endpoint: "/" }, 10_000, () => gone));
  t.ok(performance.now() - started < 2000, "gone ends the wait");
});
