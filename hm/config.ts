// The Health Manager's options: one typed object, its defaults, and the environment variables
// and `kiln hm` flags that override them (docs/config.md is generated from them).
import { applySettings, isServerUrl, parseFlags } from "../kernel/settings.js";
import { MAX_REPLICAS, REPLICAS_ENV } from "../messaging/replicas.js";
import { HmError } from "./errors.js";

export interface HmConfig {
  /** NATS server URL. */
  natsUrl: string;
  /** NATS user (`hm` under `kiln up`). */
  natsUser: string;
  /** NATS password. */
  natsPass: string;
  /**
   * Copies JetStream keeps of the streams, buckets and object store this component creates
   * (1..5); 0 decides from the cluster's size (messaging/replicas.ts). Existing ones keep theirs.
   */
  natsReplicas: number;
  /** The DEAs' heartbeat interval, ms: a DEA silent for 3 of them has its instances lost. */
  heartbeatMs: number;
  /** How often desired and actual state are compared, ms. */
  analysisMs: number;
  /**
   * After a START of an index, or a change of an app's record, this long passes before the HM
   * acts on that index or app again, ms: the controller is still starting or stopping it.
   */
  graceMs: number;
  /** How long a leader's lease lasts without renewal, ms: the other HM takes over after it. */
  leaseMs: number;
}

export const hmDefaults: HmConfig = {
  natsUrl: "nats://127.0.0.1:4222",
  natsUser: "",
  natsPass: "",
  natsReplicas: 0,
  heartbeatMs: 5_000,
  analysisMs: 5_000,
  graceMs: 30_000,
  leaseMs: 15_000,
};

export const hmEnv: Record<keyof HmConfig, string> = {
  natsUrl: "KILN_NATS_URL",
  natsUser: "KILN_NATS_USER",
  natsPass: "KILN_NATS_PASS",
  natsReplicas: REPLICAS_ENV,
  heartbeatMs: "KILN_HM_HEARTBEAT_MS",
  analysisMs: "KILN_HM_ANALYSIS_MS",
  graceMs: "KILN_HM_GRACE_MS",
  leaseMs: "KILN_HM_LEASE_MS",
};

export const hmFlags: Record<keyof HmConfig, string> = {
  natsUrl: "nats",
  natsUser: "nats-user",
  natsPass: "nats-pass",
  natsReplicas: "nats-replicas",
  heartbeatMs: "heartbeat-ms",
  analysisMs: "analysis-ms",
  graceMs: "grace-ms",
  leaseMs: "lease-ms",
};

/** Usage line of `kiln hm`. */
export const hmUsage = Object.values(hmFlags)
  .map((f) => `[--${f} V]`)
  .join(" ");

function bad(source: string, what: string, raw: string): HmError {
  return new HmError("KILN_HM_CONFIG", `${source} must be ${what}, got "${raw}"`);
}

function integer(raw: string, source: string, min: number, max: number): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < min || n > max)
    throw bad(source, `an integer from ${min} to ${max}`, raw);
  return n;
}

function convert(key: keyof HmConfig, raw: string, source: string): HmConfig[keyof HmConfig] {
  switch (key) {
    case "natsReplicas":
      return integer(raw, source, 1, MAX_REPLICAS);
    case "natsUrl":
      if (!isServerUrl(raw)) throw bad(source, "a NATS URL such as nats://127.0.0.1:4222", raw);
      return raw;
    case "heartbeatMs":
    case "analysisMs":
      return integer(raw, source, 50, 600_000);
    case "graceMs":
      return integer(raw, source, 100, 3_600_000);
    case "leaseMs":
      return integer(raw, source, 300, 3_600_000);
    default:
      return raw;
  }
}

/** Defaults, then environment variables, then explicit overrides. */
export function hmConfig(overrides: Partial<HmConfig> = {}, env: NodeJS.ProcessEnv = process.env): HmConfig {
  return applySettings({ ...hmDefaults }, hmEnv, convert, overrides, env);
}

/** Parses `kiln hm` flags into overrides (an unknown flag is a config error). */
export function parseHmArgs(argv: string[]): Partial<HmConfig> {
  return parseFlags<HmConfig>(argv, hmFlags, convert, (m) => new HmError("KILN_HM_CONFIG", `kiln hm: ${m}`));
}
