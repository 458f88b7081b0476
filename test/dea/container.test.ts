// The DEA's container layer against the real runc: an app answers on its host port, a
// memory hog is killed and reported out of memory, hostile actions from inside fail, and
// nothing (container, cgroup, bundle) stays behind, not even after a simulated DEA crash.
// Skipped with the probe's reason where runc cannot run (no root, no runc, no cgroups).
import { chownSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { writeBundle } from "../../dea/container/bundle.js";
import { cgroupLayout, cgroupUsage, containerCgroups } from "../../dea/container/cgroups.js";
import { startContainer, stopContainer } from "../../dea/container/container.js";
import { ContainerError } from "../../dea/container/errors.js";
import { adopt, removeLeftovers } from "../../dea/container/leftovers.js";
import { startPlain } from "../../dea/container/plain.js";
import { probeIsolation, requireIsolation } from "../../dea/container/probe.js";
import { Runc } from "../../dea/container/runc.js";
import { deniedCalls } from "../../dea/container/seccomp.js";
import { type ContainerSpec, cpuSharesFor, ociConfig } from "../../dea/container/spec.js";
import { guardChildren } from "../helpers/children.js";
import { bodyOf } from "../helpers/http.js";
import { freePort } from "../helpers/ports.js";

guardChildren(t);

const base = await mkdtemp(join(tmpdir(), "kiln-container-"));
t.teardown(() => rm(base, { recursive: true, force: true }));
const runc = new Runc({ root: join(base, "dea") });
const prefix = `kiln-t${process.pid}-`;
const skip = (await probeIsolation(runc)) ?? false;
if (skip !== false) t.comment(`runc containers skipped: ${skip}`);

t.teardown(async () => {
  if (skip === false) await removeLeftovers(runc, prefix);
});

/** An app directory owned by `uid`, holding `files`. */
function appDir(name: string, uid: number, files: Record<string, string>): string {
  const dir = join(base, "apps", name);
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  chownSync(dir, uid, uid);
  for (const f of Object.keys(files)) chownSync(join(dir, f), uid, uid);
  return dir;
}

function spec(
  id: string,
  dir: string,
  uid: number,
  command: string[],
  more: Partial<ContainerSpec> = {},
): ContainerSpec {
  return {
    id: prefix + id,
    appDir: dir,
    command,
    env: {},
    uid,
    gid: uid,
    memoryMiB: 128,
    pids: 64,
    cpuShares: cpuSharesFor(more.memoryMiB ?? 128),
    ...more,
  };
}

const get = (port: number, path = "/"): Promise<string | null> => bodyOf(port, path);

/** Nothing of container `id` is left: not in `runc list`, no cgroup directory, no bundle. */
async function assertGone(t: Test, id: string, cgroups: Record<string, string>): Promise<void> {
  t.same(
    (await runc.list(id)).map((c) => c.id),
    [],
    `${id} not in runc list`,
  );
  t.same(
    Object.values(cgroups).filter((p) => existsSync(p)),
    [],
    `${id} left no cgroup`,
  );
  t.notOk(existsSync(join(runc.root, "bundles", id)), `${id} left no bundle`);
}

t.test("config generation (pure)", async (t) => {
  const dir = "/srv/app";
  const c = ociConfig(spec("pure", dir, 2001, ["node", "server.js"], { memoryMiB: 256 }));
  t.equal(c.linux.resources.memory.limit, 256 * 1024 * 1024);
  t.equal(c.linux.resources.memory.swap, c.linux.resources.memory.limit, "no swap: memory+swap = memory");
  t.equal(c.linux.resources.cpu.shares, 256, "shares follow memory");
  t.same(
    c.linux.namespaces.map((n) => n.type),
    ["pid", "mount", "ipc", "uts"],
    "no network namespace: the host's",
  );
  t.same(c.process.capabilities.bounding, []);
  t.equal(c.process.noNewPrivileges, true);
  t.equal(c.process.user.uid, 2001);
  t.ok(
    c.mounts.some((m) => m.destination === "/home/vcap/app" && m.source === dir && m.options.includes("rw")),
  );
  t.ok(c.mounts.some((m) => m.destination === "/usr" && m.options.includes("ro")));
  t.ok(c.mounts.some((m) => m.destination === "/tmp" && m.type === "tmpfs"));
  const denied = c.linux.seccomp.syscalls[0]?.names ?? [];
  for (const name of [
    "mount",
    "umount2",
    "ptrace",
    "bpf",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "setns",
    "unshare",
  ]) {
    t.ok(denied.includes(name), `seccomp refuses ${name}`);
  }
  for (const [field, more] of [
    ["uid", { uid: 0 }],
    ["memoryMiB", { memoryMiB: 1.5 }],
    ["pids", { pids: 0 }],
  ] as const) {
    let caught: unknown;
    try {
      ociConfig(spec("bad", dir, 2001, ["x"], more));
    } catch (err) {
      caught = err;
    }
    t.ok(
      caught instanceof ContainerError &&
        caught.code === "KILN_DEA_CONTAINER_SPEC" &&
        caught.message.includes(field),
      `${field} checked`,
    );
  }
  t.throws(() => ociConfig({ ...spec("x", dir, 2001, ["x"]), id: "../escape" }), /id/);
  t.ok(["v1", "v2", "hybrid", "none"].includes(cgroupLayout()), `cgroup layout here: ${cgroupLayout()}`);
});

t.test("the probe says why runc cannot run, and requireIsolation refuses with a coded error", async (t) => {
  const missing = new Runc({ root: join(base, "nowhere"), runc: join(base, "no-such-runc") });
  const reason = await probeIsolation(missing);
  t.type(reason, "string", `reason: ${reason}`);
  await t.rejects(requireIsolation(missing), { code: "KILN_DEA_CONTAINER_UNAVAILABLE" });
});

t.test("a Node hello server answers on its assigned host port", { skip }, async (t) => {
  const port = await freePort();
  const dir = appDir("hello", 2001, {
    "server.js":
      'process.on("SIGTERM", () => process.exit(0)); require("http").createServer((q, s) => s.end(JSON.stringify({uid: process.getuid(), cwd: process.cwd()}))).listen(+process.env.PORT, "0.0.0.0");',
  });
  const s = spec("hello", dir, 2001, ["node", "server.js"], { env: { PORT: String(port) } });
  const started = Date.now();
  const c = await startContainer(runc, s);
  c.stdout.resume();
  c.stderr.resume();
  let body: string | null = null;
  while (body === null && Date.now() - started < 10_000) {
    body = await get(port);
    if (body === null) await new Promise((r) => setTimeout(r, 10));
  }
  t.comment(`run → first answer: ${Date.now() - started} ms`);
  t.same(
    JSON.parse(body ?? "null"),
    { uid: 2001, cwd: "/home/vcap/app" },
    "answers, as uid 2001, in /home/vcap/app",
  );

  const cgroups = await containerCgroups(runc.stateRoot, s.id);
  const usage = await cgroupUsage(cgroups);
  t.ok(usage.memoryBytes > 1024 * 1024, `memory in use: ${usage.memoryBytes} bytes`);
  t.ok(usage.cpuNs > 0, `cpu used: ${usage.cpuNs} ns`);
  t.equal(usage.oomKills, 0);
  t.ok((await c.pid()) > 0, "host pid known");

  const exit = await stopContainer(runc, c, 5000);
  t.equal(exit.status, 0, "SIGTERM ends it (the app's handler exits 0)");
  t.equal(exit.outOfMemory, false);
  await assertGone(t, s.id, cgroups);
});

t.test(
  "an app allocating past its memory limit is killed and reported out of memory",
  { skip },
  async (t) => {
    const dir = appDir("hog", 2003, {
      "hog.js": "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));",
    });
    const s = spec("hog", dir, 2003, ["node", "hog.js"], { memoryMiB: 96 });
    const c = await startContainer(runc, s);
    c.stdout.resume();
    c.stderr.resume();
    const exit = await c.exited;
    t.equal(exit.status, 137, "killed by SIGKILL");
    t.equal(exit.outOfMemory, true);
    t.equal(exit.reason, "out of memory");
    t.same(await runc.list(s.id), [], "deleted after its end");
  },
);

t.test("stop: an app that ignores SIGTERM is killed after the grace", { skip }, async (t) => {
  // sleep is pid 1 of its namespace with no SIGTERM handler: the kernel drops the SIGTERM.
  const s = spec("deaf", appDir("deaf", 2006, {}), 2006, ["sleep", "600"]);
  const c = await startContainer(runc, s);
  c.stdout.resume();
  c.stderr.resume();
  await c.pid();
  const asked = Date.now();
  const exit = await stopContainer(runc, c, 300);
  t.equal(exit.status, 137, "SIGKILL after the grace");
  t.ok(Date.now() - asked >= 300, "not before the grace");
  t.same(await runc.list(s.id), [], "deleted");
});

// Hostile actions from inside a container, each with the rule that stops it. Every one must
// fail; the shell prints `ALLOWED <name>` for any that succeeds.
const hostile: { name: string; rule: string; sh: string }[] = [];

t.test("from inside, hostile actions fail", { skip }, async (t) => {
  const sibling = appDir("sibling", 2001, { "secret.txt": "sibling secret" });
  const dataDir = join(base, "dea-data");
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, "nats-credentials.json"), '{"user":"dea","pass":"secret"}');
  const py = [
    "import ctypes, sys",
    "libc = ctypes.CDLL(None, use_errno=True)",
    "calls = {",
    "  'ptrace': lambda: libc.ptrace(0, 0, None, None),",
    "  'mount': lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None),",
    "  'add_key': lambda: libc.syscall(248, b'user', b'kiln', b'x', 1, -3),",
    "  'unshare': lambda: libc.unshare(0x10000000),",
    "}",
    "sys.exit(0 if calls[sys.argv[1]]() != -1 else 1)",
  ].join("\n");
  hostile.push(
    { name: "read a sibling app's file", rule: "empty root", sh: `cat ${join(sibling, "secret.txt")}` },
    { name: "list the DEA's data directory", rule: "empty root", sh: `ls ${dataDir}` },
    {
      name: "read the NATS credentials",
      rule: "empty root",
      sh: `cat ${join(dataDir, "nats-credentials.json")}`,
    },
    { name: "read /etc/shadow", rule: "unprivileged user", sh: "cat /etc/shadow" },
    { name: "write into /usr", rule: "read-only /usr", sh: "touch /usr/kiln-was-here" },
    { name: "ptrace", rule: "seccomp ptrace", sh: "python3 sys.py ptrace" },
    { name: "mount", rule: "no capabilities, seccomp mount", sh: "python3 sys.py mount" },
    {
      name: "mount in an own user namespace",
      rule: "seccomp unshare and mount",
      sh: "unshare --user --map-root-user --mount mount -t tmpfs none /tmp",
    },
    { name: "unshare a user namespace", rule: "seccomp unshare", sh: "python3 sys.py unshare" },
    { name: "add a key to the kernel keyring", rule: "seccomp add_key", sh: "python3 sys.py add_key" },
    {
      name: "see a host process (this test's)",
      rule: "pid namespace",
      sh: `test -e /proc/${process.pid}/cmdline`,
    },
  );
  const script = hostile
    .map((h, i) => `if ( ${h.sh} ) >/dev/null 2>&1; then echo "ALLOWED ${i}"; else echo "refused ${i}"; fi`)
    .join("\n");
  const dir = appDir("hostile", 2002, { "sys.py": py, "hostile.sh": script });
  const s = spec("hostile", dir, 2002, ["/bin/sh", "hostile.sh"]);
  const c = await startContainer(runc, s);
  let out = "";
  c.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  c.stderr.resume();
  const exit = await c.exited;
  t.equal(exit.status, 0, "the script ran");
  hostile.forEach((h, i) => {
    t.match(out, new RegExp(`^refused ${i}$`, "m"), `${h.name}: refused (${h.rule})`);
  });
  t.equal(deniedCalls.length, new Set(deniedCalls.map((d) => d.name)).size, "seccomp list has no duplicate");
});

t.test("leftovers of a crashed DEA are found by prefix and removed or adopted", { skip }, async (t) => {
  const dir = appDir("crash", 2004, {});
  const ids = ["crash-a", "crash-b", "crash-c"].map((id) => prefix + id);
  // Started as the DEA does, then the crash: every `runc run` dies at once, and no handler of
  // this DEA runs; the containers go on without it.
  const runs = [];
  for (const id of ids) {
    await writeBundle(runc.root, spec(id.slice(prefix.length), dir, 2004, ["sleep", "600"]));
    const r = runc.run(id);
    r.child.stdout?.resume();
    r.child.stderr?.resume();
    runs.push(r);
  }
  for (const id of ids) {
    while ((await runc.list(id))[0]?.status !== "running") await new Promise((r) => setTimeout(r, 10));
  }
  const cgroups = await Promise.all(ids.map((id) => containerCgroups(runc.stateRoot, id)));
  for (const r of runs) r.child.kill("SIGKILL");
  await Promise.all(runs.map((r) => r.exited));
  t.equal((await runc.list(`${prefix}crash-`)).length, 3, "three running under the Kiln root");

  const kept = `${prefix}crash-c`;
  const removed = await removeLeftovers(runc, `${prefix}crash-`, (c) => c.id === kept);
  t.same(removed.sort(), [`${prefix}crash-a`, `${prefix}crash-b`], "the unwanted two removed");
  t.same(
    (await runc.list(`${prefix}crash-`)).map((c) => c.id),
    [kept],
    "the wanted one kept running",
  );
  const adopted = adopt(runc, kept, 50);
  await runc.kill(kept, "SIGKILL");
  t.same(await adopted, { outOfMemory: false }, "the adopted one is seen to end");
  for (const [i, id] of ids.entries()) await assertGone(t, id, cgroups[i] ?? {});
});

const asRoot = process.getuid?.() === 0 ? false : "running an app as its own uid needs root";

t.test("--isolation none: a plain process under prlimit", { skip: asRoot }, async (t) => {
  const dir = appDir("plain", 2005, { "hog.js": "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));" });
  const p = startPlain(spec("plain", dir, 2005, [process.execPath, "hog.js"], { memoryMiB: 96 }));
  p.stdout.resume();
  p.stderr.resume();
  const status = await p.exited;
  t.ok(status !== null && status !== 0, `the memory hog stops at its data limit (status ${status})`);
});
