// Worker threads: one per core unless --threads says otherwise, run under the configured
// Linux scheduling policy: the kernel's own view (/proc/<pid>/task/<tid>/stat, field 41)
// is checked, not what the router says of itself.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import t from "tap";
import { kilnBin } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats } from "../helpers/nats.js";
import { startRouterProc } from "./harness.js";

guardChildren(t);

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

/** Policy of every thread of `pid`. */
function policies(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may hold spaces.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(rest[41 - 3]);
  });
}

const linux = process.platform === "linux";

t.test(
  "--scheduling batch: each worker thread, and only they, run SCHED_BATCH",
  { skip: !linux && "Linux only" },
  async (t) => {
    const nats = await startTestNats(t);
    const r = await startRouterProc(t, nats, ["--threads", "2", "--scheduling", "batch"]);
    const p = policies(r.child.pid ?? 0);
    t.equal(p.filter((x) => x === SCHED_BATCH).length, 2, `two batch threads among ${p.join(",")}`);
    t.equal(p.filter((x) => x !== SCHED_BATCH && x !== SCHED_OTHER).length, 0, "no other policy");
    const listening = r.logs.find((l) => l.event === "router_listening");
    t.equal(listening?.scheduling, "batch", "router_listening reports it");
    t.notOk(
      r.logs.some((l) => l.event === "scheduling_not_applied"),
      "no scheduling_not_applied warning",
    );
  },
);

t.test("without --threads the router runs one worker thread per core", async (t) => {
  const nats = await startTestNats(t);
  const r = await startRouterProc(t, nats, [], { KILN_ROUTER_THREADS: "" });
  const listening = r.logs.find((l) => l.event === "router_listening");
  t.equal(listening?.threads, availableParallelism(), "router_listening reports os.availableParallelism()");
});

t.test("by default every thread stays SCHED_OTHER", { skip: !linux && "Linux only" }, async (t) => {
  const nats = await startTestNats(t);
  const r = await startRouterProc(t, nats, ["--threads", "2"]);
  const p = policies(r.child.pid ?? 0);
  t.same(
    p.filter((x) => x !== SCHED_OTHER),
    [],
    `all ${p.length} threads SCHED_OTHER`,
  );
  t.equal(r.logs.find((l) => l.event === "router_listening")?.scheduling, "normal");
});

t.test("without the addon: the default asks nothing, batch is reported as not applied", async (t) => {
  const nats = await startTestNats(t);
  const plain = await startRouterProc(t, nats, ["--threads", "1"], { KILN_NATIVE: "0" });
  t.notOk(
    plain.logs.some((l) => l.event === "scheduling_not_applied"),
    "no warning for the default",
  );
  const batch = await startRouterProc(t, nats, ["--threads", "1", "--scheduling", "batch"], {
    KILN_NATIVE: "0",
  });
  t.match(
    batch.logs.find((l) => l.event === "scheduling_not_applied"),
    { scheduling: "batch", reason: "needs the built addon" },
    "a warning that says why",
  );
});

t.test("an unknown policy is a coded config error (exit 2)", async (t) => {
  const r = spawnSync(process.execPath, [kilnBin, "router", "--scheduling", "fifo"], { encoding: "utf8" });
  t.equal(r.status, 2);
  t.match(r.stderr, /KILN_ROUTER_CONFIG/);
  t.match(r.stderr, /--scheduling must be batch or normal, got "fifo"/);
});
