// Aligned text tables for the read commands: one header row, columns padded to the widest
// cell, two spaces between; no colour, so the same bytes go to a terminal, a pipe or a file.

export type Cell = string | number | boolean | null | undefined;

export function cellText(v: Cell): string {
  return v === null || v === undefined ? "" : String(v);
}

/** The table as text, one line per row, each ending in a newline; trailing blanks trimmed. */
export function formatTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const widths = headers.map((h) => h.length);
  const text = rows.map((row) => headers.map((_, i) => cellText(row[i]).replaceAll("\n", " ")));
  for (const row of text) {
    for (let i = 0; i < row.length; i++) widths[i] = Math.max(widths[i] ?? 0, (row[i] ?? "").length);
  }
  const line = (cells: readonly string[]) =>
    `${cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd()}\n`;
  return [line(headers), ...text.map(line)].join("");
}

/** Key/value lines (`kiln app NAME`): keys padded to the longest. */
export function formatFields(fields: readonly (readonly [string, Cell])[]): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length + 1));
  return fields
    .map(([k, v]) => `${`${k}:`.padEnd(width)}  ${cellText(v)}`.trimEnd())
    .join("\n")
    .concat("\n");
}
