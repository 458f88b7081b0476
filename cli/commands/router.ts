// `kiln router`: runs the router data plane against a NATS server.
import type { Command } from "../command.js";

export const routerCommand: Command = {
  summary: "run the HTTP router (routes learned from NATS)",
  usage: "--nats URL [--port 8080] [--status-port 8081] [--threads N]",
  async run(argv) {
    const { runRouterCommand } = await import("../../router/main.js");
    return runRouterCommand(argv);
  },
};
