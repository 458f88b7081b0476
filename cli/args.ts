// Flag parsing for every kiln command: node:util parseArgs in strict mode, so an
// unknown flag or a missing value is a usage error (exit 2), never silently ignored.
import { parseArgs } from "node:util";
import { CliError } from "./errors.js";

export type FlagSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

export type Flags<S extends FlagSpec> = {
  [K in keyof S]?: S[K]["type"] extends "boolean"
    ? boolean
    : S[K]["multiple"] extends true
      ? string[]
      : string;
};

export function parseFlags<S extends FlagSpec>(command: string, argv: string[], spec: S): Flags<S> {
  return parseCommand(command, argv, spec, 0, 0).flags;
}

/**
 * Flags and between `min` and `max` positional arguments (`kiln scale NAME -i 2`); a missing or
 * extra argument is a usage error like an unknown flag.
 */
export function parseCommand<S extends FlagSpec>(
  command: string,
  argv: string[],
  spec: S,
  min: number,
  max: number,
): { flags: Flags<S>; args: string[] } {
  let parsed: { values: unknown; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: max > 0 });
  } catch (err) {
    const message = (err as Error).message.split("\n")[0] ?? "bad arguments";
    throw new CliError("KILN_CLI_USAGE", `kiln ${command}: ${message}`);
  }
  const n = parsed.positionals.length;
  if (n < min) throw new CliError("KILN_CLI_USAGE", `kiln ${command}: missing argument`);
  if (n > max) {
    throw new CliError("KILN_CLI_USAGE", `kiln ${command}: unexpected argument "${parsed.positionals[max]}"`);
  }
  return { flags: parsed.values as Flags<S>, args: parsed.positionals };
}
