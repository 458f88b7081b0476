// A component's structured log (one JSON record per line on its stderr), read as records as
// they come; a line that is not JSON is kept as { raw } so a harness can flag it.
import type { Readable } from "node:stream";
import { pipeLines } from "../../dea/logs/lines.js";

/** Calls `onRecord` for every line of `from`; resolves when it ends. */
export function readLogRecords(
  from: Readable,
  onRecord: (rec: Record<string, unknown>) => void,
): Promise<void> {
  return pipeLines(
    from,
    (line) => {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        rec = { raw: line };
      }
      onRecord(rec);
    },
    // One record must never be cut into lines that are not JSON, however long (a test may
    // log a 600 KiB field on purpose).
    256 * 1024 * 1024,
  );
}
