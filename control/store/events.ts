// Audit events: published to KILN_EVENTS on `events.<kind>` with a JetStream ack (so a write the
// API reported is on record), and read back oldest first with an ordered consumer.
import { randomUUID } from "node:crypto";
import type { NatsConnection } from "nats";
import { duringFailover, ensureEventStream, jetStreamManager } from "../../messaging/jetstream.js";
import { events, STREAM_EVENTS } from "../../messaging/subjects.js";
import { CcError } from "../errors.js";
import type { AuditEvent } from "./records.js";

export type EventInput = Omit<AuditEvent, "guid" | "created_at">;

function isAuditEvent(v: unknown): v is AuditEvent {
  const e = v as AuditEvent | null;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof e.guid === "string" &&
    typeof e.type === "string" &&
    typeof e.actor === "string" &&
    typeof e.target_guid === "string" &&
    typeof e.created_at === "string"
  );
}

/**
 * A read of the audit log whose consumer delivers nothing this long after it was asked for is
 * started again with a new consumer: nats-server 2.9 may place an ordered consumer on a peer
 * the cluster lost, and such a consumer never delivers. On a live peer the first message comes
 * in milliseconds, so a short deadline leaves room for several tries within FAILOVER_MS.
 */
const FIRST_MESSAGE_MS = 3_000;
/** A read that then gets no further message for this long is started again too. */
const LIST_STALL_MS = 5_000;
/** Closing a consumer on a lost peer may never finish: it is not waited for longer than this. */
const CLOSE_MS = 1_000;

export class AuditLog {
  private readonly nc: NatsConnection;

  private constructor(nc: NatsConnection) {
    this.nc = nc;
  }

  static async open(nc: NatsConnection, replicas: number): Promise<AuditLog> {
    await ensureEventStream(nc, replicas);
    return new AuditLog(nc);
  }

  async record(input: EventInput): Promise<AuditEvent> {
    const event: AuditEvent = { guid: randomUUID(), created_at: new Date().toISOString(), ...input };
    const kind = input.type.split(".")[0] ?? "misc";
    try {
      const data = new TextEncoder().encode(JSON.stringify(event));
      await duringFailover(() => this.nc.jetstream().publish(events(kind), data));
    } catch (err) {
      throw new CcError(
        "KILN_CC_STORE_UNAVAILABLE",
        `recording event ${input.type}: ${(err as Error).message}`,
        err,
      );
    }
    return event;
  }

  private async listOnce(keep: (e: AuditEvent) => boolean): Promise<AuditEvent[]> {
    const jsm = await jetStreamManager(this.nc);
    const info = await jsm.streams.info(STREAM_EVENTS);
    const out: AuditEvent[] = [];
    if (info.state.messages === 0) return out;
    const last = info.state.last_seq;
    // Every step that waits on the consumer has a deadline: creating it, its first message, each
    // next one, its close. A step past its deadline fails this try (TIMEOUT) and list() retries.
    const consumer = await withinMs(this.nc.jetstream().consumers.get(STREAM_EVENTS), FIRST_MESSAGE_MS);
    const messages = await withinMs(consumer.consume(), FIRST_MESSAGE_MS);
    let stalled: (err: Error) => void = () => {};
    const stall = new Promise<never>((_, reject) => {
      stalled = reject;
    });
    stall.catch(() => {});
    const deadline = (ms: number) =>
      setTimeout(() => stalled(timeoutError(`no message from ${STREAM_EVENTS} for ${ms} ms`)), ms);
    let timer = deadline(FIRST_MESSAGE_MS);
    const read = async (): Promise<void> => {
      for await (const m of messages) {
        clearTimeout(timer);
        timer = deadline(LIST_STALL_MS);
        let v: unknown = null;
        try {
          v = m.json<unknown>();
        } catch {
          // Not JSON: some other publisher's line, not an audit event.
        }
        if (isAuditEvent(v) && keep(v)) out.push(v);
        if (m.info.pending === 0 || m.seq >= last) return;
      }
      throw Object.assign(new Error(`${STREAM_EVENTS} closed the read`), { code: "CLOSED" });
    };
    try {
      await Promise.race([read(), stall]);
    } finally {
      clearTimeout(timer);
      await withinMs(messages.close(), CLOSE_MS).catch(() => {});
    }
    return out;
  }

  /** Every audit event kept, oldest first, that `keep` accepts (other publishers' lines are skipped). */
  async list(keep: (e: AuditEvent) => boolean = () => true): Promise<AuditEvent[]> {
    try {
      // Its ordered consumer may be placed on a peer the cluster lost (nats-server 2.9): a try
      // that gets stuck ends at its step's deadline and is retried with a new consumer.
      return await duringFailover(() => this.listOnce(keep), true);
    } catch (err) {
      throw new CcError(
        "KILN_CC_STORE_UNAVAILABLE",
        `reading ${STREAM_EVENTS}: ${(err as Error).message}`,
        err,
      );
    }
  }
}

function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { code: "TIMEOUT" });
}

/** `p`, or a TIMEOUT error once `ms` have passed (`p` is then left to settle on its own). */
function withinMs<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError(`no answer from ${STREAM_EVENTS} in ${ms} ms`)), ms);
  });
  p.catch(() => {});
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
