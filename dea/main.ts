// The DEA process: NATS connection, the resource ledger, the dea.discover responder and the
// dea.advertise publisher; SIGTERM unsubscribes, drains and closes. `kiln dea` calls
// runDeaCommand; tests and embedders call startDea. Running instances and staging come later
// (dea/container, dea/staging) and fill the same ledger.

import { randomUUID } from "node:crypto";
import { createLogger, type Logger } from "../kernel/log.js";
import { runUntilSignal } from "../kernel/run.js";
import { connectNats, type KilnConnection } from "../messaging/connection.js";
import { type DeaConfig, deaConfig, parseDeaArgs } from "./config.js";
import { Advertiser } from "./placement/advertise.js";
import { type DiscoverCounters, DiscoverResponder } from "./placement/discover.js";
import { ResourceLedger } from "./placement/ledger.js";

export interface DeaCounters extends DiscoverCounters {
  advertised: number;
  advertiseSkipped: number;
}

export interface DeaHandle {
  readonly config: DeaConfig;
  /** The id in use (config.deaId, or the random one chosen at start). */
  readonly id: string;
  readonly ledger: ResourceLedger;
  counters(): DeaCounters;
  /** Unsubscribes, drains the NATS connection and closes it; idempotent. */
  stop(): Promise<void>;
  /** Resolves with the exit code once stopped (0), or 1 when the connection closed under it. */
  readonly done: Promise<number>;
}

/**
 * Starts the DEA; resolves once it answers dea.discover and has advertised. Aborting `signal`
 * while it waits for NATS rejects with the signal's reason.
 */
export async function startDea(
  config: DeaConfig,
  log: Logger = createLogger("dea"),
  signal?: AbortSignal,
): Promise<DeaHandle> {
  const id = config.deaId || randomUUID();
  const ledger = new ResourceLedger({ memoryMb: config.memoryMb, diskMb: config.diskMb });
  for (const r of config.testReservations)
    for (let i = 0; i < r.count; i++)
      ledger.reserve({
        instanceId: `test-${r.app}-${i}`,
        app: r.app,
        memoryMb: r.memoryMb,
        diskMb: r.diskMb,
      });

  log.info("dea_starting", { id, nats: config.natsUrl, isolation: config.isolation });
  const bus: KilnConnection = await connectNats({
    servers: config.natsUrl,
    user: config.natsUser || undefined,
    pass: config.natsPass || undefined,
    name: `dea-${id}`,
    listeners: {
      disconnected: ({ server }) => log.warn("nats_disconnected", { server }),
      reconnected: ({ server }) => log.info("nats_reconnected", { server }),
      error: ({ error, code }) => log.warn("nats_error", { code, error }),
    },
    ...(signal === undefined ? {} : { signal }),
  });

  const discover = new DiscoverResponder({
    bus,
    ledger,
    deaId: id,
    stacks: config.stacks,
    log: log.child("discover"),
  });
  const advertiser = new Advertiser({
    bus,
    ledger,
    identity: {
      deaId: id,
      host: config.host,
      zone: config.zone,
      stacks: config.stacks,
      isolation: config.isolation,
    },
    intervalMs: config.advertiseIntervalMs,
    log: log.child("advertise"),
  });
  const counters = (): DeaCounters => ({
    ...discover.counters(),
    advertised: advertiser.sent,
    advertiseSkipped: advertiser.skipped,
  });

  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      advertiser.stop();
      discover.stop();
      await bus.drain().catch((err: unknown) => log.warn("nats_drain_failed", { error: err }));
      log.info("dea_stopped", { id, counters: counters() });
      resolveDone(0);
    })();
    return stopping;
  };
  bus.on("closed", ({ error }) => {
    if (stopping !== null) return;
    // Closed for good under us (reconnects are unlimited, so this is an auth or server refusal).
    log.error("nats_closed", { error });
    stopping = (async () => {
      advertiser.stop();
      discover.stop();
      resolveDone(1);
    })();
  });

  try {
    discover.start();
    await bus.flush();
    advertiser.start();
  } catch (err) {
    await stop();
    throw err;
  }
  log.info("dea_started", {
    id,
    nats: config.natsUrl,
    host: config.host,
    zone: config.zone,
    stacks: config.stacks,
    isolation: config.isolation,
    memoryMb: config.memoryMb,
    diskMb: config.diskMb,
    reservedMemoryMb: ledger.reservedMemoryMb,
    reservedDiskMb: ledger.reservedDiskMb,
    instances: ledger.instances,
    advertiseIntervalMs: config.advertiseIntervalMs,
  });
  return { config, id, ledger, counters, stop, done };
}

/** `kiln dea [flags]`: runs until SIGTERM/SIGINT and resolves with the exit code. */
export async function runDeaCommand(argv: string[]): Promise<number> {
  const log = createLogger("dea");
  const config = deaConfig(parseDeaArgs(argv));
  return runUntilSignal(
    log,
    (signal) => startDea(config, log, signal),
    (dea) => void dea.stop(),
  );
}
