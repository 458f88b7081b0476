// Desired state: every app record of kiln_apps, kept current by a KV watch (never polled).
// Only primary keys (an app's guid, one token) are watched: name and package records share the
// bucket under keys of two or more tokens (control/store/records.ts).
import type { KV, KvEntry, NatsConnection, QueuedIterator } from "nats";
import type { Logger } from "../kernel/log.js";
import { duringFailover } from "../messaging/jetstream.js";
import { KV_APPS } from "../messaging/subjects.js";
import type { DesiredApp } from "./analyze.js";

/** How long a deletion is remembered: longer than any grace the analysis gives it. */
const DELETED_KEPT_MS = 10 * 60_000;

export class DesiredState {
  readonly apps = new Map<string, DesiredApp>();
  readonly deleted = new Map<string, number>();
  private watcher: QueuedIterator<KvEntry> | null = null;
  private rejected = 0;
  private readonly now: () => number;

  constructor(
    private readonly log: Logger,
    now: () => number = Date.now,
    /** Told of every change after it is applied. */
    private readonly onChange: (guid: string) => void = () => {},
  ) {
    this.now = now;
  }

  /** Opens the bucket and watches it; resolves once the records present at start are all read. */
  async start(nc: NatsConnection, replicas: number): Promise<void> {
    // Created here too when the HM starts before any controller: the same shape the CC gives it.
    // Retried while a cluster that has just formed elects its meta leader (idempotent).
    const kv: KV = await duringFailover(
      () => nc.jetstream().views.kv(KV_APPS, { history: 1, replicas }),
      true,
    );
    let initialized: () => void = () => {};
    const ready = new Promise<void>((r) => {
      initialized = r;
    });
    const w = await kv.watch({ key: "*", initializedFn: () => initialized() });
    this.watcher = w;
    void (async () => {
      for await (const e of w) this.apply(e);
    })().catch((err: unknown) => this.log.warn("desired_watch_ended", { error: err }));
    await ready;
  }

  stop(): void {
    this.watcher?.stop();
    this.watcher = null;
  }

  /** Malformed app records ignored so far. */
  get rejectedRecords(): number {
    return this.rejected;
  }

  apply(e: Pick<KvEntry, "key" | "operation" | "json" | "created">): void {
    const now = this.now();
    // When the store took the write: a record unchanged for long is settled even for an HM that just started.
    const at = Math.min(now, e.created.getTime());
    for (const [g, at] of this.deleted) if (now - at > DELETED_KEPT_MS) this.deleted.delete(g);
    if (e.operation !== "PUT") {
      this.apps.delete(e.key);
      this.deleted.set(e.key, at);
      this.onChange(e.key);
      return;
    }
    let r: Record<string, unknown>;
    try {
      r = e.json<Record<string, unknown>>();
    } catch (err) {
      this.reject(e.key, err);
      return;
    }
    if (
      r === null ||
      typeof r !== "object" ||
      (r.state !== "STARTED" && r.state !== "STOPPED") ||
      !Number.isInteger(r.instances) ||
      typeof r.version !== "string"
    ) {
      this.reject(e.key, new Error("not an app record"));
      return;
    }
    const before = this.apps.get(e.key);
    const next: DesiredApp = {
      guid: e.key,
      name: typeof r.name === "string" ? r.name : "",
      space: typeof r.space_guid === "string" ? r.space_guid : "",
      state: r.state,
      instances: r.instances as number,
      version: r.version,
      hasDroplet: typeof r.droplet_guid === "string",
      changedAt: at,
    };
    // A rewrite that changes nothing the HM cares about (a timestamp) does not restart the grace.
    if (
      before !== undefined &&
      before.state === next.state &&
      before.instances === next.instances &&
      before.version === next.version &&
      before.hasDroplet === next.hasDroplet
    )
      next.changedAt = before.changedAt;
    this.apps.set(e.key, next);
    this.deleted.delete(e.key);
    this.onChange(e.key);
  }

  private reject(key: string, err: unknown): void {
    this.rejected++;
    this.log.warn("app_record_rejected", {
      code: "KILN_HM_BAD_MESSAGE",
      key,
      rejected: this.rejected,
      error: err,
    });
  }
}
