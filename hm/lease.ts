// Leadership between Health Managers: one key in the kiln_hm bucket, written only by
// compare-and-set on its revision. The leader rewrites it every fifth of the lease; another HM
// takes it over (again by compare-and-set, so only one wins) once the server's timestamp of the
// last write is older than the lease. nats-server 2.9 has no per-key TTL, hence the timestamp.
import { randomUUID } from "node:crypto";
import type { KV, NatsConnection } from "nats";
import type { Logger } from "../kernel/log.js";
import { duringFailover } from "../messaging/jetstream.js";
import { KV_HM } from "../messaging/subjects.js";

const KEY = "leader";

export class LeaderLease {
  readonly id = randomUUID();
  private kv: KV | null = null;
  private revision: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();

  constructor(
    private readonly leaseMs: number,
    private readonly log: Logger,
    private readonly onChange: (leader: boolean) => void,
  ) {}

  get leader(): boolean {
    return this.revision !== null;
  }

  async start(nc: NatsConnection, replicas: number): Promise<void> {
    // Retried while a cluster that has just formed elects its meta leader (idempotent).
    this.kv = await duringFailover(() => nc.jetstream().views.kv(KV_HM, { history: 1, replicas }), true);
    await this.tick();
    this.timer = setInterval(
      () => {
        this.ticking = this.ticking.then(() => this.tick());
      },
      Math.max(50, Math.floor(this.leaseMs / 5)),
    );
  }

  /** Stops renewing; a leader gives the lease up so the other HM need not wait it out. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    if (this.kv !== null && this.revision !== null)
      await this.kv.delete(KEY, { previousSeq: this.revision }).catch(() => {});
    this.set(null);
  }

  private set(revision: number | null): void {
    const was = this.revision !== null;
    this.revision = revision;
    if (was !== (revision !== null)) {
      this.log.info(revision !== null ? "lease_acquired" : "lease_lost", { id: this.id });
      this.onChange(revision !== null);
    }
  }

  private async tick(): Promise<void> {
    const kv = this.kv;
    if (kv === null) return;
    const value = new TextEncoder().encode(JSON.stringify({ id: this.id, at: Date.now() }));
    try {
      if (this.revision !== null) {
        this.set(await kv.update(KEY, value, this.revision));
        return;
      }
      const e = await kv.get(KEY);
      if (e === null || e.operation !== "PUT") this.set(await kv.create(KEY, value));
      else if (Date.now() - e.created.getTime() > this.leaseMs)
        this.set(await kv.update(KEY, value, e.revision));
    } catch (err) {
      // Another HM wrote first (or NATS is away): not the leader until a later tick says so.
      if (this.revision !== null) this.log.warn("lease_renewal_failed", { error: err });
      this.set(null);
    }
  }
}
