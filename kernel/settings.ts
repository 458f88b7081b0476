// How a component's one config table is read (router/config.ts, dea/config.ts): environment
// variables over defaults, then flags, each raw value through the component's own `convert`,
// and flags parsed strictly so an unknown or malformed one is that component's coded error.
import { parseArgs } from "node:util";

/** Converts one raw value of `key` (from `source`, a variable or `--flag`), throwing the component's coded error. */
export type Convert<C> = (key: keyof C, raw: string, source: string) => C[keyof C];

/** Sets every key whose environment variable is set (and not empty) on `cfg`, then the overrides. */
export function applySettings<C extends object>(
  cfg: C,
  envNames: Record<keyof C, string>,
  convert: Convert<C>,
  overrides: Partial<C>,
  env: NodeJS.ProcessEnv,
): C {
  const target = cfg as Record<string, unknown>;
  for (const key of Object.keys(envNames) as (keyof C)[]) {
    const raw = env[envNames[key]];
    if (raw !== undefined && raw !== "") target[key as string] = convert(key, raw, envNames[key]);
  }
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) target[k] = v;
  return cfg;
}

/**
 * Parses a component's flags (every one takes a value) into overrides; `usageError` makes the
 * coded error for an unknown or malformed flag, `convert` checks each value.
 */
export function parseFlags<C extends object>(
  argv: string[],
  flagOf: Partial<Record<keyof C, string>>,
  convert: Convert<C>,
  usageError: (message: string) => Error,
): Partial<C> {
  const options: Record<string, { type: "string" }> = {};
  for (const f of Object.values(flagOf) as string[]) options[f] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw usageError((err as Error).message.split("\n")[0] as string);
  }
  const out: Record<string, unknown> = {};
  for (const [key, flag] of Object.entries(flagOf) as [keyof C & string, string][]) {
    const raw = values[flag];
    if (typeof raw === "string") out[key] = convert(key, raw, `--${flag}`);
  }
  return out as Partial<C>;
}

/** A NATS server address as nats.js takes it: a URL with a host, the scheme optional. */
export function isServerUrl(raw: string): boolean {
  const s = raw.trim();
  try {
    return new URL(s.includes("://") ? s : `nats://${s}`).hostname !== "";
  } catch {
    return false;
  }
}
