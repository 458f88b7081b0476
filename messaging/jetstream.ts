// The JetStream assets every component may be first to need: the KILN_LOGS and KILN_EVENTS
// streams (bounded by age and size, oldest discarded) and the kiln_blobs object store.
// Creating them is idempotent, so whichever component starts first makes them and the
// others find them; a stream that exists keeps its configuration. `replicas` comes from
// messaging/replicas.ts (jetStreamReplicas), decided once per component.
import { DiscardPolicy, type NatsConnection, type ObjectStore, RetentionPolicy, StorageType } from "nats";
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

async function ensureStream(
  nc: NatsConnection,
  name: keyof typeof STREAM_SUBJECTS,
  replicas: number,
  b: StreamBounds,
) {
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.info(name);
    return;
  } catch (err) {
    if ((err as { api_error?: { err_code?: number } }).api_error?.err_code !== STREAM_NOT_FOUND) throw err;
  }
  try {
    await jsm.streams.add({
      name,
      subjects: [...STREAM_SUBJECTS[name]],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      storage: StorageType.File,
      max_age: b.maxAgeMs * 1_000_000,
      max_bytes: b.maxBytes,
      num_replicas: replicas,
    });
  } catch (err) {
    // Another component created it between our info and add: that is the same outcome.
    try {
      await jsm.streams.info(name);
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

/** The kiln_blobs object store, created with `replicas` when missing. */
export async function blobStore(nc: NatsConnection, replicas: number): Promise<ObjectStore> {
  try {
    return await nc.jetstream().views.os(OBJECT_STORE_BLOBS, { storage: StorageType.File, replicas });
  } catch (err) {
    throw new MessagingError(
      "KILN_MSG_JETSTREAM",
      `cannot open the object store ${OBJECT_STORE_BLOBS}: ${(err as Error).message}`,
    );
  }
}
