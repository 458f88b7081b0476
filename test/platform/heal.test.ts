// Self-healing end to end, as a user runs the kernel: `kiln up --deas 2` in a temp dir, the
// quickstart's examples/node-hello pushed from its folder, and every failure made for real
// (kill -9 of an instance, of a DEA, of the Health Manager leader, a crash-looping app, the
// whole kernel stopped and started again) while clients send requests through the router.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { join } from "node:path";
import t from "tap";
import { Runc } from "../../dea/container/runc.js";
import { kilnBin, projectRoot } from "../../kernel/paths.js";
import { descendants, guardChildren } from "../helpers/children.js";
import { startPlatform } from "../helpers/platform.js";
import { until } from "../helpers/until.js";

guardChildren(t);
t.setTimeout(300_000);
// Heartbeats every second, so a silent DEA is lost after 3 s; a short lease and grace so the
// cases below take seconds, not the production minutes.
const LEASE_MS = 2_000;
const hmEnv = {
  KILN_HM_LEASE_MS: String(LEASE_MS),
  KILN_HM_ANALYSIS_MS: "1000",
  KILN_HM_GRACE_MS: "10000",
};
const platform = await startPlatform(t, {
  args: ["--deas", "2"],
  env: { KILN_DEA_HEARTBEAT_INTERVAL_MS: "1000", ...hmEnv },
});
const { base, ports, succeeds, viaRouter, appView } = platform;
const home = join(base, "home");

interface Instance {
  /** The runc root of the DEA running it. */
  root: string;
  pid: number;
  guid: string;
  index: string;
}

/** The running instances of `app`, found in the DEAs' containers by their environment. */
async function instancesOf(app: string): Promise<Instance[]> {
  const out: Instance[] = [];
  for (const root of platform.containerRoots()) {
    for (const c of await new Runc({ root }).list().catch(() => [])) {
      if (c.status !== "running" || c.pid <= 0) continue;
      let environ = "";
      try {
        environ = readFileSync(`/proc/${c.pid}/environ`, "utf8");
      } catch {
        continue;
      }
      const vars = new Map(
        environ
          .split("\0")
          .filter((kv) => kv.includes("="))
          .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
      );
      const guid = vars.get("CF_INSTANCE_GUID");
      const vcap = JSON.parse(vars.get("VCAP_APPLICATION") ?? "{}") as { application_name?: string };
      if (guid !== undefined && vcap.application_name === app)
        out.push({ root, pid: c.pid, guid, index: vars.get("CF_INSTANCE_INDEX") ?? "" });
    }
  }
  return out;
}

interface LoadResult {
  ok: number;
  failed: number;
  /** The first few failures, for the diagnostics. */
  failures: string[];
  /** When each instance guid (x-instance-guid) first answered. */
  firstSeen: Map<string, number>;
}

/**
 * Clients sending GETs to `host` through the router without pause, each on its keep-alive
 * connection, until stopped.
 */
function load(host: string, clients = 4): { result: LoadResult; stop(): Promise<LoadResult> } {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const result: LoadResult = { ok: 0, failed: 0, failures: [], firstSeen: new Map() };
  let running = true;
  const fail = (why: string) => {
    result.failed++;
    if (result.failures.length < 10) result.failures.push(why);
  };
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: ports.router,
          path: "/",
          agent,
          timeout: 10_000,
          headers: { host: `${host}.localhost:${ports.router}` },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            const guid = res.headers["x-instance-guid"];
            if (res.statusCode === 200 && typeof guid === "string") {
              result.ok++;
              if (!result.firstSeen.has(guid)) result.firstSeen.set(guid, Date.now());
            } else fail(`status ${res.statusCode}`);
            resolve();
          });
          res.on("error", (err) => {
            fail(err.message);
            resolve();
          });
        },
      );
      req.on("error", (err) => {
        fail(err.message);
        resolve();
      });
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.end();
    });
  const loops = Array.from({ length: clients }, async () => {
    while (running) await one();
  });
  return {
    result,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return result;
    },
  };
}

/** The instance indexes `kiln app NAME --json` shows RUNNING, sorted. */
async function runningIndexes(app: string): Promise<number[]> {
  const v = await appView(home, app);
  return v.instances
    .filter((i) => i.state === "RUNNING")
    .map((i) => i.index)
    .sort();
}

/** Waits until `app` has exactly the `want` instances RUNNING, by the controller and by its containers. */
async function settled(app: string, want: number, ms = 30_000): Promise<Instance[]> {
  return until(
    `${want} RUNNING instances of ${app}`,
    async () => {
      const [shown, live] = await Promise.all([runningIndexes(app), instancesOf(app)]);
      return shown.length === want && live.length === want ? live : undefined;
    },
    ms,
    200,
  );
}

/** The pid of the kernel's component whose command line matches `re`. */
function componentPid(re: RegExp): number | undefined {
  return descendants(platform.kernel().up.pid).find((p) => re.test(p.command))?.pid;
}

if (platform.deaUnable !== null) {
  await platform.stop();
  t.plan(0, `kiln up left the DEA out, nothing can run apps here: ${platform.deaUnable}`);
} else {
  t.test("login, push examples/node-hello from its folder, GET → 200, scale to 3 → 3 indexes", async (t) => {
    await platform.loginAdmin(t, home);
    await succeeds(t, home, ["create-space", "dev"]);
    await succeeds(t, home, ["target", "-s", "dev"]);
    // As the README says: in the app's folder, `kiln push` reads its manifest.yml.
    const push = await succeeds(t, home, ["push"], { cwd: join(projectRoot, "examples/node-hello") });
    t.match(push.stdout, "hello is running\n");
    t.equal(await platform.answer("hello"), "Hello from Kiln (instance 0)\n");
    await succeeds(t, home, ["scale", "hello", "-i", "3"]);
    await settled("hello", 3);
    const seen = await until("indexes 0, 1 and 2 through the router", async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 30 && seen.size < 3; i++) {
        const r = await viaRouter("hello");
        if (r.status === 200) seen.add(String(r.headers["x-instance-index"]));
      }
      return seen.size === 3 ? seen : undefined;
    });
    t.same([...seen].sort(), ["0", "1", "2"], "three instance indexes answer");
    // kiln bench by the app's name: its route, through the router, as a user benchmarks an app.
    const bench = await succeeds(t, home, ["bench", "hello", "-c", "4", "-d", "1", "--json"]);
    const report = JSON.parse(bench.stdout) as {
      target: { url: string; host?: string; summary: { requests: number; errors: { total: number } } };
    };
    t.equal(report.target.host, `hello.localhost:${ports.router}`, "kiln bench hello sends the app's host");
    t.ok(report.target.summary.requests > 50, `it measured (${report.target.summary.requests} requests)`);
    t.equal(report.target.summary.errors.total, 0, "with no error");
    await succeeds(t, home, ["scale", "hello", "-i", "2"]);
    await settled("hello", 2);
  });

  t.test("examples/sticky keeps a client with its cookies on one instance", async (t) => {
    await succeeds(t, home, ["push"], { cwd: join(projectRoot, "examples/sticky") });
    await settled("sticky", 3);
    // Without cookies every request is a new session, balanced over the instances.
    const fresh = await until("two instances answering new sessions", async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) seen.add(String((await viaRouter("sticky")).headers["x-instance-index"]));
      return seen.size >= 2 ? seen : undefined;
    });
    t.ok(fresh.size >= 2, `new sessions spread over ${fresh.size} instances`);
    // A client keeping its cookies (JSESSIONID and the router's __VCAP_ID__) stays on one.
    const first = await viaRouter("sticky");
    const cookies = ([] as string[])
      .concat(first.headers["set-cookie"] ?? [])
      .map((c) => c.split(";")[0])
      .join("; ");
    t.match(cookies, /JSESSIONID=.*__VCAP_ID__=|__VCAP_ID__=.*JSESSIONID=/, "both cookies set");
    const index = String(first.headers["x-instance-index"]);
    for (let visit = 2; visit <= 10; visit++) {
      const r = await viaRouter("sticky", "/", { cookie: cookies });
      t.equal(
        r.body,
        `visit ${visit} of this session, on instance ${index}\n`,
        `visit ${visit} on the same instance`,
      );
    }
  });

  t.test(
    "kill -9 one of 2 instances under keep-alive load: no failed request, a replacement answers",
    async (t) => {
      const before = await settled("hello", 2);
      const known = new Set(before.map((i) => i.guid));
      const l = load("hello");
      await until("both instances answering the load", async () =>
        before.every((i) => l.result.firstSeen.has(i.guid)) ? true : undefined,
      );
      const victim = before[0] as Instance;
      const killedAt = Date.now();
      process.kill(victim.pid, "SIGKILL");
      const replacement = await until(
        "a new instance answering through the router",
        async () => [...l.result.firstSeen].find(([guid]) => !known.has(guid)),
        20_000,
        20,
      );
      // A little more load on the healed pair.
      await new Promise((r) => setTimeout(r, 500));
      const r = await l.stop();
      t.comment(`kill -9 → replacement answering through the router: ${replacement[1] - killedAt} ms`);
      t.equal(r.failed, 0, `no failed request of ${r.ok + r.failed}`, { failures: r.failures });
      t.ok(r.ok > 100, `requests kept flowing (${r.ok})`);
      await settled("hello", 2);
    },
  );

  t.test("kill -9 a DEA: its instances come back and the app answers", async (t) => {
    const before = await settled("hello", 2);
    const root = (before[0] as Instance).root;
    const deaDir = join(root, "..");
    const re = new RegExp(` dea .*--data-dir ${deaDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}( |$)`);
    const pid = componentPid(re);
    t.ok(pid, `the DEA of ${deaDir} runs`);
    const l = load("hello");
    process.kill(pid as number, "SIGKILL");
    const gone = new Set(before.filter((i) => i.root === root).map((i) => i.guid));
    const after = await until(
      "2 instances again, none of the killed DEA's",
      async () => {
        const live = await instancesOf("hello");
        const shown = await runningIndexes("hello");
        return live.length === 2 && shown.length === 2 && live.every((i) => !gone.has(i.guid))
          ? live
          : undefined;
      },
      30_000,
      200,
    );
    t.equal(after.length, 2, "two instances, new ones in place of the killed DEA's");
    // The kernel restarts the killed DEA at once, but it reports the instances it lost (and
    // removes them) before it takes work: their replacements are placed on the other DEA.
    t.same(
      after.filter((i) => !before.some((b) => b.guid === i.guid)).map((i) => i.root !== root),
      [...gone].map(() => true),
      "the killed DEA's instances came back on the other DEA",
    );
    const restarted = componentPid(re);
    t.ok(restarted !== undefined && restarted !== pid, "the kernel restarted the DEA");
    const r = await l.stop();
    t.comment(
      `requests while the DEA died and came back: ${r.ok} ok, ${r.failed} failed ${r.failures.join(", ")}`,
    );
    t.equal((await viaRouter("hello")).status, 200, "hello answers");
  });

  t.test("kill -9 the Health Manager leader: another HM takes over and heals", async (t) => {
    // A second HM beside the kernel's, as on another machine.
    const creds = JSON.parse(readFileSync(join(platform.dataDir, "nats", "credentials.json"), "utf8")) as {
      users: Record<string, string>;
    };
    const second: ChildProcess = spawn(
      process.execPath,
      [kilnBin, "hm", "--nats", `nats://127.0.0.1:${ports.nats}`, "--heartbeat-ms", "1000"],
      {
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...platform.childEnv, ...hmEnv, KILN_NATS_USER: "hm", KILN_NATS_PASS: creds.users.hm ?? "" },
      },
    );
    let log = "";
    second.stderr?.setEncoding("utf8").on("data", (d: string) => {
      log += d;
    });
    t.teardown(() => {
      if (second.exitCode === null && second.signalCode === null) second.kill("SIGKILL");
    });
    await until("the second HM running", async () =>
      log.includes('"event":"hm_running"') ? true : undefined,
    );
    t.notMatch(log, /lease_acquired/, "it waits: the kernel's HM leads");
    const leader = componentPid(/ hm /);
    t.ok(leader, "the kernel's HM runs");
    const at = Date.now();
    const kernelLogFrom = platform.kernel().stderr().length;
    process.kill(leader as number, "SIGKILL");
    // The kernel restarts its HM at once, so either may win the expired lease; one must.
    const who = await until(
      "an HM acquiring the lease",
      async () =>
        log.includes('"event":"lease_acquired"')
          ? "the second HM"
          : /"component":"hm\.lease","event":"lease_acquired"/.test(
                platform.kernel().stderr().slice(kernelLogFrom),
              )
            ? "the kernel's restarted HM"
            : undefined,
      4 * LEASE_MS,
      50,
    );
    const took = Date.now() - at;
    t.comment(`${who} took the lease ${took} ms after the kill (lease ${LEASE_MS} ms)`);
    t.ok(took <= 2 * LEASE_MS, `within two lease periods (${took} ms)`);
    const before = await settled("hello", 2);
    const victim = before.find((i) => i.index === "1") as Instance;
    process.kill(victim.pid, "SIGKILL");
    const healed = await settled("hello", 2);
    t.notOk(
      healed.some((i) => i.guid === victim.guid),
      "the killed instance is replaced under the new leader",
    );
    second.kill("SIGTERM");
    await new Promise((r) => second.once("exit", r));
  });

  t.test("a crash-looping app is FLAPPING, backs off, and does not disturb other apps", async (t) => {
    const dir = join(base, "crashy");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "package.json"),
      JSON.stringify({ name: "crashy", scripts: { start: "node server.js" } }),
    );
    // Up long enough to be RUNNING, then a crash.
    writeFileSync(
      join(dir, "server.js"),
      'require("node:http").createServer((_q, s) => s.end("up")).listen(Number(process.env.PORT));\nsetTimeout(() => process.exit(3), 1500);\n',
    );
    const l = load("hello");
    await succeeds(t, home, ["push", "crashy", "-p", dir]);
    const flapping = await until(
      "crashy FLAPPING in kiln app --json",
      async () => {
        const v = (await appView(home, "crashy")) as unknown as { flapping: number[] };
        return v.flapping.length > 0 ? v.flapping : undefined;
      },
      60_000,
      500,
    );
    t.same(flapping, [0], "kiln app shows index 0 FLAPPING");
    const events = async () =>
      JSON.parse((await succeeds(t, home, ["events", "crashy", "--json"])).stdout) as {
        type: string;
        created_at: string;
        data: { crashes?: number; restart_at?: string };
      }[];
    const fourth = await until(
      "the 4th crash in kiln events",
      async () => (await events()).find((e) => e.type === "app.crash" && e.data.crashes === 4),
      30_000,
      500,
    );
    const wait = Date.parse(fourth.data.restart_at ?? "") - Date.parse(fourth.created_at);
    t.ok(wait >= 25_000, `the 4th crash waits its back-off (${wait} ms)`);
    t.ok(
      (await events()).some((e) => e.type === "app.flapping"),
      "app.flapping is in kiln events",
    );
    // Backing off: nothing runs and nothing crashes for a while.
    await new Promise((r) => setTimeout(r, 3_000));
    t.notOk(
      (await events()).some((e) => e.type === "app.crash" && (e.data.crashes ?? 0) > 4),
      "no 5th crash during the back-off",
    );
    t.same(await instancesOf("crashy"), [], "no crashy instance runs while it backs off");
    const r = await l.stop();
    t.equal(r.failed, 0, `hello: no failed request of ${r.ok + r.failed} meanwhile`, {
      failures: r.failures,
    });
    await succeeds(t, home, ["delete", "crashy", "-f"]);
  });

  t.test("the whole kernel stopped and started again: apps come back with their routes", async (t) => {
    t.equal(await platform.stop(), 0, "kiln up exits 0 on SIGTERM");
    const stops = [
      ...platform
        .kernel()
        .stderr()
        .matchAll(/"event":"child_stopped","child":"([a-z0-9-]+)"/g),
    ].map((m) => m[1]);
    const order = (name: string) => stops.indexOf(name);
    t.ok(
      order("hm") >= 0 &&
        order("hm") < order("cc") &&
        order("cc") < order("dea") &&
        order("cc") < order("dea-2"),
      `the HM, the controller, then the DEAs: ${stops.join(", ")}`,
    );
    t.equal(stops.at(-1), "router", "the router stops last");
    for (const root of platform.containerRoots())
      t.same(await new Runc({ root }).list(), [], `no container left under ${root}`);
    const at = Date.now();
    await platform.restart();
    const ready = Date.now() - at;
    t.match(
      await platform.answer("hello"),
      /^Hello from Kiln \(instance [01]\)\n$/,
      "hello answers through the router",
    );
    const back = Date.now() - at;
    await settled("hello", 2);
    await settled("sticky", 3);
    t.match(
      (await viaRouter("sticky")).body,
      /^visit 1 of this session, on instance \d\n$/,
      "sticky answers",
    );
    t.comment(`kiln up ready ${ready} ms after start; hello answering ${back} ms after start`);
    t.equal(await platform.stop(), 0, "and stops again cleanly");
  });
}
