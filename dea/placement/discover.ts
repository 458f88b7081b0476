// The DEA's side of dea.discover: decode, refuse what is malformed (counted by code, one
// log line, never a throw), stay silent when excluded or without room, otherwise answer
// after the taint delay. Room is checked again when the delay ends: a start that came
// in meanwhile may have taken it.

import type { Subscription } from "nats";
import type { Logger } from "../../kernel/log.js";
import { decode, encode } from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { DEA_DISCOVER, isValidToken } from "../../messaging/subjects.js";
import type { ResourceLedger } from "./ledger.js";
import { lacksRoom } from "./room.js";
import { taintDelayMs, taintHashMs } from "./taint.js";

/** Replies waiting for their delay; beyond this a discover is dropped (a flood, not placement). */
export const MAX_PENDING_REPLIES = 4096;

export interface DiscoverCounters {
  received: number;
  answered: number;
  excluded: number;
  /** Silent for lack of memory, disk or stack (at receipt or when the delay ended). */
  noRoom: number;
  /** Dropped because MAX_PENDING_REPLIES replies were already waiting. */
  dropped: number;
  /** Reply could not be sent (connection closed, reconnect buffer full). */
  replyFailed: number;
  /** Refused discovers by error code (KILN_MSG_BAD_PROTOBUF, KILN_MSG_INVALID_FIELD, …). */
  rejected: Record<string, number>;
}

export interface DiscoverResponderOptions {
  bus: KilnConnection;
  ledger: ResourceLedger;
  deaId: string;
  stacks: readonly string[];
  log: Logger;
}

export class DiscoverResponder {
  private readonly o: DiscoverResponderOptions;
  private readonly pending = new Set<NodeJS.Timeout>();
  private sub: Subscription | null = null;
  private readonly c: DiscoverCounters = {
    received: 0,
    answered: 0,
    excluded: 0,
    noRoom: 0,
    dropped: 0,
    replyFailed: 0,
    rejected: {},
  };

  constructor(options: DiscoverResponderOptions) {
    this.o = options;
  }

  /** Subscribes to dea.discover. */
  start(): void {
    if (this.sub !== null) return;
    this.sub = this.o.bus.nc.subscribe(DEA_DISCOVER, {
      callback: (err, msg) => {
        if (err !== null) {
          this.o.log.warn("discover_subscription_error", { error: err });
          return;
        }
        this.handle(msg.data, msg.reply);
      },
    });
  }

  /** Unsubscribes and forgets replies still waiting for their delay. */
  stop(): void {
    this.sub?.unsubscribe();
    this.sub = null;
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
  }

  counters(): DiscoverCounters {
    return { ...this.c, rejected: { ...this.c.rejected } };
  }

  /** One dea.discover payload and its reply subject. */
  handle(data: Uint8Array, reply: string | undefined): void {
    this.c.received++;
    let app: string;
    let request: ReturnType<typeof decode<"dea.discover">>;
    try {
      request = decode("dea.discover", data);
      app = request.app;
      // The app guid names the app's log subject (logs.<app>); one that cannot be a token is no app.
      if (!isValidToken(app)) {
        this.reject("KILN_MSG_BAD_SUBJECT_TOKEN", "app is not a subject token");
        return;
      }
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      this.reject(typeof e.code === "string" ? e.code : "UNKNOWN", String(e.message));
      return;
    }
    if (reply === undefined || reply === "") {
      this.reject("KILN_DEA_DISCOVER_NO_REPLY", `dea.discover for app ${app} has no reply subject`);
      return;
    }
    if (request.excludeDeaIds.includes(this.o.deaId)) {
      this.c.excluded++;
      return;
    }
    const ledger = this.o.ledger;
    const offer = {
      availableMemoryMb: ledger.availableMemoryMb,
      availableDiskMb: ledger.availableDiskMb,
      stacks: this.o.stacks,
    };
    const missing = lacksRoom(request, offer);
    if (missing !== null) {
      this.c.noRoom++;
      this.o.log.debug("discover_no_room", {
        app,
        missing,
        memoryMb: request.memoryMb,
        diskMb: request.diskMb,
      });
      return;
    }
    if (this.pending.size >= MAX_PENDING_REPLIES) {
      this.c.dropped++;
      return;
    }
    const appInstances = ledger.instancesOf(app);
    const delay = Math.round(
      taintDelayMs({ appInstances, memoryRatio: ledger.memoryRatio, hashMs: taintHashMs(app, this.o.deaId) }),
    );
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      this.answer(request, reply, delay);
    }, delay);
    this.pending.add(timer);
  }

  private answer(
    request: { app: string; memoryMb: number; diskMb: number; stack: string },
    reply: string,
    taintMs: number,
  ): void {
    const ledger = this.o.ledger;
    const offer = {
      availableMemoryMb: ledger.availableMemoryMb,
      availableDiskMb: ledger.availableDiskMb,
      stacks: this.o.stacks,
    };
    if (lacksRoom(request, offer) !== null) {
      this.c.noRoom++;
      return;
    }
    try {
      this.o.bus.publish(
        reply,
        encode("dea.discover:reply", {
          deaId: this.o.deaId,
          appInstances: ledger.instancesOf(request.app),
          availableMemoryMb: offer.availableMemoryMb,
          availableDiskMb: offer.availableDiskMb,
          taintMs,
        }),
      );
      this.c.answered++;
    } catch (err) {
      this.c.replyFailed++;
      this.o.log.warn("discover_reply_failed", { app: request.app, error: err });
    }
  }

  private reject(code: string, why: string): void {
    this.c.rejected[code] = (this.c.rejected[code] ?? 0) + 1;
    // The reason is cut: a huge payload must not become a huge log line.
    this.o.log.warn("discover_rejected", { code, reason: why.length > 200 ? `${why.slice(0, 200)}…` : why });
  }
}
