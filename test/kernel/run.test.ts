// runUntilSignal, in a child process of its own (the signal is real): a SIGTERM stops what was
// started; one that comes while the start is past the point where it can be aborted stops it
// as soon as it is up, instead of leaving it running with nobody to stop it (a DEA orphaned by
// a kernel that went away while it was starting).
import { spawn } from "node:child_process";
import { pathToFileURL } from "node:url";
import t from "tap";
import { distPath } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";

guardChildren(t);

/** A component that takes `startMs` to start, ignores the abort signal and runs until stopped. */
const child = (startMs: number): string => `
const { runUntilSignal } = await import(${JSON.stringify(pathToFileURL(distPath("kernel/run.js")).href)});
const { createLogger } = await import(${JSON.stringify(pathToFileURL(distPath("kernel/log.js")).href)});
const code = await runUntilSignal(
  createLogger("t", { write: () => {} }),
  async () => {
    process.stdout.write("starting\\n");
    await new Promise((r) => setTimeout(r, ${startMs}));
    process.stdout.write("started\\n");
    // Runs (keeps the event loop busy) until stopped, as a component with sockets does.
    const alive = setInterval(() => {}, 1000);
    let end = () => {};
    const done = new Promise((r) => { end = () => { clearInterval(alive); r(0); }; });
    return { done, end };
  },
  (h) => { process.stdout.write("stopped\\n"); h.end(); },
);
process.stdout.write("exit " + code + "\\n");
`;

/**
 * Runs the component and sends SIGTERM once it printed `at` ("starting": its start is under way,
 * signal handlers in place; "started": it is up). Waiting for the line, not a fixed time: on a
 * loaded machine node takes most of a second to boot.
 */
async function run(
  startMs: number,
  at: "starting" | "started",
): Promise<{ out: string; code: number | null }> {
  const c = spawn(process.execPath, ["--input-type=module", "-e", child(startMs)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  let signalled = false;
  c.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    if (!signalled && out.includes(`${at}\n`)) {
      signalled = true;
      c.kill("SIGTERM");
    }
  });
  const exited = new Promise<number | null>((r) => c.once("exit", (code) => r(code)));
  const timer = setTimeout(() => c.kill("SIGKILL"), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return { out, code };
}

t.test("a signal after the start stops the component", async (t) => {
  const r = await run(10, "started");
  t.equal(r.out, "starting\nstarted\nstopped\nexit 0\n");
  t.equal(r.code, 0);
});

t.test("a signal during a start that cannot be aborted stops it once it is up", async (t) => {
  const r = await run(1500, "starting");
  t.equal(r.out, "starting\nstarted\nstopped\nexit 0\n", "stopped as soon as it was up, not left running");
  t.equal(r.code, 0);
});
