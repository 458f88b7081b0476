// The leak guard itself: it must see a process this file starts, and see it gone once stopped.
import { spawn } from "node:child_process";
import t from "tap";
import { descendants, guardChildren } from "../helpers/children.js";

guardChildren(t);

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
