// The access log: one line per request (time, host, method, path, status, bytes,
// duration, backend, request id), buffered per worker and written in large pieces.
import { closeSync, openSync, writeSync } from "node:fs";
import type { AccessLogTarget } from "./config.js";

const flushBytes = 64 * 1024;
const flushEveryMs = 250;

export class AccessLog {
  private readonly fd: number;
  private readonly ownFd: boolean;
  private buf = "";
  private timer: NodeJS.Timeout | null = null;
  private lastSecond = 0;
  private secondText = "";

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
    const sec = (startMs / 1000) | 0;
    if (sec !== this.lastSecond) {
      this.lastSecond = sec;
      this.secondText = new Date(sec * 1000).toISOString().slice(0, 19);
    }
    const ms = startMs % 1000;
    const msText = ms < 10 ? `00${ms}` : ms < 100 ? `0${ms}` : `${ms}`;
    this.buf += `${this.secondText}.${msText}Z ${host || "-"} "${method} ${path}" ${status} ${bytes} ${durationMs.toFixed(3)}ms backend=${backend || "-"} request_id=${requestId || "-"}\n`;
    if (this.buf.length >= flushBytes) this.flush();
    else if (this.timer === null) {
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
    if (this.buf === "") return;
    const data = Buffer.from(this.buf);
    this.buf = "";
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
