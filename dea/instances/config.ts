// Defaults of the DEA's instance layer, in one place; the DEA process passes its settings
// over them (see Instances' options).
import type { UidRange } from "./uids.js";

export const instanceDefaults = Object.freeze({
  /** SIGTERM, then SIGKILL to every process of the instance after this long. */
  stopGraceMs: 10_000,
  /** dea.heartbeat period. */
  heartbeatIntervalMs: 5_000,
  /** Health check timeout when the start request gives none (Cloud Foundry's 60 s). */
  healthCheckTimeoutMs: 60_000,
  /** Period of the "http" health check while an instance runs. */
  httpCheckIntervalMs: 1_000,
  /** Unpacked droplets kept on disk, bytes. */
  dropletCacheBytes: 2 * 1024 * 1024 * 1024,
  /** runc container ids of this DEA's instances start with this. */
  containerPrefix: "kiln-app-",
  /** Most tasks (processes and threads) per instance. */
  pids: 1024,
  /** Most open files per instance (RLIMIT_NOFILE of the container spec). */
  fds: 16_384,
  uidRange: Object.freeze({ first: 20_000, count: 10_000 }) as Readonly<UidRange>,
});
