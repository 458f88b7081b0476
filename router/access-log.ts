// The access log: one line per request (time, host, method, path, status, bytes,
// duration, backend, request id), buffered per worker and written in large pieces.
import { closeSync, openSync, writeSync } from "node:fs";
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

  constructor(target: Exclude<AccessLogTarget, "off">) {
    if (target === "stdout") {
      this.fd = 1;
      this.ownFd = false;
    } else {
      this.fd = openSync(target.file, "a");
      this.ownFd = true;
    }
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
    const text = `${this.stampText}${host || "-"} "${method} ${path}" ${status} ${bytes} ${millis(durationMs)}ms backend=${backend || "-"} request_id=${requestId || "-"}\n`;
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.pos + text.length * 3 > bufferBytes) {
      this.flush();
      if (text.length * 3 > bufferBytes) {
        this.writeAll(Buffer.from(text));
        return;
      }
    }
    this.pos += this.out.write(text, this.pos, "utf8");
    if (this.timer === null) {
      this.timer = setTimeout(this.flushBound, flushEveryMs);
      this.timer.unref();
    }
  }

  private readonly flushBound = (): void => this.flush();

  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pos === 0) return;
    const n = this.pos;
    this.pos = 0;
    this.writeAll(this.out.subarray(0, n));
  }

  private writeAll(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      try {
        off += writeSync(this.fd, data, off);
      } catch (err) {
        if ((err as { code?: string }).code !== "EAGAIN") return; // a broken log target never stops the router
      }
    }
  }

  close(): void {
    this.flush();
    if (this.ownFd) closeSync(this.fd);
  }
}
