// Worker threads: one per core unless --threads says otherwise, run under the configured
// Linux scheduling policy and slice: the kernel's own view (/proc/<pid>/task/<tid>/stat,
// field 41, and the se.slice line of /proc/<pid>/task/<tid>/sched) is checked, not what the
// router says of itself.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { availableParallelism, release } from "node:os";
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

/** Nice value of every thread of `pid`. */
function nices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19 - 3]);
  });
}

/** Slice in ns of every thread of `pid`, from the scheduler's debug view. */
function slices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const m = /^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/sched`, "utf8"));
    return m === null ? -1 : Number(m[1]);
  });
}

// One nats-server for the file; each subtest starts its own routers, and up to three
// subtests run at once (each waits on its own processes).
const nats = await startTestNats(t);
t.jobs = 3;

/** Runs `kiln ARGS` to its end without blocking the other subtests. */
function kiln(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [kilnBin, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("close", (status) => resolve({ status, stderr }));
  });
}

const linux = process.platform === "linux";
// Per-thread slices came with EEVDF in Linux 6.12; the debug view needs CONFIG_SCHED_DEBUG.
const [major = 0, minor = 0] = release()
  .split(".")
  .map((x) => Number.parseInt(x, 10));
const sliceKernel =
  linux &&
  (major > 6 || (major === 6 && minor >= 12)) &&
  existsSync("/proc/self/sched") &&
  readFileSync("/proc/self/sched", "utf8").includes("se.slice");
const noSlice = !sliceKernel && "needs Linux 6.12 or later with /proc/<pid>/sched";

t.test(
  "by default each worker thread, and only they, ask for a 100 µs slice",
  { skip: noSlice },
  async (t) => {
    const r = await startRouterProc(t, nats, ["--threads", "2"]);
    const s = slices(r.child.pid ?? 0);
    t.equal(s.filter((x) => x === 100_000).length, 2, `two 100 µs threads among ${s.join(",")}`);
    t.ok(s.length > 2 && s.every((x) => x > 0), "every other thread keeps a slice of its own");
    const listening = r.logs.find((l) => l.event === "router_listening");
    t.equal(listening?.sliceUs, 100, "router_listening reports it");
    t.notOk(
      r.logs.some((l) => l.event === "scheduling_not_applied"),
      "no scheduling_not_applied warning",
    );
  },
);

t.test(
  "--slice-us sets the workers' slice; 0 keeps the one they start with",
  { skip: noSlice },
  async (t) => {
    const own = await startRouterProc(t, nats, ["--threads", "2", "--slice-us", "2500"]);
    const s = slices(own.child.pid ?? 0);
    t.equal(s.filter((x) => x === 2_500_000).length, 2, `two 2.5 ms threads among ${s.join(",")}`);
    t.equal(own.logs.find((l) => l.event === "router_listening")?.sliceUs, 2500);
    // With 0 every thread keeps the slice the router started with (the test runner's).
    const kernel = await startRouterProc(t, nats, ["--threads", "2", "--slice-us", "0"], {
      KILN_ROUTER_SLICE_US: "300",
    });
    const k = slices(kernel.child.pid ?? 0);
    t.same(new Set(k).size, 1, `one slice on every thread: ${k.join(",")}`);
    t.equal(kernel.logs.find((l) => l.event === "router_listening")?.sliceUs, (k[0] ?? 0) / 1000);
  },
);

t.test(
  "--scheduling batch keeps the slice, and the slice keeps the nice value",
  { skip: noSlice },
  async (t) => {
    const r = await startRouterProc(
      t,
      nats,
      ["--threads", "2", "--scheduling", "batch", "--slice-us", "200"],
      {},
      5,
    );
    const pid = r.child.pid ?? 0;
    const p = policies(pid);
    const s = slices(pid);
    const batch = p.flatMap((x, i) => (x === SCHED_BATCH ? [s[i]] : []));
    t.same(batch, [200_000, 200_000], "both batch threads run 200 µs slices");
    t.same(new Set(nices(pid)), new Set([5]), "every thread keeps nice 5");
  },
);

t.test("a slice the kernel would clamp is a coded config error (exit 2)", async (t) => {
  const runs = [
    [["--slice-us", "50"], {}],
    [["--slice-us", "100001"], {}],
    [["--slice-us", "1.5"], {}],
    [[], { KILN_ROUTER_SLICE_US: "x" }],
  ] as [string[], Record<string, string>][];
  const results = await Promise.all(runs.map(([args, env]) => kiln(["router", ...args], env)));
  for (const [i, [args, env]] of runs.entries()) {
    const r = results[i] as { status: number | null; stderr: string };
    t.equal(r.status, 2, `${args.join(" ")} ${JSON.stringify(env)}`);
    t.match(r.stderr, /KILN_ROUTER_CONFIG/);
    t.match(r.stderr, /must be 0 or an integer from 100 to 100000/);
  }
});

t.test(
  "--scheduling batch: each worker thread, and only they, run SCHED_BATCH",
  { skip: !linux && "Linux only" },
  async (t) => {
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
  const r = await startRouterProc(t, nats, [], { KILN_ROUTER_THREADS: "" });
  const listening = r.logs.find((l) => l.event === "router_listening");
  t.equal(listening?.threads, availableParallelism(), "router_listening reports os.availableParallelism()");
});

t.test("by default every thread stays SCHED_OTHER", { skip: !linux && "Linux only" }, async (t) => {
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
  const r = await kiln(["router", "--scheduling", "fifo"]);
  t.equal(r.status, 2);
  t.match(r.stderr, /KILN_ROUTER_CONFIG/);
  t.match(r.stderr, /--scheduling must be batch or normal, got "fifo"/);
});
