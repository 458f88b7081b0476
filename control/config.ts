// The Cloud Controller's options: one typed object, its defaults, and the environment variables
// and `kiln cc` flags that override them (docs/config.md is generated from them).
import { resolve } from "node:path";
import { applySettings, isServerUrl, parseFlags } from "../kernel/settings.js";
import { MAX_REPLICAS, REPLICAS_ENV } from "../messaging/replicas.js";
import { CcError } from "./errors.js";

export interface CcConfig {
  /** NATS server URL. */
  natsUrl: string;
  /** NATS user (`cc` under `kiln up`). */
  natsUser: string;
  /** NATS password. */
  natsPass: string;
  /**
   * Copies JetStream keeps of the streams, buckets and object store this component creates
   * (1..5); 0 decides from the cluster's size (messaging/replicas.ts). Existing ones keep theirs.
   */
  natsReplicas: number;
  /** HTTP port of the API (0: a free port, for tests). */
  port: number;
  /** Address the API binds. */
  host: string;
  /** Kernel data dir: admin-credentials.json is written here on first start. */
  dataDir: string;
  /** Shared app domain: routes are `host.<domain>`. */
  domain: string;
  /** Port the router serves apps on, told to clients so they print an app's URL. */
  routerPort: number;
  /** Lifetime of a token from POST /v3/tokens, seconds. */
  tokenTtlS: number;
  /** Largest package upload, MiB. */
  maxPackageMb: number;
  /** How long dea.discover waits for a DEA's answer, ms. */
  discoverTimeoutMs: number;
  /** Largest JSON request body, bytes. */
  maxJsonBytes: number;
  /**
   * How long an upload or a staging may go without its controller's refresh before another
   * controller marks it FAILED (control/store/lease.ts), ms.
   */
  leaseMs: number;
}

export const ccDefaults: CcConfig = {
  natsUrl: "nats://127.0.0.1:4222",
  natsUser: "",
  natsPass: "",
  natsReplicas: 0,
  port: 9022,
  host: "127.0.0.1",
  dataDir: ".kiln",
  domain: "localhost",
  routerPort: 8080,
  tokenTtlS: 86_400,
  maxPackageMb: 1024,
  discoverTimeoutMs: 2_000,
  maxJsonBytes: 1024 * 1024,
  leaseMs: 15_000,
};

export const ccEnv: Record<keyof CcConfig, string> = {
  natsUrl: "KILN_NATS_URL",
  natsUser: "KILN_NATS_USER",
  natsPass: "KILN_NATS_PASS",
  natsReplicas: REPLICAS_ENV,
  port: "KILN_CC_PORT",
  host: "KILN_CC_HOST",
  dataDir: "KILN_CC_DATA_DIR",
  domain: "KILN_CC_DOMAIN",
  routerPort: "KILN_CC_ROUTER_PORT",
  tokenTtlS: "KILN_CC_TOKEN_TTL_S",
  maxPackageMb: "KILN_CC_MAX_PACKAGE_MB",
  discoverTimeoutMs: "KILN_CC_DISCOVER_TIMEOUT_MS",
  maxJsonBytes: "KILN_CC_MAX_JSON_BYTES",
  leaseMs: "KILN_CC_LEASE_MS",
};

export const ccFlags: Partial<Record<keyof CcConfig, string>> = {
  natsUrl: "nats",
  natsUser: "nats-user",
  natsPass: "nats-pass",
  natsReplicas: "nats-replicas",
  port: "port",
  host: "host",
  dataDir: "data-dir",
  domain: "domain",
  routerPort: "router-port",
  tokenTtlS: "token-ttl-s",
  maxPackageMb: "max-package-mb",
  discoverTimeoutMs: "discover-timeout-ms",
  maxJsonBytes: "max-json-bytes",
  leaseMs: "lease-ms",
};

/** Usage line of `kiln cc`. */
export const ccUsage = Object.values(ccFlags)
  .map((f) => `[--${f} V]`)
  .join(" ");

function bad(source: string, what: string, raw: string): CcError {
  return new CcError("KILN_CC_CONFIG", `${source} must be ${what}, got "${raw}"`);
}

function integer(raw: string, source: string, min: number, max: number): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < min || n > max)
    throw bad(source, `an integer from ${min} to ${max}`, raw);
  return n;
}

/** A DNS name: dot-separated labels of letters, digits and hyphens. */
const DOMAIN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function convert(key: keyof CcConfig, raw: string, source: string): CcConfig[keyof CcConfig] {
  switch (key) {
    case "natsReplicas":
      return integer(raw, source, 1, MAX_REPLICAS);
    case "natsUrl":
      if (!isServerUrl(raw)) throw bad(source, "a NATS URL such as nats://127.0.0.1:4222", raw);
      return raw;
    case "port":
      return integer(raw, source, 0, 65_535);
    case "routerPort":
      return integer(raw, source, 1, 65_535);
    case "host":
      if (raw === "" || /[\s\p{Cc}]/u.test(raw)) throw bad(source, "an address without spaces", raw);
      return raw;
    case "domain":
      if (!DOMAIN.test(raw)) throw bad(source, "a lower-case DNS name such as localhost", raw);
      return raw;
    case "dataDir":
      if (/\p{Cc}/u.test(raw)) throw bad(source, "a directory path", raw);
      return raw;
    case "tokenTtlS":
      return integer(raw, source, 1, 365 * 86_400);
    case "maxPackageMb":
      return integer(raw, source, 1, 1024 * 1024);
    case "discoverTimeoutMs":
      return integer(raw, source, 10, 600_000);
    case "maxJsonBytes":
      return integer(raw, source, 1024, 1024 ** 3);
    case "leaseMs":
      return integer(raw, source, 300, 3_600_000);
    default:
      return raw;
  }
}

/** Defaults, then environment variables, then explicit overrides; the data dir made absolute. */
export function ccConfig(overrides: Partial<CcConfig> = {}, env: NodeJS.ProcessEnv = process.env): CcConfig {
  const cfg: CcConfig = { ...ccDefaults };
  applySettings(cfg, ccEnv, convert, overrides, env);
  cfg.dataDir = resolve(cfg.dataDir);
  return cfg;
}

/** Parses `kiln cc` flags into overrides (an unknown flag is a config error). */
export function parseCcArgs(argv: string[]): Partial<CcConfig> {
  return parseFlags<CcConfig>(argv, ccFlags, convert, (m) => new CcError("KILN_CC_CONFIG", `kiln cc: ${m}`));
}
