// An app's log lines from GET /v3/apps/:guid/logs: the stored ones (`recent=true`) and the
// live NDJSON stream after a given seq, so recent-then-follow has neither gap nor duplicate.
import type { ApiClient } from "./api.js";
import type { LogLine } from "./types.js";

function parseLine(text: string): LogLine | null {
  if (text.trim() === "") return null;
  try {
    const v = JSON.parse(text) as Partial<LogLine>;
    if (typeof v.seq !== "number" || typeof v.text !== "string") return null;
    return v as LogLine;
  } catch {
    return null;
  }
}

async function* ndjson(body: AsyncIterable<Uint8Array>): AsyncGenerator<LogLine> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of body) {
    rest += decoder.decode(chunk, { stream: true });
    let nl = rest.indexOf("\n");
    while (nl !== -1) {
      const line = parseLine(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
      if (line !== null) yield line;
      nl = rest.indexOf("\n");
    }
  }
  const last = parseLine(rest + decoder.decode());
  if (last !== null) yield last;
}

export async function recentLogs(client: ApiClient, appGuid: string): Promise<LogLine[]> {
  const res = await client.open(`/v3/apps/${encodeURIComponent(appGuid)}/logs?recent=true`);
  const out: LogLine[] = [];
  if (res.body !== null) for await (const line of ndjson(res.body)) out.push(line);
  return out;
}

/**
 * Streams lines after `afterSeq` (all new ones when undefined) until `signal` aborts or the
 * server ends the response; lines at or below the last seq seen are dropped.
 */
export async function followLogs(
  client: ApiClient,
  appGuid: string,
  afterSeq: number | undefined,
  onLine: (line: LogLine) => void,
  signal?: AbortSignal,
  /** Called once the controller answered: every line stored after this point will come. */
  onOpen?: () => void,
): Promise<number | undefined> {
  let last = afterSeq;
  const after = afterSeq === undefined ? "" : `&after_seq=${afterSeq}`;
  try {
    const res = await client.open(`/v3/apps/${encodeURIComponent(appGuid)}/logs?follow=true${after}`, signal);
    onOpen?.();
    if (res.body === null) return last;
    for await (const line of ndjson(res.body)) {
      if (last !== undefined && line.seq <= last) continue;
      last = line.seq;
      onLine(line);
    }
  } catch (err) {
    if (signal?.aborted !== true) throw err;
  }
  return last;
}
