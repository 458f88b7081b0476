// What runs, as the DEAs report it: every instance from the latest dea.heartbeat of its DEA,
// dropped at once on droplet.exited and forgotten when its DEA has not beaten for a few
// intervals. Derived state only: a restarted controller knows it again after one heartbeat,
// so nothing here needs to outlive the process.
import type { Subscription } from "nats";
import type { Logger } from "../../kernel/log.js";
import {
  type DeaHeartbeat,
  type DropletExited,
  decode,
  type InstanceHeartbeat,
} from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { DEA_HEARTBEAT, DROPLET_EXITED } from "../../messaging/subjects.js";

export interface ActualInstance extends InstanceHeartbeat {
  deaId: string;
  /** When its DEA last reported it (ms). */
  seenAt: number;
}

export interface ActualStateOptions {
  bus: KilnConnection;
  log: Logger;
  /** A DEA silent this long has its instances forgotten, ms (three 5 s heartbeats by default). */
  staleAfterMs?: number;
  now?: () => number;
  /** Code logged with a rejected message (the Health Manager's KILN_HM_BAD_MESSAGE). */
  rejectCode?: string;
  /** Told of each well-formed exit after it is applied (the Health Manager acts on it at once). */
  onExited?: (exited: DropletExited) => void;
}

/** Drops the entries of `seen` (id → when, ms) older than `cutoff`. */
function forgetOlder(seen: Map<string, number>, cutoff: number): void {
  for (const [id, at] of seen) if (at < cutoff) seen.delete(id);
}

export class ActualState {
  private readonly byApp = new Map<string, Map<string, ActualInstance>>();
  /**
   * Instances reported exited, and when: a heartbeat sampled before the exit but delivered
   * after it must not bring them back. Kept as long as a silent DEA's instances are.
   */
  private readonly gone = new Map<string, number>();
  /** `${app}/${index}` → when its last exit was received (ms): a START older than that is spent. */
  private readonly exits = new Map<string, number>();
  /** deaId → when its last heartbeat was received (ms). */
  private readonly deaSeen = new Map<string, number>();
  private readonly subs: Subscription[] = [];
  private readonly staleAfterMs: number;
  private readonly now: () => number;
  private rejected = 0;

  constructor(private readonly o: ActualStateOptions) {
    this.staleAfterMs = o.staleAfterMs ?? 15_000;
    this.now = o.now ?? Date.now;
  }

  start(): void {
    if (this.subs.length > 0) return;
    const nc = this.o.bus.nc;
    this.subs.push(
      nc.subscribe(DEA_HEARTBEAT, { callback: (err, m) => err === null && this.onHeartbeat(m.data) }),
      nc.subscribe(DROPLET_EXITED, { callback: (err, m) => err === null && this.onExited(m.data) }),
    );
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs.length = 0;
  }

  /** Apps with at least one instance reported (some may have gone stale since). */
  apps(): string[] {
    return [...this.byApp.keys()];
  }

  /** The app's instances as last reported, by index then instance id. */
  instances(app: string): ActualInstance[] {
    const m = this.byApp.get(app);
    if (m === undefined) return [];
    const cutoff = this.now() - this.staleAfterMs;
    const out: ActualInstance[] = [];
    for (const [id, i] of m) {
      if (i.seenAt < cutoff) m.delete(id);
      else out.push(i);
    }
    return out.sort((a, b) => a.index - b.index || a.instanceId.localeCompare(b.instanceId));
  }

  /** DEAs heard from (a heartbeat) within the stale window: none means nothing can be started. */
  liveDeas(): number {
    forgetOlder(this.deaSeen, this.now() - this.staleAfterMs);
    return this.deaSeen.size;
  }

  /** When an instance of this app index last exited (ms, as received), or 0. */
  lastExitAt(app: string, index: number): number {
    return this.exits.get(`${app}/${index}`) ?? 0;
  }

  /** Malformed heartbeats and exits ignored so far. */
  get rejectedMessages(): number {
    return this.rejected;
  }

  private onHeartbeat(data: Uint8Array): void {
    let hb: DeaHeartbeat;
    try {
      hb = decode("dea.heartbeat", data);
    } catch (err) {
      if (this.rejected++ === 0)
        this.o.log.warn("heartbeat_rejected", {
          code: this.o.rejectCode,
          rejected: this.rejected,
          error: err,
        });
      return;
    }
    const seenAt = this.now();
    // DEAs get a new id per process: those silent past the window are forgotten here too.
    forgetOlder(this.deaSeen, seenAt - this.staleAfterMs);
    this.deaSeen.set(hb.deaId, seenAt);
    forgetOlder(this.gone, seenAt - this.staleAfterMs);
    // A heartbeat lists every instance of its DEA: what it no longer lists is gone.
    for (const m of this.byApp.values()) for (const [id, i] of m) if (i.deaId === hb.deaId) m.delete(id);
    for (const i of hb.instances) {
      if (this.gone.has(i.instanceId)) continue;
      let m = this.byApp.get(i.app);
      if (m === undefined) {
        m = new Map();
        this.byApp.set(i.app, m);
      }
      m.set(i.instanceId, { ...i, deaId: hb.deaId, seenAt });
    }
  }

  private onExited(data: Uint8Array): void {
    let x: DropletExited;
    try {
      x = decode("droplet.exited", data);
    } catch (err) {
      if (this.rejected++ === 0)
        this.o.log.warn("exited_rejected", { code: this.o.rejectCode, rejected: this.rejected, error: err });
      return;
    }
    this.byApp.get(x.app)?.delete(x.instanceId);
    this.gone.set(x.instanceId, this.now());
    this.exits.set(`${x.app}/${x.index}`, this.now());
    this.o.onExited?.(x);
  }
}
