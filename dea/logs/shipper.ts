// Ships every line an app or its staging writes to `logs.<app>` (KILN_LOGS keeps them).
// Each origin (an instance, a staging task) has its own token bucket: a flood from one is
// cut to its rate, the lines over it are counted and reported as one line a second, and the
// others keep their full rate because nothing is queued behind the flood.
import type { Readable } from "node:stream";
import type { Logger } from "../../kernel/log.js";
import { encode, type LogSource } from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { logs } from "../../messaging/subjects.js";
import { pipeLines } from "./lines.js";

export type LogStream = "stdout" | "stderr";

export interface LogOrigin {
  app: string;
  source: Extract<LogSource, "APP" | "STG">;
  /** Instance index (APP); 0 for staging. */
  index: number;
}

export interface LogRate {
  /** Lines per second one origin may publish. */
  linesPerSecond: number;
  /** Lines it may publish at once after a quiet spell. */
  burst: number;
}

export const logRateDefaults: LogRate = { linesPerSecond: 1_000, burst: 2_000 };

export interface LogCounters {
  published: number;
  dropped: number;
  /** Lines refused because NATS was closed or the line could not be encoded. */
  failed: number;
}

/** One origin's way out: its subject, its bucket, what it dropped since the last report. */
export class LogOutlet {
  private tokens: number;
  private refilledAt: number;
  private droppedSince = 0;
  private readonly subject: string;

  /** Use LogShipper.outlet(). */
  constructor(
    private readonly shipper: LogShipper,
    readonly origin: LogOrigin,
    private readonly rate: LogRate,
  ) {
    this.subject = logs(origin.app);
    this.tokens = rate.burst;
    this.refilledAt = shipper.now();
  }

  /** Publishes one line unless this origin is over its rate. */
  line(stream: LogStream, text: string): void {
    const now = this.shipper.now();
    if (this.tokens < 1) {
      this.tokens = Math.min(
        this.rate.burst,
        this.tokens + ((now - this.refilledAt) * this.rate.linesPerSecond) / 1000,
      );
      this.refilledAt = now;
      if (this.tokens < 1) {
        if (this.droppedSince === 0) this.shipper.owesReport(this);
        this.droppedSince++;
        this.shipper.counters.dropped++;
        return;
      }
    }
    this.tokens--;
    this.shipper.publish(this.subject, this.origin, stream, text, now);
  }

  /** Reads `from` to its end, one line() per line. */
  attach(stream: LogStream, from: Readable): Promise<void> {
    return pipeLines(from, (text) => this.line(stream, text));
  }

  /** Publishes the count of lines dropped since the last report, if any. */
  report(): void {
    const n = this.droppedSince;
    if (n === 0) return;
    this.droppedSince = 0;
    this.shipper.publish(
      this.subject,
      this.origin,
      "stderr",
      `kiln: ${n} log line${n === 1 ? "" : "s"} dropped (over ${this.rate.linesPerSecond} lines/s)`,
      this.shipper.now(),
    );
  }
}

export interface LogShipperOptions {
  bus: KilnConnection;
  log: Logger;
  rate?: Partial<LogRate>;
  /** How often dropped-line counts are reported, ms. */
  reportIntervalMs?: number;
  now?: () => number;
}

export class LogShipper {
  readonly counters: LogCounters = { published: 0, dropped: 0, failed: 0 };
  readonly now: () => number;
  private readonly bus: KilnConnection;
  private readonly log: Logger;
  private readonly rate: LogRate;
  private readonly owing = new Set<LogOutlet>();
  private readonly timer: NodeJS.Timeout;

  constructor(options: LogShipperOptions) {
    this.bus = options.bus;
    this.log = options.log;
    this.rate = { ...logRateDefaults, ...options.rate };
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.flush(), options.reportIntervalMs ?? 1_000);
    this.timer.unref();
  }

  outlet(origin: LogOrigin): LogOutlet {
    return new LogOutlet(this, origin, this.rate);
  }

  /** Reports every pending dropped count now. */
  flush(): void {
    for (const o of this.owing) o.report();
    this.owing.clear();
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }

  /** @internal an outlet started dropping: report it at the next flush. */
  owesReport(o: LogOutlet): void {
    this.owing.add(o);
  }

  /** @internal */
  publish(subject: string, origin: LogOrigin, stream: LogStream, text: string, at: number): void {
    try {
      this.bus.publish(
        subject,
        encode("logs", { at, source: origin.source, index: origin.index, stream, text }),
      );
      this.counters.published++;
    } catch (err) {
      // NATS closed or its reconnect buffer is full: a log line is not worth stopping an app for.
      if (this.counters.failed++ === 0) this.log.warn("log_publish_failed", { error: err });
    }
  }
}
