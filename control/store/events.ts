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

/** A read of the audit log that gets no message for this long is started again. */
const LIST_STALL_MS = 5_000;

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
    const consumer = await this.nc.jetstream().consumers.get(STREAM_EVENTS);
    const messages = await consumer.consume();
    // An ordered consumer placed on a lost peer never delivers (nats.js keeps waiting): a read
    // that stalls is given up, and list() tries again with a new consumer.
    let stalled = false;
    const stall = () =>
      setTimeout(() => {
        stalled = true;
        void messages.close();
      }, LIST_STALL_MS);
    let timer = stall();
    let complete = false;
    try {
      for await (const m of messages) {
        clearTimeout(timer);
        timer = stall();
        let v: unknown = null;
        try {
          v = m.json<unknown>();
        } catch {
          // Not JSON: some other publisher's line, not an audit event.
        }
        if (isAuditEvent(v) && keep(v)) out.push(v);
        if (m.info.pending === 0 || m.seq >= last) {
          complete = true;
          break;
        }
      }
    } finally {
      clearTimeout(timer);
      await messages.close();
    }
    if (!complete)
      throw Object.assign(new Error(`no message from ${STREAM_EVENTS} for ${LIST_STALL_MS} ms`), {
        code: stalled ? "TIMEOUT" : "CLOSED",
      });
    return out;
  }

  /** Every audit event kept, oldest first, that `keep` accepts (other publishers' lines are skipped). */
  async list(keep: (e: AuditEvent) => boolean = () => true): Promise<AuditEvent[]> {
    try {
      // Its ordered consumer may be placed on a peer the cluster lost (nats-server 2.9): retried.
      // A read can also hang before its first message or in its close (a consumer created on,
      // or closed against, the lost peer): each try has a deadline of its own.
      return await duringFailover(() => withinMs(this.listOnce(keep), 2 * LIST_STALL_MS), true);
    } catch (err) {
      throw new CcError(
        "KILN_CC_STORE_UNAVAILABLE",
        `reading ${STREAM_EVENTS}: ${(err as Error).message}`,
        err,
      );
    }
  }
}

/** `p`, or a TIMEOUT error once `ms` have passed (`p` is then left to settle on its own). */
function withinMs<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(Object.assign(new Error(`no answer from ${STREAM_EVENTS} in ${ms} ms`), { code: "TIMEOUT" })),
      ms,
    );
  });
  p.catch(() => {});
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
