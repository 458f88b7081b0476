// `kiln hm`: the Health Manager, which keeps what runs equal to what the controller wants.
import type { Command } from "../command.js";

export const hmCommand: Command = {
  summary: "run a Health Manager (restarts crashed and lost instances, stops extra ones, via a controller)",
  usage:
    "--nats URL [--heartbeat-ms 5000] [--analysis-ms 5000] [--grace-ms 30000] [--lease-ms 15000] [--nats-user U] [--nats-pass P]",
  async run(argv) {
    const { runHmCommand } = await import("../../hm/main.js");
    return runHmCommand(argv);
  },
};
