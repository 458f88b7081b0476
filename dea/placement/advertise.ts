// dea.advertise: what this DEA offers, at start, every interval and right after a reconnect.
// Skipped while NATS is down: capacity sent late is stale, the next one is sent when back.
import type { Logger } from "../../kernel/log.js";
import { encode, type Inputs } from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { DEA_ADVERTISE } from "../../messaging/subjects.js";
import type { ResourceLedger } from "./ledger.js";

export interface DeaIdentity {
  deaId: string;
  host: string;
  zone: string;
  stacks: readonly string[];
  isolation: string;
}

/** The dea.advertise payload for this identity and ledger now. */
export function advertisement(id: DeaIdentity, ledger: ResourceLedger, at: number): Inputs["dea.advertise"] {
  return {
    deaId: id.deaId,
    host: id.host,
    stacks: [...id.stacks],
    placementZone: id.zone,
    isolation: id.isolation,
    memoryCapacityMb: ledger.capacity.memoryMb,
    diskCapacityMb: ledger.capacity.diskMb,
    availableMemoryMb: ledger.availableMemoryMb,
    availableDiskMb: ledger.availableDiskMb,
    appInstanceCounts: ledger.instanceCounts(),
    at,
  };
}

export interface AdvertiserOptions {
  bus: KilnConnection;
  ledger: ResourceLedger;
  identity: DeaIdentity;
  intervalMs: number;
  log: Logger;
}

export class Advertiser {
  private readonly o: AdvertiserOptions;
  private timer: NodeJS.Timeout | null = null;
  private readonly onReconnect = (): void => this.advertise();
  sent = 0;
  skipped = 0;

  constructor(options: AdvertiserOptions) {
    this.o = options;
  }

  start(): void {
    if (this.timer !== null) return;
    this.advertise();
    this.timer = setInterval(() => this.advertise(), this.o.intervalMs);
    this.o.bus.on("reconnected", this.onReconnect);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.o.bus.off("reconnected", this.onReconnect);
  }

  /** Publishes one advertisement now (when connected). */
  advertise(): void {
    if (this.o.bus.state !== "connected") {
      this.skipped++;
      return;
    }
    try {
      this.o.bus.publish(
        DEA_ADVERTISE,
        encode("dea.advertise", advertisement(this.o.identity, this.o.ledger, Date.now())),
      );
      this.sent++;
    } catch (err) {
      this.skipped++;
      this.o.log.warn("advertise_failed", { error: err });
    }
  }
}
