// Typed JSON records over one JetStream KV bucket, every write compare-and-set on the entry's
// revision: create expects no entry, update re-reads and re-applies its change when another
// writer got there first, delete expects the revision it read. Nothing is ever overwritten blind.
// A call made while the bucket elects a new leader (a cluster node lost) waits for it.
import type { KV, KvEntry, NatsConnection } from "nats";
import { duringFailover, jetStreamManager } from "../../messaging/jetstream.js";
import { CcError } from "../errors.js";

/** JetStream's "wrong last sequence" (another write came between our read and our write). */
const WRONG_LAST_SEQUENCE = 10071;
/** Attempts of one update before it gives up with KILN_CC_CONFLICT. */
const MAX_ATTEMPTS = 100;

export interface Versioned<T> {
  value: T;
  revision: number;
  /** When this revision was written (the server's clock). */
  created: Date;
}

/** What an update function returns to leave the record as it is (no write, no revision). */
export const UNCHANGED: unique symbol = Symbol("unchanged");

export function isConflict(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | null)?.api_error?.err_code === WRONG_LAST_SEQUENCE;
}

function storeError(bucket: string, op: string, err: unknown): CcError {
  if (err instanceof CcError) return err;
  return new CcError(
    "KILN_CC_STORE_UNAVAILABLE",
    `${op} in ${bucket} failed: ${(err as Error).message}`,
    err,
  );
}

/** Short random pause between attempts, growing with them, so contenders spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(50, 2 ** Math.min(attempt, 6));
  return new Promise((r) => setTimeout(r, ms));
}

export class Records<T> {
  readonly bucket: string;
  private readonly kv: KV;
  private readonly nc: NatsConnection;

  private constructor(bucket: string, kv: KV, nc: NatsConnection) {
    this.bucket = bucket;
    this.kv = kv;
    this.nc = nc;
  }

  /** Opens the bucket, creating it (one revision kept per key, `replicas` copies) when missing; idempotent. */
  static async open<T>(nc: NatsConnection, bucket: string, replicas: number): Promise<Records<T>> {
    try {
      // Retried while a cluster that has just formed elects its meta leader (idempotent).
      const kv = await duringFailover(() => nc.jetstream().views.kv(bucket, { history: 1, replicas }), true);
      return new Records<T>(bucket, kv, nc);
    } catch (err) {
      throw storeError(bucket, "opening the bucket", err);
    }
  }

  private decode(e: KvEntry | null): Versioned<T> | null {
    if (e === null || e.operation !== "PUT") return null;
    return { value: e.json<T>(), revision: e.revision, created: e.created };
  }

  private encode(value: T): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(value));
  }

  /** The same bucket holding another record type (kiln_apps keeps apps, name keys and packages). */
  as<U>(): Records<U> {
    return new Records<U>(this.bucket, this.kv, this.nc);
  }

  async get(key: string): Promise<Versioned<T> | null> {
    try {
      return this.decode(await duringFailover(() => this.kv.get(key), true));
    } catch (err) {
      throw storeError(this.bucket, `reading ${key}`, err);
    }
  }

  /** Writes `value` under `key` only if there is none: the new revision, or null when the key is taken. */
  async create(key: string, value: T): Promise<number | null> {
    try {
      return await duringFailover(() => this.kv.create(key, this.encode(value)));
    } catch (err) {
      if (isConflict(err)) return null;
      throw storeError(this.bucket, `creating ${key}`, err);
    }
  }

  /**
   * Read → `fn` → write at the revision read; on a conflict re-reads and calls `fn` again on the
   * fresh value (so `fn` must be a pure change of its input). `fn` returns UNCHANGED to skip the
   * write, or throws to abort. Resolves with the value written (or left), null when there is no record.
   */
  async update(key: string, fn: (current: T) => T | typeof UNCHANGED): Promise<Versioned<T> | null> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.get(key);
      if (current === null) return null;
      const next = fn(current.value);
      if (next === UNCHANGED) return current;
      try {
        const revision = await duringFailover(() => this.kv.update(key, this.encode(next), current.revision));
        return { value: next, revision, created: new Date() };
      } catch (err) {
        if (!isConflict(err)) throw storeError(this.bucket, `updating ${key}`, err);
      }
      await backoff(attempt);
    }
    throw new CcError(
      "KILN_CC_CONFLICT",
      `${key} in ${this.bucket} kept changing; gave up after ${MAX_ATTEMPTS} tries`,
    );
  }

  /** Deletes `key` if it is still at `revision` (any revision when omitted); false when it moved or is gone. */
  async delete(key: string, revision?: number): Promise<boolean> {
    try {
      if (revision === undefined) {
        const cur = await this.get(key);
        if (cur === null) return false;
        revision = cur.revision;
      }
      const previousSeq = revision;
      await duringFailover(() => this.kv.delete(key, { previousSeq }));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw storeError(this.bucket, `deleting ${key}`, err);
    }
  }

  /** Keys of live records matching a NATS subject filter (`*` one token, `>` the rest), e.g. `name.*`. */
  async keys(filter = ">"): Promise<string[]> {
    return (await this.list(filter)).map((r) => r.key);
  }

  /**
   * Keys that have a message, deleted ones included, from the stream's subject counts: the
   * stream leader answers, no consumer is made. (nats.js's kv.keys() makes an ephemeral
   * consumer, which nats-server 2.9 may place on a lost peer: the call then times out.)
   */
  private async subjectKeys(filter: string): Promise<string[]> {
    const prefix = `$KV.${this.bucket}.`;
    try {
      const jsm = await jetStreamManager(this.nc);
      const si = await duringFailover(
        () => jsm.streams.info(`KV_${this.bucket}`, { subjects_filter: `${prefix}${filter}` }),
        true,
      );
      return Object.keys(si.state.subjects ?? {}).map((s) => s.slice(prefix.length));
    } catch (err) {
      throw storeError(this.bucket, `listing ${filter}`, err);
    }
  }

  /** Every live record whose key matches `filter`, in key order. */
  async list(filter = ">"): Promise<({ key: string } & Versioned<T>)[]> {
    const keys = (await this.subjectKeys(filter)).sort();
    const got = await Promise.all(keys.map(async (key) => ({ key, entry: await this.get(key) })));
    const out: ({ key: string } & Versioned<T>)[] = [];
    for (const g of got) if (g.entry !== null) out.push({ key: g.key, ...g.entry });
    return out;
  }
}
