// Log lines the way cf prints them: `2026-12-07T10:00:00.00+0000 [APP/0] OUT text`.
import type { LogLine } from "../client/types.js";

const two = (n: number) => String(n).padStart(2, "0");

export function formatLogTime(at: string): string {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return at;
  const cs = Math.floor(d.getUTCMilliseconds() / 10);
  return `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}T${two(d.getUTCHours())}:${two(
    d.getUTCMinutes(),
  )}:${two(d.getUTCSeconds())}.${two(cs)}+0000`;
}

export function formatLogLine(line: LogLine): string {
  const source = (line.source || "APP").toUpperCase();
  const tag = line.index === undefined || line.index === null ? source : `${source}/${line.index}`;
  const stream = /^(err|stderr)$/i.test(line.stream ?? "") ? "ERR" : "OUT";
  return `${formatLogTime(line.at)} [${tag}] ${stream} ${line.text.replace(/\n$/, "")}`;
}
