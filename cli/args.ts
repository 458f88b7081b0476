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
  try {
    const { values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false });
    return values as Flags<S>;
  } catch (err) {
    const message = (err as Error).message.split("\n")[0] ?? "bad arguments";
    throw new CliError("KILN_CLI_USAGE", `kiln ${command}: ${message}`);
  }
}
