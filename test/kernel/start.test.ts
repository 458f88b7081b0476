// `npm start` as a user runs it: the kernel comes up, says where NATS listens, and
// SIGINT or SIGTERM stops every process it started within 5 seconds, also when Ctrl-C in a
// terminal sends SIGINT to the whole process group (the kernel gets it from the terminal and
// again from npm, which forwards it).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { projectRoot } from "../../kernel/paths.js";
import { descendants, guardChildren } from "../helpers/children.js";
import { freePort } from "../helpers/ports.js";

guardChildren(t);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const cases = [
  { signal: "SIGINT", group: false },
  { signal: "SIGTERM", group: false },
  { signal: "SIGINT", group: true },
] as const;
for (const { signal, group } of cases) {
  const to = group ? "the process group, as Ctrl-C does" : "npm";
  t.test(`npm start comes up and ${signal} to ${to} stops everything within 5 s`, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), "kiln-start-"));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    const env = {
      ...process.env,
      KILN_DATA_DIR: dataDir,
      KILN_NATS_PORT: String(await freePort()),
      KILN_ROUTER_PORT: String(await freePort()),
      KILN_ROUTER_STATUS_PORT: String(await freePort()),
      KILN_CC_PORT: String(await freePort()),
    };
    const npm = spawn("npm", ["start", "--silent"], {
      cwd: projectRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: group, // leads its own process group, as a terminal's foreground job does
    });
    let out = "";
    let err = "";
    npm.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    npm.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)));
    t.teardown(() => {
      if (npm.exitCode === null) npm.kill("SIGKILL");
    });

    const deadline = Date.now() + 60_000;
    while (!/Kiln is up/.test(out) && Date.now() < deadline && npm.exitCode === null) {
      await new Promise((r) => setTimeout(r, 50));
    }
    t.match(out, /Kiln is up/, "prints that the kernel is up");
    t.match(out, /NATS\s+nats:\/\/127\.0\.0\.1:\d+/, "prints where NATS listens");
    t.match(out, /router\s+http:\/\/localhost:\d+/, "prints the router URL");
    t.match(out, /API\s+http:\/\/localhost:\d+/, "prints the API URL");
    t.match(out, /kiln\.js login -a http:\/\/localhost:\d+ -u admin -p /, "prints the admin login");
    t.match(
      out,
      /Next:[\s\S]*cd examples\/node-hello && node \.\.\/\.\.\/bin\/kiln\.js push/,
      "prints the next command: push examples/node-hello",
    );

    // Wait until the router child is running too, then take the whole tree.
    const treeDeadline = Date.now() + 10_000;
    let tree = descendants(npm.pid);
    while (!tree.some((p) => p.command.includes("nats-server")) && Date.now() < treeDeadline) {
      await new Promise((r) => setTimeout(r, 50));
      tree = descendants(npm.pid);
    }
    t.ok(
      tree.some((p) => p.command.includes("nats-server")),
      "nats-server runs under npm start",
    );

    const sentAt = Date.now();
    if (group) process.kill(-(npm.pid as number), signal);
    else npm.kill(signal);
    const code = await exited;
    const took = Date.now() - sentAt;
    t.ok(took < 5000, `npm start exited ${took} ms after ${signal}`);
    t.equal(code, 0, `exit code 0 (stderr: ${err.slice(-500)})`);
    const left = tree.filter((p) => alive(p.pid));
    t.same(
      left.map((p) => p.command),
      [],
      "no process of the kernel is left",
    );
  });
}
