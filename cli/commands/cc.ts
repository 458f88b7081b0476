// `kiln cc`: the Cloud Controller, the HTTP API the `kiln` client talks to.
import type { Command } from "../command.js";

export const ccCommand: Command = {
  summary: "run a Cloud Controller (the HTTP API for users, spaces, apps and routes)",
  usage:
    "--nats URL [--port 9022] [--host H] [--data-dir DIR] [--domain D] [--token-ttl-s N] [--nats-user U] [--nats-pass P]",
  async run(argv) {
    const { runCcCommand } = await import("../../control/main.js");
    return runCcCommand(argv);
  },
};
