// The access log on standard output when nobody reads it: the router keeps serving, does not
// spin on the full pipe, counts the lines it drops, and writes again once the reader is back.
import { readFileSync } from "node:fs";
import t from "tap";
import { guardChildren } from "../helpers/children.js";
import { type Reply, send, sleep, startBackend, startRig, statusGet } from "./harness.js";

guardChildren(t);

/** CPU seconds (user + system, all threads) the process has used; Linux clock ticks are 1/100 s. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[14 - 3]) + Number(f[15 - 3])) / 100;
}

/** A request that gives up after `ms` (null) instead of waiting on a stuck router. */
function sendWithin(port: number, path: string, ms: number): Promise<Reply | null> {
  return Promise.race([send(port, { host: "log.test", path }).catch(() => null), sleep(ms).then(() => null)]);
}

async function droppedLines(statusPort: number): Promise<number> {
  const m = /kiln_router_access_log_dropped_lines_total (\d+)/.exec(
    (await statusGet(statusPort, "/metrics")).body,
  );
  return m === null ? -1 : Number(m[1]);
}

// The native request path (on) and the JavaScript one (off) each have their own writer.
for (const fastPath of ["on", "off"]) {
  t.test(
    `a stalled stdout reader: the router keeps serving without spinning, drops and counts lines (--fast-path ${fastPath})`,
    { skip: process.platform !== "linux" && "reads /proc" },
    async (t) => {
      const rig = await startRig(t, ["--threads", "1", "--fast-path", fastPath, "--access-log", "stdout"]);
      const pid = rig.router.child.pid ?? 0;
      const b = await startBackend(t, (_q, res) => res.end("ok"));
      await rig.register({ port: b.port, uris: ["log.test"], private_instance_id: "log-0" });

      rig.router.child.stdout?.pause();
      // ~4 KiB lines: the socket buffers and the log's own 128 KiB fill after ~100 of them.
      const long = `/${"p".repeat(4000)}`;
      let served = 0;
      for (let round = 0; round < 40; round++) {
        const rs = await Promise.all(
          Array.from({ length: 10 }, () => sendWithin(rig.router.port, long, 3000)),
        );
        served += rs.filter((r) => r?.status === 200).length;
        if (served < (round + 1) * 10) break;
      }
      t.equal(served, 400, "every request is answered while nobody reads the log");
      const dropped = await droppedLines(rig.router.statusPort);
      const native = /kiln_router_native_requests_total (\d+)/.exec(
        (await statusGet(rig.router.statusPort, "/metrics")).body,
      );
      t.equal(Number(native?.[1]) > 0, fastPath === "on", `the native path served them: ${fastPath}`);
      t.ok(dropped > 0, `lines that did not fit were dropped and counted (${dropped})`);

      // Still stalled: two seconds of it cost next to no CPU.
      const before = cpuSeconds(pid);
      await sleep(2000);
      const used = cpuSeconds(pid) - before;
      t.ok(used < 0.3, `${used.toFixed(2)} s of CPU in 2 s of a stalled reader`);

      // The reader is back: what was held goes out, and new lines follow.
      rig.router.child.stdout?.resume();
      const rid = "3b2f6c1e-9a4d-4c8e-b7f0-5d6e7f8a9b0c";
      const last = await send(rig.router.port, {
        host: "log.test",
        path: "/after",
        headers: { "x-vcap-request-id": rid },
      });
      t.equal(last.status, 200);
      for (let i = 0; i < 60 && !rig.router.stdout().includes(rid); i++) await sleep(50);
      t.match(
        rig.router.stdout(),
        new RegExp(`log\\.test "GET /after" 200 2 [\\d.]+ms .*request_id=${rid} client=127\\.0\\.0\\.1\\n`),
      );
    },
  );
}

t.test(
  "two workers writing one stdout pipe whose reader keeps stalling: each request is logged whole once, or counted as dropped",
  { skip: process.platform !== "linux" && "reads /proc" },
  async (t) => {
    const rig = await startRig(t, ["--threads", "2", "--access-log", "stdout"]);
    const b = await startBackend(t, (_q, res) => res.end("ok"));
    await rig.register({ port: b.port, uris: ["log.test"], private_instance_id: "log-0" });
    // The reader stops for 200 ms out of every 300: the pipe fills and writes go in part.
    const out = rig.router.child.stdout;
    const flicker = setInterval(() => {
      out?.pause();
      setTimeout(() => out?.resume(), 200);
    }, 300);
    t.teardown(() => clearInterval(flicker));
    // ~2 KiB lines from many connections, so both workers log and their writes are large.
    const path = `/${"q".repeat(2000)}`;
    let answered = 0;
    for (let round = 0; round < 30; round++) {
      const rs = await Promise.all(Array.from({ length: 40 }, () => sendWithin(rig.router.port, path, 5000)));
      answered += rs.filter((r) => r?.status === 200).length;
    }
    clearInterval(flicker);
    out?.resume();
    t.equal(answered, 1200);
    await sleep(1500); // the 250 ms flushes
    const dropped = await droppedLines(rig.router.statusPort);
    const lines = rig.router
      .stdout()
      .split("\n")
      .filter((l) => l.includes("log.test"));
    const whole = new RegExp(
      `^\\S+Z log\\.test "GET ${path}" 200 2 [\\d.]+ms backend=\\S+ request_id=[0-9a-f-]{36} client=127\\.0\\.0\\.1$`,
    );
    const torn = lines.filter((l) => !whole.test(l));
    t.same(torn.slice(0, 3), [], `no line is torn or mixed with another (${torn.length} of ${lines.length})`);
    t.equal(
      lines.length + dropped,
      1200,
      `each request logged once or counted as dropped (${dropped} dropped)`,
    );
  },
);
