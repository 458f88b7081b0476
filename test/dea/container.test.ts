// The DEA's container config, generated from a typed spec by a pure function: limits, namespaces,
// mounts, user, capabilities and the seccomp deny list, and the spec checks with coded errors.
import t from "tap";
import { ContainerError } from "../../dea/container/errors.js";
import { type ContainerSpec, cpuSharesFor, ociConfig } from "../../dea/container/spec.js";

const prefix = "kiln-t-";

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
});
