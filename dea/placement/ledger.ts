// What the DEA's instances hold: memory and disk reserved per instance and the instance
// count per app. dea.discover and dea.advertise read it; starting an instance reserves,
// its exit releases. Reservations are what counts, not sampled use: an instance may grow
// to its limit, so its whole limit is taken when it is placed.
import { PlacementError } from "./errors.js";

export interface Reservation {
  instanceId: string;
  app: string;
  memoryMb: number;
  diskMb: number;
}

export interface Capacity {
  memoryMb: number;
  diskMb: number;
}

export class ResourceLedger {
  readonly capacity: Readonly<Capacity>;
  private readonly byInstance = new Map<string, Reservation>();
  private readonly perApp = new Map<string, number>();
  private memory = 0;
  private disk = 0;

  constructor(capacity: Capacity) {
    this.capacity = { memoryMb: capacity.memoryMb, diskMb: capacity.diskMb };
  }

  get reservedMemoryMb(): number {
    return this.memory;
  }

  get reservedDiskMb(): number {
    return this.disk;
  }

  get availableMemoryMb(): number {
    return Math.max(0, this.capacity.memoryMb - this.memory);
  }

  get availableDiskMb(): number {
    return Math.max(0, this.capacity.diskMb - this.disk);
  }

  /** Reserved memory / capacity, 0..1. */
  get memoryRatio(): number {
    if (this.capacity.memoryMb <= 0) return 1;
    return Math.min(1, this.memory / this.capacity.memoryMb);
  }

  /** Instances of `app` holding a reservation here. */
  instancesOf(app: string): number {
    return this.perApp.get(app) ?? 0;
  }

  /** Instance count per app (a fresh object). */
  instanceCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [app, n] of this.perApp) out[app] = n;
    return out;
  }

  get instances(): number {
    return this.byInstance.size;
  }

  /**
   * Takes memory and disk for one instance. Throws KILN_DEA_NO_ROOM when it does not fit,
   * KILN_DEA_DUPLICATE_INSTANCE when the id holds a reservation already, and
   * KILN_DEA_BAD_RESERVATION for an empty id or a size that is not a whole MiB count.
   */
  reserve(r: Reservation): void {
    if (r.instanceId === "" || r.app === "")
      throw new PlacementError("KILN_DEA_BAD_RESERVATION", "a reservation needs an app and an instance id");
    if (
      !Number.isSafeInteger(r.memoryMb) ||
      r.memoryMb < 0 ||
      !Number.isSafeInteger(r.diskMb) ||
      r.diskMb < 0
    )
      throw new PlacementError(
        "KILN_DEA_BAD_RESERVATION",
        `instance ${r.instanceId}: memory ${r.memoryMb} MiB and disk ${r.diskMb} MiB must be whole non-negative numbers`,
      );
    if (this.byInstance.has(r.instanceId))
      throw new PlacementError(
        "KILN_DEA_DUPLICATE_INSTANCE",
        `instance ${r.instanceId} of app ${r.app} already holds a reservation`,
      );
    if (r.memoryMb > this.availableMemoryMb || r.diskMb > this.availableDiskMb)
      throw new PlacementError(
        "KILN_DEA_NO_ROOM",
        `instance ${r.instanceId} of app ${r.app} needs ${r.memoryMb} MiB memory and ${r.diskMb} MiB disk; ${this.availableMemoryMb} and ${this.availableDiskMb} are free`,
      );
    this.byInstance.set(r.instanceId, { ...r });
    this.perApp.set(r.app, (this.perApp.get(r.app) ?? 0) + 1);
    this.memory += r.memoryMb;
    this.disk += r.diskMb;
  }

  /** Gives back an instance's reservation; false when it held none. */
  release(instanceId: string): boolean {
    const r = this.byInstance.get(instanceId);
    if (r === undefined) return false;
    this.byInstance.delete(instanceId);
    const n = (this.perApp.get(r.app) ?? 1) - 1;
    if (n === 0) this.perApp.delete(r.app);
    else this.perApp.set(r.app, n);
    this.memory -= r.memoryMb;
    this.disk -= r.diskMb;
    return true;
  }
}
