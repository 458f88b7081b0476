// Typed face of native/src/thread_sched.cc: the scheduling policy and slice of the calling
// thread. Without the addon nothing can be set, and the caller is told why.
import { binding } from "./index.js";

export type ThreadScheduling = "batch" | "normal";

/** What the kernel has for the calling thread. */
export interface ThreadSchedulingState {
  /** "batch", "normal", "other", or "unknown" without the addon. */
  policy: string;
  /** The thread's slice in µs; 0 where the kernel reports none (before Linux 6.12, or no addon). */
  sliceUs: number;
}

interface SchedBinding {
  setThreadScheduling(policy: string, sliceUs: number): string;
  threadScheduling(): ThreadSchedulingState;
}

const sched = binding as unknown as SchedBinding | null;

/**
 * Applies `policy` and a slice of `sliceUs` (0: keep the thread's) to the calling thread: ""
 * when done, else the reason it was not. Without the addon "normal" asks for nothing: threads
 * start under the default policy, and the slice stays the thread's.
 */
export function setThreadScheduling(policy: ThreadScheduling, sliceUs: number): string {
  if (sched === null) return policy === "normal" ? "" : "needs the built addon";
  return sched.setThreadScheduling(policy, sliceUs);
}

/** The calling thread's policy and slice. */
export function threadScheduling(): ThreadSchedulingState {
  return sched === null ? { policy: "unknown", sliceUs: 0 } : sched.threadScheduling();
}
