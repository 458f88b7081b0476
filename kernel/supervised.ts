// A component the kernel's supervisor started (kernel/supervisor.ts gives each child an IPC
// channel) stops when that channel closes: the kernel is gone, also when it was killed with
// SIGKILL or by the OOM killer and could not stop its children. Left running, an orphaned
// router would keep its ports, and with SO_REUSEPORT the next kernel's router would share the
// HTTP port with it.
import type { Logger } from "./log.js";

/** When run under the supervisor: a SIGTERM to this process (the usual graceful stop) once the kernel is gone. */
export function stopWhenSupervisorGoes(log: Logger): void {
  const channel = process.channel;
  if (channel === undefined) return;
  // The channel must not keep the process alive once its command is done.
  channel.unref();
  process.once("disconnect", () => {
    log.warn("supervisor_gone", { action: "SIGTERM" });
    process.kill(process.pid, "SIGTERM");
  });
}
