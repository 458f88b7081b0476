// Where command output goes: results on stdout (a table, or JSON with --json), progress and
// notes on stderr, so `kiln apps --json | jq` always reads clean JSON.
import { type Cell, formatFields, formatTable } from "./table.js";

export interface Output {
  json: boolean;
  /** stdout is a terminal (progress bars and live redraws only then). */
  tty: boolean;
}

export function output(json: boolean | undefined): Output {
  return { json: json === true, tty: process.stderr.isTTY === true && process.stdout.isTTY === true };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): void {
  process.stdout.write(rows.length === 0 ? "No results.\n" : formatTable(headers, rows));
}

export function printFields(fields: readonly (readonly [string, Cell])[]): void {
  process.stdout.write(formatFields(fields));
}

/** A line for the user about what is happening (stderr, never mixed into results). */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function ok(line: string): void {
  process.stdout.write(`${line}\n`);
}
