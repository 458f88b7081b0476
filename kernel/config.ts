// Defaults of the embedded kernel (`kiln up`), the environment variables and flags that
// override them, and the process-wide settings every component reads (KILN_LOG_LEVEL,
// KILN_NATIVE) with their check. docs/config.md is generated from these tables.
import { resolve } from "node:path";
import { KilnError } from "./errors.js";
import { logLevels } from "./log.js";

export interface KernelConfig {
  /** Where the kernel keeps NATS data, credentials and logs. */
  dataDir: string;
  /** Port of the private nats-server (falls back to a free port when taken; 0 = random). */
  natsPort: number;
  /** Port the router serves apps on. */
  routerPort: number;
  /** Port of the router's /health, /routes and /metrics. */
  routerStatusPort: number;
  /** Cloud Controller API port. */
  ccPort: number;
  /** Address the router's status port binds (off loopback it needs basic auth; router/status/auth.ts). */
  routerStatusHost: string;
  /** DEAs run on this machine (each with its share of memory and disk, its own data dir and uids). */
  deas: number;
  /** How long children get to exit after SIGTERM before SIGKILL. */
  stopTimeoutMs: number;
}

/** Most DEAs `kiln up` runs on one machine: each takes 10000 uids below the configured base. */
export const MAX_DEAS = 4;

export const kernelEnv = {
  dataDir: "KILN_DATA_DIR",
  natsPort: "KILN_NATS_PORT",
  routerPort: "KILN_ROUTER_PORT",
  routerStatusPort: "KILN_ROUTER_STATUS_PORT",
  routerStatusHost: "KILN_ROUTER_STATUS_HOST",
  ccPort: "KILN_CC_PORT",
  deas: "KILN_DEAS",
} as const;

/** `kiln up` flag of each setting that has one (`kiln nats` takes `--data-dir` and `--port`). */
export const kernelFlags = {
  dataDir: "data-dir",
  natsPort: "nats-port",
  routerPort: "router-port",
  routerStatusPort: "router-status-port",
  routerStatusHost: "router-status-host",
  ccPort: "cc-port",
  deas: "deas",
} as const satisfies Partial<Record<keyof KernelConfig, string>>;

export const kernelDefaults: KernelConfig = {
  dataDir: ".kiln",
  natsPort: 4222,
  routerPort: 8080,
  routerStatusPort: 8081,
  routerStatusHost: "127.0.0.1",
  ccPort: 9022,
  deas: 1,
  stopTimeoutMs: 4000,
};

/** A port number given as `source` (a flag or environment variable); KILN_KERNEL_CONFIG otherwise. */
export function portSetting(raw: string, source: string): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 0 || n > 65535)
    throw new KilnError("KILN_KERNEL_CONFIG", `${source} must be an integer from 0 to 65535, got "${raw}"`);
  return n;
}

function envPort(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  return raw === undefined || raw === "" ? fallback : portSetting(raw, name);
}

/** The number of DEAs given as `source`; KILN_KERNEL_CONFIG unless 1..MAX_DEAS. */
export function deasSetting(raw: string, source: string): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 1 || n > MAX_DEAS)
    throw new KilnError(
      "KILN_KERNEL_CONFIG",
      `${source} must be an integer from 1 to ${MAX_DEAS}, got "${raw}"`,
    );
  return n;
}

/** Defaults, then environment, then explicit overrides (flags). */
export function kernelConfig(
  overrides: Partial<KernelConfig> = {},
  env: NodeJS.ProcessEnv = process.env,
): KernelConfig {
  const fromEnv: KernelConfig = {
    dataDir: env[kernelEnv.dataDir] || kernelDefaults.dataDir,
    natsPort: envPort(env, kernelEnv.natsPort, kernelDefaults.natsPort),
    routerPort: envPort(env, kernelEnv.routerPort, kernelDefaults.routerPort),
    routerStatusPort: envPort(env, kernelEnv.routerStatusPort, kernelDefaults.routerStatusPort),
    routerStatusHost: env[kernelEnv.routerStatusHost] || kernelDefaults.routerStatusHost,
    ccPort: envPort(env, kernelEnv.ccPort, kernelDefaults.ccPort),
    deas: env[kernelEnv.deas]
      ? deasSetting(env[kernelEnv.deas] as string, kernelEnv.deas)
      : kernelDefaults.deas,
    stopTimeoutMs: kernelDefaults.stopTimeoutMs,
  };
  const merged = { ...fromEnv };
  for (const [k, v] of Object.entries(overrides))
    if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  merged.dataDir = resolve(merged.dataDir);
  return merged;
}

/** Settings every Kiln process reads from its environment alone (no flags). */
export interface ProcessSettings {
  /** Lowest level of the JSON log lines written to standard error: debug, info, warn or error. */
  logLevel: string;
  /**
   * The native addon (route table, balancer, upstream client): unset loads it when built and
   * otherwise the TypeScript fallback; 0 forces the fallback; 1 requires the addon.
   */
  native: string;
}

export const processEnv: Record<keyof ProcessSettings, string> = {
  logLevel: "KILN_LOG_LEVEL",
  native: "KILN_NATIVE",
};

export const processDefaults: ProcessSettings = { logLevel: "info", native: "" };

/**
 * Refuses malformed process-wide settings before a component starts: the logger and the native
 * loader read them where failing is not an option and would otherwise fall back to a default.
 */
export function checkProcessEnv(env: NodeJS.ProcessEnv = process.env): void {
  const level = env[processEnv.logLevel];
  if (level !== undefined && level !== "" && !(logLevels as string[]).includes(level))
    throw new KilnError(
      "KILN_KERNEL_CONFIG",
      `KILN_LOG_LEVEL must be one of ${logLevels.join(", ")}, got "${level}"`,
    );
  const native = env[processEnv.native];
  if (native !== undefined && native !== "" && native !== "0" && native !== "1")
    throw new KilnError(
      "KILN_KERNEL_CONFIG",
      `KILN_NATIVE must be 0 (the TypeScript fallback) or 1 (the addon, required), or unset, got "${native}"`,
    );
}
