// The taint delay a DEA waits before answering dea.discover (DESIGN.md "Messages"): busier
// DEAs answer later, so the first reply the Cloud Controller takes is the least loaded one.
import { createHash } from "node:crypto";

/** Per instance of the app already on this DEA. */
export const TAINT_PER_INSTANCE_MS = 10;
/** Times the share of memory in use (0..1). */
export const TAINT_MEMORY_MS = 100;
/** The hash term is 0..TAINT_HASH_SPREAD-1 ms. */
export const TAINT_HASH_SPREAD = 10;
/** No DEA waits longer than this. */
export const TAINT_CAP_MS = 250;

/**
 * 0-9 ms from SHA-1(app id, DEA id): fixed for a pair, spread across DEAs, so two DEAs
 * with the same load do not answer in the same millisecond every time. A NUL between the
 * two keeps ("ab", "c") and ("a", "bc") apart.
 */
export function taintHashMs(app: string, deaId: string): number {
  const digest = createHash("sha1").update(app).update("\0").update(deaId).digest();
  return digest.readUInt32BE(0) % TAINT_HASH_SPREAD;
}

export interface TaintInput {
  /** Instances of the app already on this DEA. */
  appInstances: number;
  /** Memory reserved / memory capacity, 0..1 (clamped). */
  memoryRatio: number;
  /** taintHashMs(app, deaId). */
  hashMs: number;
}

/** 10 ms × instances + 100 ms × memory ratio + hash term, at most 250 ms (not rounded). */
export function taintDelayMs(input: TaintInput): number {
  const ratio = Math.min(1, Math.max(0, input.memoryRatio));
  return Math.min(
    TAINT_CAP_MS,
    TAINT_PER_INSTANCE_MS * input.appInstances + TAINT_MEMORY_MS * ratio + input.hashMs,
  );
}
