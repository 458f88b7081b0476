// The pure parts of the self-healing bench: which instance each kill hits so every kill meets
// the Health Manager's immediate restart, `kiln bench --json`'s failures, and the summary.
import t from "tap";
import { killPlan, killsPerApp, loadFailures, sumFailures, summarizeRecovery } from "../../bench/lib/heal.js";
import { percentile } from "../../bench/lib/stats.js";
import { FLAPPING_CRASHES, IMMEDIATE_RESTARTS } from "../../hm/crashes.js";

t.test("no index of an app is killed as often as the crash policy would notice", async (t) => {
  t.equal(killsPerApp(2), 4, "2 per index with the defaults");
  const plan = killPlan(20, 2);
  t.equal(plan.length, 20);
  t.equal(new Set(plan.map((k) => k.app)).size, 5);
  const perIndex = new Map<string, number>();
  for (const k of plan) perIndex.set(`${k.app}/${k.index}`, (perIndex.get(`${k.app}/${k.index}`) ?? 0) + 1);
  for (const [key, n] of perIndex) {
    t.ok(n <= IMMEDIATE_RESTARTS, `${key}: every crash restarts at once`);
    t.ok(n < FLAPPING_CRASHES, `${key}: never FLAPPING`);
  }
  t.same(
    plan.slice(0, 5).map((k) => k.index),
    [0, 1, 0, 1, 0],
    "indexes alternate",
  );
});

const benchJson = (errors: object, requests = 1000) =>
  `${JSON.stringify({ settings: {}, target: { name: "a", summary: { requests, errors } } }, null, 2)}\n`;

t.test("failures of a kiln bench --json result", async (t) => {
  const f = loadFailures(
    benchJson({
      total: 5,
      non_2xx: { "1xx": 0, "3xx": 0, "4xx": 0, "5xx": 3 },
      status_codes: { "502": 3 },
      timeouts: 0,
      connection: { ECONNRESET: 2 },
    }),
  );
  t.same(f, {
    requests: 1000,
    failed: 5,
    non2xx: 3,
    timeouts: 0,
    connection: { ECONNRESET: 2 },
    statusCodes: { "502": 3 },
  });
  const sum = sumFailures([f, f]);
  t.equal(sum.failed, 10);
  t.same(sum.connection, { ECONNRESET: 4 });
  t.same(sum.statusCodes, { "502": 6 });
  t.throws(() => loadFailures("Interrupted\n"), { code: "KILN_BENCH_LOAD_FAILED" });
  t.throws(() => loadFailures('{"settings":{}}'), { code: "KILN_BENCH_LOAD_FAILED" });
});

t.test("kill → replacement summary", async (t) => {
  const s = summarizeRecovery([900, 1200, 800, 1000, 5000], 1000);
  t.equal(s.p50Ms, 1000);
  t.equal(s.p90Ms, 5000, "nearest rank");
  t.equal(s.minMs, 800);
  t.equal(s.maxMs, 5000);
  t.equal(s.ratio, 1);
  t.ok(s.pass, "p50 at the target passes");
  t.notOk(summarizeRecovery([1001], 1000).pass);
  t.ok(Number.isNaN(percentile([], 0.9)), "NaN when empty");
  t.equal(percentile([3, 1, 2], 0.5), 2);
  t.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), 9);
});
