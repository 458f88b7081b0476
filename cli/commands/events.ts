// `kiln events NAME`: the audit trail of one app, oldest first.
import { parseCommand } from "../args.js";
import { findApp, q, session } from "../client/session.js";
import type { AuditEvent } from "../client/types.js";
import type { Command } from "../command.js";
import { output, printJson, printTable } from "../output/print.js";

export const eventsCommand: Command = {
  summary: "list an app's audit events",
  usage: "NAME [--json]",
  async run(argv) {
    const { flags, args } = parseCommand("events", argv, { json: { type: "boolean" } }, 1, 1);
    const s = session();
    const app = await findApp(s, args[0] ?? "");
    const events = await s.client.list<AuditEvent>(
      `/v3/audit_events?target_guids=${q(app.guid)}&per_page=5000`,
    );
    if (output(flags.json).json) printJson(events);
    else
      printTable(
        ["time", "event", "actor"],
        events.map((e) => [e.created_at, e.type, e.actor]),
      );
    return 0;
  },
};
