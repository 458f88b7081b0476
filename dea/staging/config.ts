// Staging's settings and their defaults, in one place: the limits a package must stay within
// to be unpacked, the size of the DEA's archive worker pool, and what a staging gets when its
// request leaves memory, disk or timeout at 0.
import { MAX_LINE_BYTES } from "../logs/lines.js";

/** What a package may hold; anything beyond is refused with a coded error before it is written. */
export interface UnpackLimits {
  /** Entries (files, folders, links) in the package. */
  maxFiles: number;
  /**
   * Uncompressed bytes: the sum of the entries' declared sizes, and also the bytes the gzip
   * stream actually inflates to, less tar's own framing of 1 KiB per entry (so a header that
   * understates its size, or data after the end of the archive, cannot get past).
   */
  maxBytes: number;
  /** Characters in one entry's path (and in a link's target). */
  maxPathLength: number;
}

export const unpackLimitDefaults: Readonly<UnpackLimits> = Object.freeze({
  maxFiles: 50_000,
  maxBytes: 1024 * 1024 * 1024,
  maxPathLength: 1024,
});

export interface ArchivePoolOptions {
  /** Worker threads for archive work; small, so staging never takes the DEA's cores from its apps. */
  maxThreads: number;
  /** A worker idle this long (ms) exits; the pool starts one again on the next task. */
  idleTimeoutMs: number;
}

export const archivePoolDefaults: Readonly<ArchivePoolOptions> = Object.freeze({
  maxThreads: 2,
  idleTimeoutMs: 30_000,
});

/** Staging's defaults for what a StageRequest leaves at 0. */
export interface StagingLimits {
  /** Memory of the staging container, MiB, when the request gives none. */
  memoryMb: number;
  /** Disk the staged app may fill, MiB, when the request gives none. */
  diskMb: number;
  /** How long one staging may run, ms, when the request gives no timeout. */
  timeoutMs: number;
  /** Tasks (processes and threads) the staging container may hold: npm and go build fan out. */
  pids: number;
  /** Lines of the staging log a failed reply carries. */
  logTailLines: number;
  /** Longest log line passed on; a longer one is cut into pieces of this size. */
  maxLineBytes: number;
}

export const stagingDefaults: Readonly<StagingLimits> = Object.freeze({
  memoryMb: 1024,
  diskMb: 4096,
  timeoutMs: 15 * 60_000,
  pids: 1024,
  logTailLines: 20,
  maxLineBytes: MAX_LINE_BYTES,
});
