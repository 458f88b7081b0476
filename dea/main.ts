// The DEA process: NATS connection, the resource ledger, placement (dea.discover,
// dea.advertise), staging (dea.<id>.stage), instances (dea.<id>.start, dea.stop, dea.update,
// the heartbeat) and log shipping; SIGTERM evacuates the instances, then drains and closes.
// `kiln dea` calls runDeaCommand; tests and embedders call startDea.

import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { LRUCache } from "lru-cache";
import { componentLife, componentReplicas, connectComponent } from "../kernel/lifecycle.js";
import { createLogger, type Logger } from "../kernel/log.js";
import { runUntilSignal } from "../kernel/run.js";
import type { KilnConnection } from "../messaging/connection.js";
import { blobStore, ensureLogStream } from "../messaging/jetstream.js";
import { containerRoot, type DeaConfig, deaConfig, parseDeaArgs } from "./config.js";
import { removeLeftovers } from "./container/leftovers.js";
import { requireIsolation } from "./container/probe.js";
import { Runc } from "./container/runc.js";
import { Instances } from "./instances/instances.js";
import { type LogOutlet, LogShipper } from "./logs/shipper.js";
import { Advertiser } from "./placement/advertise.js";
import { type DiscoverCounters, DiscoverResponder } from "./placement/discover.js";
import { ResourceLedger } from "./placement/ledger.js";
import { ArchiveWork } from "./staging/archive.js";
import { StageResponder, stagingContainerPrefix } from "./staging/responder.js";

export interface DeaCounters extends DiscoverCounters {
  advertised: number;
  advertiseSkipped: number;
  staged: number;
  stagingFailed: number;
  stagingRejected: number;
  logLinesPublished: number;
  logLinesDropped: number;
  /** Malformed dea.update messages, by error code. */
  updatesRejected: Record<string, number>;
}

export interface DeaHandle {
  readonly config: DeaConfig;
  /** The id in use (config.deaId, or the random one chosen at start). */
  readonly id: string;
  readonly ledger: ResourceLedger;
  readonly instances: Instances;
  counters(): DeaCounters;
  /**
   * Evacuates (every instance reported DEA_EVACUATION, then stopped), unsubscribes, drains
   * the NATS connection and closes it; idempotent.
   */
  stop(): Promise<void>;
  /** Resolves with the exit code once stopped (0), or 1 when the connection closed under it. */
  readonly done: Promise<number>;
}

/**
 * Starts the DEA; resolves once it answers dea.discover, dea.<id>.stage and dea.<id>.start
 * and has advertised. Refuses to start (KILN_DEA_CONTAINER_UNAVAILABLE) when runc cannot
 * isolate apps here and `--isolation none` was not given. Aborting `signal` while it waits
 * for NATS rejects with the signal's reason.
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
  // The data dir holds droplets, instances' files and staging work: the DEA's alone.
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  let runc: Runc | null = null;
  if (config.isolation === "runc") {
    runc = new Runc({ root: containerRoot(config.dataDir) });
    await requireIsolation(runc);
  } else {
    log.warn("isolation_none", {
      message:
        "apps run as plain processes under their own uids, memory limited by prlimit; they are not isolated",
    });
  }

  const bus: KilnConnection = await connectComponent(`dea-${id}`, config, log, signal);

  let blobs: Awaited<ReturnType<typeof blobStore>>;
  try {
    const replicas = componentReplicas(bus, config.natsReplicas, log);
    await ensureLogStream(bus.nc, replicas);
    blobs = await blobStore(bus.nc, replicas);
  } catch (err) {
    await bus.close();
    throw err;
  }
  const archive = new ArchiveWork();
  const shipper = new LogShipper({
    bus,
    log: log.child("logs"),
    rate: { linesPerSecond: config.logRate, burst: 2 * config.logRate },
  });
  // One outlet (one rate) per instance; bounded, since instances come and go.
  const outlets = new LRUCache<string, LogOutlet>({ max: 10_000 });
  const instances = new Instances({
    bus,
    deaId: id,
    host: config.host,
    runc,
    archive,
    blobs,
    ledger,
    dataDir: config.dataDir,
    // The first uid stages; instances take the next 9999, one each.
    uidRange: { first: config.uidBase + 1, count: 9_999 },
    stopGraceMs: config.stopGraceMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    dropletCacheBytes: config.dropletCacheMb * 1024 * 1024,
    output: (origin, stream, text) => {
      let o = outlets.get(origin.instanceId);
      if (o === undefined) {
        o = shipper.outlet({ app: origin.app, source: "APP", index: origin.index });
        outlets.set(origin.instanceId, o);
      }
      o.line(stream, text);
    },
    log: log.child("instances"),
  });
  const staging = new StageResponder({
    bus,
    deaId: id,
    shipper,
    log: log.child("staging"),
    deps: {
      runc,
      archive,
      blobs,
      workDir: join(config.dataDir, "staging"),
      cacheDir: join(config.dataDir, "buildpack-cache"),
      uid: config.uidBase,
      gid: config.uidBase,
      containerPrefix: stagingContainerPrefix,
      log: log.child("staging"),
      limits: { timeoutMs: config.stagingTimeoutMs },
    },
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
  const counters = (): DeaCounters => {
    const st = staging.counters();
    return {
      ...discover.counters(),
      advertised: advertiser.sent,
      advertiseSkipped: advertiser.skipped,
      staged: st.staged,
      stagingFailed: st.failed,
      stagingRejected: st.rejected,
      logLinesPublished: shipper.counters.published,
      logLinesDropped: shipper.counters.dropped,
      updatesRejected: instances.rejectedUpdates(),
    };
  };

  const quiet = (): void => {
    advertiser.stop();
    discover.stop();
    staging.stop();
  };
  const { done, stop } = componentLife(bus, log, {
    wind: async () => {
      // Placement first, so no new work arrives; then the instances are announced as
      // evacuated (the Health Manager starts them elsewhere) and stopped, unregistered first.
      quiet();
      await instances.evacuate().catch((err: unknown) => log.error("evacuate_failed", { error: err }));
      shipper.stop();
    },
    lost: async () => {
      quiet();
      await instances.shutdown().catch(() => {});
      shipper.stop();
    },
    release: () => archive.close(),
    stopped: () => ({ event: "dea_stopped", fields: { id, counters: counters() } }),
  });

  try {
    // What a previous run left (its SIGKILL, a crash): reported and removed before new work.
    await instances.adopt();
    if (runc !== null) await removeLeftovers(runc, stagingContainerPrefix);
    await instances.listen();
    staging.start();
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
    dataDir: config.dataDir,
    reservedMemoryMb: ledger.reservedMemoryMb,
    reservedDiskMb: ledger.reservedDiskMb,
    instances: ledger.instances,
    advertiseIntervalMs: config.advertiseIntervalMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
  });
  return { config, id, ledger, instances, counters, stop, done };
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
