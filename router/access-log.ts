// The access log: one line per request (time, host, method, path, status, bytes,
// duration, backend, request id, client address), buffered per worker and written in large pieces.
// Memory is the one buffer: when the target stops taking bytes (a stdout pipe nobody
// reads), what does not fit is dropped and counted, and serving goes on.
import { closeSync, fstatSync, openSync, writeSync } from "node:fs";
import type { AccessLogTarget } from "./config.js";

/** Lines are encoded straight into this buffer (no string kept across requests). */
const bufferBytes = 128 * 1024;
/** Buffered lines reach the log at most this long after the first of them (both paths). */
export const flushEveryMs = 250;

/** `ms.toFixed(3)` for a duration, without toFixed's cost (a third of the line's). */
export function millis(ms: number): string {
  const us = Math.round(ms * 1000);
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  return frac >= 100 ? `${whole}.${frac}` : frac >= 10 ? `${whole}.0${frac}` : `${whole}.00${frac}`;
}

export class AccessLog {
  /** Also written by the native request path (native/src/access_log.cc), in whole lines. */
  readonly fd: number;
  private readonly ownFd: boolean;
  private readonly out = Buffer.allocUnsafe(bufferBytes);
  private pos = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastSecond = 0;
  private secondText = "";
  private lastMs = -1;
  /** "<ISO time to the ms>Z " of lastMs: many lines share a millisecond under load. */
  private stampText = "";
  /** Lines dropped because the target would not take them (kiln_router_access_log_dropped_lines_total). */
  dropped = 0;
  /** The last write left bytes behind: only the timer tries again, not every new line. */
  private stalled = false;

  /** The target is a pipe or socket: written in whole lines of at most pipeAtomicBytes. */
  private readonly pipe: boolean;

  constructor(target: Exclude<AccessLogTarget, "off">) {
    if (target === "stdout") {
      this.fd = 1;
      this.ownFd = false;
    } else {
      this.fd = openSync(target.file, "a");
      this.ownFd = true;
    }
    let pipe = false;
    try {
      const st = fstatSync(this.fd);
      pipe = st.isFIFO() || st.isSocket();
    } catch {
      // an unusable target is handled where it is written
    }
    this.pipe = pipe;
  }

  /** Appends one line; `status` 0 means the client went away first. */
  line(
    startMs: number,
    host: string,
    method: string,
    path: string,
    status: number,
    bytes: number,
    durationMs: number,
    backend: string,
    requestId: string,
    client: string,
  ): void {
    if (startMs !== this.lastMs) {
      this.lastMs = startMs;
      const sec = Math.floor(startMs / 1000);
      if (sec !== this.lastSecond) {
        this.lastSecond = sec;
        this.secondText = new Date(sec * 1000).toISOString().slice(0, 19);
      }
      const ms = startMs - sec * 1000;
      this.stampText = `${this.secondText}.${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z `;
    }
    const text = `${this.stampText}${host || "-"} "${method} ${path}" ${status} ${bytes} ${millis(durationMs)}ms backend=${backend || "-"} request_id=${requestId || "-"} client=${client || "-"}\n`;
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.pos + text.length * 3 > bufferBytes) {
      if (!this.stalled) this.flush();
      if (text.length * 3 > bufferBytes) {
        if (this.pos === 0) {
          const data = Buffer.from(text);
          if (this.write(data) < data.length) this.dropped++;
        } else this.dropped++;
        return;
      }
      if (this.pos + text.length * 3 > bufferBytes) {
        // The target is not taking bytes: the buffer is kept for when it does.
        this.dropped++;
        return;
      }
    }
    this.pos += this.out.write(text, this.pos, "utf8");
    this.armTimer();
  }

  private armTimer(): void {
    if (this.timer === null) {
      this.timer = setTimeout(this.flushBound, flushEveryMs);
      this.timer.unref();
    }
  }

  private readonly flushBound = (): void => this.flush();

  /** Writes what the buffer holds; what the target will not take now waits for the next flush. */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const n = this.pos;
    if (n === 0) return;
    const written = this.write(this.out.subarray(0, n));
    this.stalled = written < n;
    if (!this.stalled) {
      this.pos = 0;
      return;
    }
    this.out.copy(this.out, 0, written, n);
    this.pos = n - written;
    // Tried again a timer later, never in a loop: a reader that stalls costs no CPU.
    this.armTimer();
  }

  /**
   * Writes `data` as far as the target takes it without blocking; returns the bytes written.
   * A stdout pipe is non-blocking (EAGAIN when full); a broken target counts as written, so
   * it never stops the router.
   */
  private write(data: Buffer): number {
    let off = 0;
    while (off < data.length) {
      const end = this.pipe ? pipePieceEnd(data, off) : data.length;
      try {
        off += writeSync(this.fd, data, off, end - off);
      } catch (err) {
        return (err as { code?: string }).code === "EAGAIN" ? off : data.length;
      }
    }
    return off;
  }

  close(): void {
    this.flush();
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.ownFd) closeSync(this.fd);
  }
}

/**
 * A write of at most PIPE_BUF bytes to a pipe goes in whole or not at all (POSIX), so other
 * workers writing the same pipe cannot land inside a line. The end of the next piece from
 * `off`: whole lines up to 4096 bytes, or one longer line on its own.
 */
const pipeAtomicBytes = 4096;
export function pipePieceEnd(data: Buffer, off: number): number {
  const limit = off + pipeAtomicBytes;
  if (limit >= data.length) return data.length;
  const nl = data.lastIndexOf(10, limit - 1);
  if (nl >= off) return nl + 1;
  const next = data.indexOf(10, limit);
  return next < 0 ? data.length : next + 1;
}
