// `kiln logs NAME [--recent]`: tail an app's logs; with --recent the stored lines first, then
// the tail from the last of them.
import { parseCommand } from "../args.js";
import { followLogs, recentLogs } from "../client/logs.js";
import { findApp, session } from "../client/session.js";
import type { Command } from "../command.js";
import { formatLogLine } from "../output/logs.js";

export const logsCommand: Command = {
  summary: "tail an app's logs (--recent: the stored lines, then the tail)",
  usage: "NAME [--recent]",
  async run(argv) {
    const { flags, args } = parseCommand("logs", argv, { recent: { type: "boolean" } }, 1, 1);
    const s = session();
    const app = await findApp(s, args[0] ?? "");
    const print = (line: Parameters<typeof formatLogLine>[0]) =>
      process.stdout.write(`${formatLogLine(line)}\n`);
    let after: number | undefined;
    if (flags.recent === true) {
      for (const line of await recentLogs(s.client, app.guid)) {
        print(line);
        after = line.seq;
      }
      // Without any stored line, the tail starts from the beginning so nothing written meanwhile is lost.
      after ??= 0;
    }
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      await followLogs(s.client, app.guid, after, print, stop.signal);
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    return 0;
  },
};
