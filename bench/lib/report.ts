// Report writing shared by the benches: Markdown tables, number formats, and a dated
// section appended under one bench's own heading of bench/RESULTS.md (other sections untouched).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { projectRoot } from "../../kernel/paths.js";

export type Align = "left" | "right";

export function mdTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align?: readonly Align[],
): string {
  const sep = headers.map((_, i) => ((align?.[i] ?? "left") === "right" ? "---:" : "---"));
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [line(headers), line(sep), ...rows.map(line)].join("\n");
}

/** 12345.6 → "12.3k", 812 → "812"; "–" when not a number. */
export function fmtRate(v: number): string {
  if (!Number.isFinite(v)) return "–";
  return v >= 10_000 ? `${(v / 1000).toFixed(1)}k` : v >= 1000 ? `${(v / 1000).toFixed(2)}k` : v.toFixed(0);
}

export function fmtNum(v: number, digits = 1): string {
  return Number.isFinite(v) ? v.toFixed(digits) : "–";
}

/** 1.0234 → "1.02×"; "–" when not a number. */
export function fmtRatio(v: number): string {
  return Number.isFinite(v) ? `${v.toFixed(2)}×` : "–";
}

const FILE_HEADER = `# Kiln benchmark results

Each section belongs to one bench (its script is named in the heading); every run appends a
dated entry with the command that reproduces it. Numbers from this 2-core VM are noisy: read the
ratios measured in the same run and the CPU time per request rather than a lone requests/s value.
`;

/**
 * Appends \`entry\` at the end of the section titled \`heading\` (a "## " line) of \`file\`,
 * creating the file with a short header, or the section at the end, when missing; then formats
 * the file with Biome (see formatMarkdown). Returns whether the file could be formatted.
 */
export function appendToSection(file: string, heading: string, intro: string, entry: string): boolean {
  let text = existsSync(file) ? readFileSync(file, "utf8") : FILE_HEADER;
  const title = `## ${heading}`;
  const lines = text.split("\n");
  let start = lines.findIndex((l) => l.trim() === title);
  if (start < 0) {
    text = `${text.replace(/\n*$/, "\n")}\n${title}\n\n${intro.trim()}\n`;
    lines.splice(0, lines.length, ...text.split("\n"));
    start = lines.findIndex((l) => l.trim() === title);
  }
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    if (/^## /.test(lines[i] as string)) {
      end = i;
      break;
    }
  }
  const before = lines.slice(0, end).join("\n").replace(/\n*$/, "\n");
  const after = lines.slice(end).join("\n");
  const joined = `${before}\n${entry.trim()}\n${after === "" ? "" : `\n${after}`}`;
  writeFileSync(file, joined.replace(/\n*$/, "\n"));
  return formatMarkdown(file);
}

/**
 * Formats a Markdown file with the repository's Biome (the lint step checks Markdown too, so
 * a results file with unaligned tables would fail it). Returns false when Biome is missing or fails.
 */
export function formatMarkdown(file: string): boolean {
  const biome = join(projectRoot, "node_modules", ".bin", "biome");
  if (!existsSync(biome)) return false;
  // From the file's folder, so the Biome configuration of the file's own checkout applies.
  const r = spawnSync(biome, ["format", "--write", file], { cwd: dirname(resolve(file)), encoding: "utf8" });
  return r.status === 0;
}
