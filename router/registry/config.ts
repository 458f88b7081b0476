// Defaults of the route registry (gorouter's names in comments where they differ).
export interface RegistryConfig {
  /** How often stale endpoints are pruned (gorouter prune_stale_droplets_interval). */
  pruneIntervalMs: number;
  /** Announced in router.start: stale threshold registrars should respect (droplet_stale_threshold). */
  pruneThresholdSec: number;
  /** Announced in router.start: how often registrars re-register. */
  minimumRegisterIntervalSec: number;
  /** How often router.start is published. */
  startIntervalMs: number;
  /** After the first router.start, how long to wait for registrars' answers before /health turns 200. */
  startResponseDelayMs: number;
  /** Most updates applied in one batch; a burst is split so readers never wait long. */
  maxBatch: number;
  /** At most one "bad message" log line per this many ms (the counter keeps every one). */
  badMessageLogIntervalMs: number;
}

export const registryDefaults: RegistryConfig = {
  pruneIntervalMs: 30_000,
  pruneThresholdSec: 120,
  minimumRegisterIntervalSec: 20,
  startIntervalMs: 20_000,
  startResponseDelayMs: 1_000,
  maxBatch: 4096,
  badMessageLogIntervalMs: 1_000,
};
