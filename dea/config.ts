// The DEA's options: one typed object, its defaults, and the environment variables and
// `kiln dea` flags that override them (docs/config.md is generated from them).
import { statfsSync } from "node:fs";
import { totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import { applySettings, isServerUrl, parseFlags } from "../kernel/settings.js";
import { MAX_REPLICAS, REPLICAS_ENV } from "../messaging/replicas.js";
import { isValidToken } from "../messaging/subjects.js";
import { DeaProcessError } from "./process/errors.js";

export type Isolation = "runc" | "none";

/** Instances reserved at start for tests only (KILN_DEA_TEST_RESERVATIONS); never set in production. */
export interface TestReservation {
  app: string;
  count: number;
  memoryMb: number;
  diskMb: number;
}

export interface DeaConfig {
  /** Id in dea.<id>.* subjects and every message (random per process when empty). */
  deaId: string;
  /** NATS server URL. */
  natsUrl: string;
  /** NATS user (`dea` under `kiln up`). */
  natsUser: string;
  /** NATS password. */
  natsPass: string;
  /**
   * Copies JetStream keeps of the streams, buckets and object store this component creates
   * (1..5); 0 decides from the cluster's size (messaging/replicas.ts). Existing ones keep theirs.
   */
  natsReplicas: number;
  /** Address other components (the router) reach this DEA's instances on. */
  host: string;
  /** Placement zone announced in dea.advertise. */
  zone: string;
  /** Stacks this DEA runs droplets of. */
  stacks: string[];
  /** Memory offered to instances, MiB (0: three quarters of the machine's memory). */
  memoryMb: number;
  /** Disk offered to instances, MiB (0: three quarters of the data dir's file system). */
  diskMb: number;
  /** Where droplets, staging and instance files live. */
  dataDir: string;
  /** How instances are isolated: runc containers, or plain processes ("none"). */
  isolation: Isolation;
  /** dea.advertise is sent at start and then this often. */
  advertiseIntervalMs: number;
  /** dea.heartbeat (every instance's state and usage) is sent this often. */
  heartbeatIntervalMs: number;
  /** A stopped instance gets SIGTERM, then SIGKILL after this long. */
  stopGraceMs: number;
  /**
   * Log lines per second one instance or staging task may ship, in bursts of up to twice that; the
   * rest are counted and dropped.
   */
  logRate: number;
  /** Droplets kept unpacked on disk, MiB in all (least recently used go first). */
  dropletCacheMb: number;
  /** First of the unprivileged uids given to instances and staging tasks (one each). */
  uidBase: number;
  /** A staging task without its own timeout is stopped after this long. */
  stagingTimeoutMs: number;
  /** Tests only: reservations made at start, so a DEA looks busy without running apps. */
  testReservations: TestReservation[];
}

const MIB = 1024 * 1024;
/** Largest memory or disk a DEA can advertise (a uint32 field). */
const MAX_MB = 0xffff_ffff;

export const deaDefaults: DeaConfig = {
  deaId: "",
  natsUrl: "nats://127.0.0.1:4222",
  natsUser: "",
  natsPass: "",
  natsReplicas: 0,
  host: "127.0.0.1",
  zone: "default",
  // The stack name Cloud Foundry buildpacks know; a discover with an empty stack takes any.
  stacks: ["cflinuxfs4"],
  memoryMb: 0,
  diskMb: 0,
  dataDir: ".kiln/dea",
  isolation: "runc",
  advertiseIntervalMs: 5_000,
  heartbeatIntervalMs: 5_000,
  stopGraceMs: 10_000,
  logRate: 1_000,
  dropletCacheMb: 2_048,
  // Above the usual ranges of system and login users, below the 65534 of nobody.
  uidBase: 40_000,
  stagingTimeoutMs: 15 * 60_000,
  testReservations: [],
};

/** Environment variable of each option (lists are comma separated). */
export const deaEnv: Record<keyof DeaConfig, string> = {
  deaId: "KILN_DEA_ID",
  natsUrl: "KILN_NATS_URL",
  natsUser: "KILN_NATS_USER",
  natsPass: "KILN_NATS_PASS",
  natsReplicas: REPLICAS_ENV,
  host: "KILN_DEA_HOST",
  zone: "KILN_DEA_ZONE",
  stacks: "KILN_DEA_STACKS",
  memoryMb: "KILN_DEA_MEMORY_MB",
  diskMb: "KILN_DEA_DISK_MB",
  dataDir: "KILN_DEA_DATA_DIR",
  isolation: "KILN_DEA_ISOLATION",
  advertiseIntervalMs: "KILN_DEA_ADVERTISE_INTERVAL_MS",
  heartbeatIntervalMs: "KILN_DEA_HEARTBEAT_INTERVAL_MS",
  stopGraceMs: "KILN_DEA_STOP_GRACE_MS",
  logRate: "KILN_DEA_LOG_RATE",
  dropletCacheMb: "KILN_DEA_DROPLET_CACHE_MB",
  uidBase: "KILN_DEA_UID_BASE",
  stagingTimeoutMs: "KILN_DEA_STAGING_TIMEOUT_MS",
  testReservations: "KILN_DEA_TEST_RESERVATIONS",
};

/** `kiln dea` flag of each option that has one (test reservations have none). */
export const deaFlags: Partial<Record<keyof DeaConfig, string>> = {
  deaId: "id",
  natsUrl: "nats",
  natsUser: "nats-user",
  natsPass: "nats-pass",
  natsReplicas: "nats-replicas",
  host: "host",
  zone: "zone",
  stacks: "stacks",
  memoryMb: "memory-mb",
  diskMb: "disk-mb",
  dataDir: "data-dir",
  isolation: "isolation",
  advertiseIntervalMs: "advertise-interval-ms",
  heartbeatIntervalMs: "heartbeat-interval-ms",
  stopGraceMs: "stop-grace-ms",
  logRate: "log-rate",
  dropletCacheMb: "droplet-cache-mb",
  uidBase: "uid-base",
  stagingTimeoutMs: "staging-timeout-ms",
};

/** Usage line of `kiln dea`. */
export const deaUsage = Object.values(deaFlags)
  .map((f) => `[--${f} V]`)
  .join(" ");

function bad(source: string, what: string, raw: string): DeaProcessError {
  return new DeaProcessError("KILN_DEA_CONFIG", `${source} must be ${what}, got "${raw}"`);
}

function hasControl(raw: string): boolean {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function integer(raw: string, source: string, min: number, max: number): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < min || n > max)
    throw bad(source, `an integer from ${min} to ${max}`, raw);
  return n;
}

/** `APP:COUNT:MEMORY_MB:DISK_MB`, comma separated. */
function parseTestReservations(raw: string, source: string): TestReservation[] {
  const out: TestReservation[] = [];
  const whole = (text: string | undefined, min: number, max: number): number | null => {
    const n = Number(text);
    return text === undefined || text.trim() === "" || !Number.isInteger(n) || n < min || n > max ? null : n;
  };
  for (const entry of raw.split(",")) {
    const [app, count, memory, disk, ...rest] = entry.trim().split(":");
    const r = {
      app: app ?? "",
      count: whole(count, 1, 10_000),
      memoryMb: whole(memory, 0, MAX_MB),
      diskMb: whole(disk, 0, MAX_MB),
    };
    if (
      rest.length > 0 ||
      !isValidToken(r.app) ||
      r.count === null ||
      r.memoryMb === null ||
      r.diskMb === null
    )
      throw bad(source, "a list of APP:COUNT:MEMORY_MB:DISK_MB (whole numbers, count 1 to 10000)", raw);
    out.push({ app: r.app, count: r.count, memoryMb: r.memoryMb, diskMb: r.diskMb });
  }
  return out;
}

function convert(key: keyof DeaConfig, raw: string, source: string): DeaConfig[keyof DeaConfig] {
  switch (key) {
    case "deaId":
      // The id is a subject token (dea.<id>.start): no dots, wildcards or spaces.
      if (!isValidToken(raw)) throw bad(source, "a NATS subject token (no '.', '*', '>' or spaces)", raw);
      return raw;
    case "natsReplicas":
      return integer(raw, source, 1, MAX_REPLICAS);
    case "natsUrl":
      if (!isServerUrl(raw)) throw bad(source, "a NATS URL such as nats://127.0.0.1:4222", raw);
      return raw;
    case "zone":
    case "host":
      if (raw === "" || /\s/.test(raw) || hasControl(raw))
        throw bad(source, "a non-empty name without spaces", raw);
      return raw;
    case "stacks": {
      const list = raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
      if (list.length === 0 || list.some((s) => !isValidToken(s)))
        throw bad(source, "a comma-separated list of stack names", raw);
      return list;
    }
    case "memoryMb":
    case "diskMb":
      return integer(raw, source, 0, MAX_MB);
    case "advertiseIntervalMs":
    case "heartbeatIntervalMs":
      return integer(raw, source, 10, 3_600_000);
    case "stopGraceMs":
      return integer(raw, source, 0, 3_600_000);
    case "stagingTimeoutMs":
      return integer(raw, source, 1_000, 24 * 3_600_000);
    case "logRate":
      return integer(raw, source, 1, 1_000_000);
    case "dropletCacheMb":
      return integer(raw, source, 1, MAX_MB);
    case "uidBase":
      // Room for 10000 uids below nobody (65534); never root or the system range.
      return integer(raw, source, 1_000, 55_000);
    case "isolation":
      if (raw !== "runc" && raw !== "none") throw bad(source, "runc or none", raw);
      return raw;
    case "testReservations":
      return parseTestReservations(raw, source);
    default:
      return raw;
  }
}

/** MiB of the file system that holds `dir` (or would: the nearest existing parent). */
function fileSystemMb(dir: string): number {
  let d = resolve(dir);
  for (;;) {
    try {
      const s = statfsSync(d);
      return Math.floor((s.blocks * s.bsize) / MIB);
    } catch {
      const up = dirname(d);
      if (up === d) return 0;
      d = up;
    }
  }
}

/** Where the DEA keeps its containers (runc state and bundles) under its data directory. */
export function containerRoot(dataDir: string): string {
  return resolve(dataDir, "containers");
}

/** Three quarters of the machine's memory / the data dir's file system: room left for the host. */
function share(totalMb: number): number {
  return Math.max(1, Math.min(MAX_MB, Math.floor(totalMb * 0.75)));
}

/** Defaults, then environment variables, then explicit overrides; 0 memory/disk become measured shares. */
export function deaConfig(
  overrides: Partial<DeaConfig> = {},
  env: NodeJS.ProcessEnv = process.env,
): DeaConfig {
  const cfg: DeaConfig = { ...deaDefaults, stacks: [...deaDefaults.stacks], testReservations: [] };
  applySettings(cfg, deaEnv, convert, overrides, env);
  if (cfg.memoryMb === 0) cfg.memoryMb = share(Math.floor(totalmem() / MIB));
  if (cfg.diskMb === 0) cfg.diskMb = share(fileSystemMb(cfg.dataDir));
  return cfg;
}

/** Parses `kiln dea` flags into overrides (unknown flags are a config error). */
export function parseDeaArgs(argv: string[]): Partial<DeaConfig> {
  return parseFlags(argv, deaFlags, convert, (m) => new DeaProcessError("KILN_DEA_CONFIG", `kiln dea: ${m}`));
}
