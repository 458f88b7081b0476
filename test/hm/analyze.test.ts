// The drift analysis and the crash policy, rule by rule: each row is desired apps × actual
// instances × now and the requests that must come out.
import t from "tap";
import { type AnalysisInput, analyze, type DesiredApp, holdKey } from "../../hm/analyze.js";
import { BACKOFF_CAP_MS, CrashHistory } from "../../hm/crashes.js";
import type { HmRequest, InstanceState } from "../../messaging/codec.js";

const NOW = 1_000_000;
const GRACE = 30_000;
const app = (o: Partial<DesiredApp> = {}): DesiredApp => ({
  guid: "a",
  name: "a",
  space: "s",
  state: "STARTED",
  instances: 2,
  version: "v2",
  hasDroplet: true,
  changedAt: NOW - 60_000,
  ...o,
});
const inst = (index: number, version = "v2", state: InstanceState = "RUNNING") => ({ index, version, state });

interface Row {
  name: string;
  apps?: DesiredApp[];
  actual?: Record<string, ReturnType<typeof inst>[]>;
  holds?: Record<string, number>;
  deleted?: Record<string, number>;
  want: HmRequest[];
}

const rows: Row[] = [
  { name: "all running: nothing", apps: [app()], actual: { a: [inst(0), inst(1)] }, want: [] },
  {
    name: "missing index: START it at the app's version",
    apps: [app()],
    actual: { a: [inst(0)] },
    want: [{ op: "START", app: "a", indices: [1], version: "v2" }],
  },
  {
    name: "nothing reported (lost): START every index",
    apps: [app()],
    want: [{ op: "START", app: "a", indices: [0, 1], version: "v2" }],
  },
  {
    name: "a crashed instance does not count as running",
    apps: [app()],
    actual: { a: [inst(0), inst(1, "v2", "CRASHED")] },
    want: [{ op: "START", app: "a", indices: [1], version: "v2" }],
  },
  {
    name: "a START within its grace is not repeated",
    apps: [app()],
    actual: { a: [inst(0)] },
    holds: { [holdKey("a", 1)]: NOW + 1 },
    want: [],
  },
  {
    name: "a hold that has passed no longer holds",
    apps: [app()],
    actual: { a: [inst(0)] },
    holds: { [holdKey("a", 1)]: NOW },
    want: [{ op: "START", app: "a", indices: [1], version: "v2" }],
  },
  {
    name: "extra index: STOP it",
    apps: [app({ instances: 1 })],
    actual: { a: [inst(0), inst(1)] },
    want: [{ op: "STOP", app: "a", indices: [1], version: "v2" }],
  },
  {
    name: "scaled down moments ago: the controller stops the extra, not the HM",
    apps: [app({ instances: 1, changedAt: NOW - 1_000 })],
    actual: { a: [inst(0), inst(1)] },
    want: [],
  },
  {
    name: "old version: STOP it and START the index at the new version",
    apps: [app({ instances: 1 })],
    actual: { a: [inst(0, "v1")] },
    want: [
      { op: "STOP", app: "a", indices: [0], version: "v1" },
      { op: "START", app: "a", indices: [0], version: "v2" },
    ],
  },
  {
    name: "STOPPED app: STOP what runs, START nothing",
    apps: [app({ state: "STOPPED" })],
    actual: { a: [inst(0), inst(1)] },
    want: [{ op: "STOP", app: "a", indices: [0, 1], version: "v2" }],
  },
  { name: "no droplet yet: nothing is missing", apps: [app({ hasDroplet: false })], want: [] },
  {
    name: "deleted app: STOP what still runs once settled",
    actual: { a: [inst(0)] },
    deleted: { a: NOW - GRACE },
    want: [{ op: "STOP", app: "a", indices: [0], version: "v2" }],
  },
  {
    name: "deleted moments ago: left to the controller",
    actual: { a: [inst(0)] },
    deleted: { a: NOW - 1 },
    want: [],
  },
  { name: "unknown app (not known deleted): left alone", actual: { x: [inst(0)] }, want: [] },
  {
    name: "instances already stopping are not stopped again",
    apps: [app({ instances: 1 })],
    actual: { a: [inst(0), inst(1, "v2", "STOPPING")] },
    want: [],
  },
];

for (const r of rows) {
  t.test(r.name, async (t) => {
    const input: AnalysisInput = {
      apps: new Map((r.apps ?? []).map((a) => [a.guid, a])),
      deleted: new Map(Object.entries(r.deleted ?? {})),
      actual: new Map(Object.entries(r.actual ?? {})),
      holdUntil: new Map(Object.entries(r.holds ?? {})),
      now: NOW,
      graceMs: GRACE,
    };
    t.same(analyze(input), r.want);
  });
}

t.test("crash policy: 3 immediate restarts, then 30 s × 2ⁿ capped at 16 min", async (t) => {
  const h = new CrashHistory();
  const delays: number[] = [];
  let now = 0;
  for (let i = 0; i < 10; i++) {
    now += 60_000;
    delays.push(h.crash("a/0", now).restartAt - now);
  }
  t.same(delays, [0, 0, 0, 30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 960_000]);
  t.equal(Math.max(...delays), BACKOFF_CAP_MS);
  // A crash-free stretch longer than the cap forgets the history.
  t.equal(h.crash("a/0", now + BACKOFF_CAP_MS + 1).restartAt, now + BACKOFF_CAP_MS + 1);
});

t.test("crash policy: 3 crashes in 180 s is FLAPPING, reported once; slower crashes are not", async (t) => {
  const h = new CrashHistory();
  t.notOk(h.crash("a/0", 0).flapping);
  t.notOk(h.crash("a/0", 100_000).flapping);
  const third = h.crash("a/0", 179_000);
  t.ok(third.flapping);
  t.ok(third.becameFlapping);
  const fourth = h.crash("a/0", 180_000);
  t.ok(fourth.flapping);
  t.notOk(fourth.becameFlapping);
  const slow = new CrashHistory();
  for (const at of [0, 100_000, 200_000, 300_000]) t.notOk(slow.crash("b/0", at).flapping);
});
