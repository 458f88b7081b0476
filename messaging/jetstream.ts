// The JetStream assets every component may be first to need: the KILN_LOGS and KILN_EVENTS
// streams (bounded by age and size, oldest discarded) and the kiln_blobs object store.
// Creating them is idempotent, so whichever component starts first makes them and the
// others find them; a stream that exists keeps its configuration. `replicas` comes from
// messaging/replicas.ts (jetStreamReplicas), decided once per component.
import {
  DiscardPolicy,
  type JetStreamManager,
  type NatsConnection,
  type ObjectStore,
  RetentionPolicy,
  StorageType,
} from "nats";
import { MessagingError } from "./errors.js";
import { OBJECT_STORE_BLOBS, STREAM_EVENTS, STREAM_LOGS, STREAM_SUBJECTS } from "./subjects.js";

export interface StreamBounds {
  /** Oldest message kept, ms. */
  maxAgeMs: number;
  /** Bytes kept in all; the oldest go first. */
  maxBytes: number;
}

/** Log lines: a day or 1 GiB, whichever comes first (`kiln logs --recent` reads the tail). */
export const logsBoundsDefault: StreamBounds = { maxAgeMs: 24 * 3600_000, maxBytes: 1024 ** 3 };
/** Audit events: 30 days or 256 MiB. */
export const eventsBoundsDefault: StreamBounds = { maxAgeMs: 30 * 24 * 3600_000, maxBytes: 256 * 1024 ** 2 };

const STREAM_NOT_FOUND = 10059;

/**
 * A JetStream manager without nats.js's opening account-info request: that costs a round trip
 * per call, and right after a cluster formed (no meta leader yet) it times out where the caller
 * would have retried (duringFailover).
 */
export function jetStreamManager(nc: NatsConnection): Promise<JetStreamManager> {
  return nc.jetstreamManager({ checkAPI: false });
}

async function ensureStream(
  nc: NatsConnection,
  name: keyof typeof STREAM_SUBJECTS,
  replicas: number,
  b: StreamBounds,
) {
  // Components start as soon as their server answers; the JetStream API of a cluster that has
  // just formed does not answer until its meta leader is elected, hence duringFailover. Adding
  // is safe to repeat: a second add of the same stream is caught below.
  const jsm = await jetStreamManager(nc);
  try {
    await duringFailover(() => jsm.streams.info(name), true);
    return;
  } catch (err) {
    if ((err as { api_error?: { err_code?: number } }).api_error?.err_code !== STREAM_NOT_FOUND) {
      throw new MessagingError(
        "KILN_MSG_JETSTREAM",
        `cannot read the JetStream stream ${name}: ${(err as Error).message}`,
      );
    }
  }
  try {
    await duringFailover(
      () =>
        jsm.streams.add({
          name,
          subjects: [...STREAM_SUBJECTS[name]],
          retention: RetentionPolicy.Limits,
          discard: DiscardPolicy.Old,
          storage: StorageType.File,
          max_age: b.maxAgeMs * 1_000_000,
          max_bytes: b.maxBytes,
          num_replicas: replicas,
        }),
      true,
    );
  } catch (err) {
    // Another component created it between our info and add: that is the same outcome.
    try {
      await duringFailover(() => jsm.streams.info(name), true);
    } catch {
      throw new MessagingError(
        "KILN_MSG_JETSTREAM",
        `cannot create the JetStream stream ${name}: ${(err as Error).message}`,
      );
    }
  }
}

/** Makes sure KILN_LOGS exists (creating it with `replicas` and `bounds` when missing). */
export function ensureLogStream(
  nc: NatsConnection,
  replicas: number,
  bounds: StreamBounds = logsBoundsDefault,
): Promise<void> {
  return ensureStream(nc, STREAM_LOGS, replicas, bounds);
}

/** Makes sure KILN_EVENTS exists (creating it with `replicas` and `bounds` when missing). */
export function ensureEventStream(
  nc: NatsConnection,
  replicas: number,
  bounds: StreamBounds = eventsBoundsDefault,
): Promise<void> {
  return ensureStream(nc, STREAM_EVENTS, replicas, bounds);
}

/**
 * The kiln_blobs object store, created with `replicas` when missing. Its `get` and `info` are retried
 * while the cluster recovers from a lost server (duringFailover): each get makes an ordered
 * consumer, which nats-server 2.9 may place on the lost peer, and that get times out.
 */
export async function blobStore(nc: NatsConnection, replicas: number): Promise<ObjectStore> {
  try {
    const os = await duringFailover(
      () => nc.jetstream().views.os(OBJECT_STORE_BLOBS, { storage: StorageType.File, replicas }),
      true,
    );
    const get = os.get.bind(os);
    const info = os.info.bind(os);
    // Everything else from the store itself (a prototype link, no copy of its state).
    const store = Object.create(os) as ObjectStore;
    store.get = (name: string) => duringFailover(() => get(name), true);
    store.info = (name: string) => duringFailover(() => info(name), true);
    return store;
  } catch (err) {
    throw new MessagingError(
      "KILN_MSG_JETSTREAM",
      `cannot open the object store ${OBJECT_STORE_BLOBS}: ${(err as Error).message}`,
    );
  }
}

/**
 * How long a JetStream call is retried while its asset has no leader. When a server of a
 * cluster dies, each R3 stream, bucket and object store it led elects another leader among the
 * others; until then the API has no responder (503), which is safe to retry: nothing was stored.
 */
export const FAILOVER_MS = 20_000;

function noResponders(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === "503";
}

function timedOut(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "TIMEOUT" || code === "408";
}

/**
 * Runs `op`, again while JetStream answers "no responders" (a leader election after a server
 * was lost) for up to FAILOVER_MS. `idempotent` ops (reads) are also retried after a timeout;
 * a write that timed out may have been stored, so its error is the caller's.
 */
export async function duringFailover<R>(op: () => Promise<R>, idempotent = false): Promise<R> {
  const deadline = Date.now() + FAILOVER_MS;
  for (let pause = 100; ; pause = Math.min(1_000, pause * 2)) {
    try {
      return await op();
    } catch (err) {
      if (!(noResponders(err) || (idempotent && timedOut(err))) || Date.now() + pause > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, pause));
  }
}
