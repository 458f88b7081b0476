// The leak guard itself: it must see a process this file starts, and see it gone once stopped.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import t from "tap";
import { descendants, guardChildren } from "../helpers/children.js";

guardChildren(t);

t.test("a file that throws before its teardown still takes its processes with it", async (t) => {
  // A child test process: guards, starts a long sleep, prints its pid, then throws.
  const script = [
    `import { spawn } from "node:child_process";`,
    `import { guardChildren } from ${JSON.stringify(new URL("../helpers/children.js", import.meta.url).href)};`,
    "guardChildren({ teardown() {}, fail() {} });",
    `const s = spawn("sleep", ["30"], { stdio: "ignore" });`,
    `s.once("spawn", () => { process.stdout.write(String(s.pid)); setTimeout(() => { throw new Error("boom"); }, 50); });`,
  ].join("\n");
  const child = spawn(process.execPath, [...process.execArgv, "--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const code = await new Promise((r) => child.once("exit", r));
  t.not(code, 0, "the file failed");
  const pid = Number(out);
  t.ok(pid > 0, "it had started a child");
  // Killed, it may linger a moment as a zombie of whoever adopted it: that is gone too.
  const running = (): boolean => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
    } catch {
      return false;
    }
  };
  t.notOk(running(), "the child it started is gone");
});

t.test("descendants lists a running child and forgets it once it exits", async (t) => {
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  await new Promise((r) => child.once("spawn", r));
  t.ok(
    descendants().some((p) => p.pid === child.pid),
    "the sleeping child is a descendant",
  );
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
  t.notOk(
    descendants().some((p) => p.pid === child.pid),
    "gone after exit",
  );
});
