// How a NATS-driven component (controller, DEA, Health Manager) stops, in one place: a stop
// asked for (SIGTERM) winds it down, drains its connection within 2 s (NATS may be gone with the
// kernel) and resolves `done` with 0; a connection closed for good under it (reconnects are
// unlimited, so an auth or server refusal) stops it without NATS and resolves `done` with 1.
// Either runs once, whichever comes first.
import { connectNats, type KilnConnection } from "../messaging/connection.js";
import { clusterServers, jetStreamReplicas } from "../messaging/replicas.js";
import type { Logger } from "./log.js";

/** The NATS settings every component's config table has. */
export interface NatsSettings {
  natsUrl: string;
  natsUser: string;
  natsPass: string;
}

/**
 * A component's NATS connection, named `name`, its losses, returns and server errors logged;
 * `signal` stops waiting for a server that is not up yet.
 */
export function connectComponent(
  name: string,
  settings: NatsSettings,
  log: Logger,
  signal?: AbortSignal,
): Promise<KilnConnection> {
  return connectNats({
    servers: settings.natsUrl,
    user: settings.natsUser || undefined,
    pass: settings.natsPass || undefined,
    name,
    listeners: {
      disconnected: ({ server }) => log.warn("nats_disconnected", { server }),
      reconnected: ({ server }) => log.info("nats_reconnected", { server }),
      error: ({ error, code }) => log.warn("nats_error", { code, error }),
    },
    ...(signal === undefined ? {} : { signal }),
  });
}

/** The replicas of the JetStream assets a component creates (messaging/replicas.ts), logged once. */
export function componentReplicas(bus: KilnConnection, override: number, log: Logger): number {
  const replicas = jetStreamReplicas(bus.nc, override);
  log.info("jetstream_replicas", { replicas, servers: clusterServers(bus.nc.info) });
  return replicas;
}

export interface ComponentLife {
  /** Resolves with the exit code once stopped. */
  done: Promise<number>;
  /** Stops it (the first call does; later ones share that stop). */
  stop(): Promise<void>;
}

export interface ComponentSteps {
  /** Winds the component down while NATS is still there (unsubscribes, evacuates, closes servers). */
  wind(): Promise<void>;
  /** Stops it when the connection closed under it. */
  lost(): Promise<void>;
  /** Closes what outlives the connection, after the drain (and after `lost`). */
  release?(): Promise<void>;
  /** The record logged once stopped: its event and fields. */
  stopped(): { event: string; fields: Record<string, unknown> };
}

export function componentLife(bus: KilnConnection, log: Logger, steps: ComponentSteps): ComponentLife {
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // A step that fails is logged and the stop goes on: the process must still end.
      await steps.wind().catch((err: unknown) => log.warn("stop_failed", { error: err }));
      await bus.drainWithin(2_000).catch((err: unknown) => log.warn("nats_drain_failed", { error: err }));
      await steps.release?.().catch((err: unknown) => log.warn("release_failed", { error: err }));
      const { event, fields } = steps.stopped();
      log.info(event, fields);
      resolveDone(0);
    })();
    return stopping;
  };
  bus.on("closed", ({ error }) => {
    if (stopping !== null) return;
    log.error("nats_closed", { error });
    stopping = (async () => {
      await steps.lost().catch((err: unknown) => log.warn("stop_failed", { error: err }));
      await steps.release?.().catch((err: unknown) => log.warn("release_failed", { error: err }));
      resolveDone(1);
    })();
  });
  return { done, stop };
}
