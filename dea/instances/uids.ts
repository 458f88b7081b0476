// A distinct unprivileged user per instance, from the DEA's configured range: an instance's
// files are its own (mode 0700), so instances cannot read each other's even where no mount
// namespace separates them (--isolation none).
import { InstanceError } from "./errors.js";

export interface UidRange {
  /** First uid handed out (and gid: each instance gets the same number as its group). */
  first: number;
  /** How many uids the range holds. */
  count: number;
}

export class UidPool {
  private readonly taken = new Set<number>();

  constructor(readonly range: UidRange) {
    if (
      !Number.isInteger(range.first) ||
      range.first < 1000 ||
      !Number.isInteger(range.count) ||
      range.count < 1
    )
      throw new InstanceError(
        "KILN_DEA_INSTANCE_NO_UID",
        `uid range ${range.first}+${range.count} must start at 1000 or above and hold at least one uid`,
      );
  }

  /** The lowest free uid; throws KILN_DEA_INSTANCE_NO_UID when all are taken. */
  take(): number {
    for (let i = 0; i < this.range.count; i++) {
      const uid = this.range.first + i;
      if (!this.taken.has(uid)) {
        this.taken.add(uid);
        return uid;
      }
    }
    throw new InstanceError(
      "KILN_DEA_INSTANCE_NO_UID",
      `all ${this.range.count} uids from ${this.range.first} are in use by instances`,
    );
  }

  give(uid: number): void {
    this.taken.delete(uid);
  }
}
