// The OCI runtime config of one container, generated from a typed spec by a pure function:
// an empty root with the host's /usr and /etc read-only, the app directory writable at
// /home/vcap/app, a private /tmp, own pid/mount/ipc/uts namespaces on the host network, an
// unprivileged user with no capabilities, the seccomp profile, and cgroup limits.
import { ContainerError } from "./errors.js";
import { type DeniedCall, deniedCalls, type SeccompProfile, seccompProfile } from "./seccomp.js";

/** Where the app directory appears inside every container. */
export const appMountPoint = "/home/vcap/app";

export interface ContainerSpec {
  /** runc container id: letters, digits, `_`, `-`, `.` (the DEA prefixes its own). */
  id: string;
  /** Host directory mounted writable at /home/vcap/app; owned by `uid`. */
  appDir: string;
  /** argv of the process, run in /home/vcap/app. */
  command: string[];
  /** Environment as NAME=value pairs (PATH and HOME are added when absent). */
  env: Record<string, string>;
  uid: number;
  gid: number;
  memoryMiB: number;
  /** Most tasks (processes and threads) the container may hold. */
  pids: number;
  /** CPU shares (cgroup v1 scale, 2-262144; runc maps them to a v2 weight). */
  cpuShares: number;
  /** Host paths mounted read-only at the same place inside (a buildpack, a droplet cache). */
  readOnlyMounts?: { source: string; destination: string }[];
  /** Host paths mounted writable at the same place inside (staging's buildpack cache); owned by `uid`. */
  writableMounts?: { source: string; destination: string }[];
  /** Seccomp deny list; the full list unless a test switches rules off. */
  deniedCalls?: readonly DeniedCall[];
}

/** Host directories bound read-only into the empty root; bin, lib, lib64 and sbin are symlinks into /usr. */
export const hostReadOnly = ["/usr", "/etc"] as const;
export const rootSymlinks: Record<string, string> = {
  bin: "usr/bin",
  lib: "usr/lib",
  lib64: "usr/lib64",
  sbin: "usr/sbin",
};

/** CPU shares proportional to memory, as the DEA assigns them: 1024 per GiB, 2 at the least. */
export function cpuSharesFor(memoryMiB: number): number {
  return Math.min(262_144, Math.max(2, Math.round(memoryMiB)));
}

interface Mount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface OciConfig {
  ociVersion: string;
  process: {
    terminal: false;
    user: { uid: number; gid: number; additionalGids: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: []; effective: []; inheritable: []; permitted: []; ambient: [] };
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: true;
  };
  root: { path: string; readonly: true };
  hostname: string;
  mounts: Mount[];
  linux: {
    cgroupsPath: string;
    resources: {
      devices: { allow: boolean; access: string }[];
      memory: { limit: number; swap: number };
      pids: { limit: number };
      cpu: { shares: number };
    };
    namespaces: { type: string }[];
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp: SeccompProfile;
  };
}

const idPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function check(ok: boolean, field: string, why: string): void {
  if (!ok) throw new ContainerError("KILN_DEA_CONTAINER_SPEC", `container spec: ${field} ${why}`);
}

/** The config.json of `spec`, with the root at `rootfs` (a bundle's empty root directory). */
export function ociConfig(spec: ContainerSpec, rootfs = "rootfs"): OciConfig {
  check(idPattern.test(spec.id), "id", `"${spec.id}" must be 1-128 of [A-Za-z0-9_.-]`);
  check(spec.appDir.startsWith("/"), "appDir", "must be an absolute path");
  check(spec.command.length > 0, "command", "must not be empty");
  check(Number.isInteger(spec.uid) && spec.uid > 0, "uid", "must be an unprivileged uid (> 0)");
  check(Number.isInteger(spec.gid) && spec.gid > 0, "gid", "must be an unprivileged gid (> 0)");
  check(
    Number.isInteger(spec.memoryMiB) && spec.memoryMiB >= 8,
    "memoryMiB",
    "must be a whole number of MiB, 8 or more",
  );
  check(Number.isInteger(spec.pids) && spec.pids >= 1, "pids", "must be 1 or more");
  check(Number.isInteger(spec.cpuShares) && spec.cpuShares >= 2, "cpuShares", "must be 2 or more");
  for (const [field, mounts] of [
    ["readOnlyMounts", spec.readOnlyMounts],
    ["writableMounts", spec.writableMounts],
  ] as const) {
    for (const m of mounts ?? []) {
      check(m.source.startsWith("/") && m.destination.startsWith("/"), field, "must be absolute paths");
    }
  }

  const env = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/home/vcap", ...spec.env };
  const bytes = spec.memoryMiB * 1024 * 1024;
  const bind = (source: string, destination: string, rw: boolean): Mount => ({
    destination,
    type: "bind",
    source,
    options: ["rbind", rw ? "rw" : "ro", "nosuid", "nodev"],
  });

  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: spec.uid, gid: spec.gid, additionalGids: [] },
      args: [...spec.command],
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: appMountPoint,
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 16_384, soft: 16_384 }],
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: spec.id.slice(0, 63),
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
      },
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
      },
      {
        destination: "/dev/mqueue",
        type: "mqueue",
        source: "mqueue",
        options: ["nosuid", "noexec", "nodev"],
      },
      {
        destination: "/tmp",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "nodev", "mode=1777", "size=262144k"],
      },
      ...hostReadOnly.map((p) => bind(p, p, false)),
      ...(spec.readOnlyMounts ?? []).map((m) => bind(m.source, m.destination, false)),
      ...(spec.writableMounts ?? []).map((m) => bind(m.source, m.destination, true)),
      bind(spec.appDir, appMountPoint, true),
    ],
    linux: {
      // Relative: runc places it under its own cgroup in each hierarchy (v1) or the unified tree (v2).
      cgroupsPath: `kiln/${spec.id}`,
      resources: {
        devices: [{ allow: false, access: "rwm" }],
        // swap = limit: memory plus swap may not exceed the limit, so no swap at all.
        memory: { limit: bytes, swap: bytes },
        pids: { limit: spec.pids },
        cpu: { shares: spec.cpuShares },
      },
      namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }],
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
      seccomp: seccompProfile(spec.deniedCalls ?? deniedCalls),
    },
  };
}
