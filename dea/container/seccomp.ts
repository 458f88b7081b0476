// The seccomp profile of every container: everything allowed except the calls Docker's
// default profile refuses to an unprivileged container (mounts, tracing, kernel modules and
// keyrings, namespaces, BPF, reboot). A refused call fails with EPERM rather than killing the
// process, so a program probing for a feature falls back instead of crashing.

/** A system call a container is refused, with the reason it is refused. */
export interface DeniedCall {
  name: string;
  why: string;
}

export const deniedCalls: readonly DeniedCall[] = [
  { name: "mount", why: "changes the container's view of the filesystems" },
  { name: "umount", why: "changes the container's view of the filesystems" },
  { name: "umount2", why: "changes the container's view of the filesystems" },
  { name: "pivot_root", why: "changes the root filesystem" },
  { name: "fsopen", why: "new mount API" },
  { name: "fsconfig", why: "new mount API" },
  { name: "fsmount", why: "new mount API" },
  { name: "fspick", why: "new mount API" },
  { name: "move_mount", why: "new mount API" },
  { name: "open_tree", why: "new mount API" },
  { name: "mount_setattr", why: "new mount API" },
  { name: "ptrace", why: "reads and writes other processes' memory" },
  { name: "process_vm_readv", why: "reads another process's memory" },
  { name: "process_vm_writev", why: "writes another process's memory" },
  { name: "kcmp", why: "inspects other processes' kernel state" },
  { name: "bpf", why: "loads programs into the kernel" },
  { name: "perf_event_open", why: "kernel profiling leaks host information" },
  { name: "userfaultfd", why: "a tool of kernel exploits" },
  { name: "kexec_load", why: "replaces the running kernel" },
  { name: "kexec_file_load", why: "replaces the running kernel" },
  { name: "reboot", why: "reboots the host" },
  { name: "swapon", why: "host memory configuration" },
  { name: "swapoff", why: "host memory configuration" },
  { name: "init_module", why: "loads kernel modules" },
  { name: "finit_module", why: "loads kernel modules" },
  { name: "delete_module", why: "unloads kernel modules" },
  { name: "create_module", why: "loads kernel modules" },
  { name: "setns", why: "joins another namespace" },
  { name: "unshare", why: "creates namespaces" },
  { name: "keyctl", why: "the kernel keyring is not namespaced" },
  { name: "add_key", why: "the kernel keyring is not namespaced" },
  { name: "request_key", why: "the kernel keyring is not namespaced" },
  { name: "open_by_handle_at", why: "opens files outside the container's root" },
  { name: "name_to_handle_at", why: "pairs with open_by_handle_at" },
  { name: "acct", why: "host process accounting" },
  { name: "quotactl", why: "host disk quotas" },
  { name: "syslog", why: "reads the kernel log" },
  { name: "settimeofday", why: "sets the host clock" },
  { name: "clock_settime", why: "sets the host clock" },
  { name: "clock_adjtime", why: "sets the host clock" },
  { name: "adjtimex", why: "sets the host clock" },
  { name: "stime", why: "sets the host clock" },
  { name: "sethostname", why: "host identity" },
  { name: "setdomainname", why: "host identity" },
  { name: "iopl", why: "raw I/O port access" },
  { name: "ioperm", why: "raw I/O port access" },
  { name: "lookup_dcookie", why: "kernel profiling" },
  { name: "nfsservctl", why: "host NFS server" },
  { name: "personality", why: "can turn off address space randomisation" },
  { name: "vhangup", why: "hangs up the host's terminal" },
  { name: "uselib", why: "obsolete, used in exploits" },
  { name: "ustat", why: "obsolete" },
  { name: "sysfs", why: "obsolete" },
  { name: "_sysctl", why: "obsolete, changes kernel parameters" },
  { name: "get_kernel_syms", why: "obsolete" },
  { name: "query_module", why: "obsolete" },
  { name: "vm86", why: "obsolete" },
  { name: "vm86old", why: "obsolete" },
  { name: "move_pages", why: "NUMA placement of other processes' memory" },
  { name: "mbind", why: "NUMA placement" },
  { name: "set_mempolicy", why: "NUMA placement" },
  { name: "get_mempolicy", why: "NUMA placement" },
  { name: "fanotify_init", why: "watches the host's filesystems" },
  { name: "io_uring_setup", why: "bypasses seccomp for the calls it submits" },
  { name: "io_uring_enter", why: "bypasses seccomp for the calls it submits" },
  { name: "io_uring_register", why: "bypasses seccomp for the calls it submits" },
];

/** The OCI `linux.seccomp` section of a container's config. */
export interface SeccompProfile {
  defaultAction: "SCMP_ACT_ALLOW";
  architectures: string[];
  syscalls: { names: string[]; action: "SCMP_ACT_ERRNO"; errnoRet: number }[];
}

const EPERM = 1;

/** The host's system call ABIs: a 32-bit call on a 64-bit host has other numbers and needs its own filter. */
function hostArchitectures(): string[] {
  if (process.arch === "x64") return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
  if (process.arch === "arm64") return ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"];
  return [];
}

/** The profile refusing `denied` (the whole list unless a test switches a rule off). */
export function seccompProfile(denied: readonly DeniedCall[] = deniedCalls): SeccompProfile {
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: hostArchitectures(),
    syscalls: [{ names: denied.map((d) => d.name), action: "SCMP_ACT_ERRNO", errnoRet: EPERM }],
  };
}
