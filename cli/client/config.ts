// The CLI's saved login: $KILN_HOME/config.json (default ~/.kiln), mode 0600 since it
// holds a bearer token. Written whole to a temporary file and renamed, so a crash never
// leaves half a file.
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { CliError } from "../errors.js";

export interface CliConfig {
  /** The Cloud Controller's base URL, e.g. http://127.0.0.1:9022. */
  api?: string;
  token?: string;
  user?: string;
  /** The targeted space: its name and guid. */
  space?: { name: string; guid: string };
}

export function kilnHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.KILN_HOME;
  return home !== undefined && home !== "" ? home : join(homedir(), ".kiln");
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(kilnHome(env), "config.json");
}

const isString = (v: unknown): v is string => typeof v === "string";

/** The saved config, `{}` when there is none yet; a malformed file is a coded error. */
export function loadConfig(path: string = configPath()): CliConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new CliError("KILN_CLI_CONFIG", `cannot read ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new CliError("KILN_CLI_CONFIG", `${path} is not JSON`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new CliError("KILN_CLI_CONFIG", `${path} is not a JSON object`);
  }
  const o = raw as Record<string, unknown>;
  const config: CliConfig = {};
  if (isString(o.api)) config.api = o.api;
  if (isString(o.token)) config.token = o.token;
  if (isString(o.user)) config.user = o.user;
  const s = o.space as Record<string, unknown> | null | undefined;
  if (s !== null && typeof s === "object" && isString(s.name) && isString(s.guid)) {
    config.space = { name: s.name, guid: s.guid };
  }
  return config;
}

export function saveConfig(config: CliConfig, path: string = configPath()): void {
  const dir = join(path, "..");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // The mode given to writeFileSync is masked by the umask; the token must never be group-readable.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
