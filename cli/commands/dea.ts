// `kiln dea`: turns this machine into capacity for apps (placement over NATS for now).
import type { Command } from "../command.js";

export const deaCommand: Command = {
  summary: "run a Droplet Execution Agent (answers placement, advertises capacity)",
  usage:
    "--nats URL [--id ID] [--zone Z] [--stacks S,…] [--memory-mb N] [--disk-mb N] [--isolation runc|none]",
  async run(argv) {
    const { runDeaCommand } = await import("../../dea/main.js");
    return runDeaCommand(argv);
  },
};
