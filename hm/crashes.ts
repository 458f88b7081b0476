// The crash policy of one app index: the first 3 crashes restart at once, later ones wait
// 30 s × 2ⁿ (capped at 16 min) so a broken app does not spin; 3 crashes within 180 s make the
// index FLAPPING. A crash-free stretch as long as the cap forgets the history.

export const IMMEDIATE_RESTARTS = 3;
export const BACKOFF_BASE_MS = 30_000;
export const BACKOFF_CAP_MS = 16 * 60_000;
export const FLAPPING_CRASHES = 3;
export const FLAPPING_WINDOW_MS = 180_000;

export interface CrashVerdict {
  /** Crashes counted, this one included. */
  crashes: number;
  /** When a replacement may start (ms). */
  restartAt: number;
  /** Whether the index became FLAPPING with this crash (it was not before). */
  becameFlapping: boolean;
  flapping: boolean;
}

export class CrashHistory {
  private readonly byKey = new Map<string, number[]>();
  private readonly flappingKeys = new Set<string>();

  /** Records a crash at `now` and says when to restart. */
  crash(key: string, now: number): CrashVerdict {
    let times = this.byKey.get(key) ?? [];
    const last = times.at(-1);
    if (last !== undefined && now - last > BACKOFF_CAP_MS) {
      times = [];
      this.flappingKeys.delete(key);
    }
    times.push(now);
    this.byKey.set(key, times);
    const n = times.length;
    const delay =
      n <= IMMEDIATE_RESTARTS
        ? 0
        : Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (n - IMMEDIATE_RESTARTS - 1));
    const recent = times.filter((t) => now - t <= FLAPPING_WINDOW_MS).length;
    const flapping = recent >= FLAPPING_CRASHES || this.flappingKeys.has(key);
    const becameFlapping = flapping && !this.flappingKeys.has(key);
    if (flapping) this.flappingKeys.add(key);
    return { crashes: n, restartAt: now + delay, becameFlapping, flapping };
  }

  isFlapping(key: string): boolean {
    return this.flappingKeys.has(key);
  }
}
