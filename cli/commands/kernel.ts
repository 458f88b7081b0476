// `kiln up` (the whole embedded kernel) and `kiln nats` (the private nats-server alone).
import { join } from "node:path";
import {
  deasSetting,
  type KernelConfig,
  kernelConfig,
  kernelFlags,
  portSetting,
} from "../../kernel/config.js";
import { createLogger } from "../../kernel/log.js";
import { parseFlags } from "../args.js";
import type { Command } from "../command.js";

/**
 * The first SIGINT or SIGTERM. Later ones are ignored while the stop runs (it has its own
 * time limits): Ctrl-C under `npm start` reaches the kernel twice, from the terminal and from
 * npm forwarding it, and the default action would end the process before it stopped what it
 * started. The listeners do not keep the process alive.
 */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let first: NodeJS.Signals | null = null;
    const on = (sig: NodeJS.Signals) => {
      if (first !== null) return;
      first = sig;
      resolve(sig);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

/** `kiln up`'s settings: its flags over the environment's (KILN_*_PORT, …) over the defaults. */
export function upConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): KernelConfig {
  const s = { type: "string" } as const;
  const f = parseFlags("up", argv, {
    [kernelFlags.dataDir]: s,
    [kernelFlags.natsPort]: s,
    [kernelFlags.routerPort]: s,
    [kernelFlags.routerStatusPort]: s,
    [kernelFlags.routerStatusHost]: s,
    [kernelFlags.ccPort]: s,
    [kernelFlags.deas]: s,
  });
  const port = (flag: "nats-port" | "router-port" | "router-status-port" | "cc-port"): number | undefined => {
    const raw = f[flag];
    return raw === undefined ? undefined : portSetting(raw, `--${flag}`);
  };
  return kernelConfig(
    {
      dataDir: f["data-dir"],
      natsPort: port("nats-port"),
      routerPort: port("router-port"),
      routerStatusPort: port("router-status-port"),
      routerStatusHost: f["router-status-host"] || undefined,
      ccPort: port("cc-port"),
      deas:
        f[kernelFlags.deas] === undefined ? undefined : deasSetting(f[kernelFlags.deas] as string, "--deas"),
    },
    env,
  );
}

/** `kiln nats`'s data dir and port. */
export function natsSettings(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { dataDir: string; port: number } {
  const f = parseFlags("nats", argv, { "data-dir": { type: "string" }, port: { type: "string" } });
  const config = kernelConfig({ dataDir: f["data-dir"] }, env);
  return {
    dataDir: config.dataDir,
    port: f.port === undefined ? config.natsPort : portSetting(f.port, "--port"),
  };
}

export const upCommand: Command = {
  summary: "start the embedded kernel: private NATS and one of each component (--deas N: N DEAs)",
  usage:
    "[--data-dir DIR] [--nats-port N] [--router-port N] [--router-status-port N] [--router-status-host H] [--cc-port N] [--deas N]",
  async run(argv) {
    const config = upConfig(argv);
    const log = createLogger("kernel");
    const signal = untilSignal();
    // Loaded here, not at the top: every client command would pay for the kernel's modules.
    const { startKernel } = await import("../../kernel/up.js");
    const kernel = await startKernel(config, log);
    process.stdout.write(`${kernel.summary().join("\n")}\n`);
    const sig = await signal;
    log.info("stopping", { signal: sig });
    await kernel.stop();
    log.info("stopped");
    return 0;
  },
};

export const natsCommand: Command = {
  summary: "run the private nats-server (JetStream, per-component users)",
  usage: "[--data-dir DIR] [--port N]",
  async run(argv) {
    const { dataDir, port } = natsSettings(argv);
    const signal = untilSignal();
    const { startNatsServer } = await import("../../messaging/nats-server.js");
    const nats = await startNatsServer({ dataDir: join(dataDir, "nats"), port });
    process.stdout.write(
      `nats-server listening on ${nats.url}\ncredentials: ${join(nats.dataDir, "credentials.json")}\nstop: Ctrl-C\n`,
    );
    await signal;
    await nats.stop();
    return 0;
  },
};
