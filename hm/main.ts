// The Health Manager process: NATS connection and the loop. `kiln hm` calls runHmCommand;
// tests start the command as a process.
import { componentLife, connectComponent } from "../kernel/lifecycle.js";
import { createLogger, type Logger } from "../kernel/log.js";
import { runUntilSignal } from "../kernel/run.js";
import { type HmConfig, hmConfig, parseHmArgs } from "./config.js";
import { HealthManager } from "./health-manager.js";

export interface HmHandle {
  readonly hm: HealthManager;
  stop(): Promise<void>;
  /** Resolves with the exit code once stopped (0), or 1 when the connection closed under it. */
  readonly done: Promise<number>;
}

export async function startHm(config: HmConfig, log: Logger = createLogger("hm"), signal?: AbortSignal) {
  log.info("hm_starting", { nats: config.natsUrl });
  const bus = await connectComponent("hm", config, log, signal);
  const hm = new HealthManager(bus, config, log);
  try {
    await hm.start();
  } catch (err) {
    await bus.close().catch(() => {});
    throw err;
  }
  const { done, stop } = componentLife(bus, log, {
    wind: () => hm.stop(),
    lost: () => hm.stop(),
    stopped: () => ({ event: "hm_stopped", fields: { counters: hm.counters } }),
  });
  log.info("hm_running", { nats: config.natsUrl, leader: hm.leader });
  const handle: HmHandle = { hm, stop, done };
  return handle;
}

/** `kiln hm [flags]`: runs until SIGTERM/SIGINT and resolves with the exit code. */
export async function runHmCommand(argv: string[]): Promise<number> {
  const log = createLogger("hm");
  const config = hmConfig(parseHmArgs(argv));
  return runUntilSignal(
    log,
    (signal) => startHm(config, log, signal),
    (h) => void h.stop(),
  );
}
