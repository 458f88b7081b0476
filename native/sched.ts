// Typed face of native/src/thread_sched.cc: the scheduling policy of the calling thread.
// Without the addon nothing can be set, and the caller is told why.
import { binding } from "./index.js";

export type ThreadScheduling = "batch" | "normal";

interface SchedBinding {
  setThreadScheduling(policy: string): string;
  threadScheduling(): string;
}

const sched = binding as unknown as SchedBinding | null;

/**
 * Applies `policy` to the calling thread: "" when done, else the reason it was not. Without
 * the addon "normal" asks for nothing: threads start under the default policy.
 */
export function setThreadScheduling(policy: ThreadScheduling): string {
  if (sched === null) return policy === "normal" ? "" : "needs the built addon";
  return sched.setThreadScheduling(policy);
}

/** The calling thread's policy ("batch", "normal", "other"), or "unknown" without the addon. */
export function threadScheduling(): string {
  return sched === null ? "unknown" : sched.threadScheduling();
}
