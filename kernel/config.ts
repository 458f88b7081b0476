// Defaults of the embedded kernel (`kiln up`) and the environment variables that
// override them; the README's configuration table lists the same rows.
import { resolve } from "node:path";

export interface KernelConfig {
  /** Where the kernel keeps NATS data, credentials and logs. */
  dataDir: string;
  /** Port of the private nats-server (falls back to a free port when taken; 0 = random). */
  natsPort: number;
  /** Router HTTP port and status port. */
  routerPort: number;
  routerStatusPort: number;
  /** How long children get to exit after SIGTERM before SIGKILL. */
  stopTimeoutMs: number;
}

export const kernelEnv = {
  dataDir: "KILN_DATA_DIR",
  natsPort: "KILN_NATS_PORT",
  routerPort: "KILN_ROUTER_PORT",
  routerStatusPort: "KILN_ROUTER_STATUS_PORT",
} as const;

export const kernelDefaults: KernelConfig = {
  dataDir: ".kiln",
  natsPort: 4222,
  routerPort: 8080,
  routerStatusPort: 8081,
  stopTimeoutMs: 4000,
};

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`${name} must be a port number, got ${raw}`);
  return n;
}

/** Defaults, then environment, then explicit overrides (flags). */
export function kernelConfig(overrides: Partial<KernelConfig> = {}): KernelConfig {
  const fromEnv: KernelConfig = {
    dataDir: process.env[kernelEnv.dataDir] || kernelDefaults.dataDir,
    natsPort: envInt(kernelEnv.natsPort, kernelDefaults.natsPort),
    routerPort: envInt(kernelEnv.routerPort, kernelDefaults.routerPort),
    routerStatusPort: envInt(kernelEnv.routerStatusPort, kernelDefaults.routerStatusPort),
    stopTimeoutMs: kernelDefaults.stopTimeoutMs,
  };
  const merged = { ...fromEnv };
  for (const [k, v] of Object.entries(overrides))
    if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  merged.dataDir = resolve(merged.dataDir);
  return merged;
}
