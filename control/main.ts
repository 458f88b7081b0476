// The Cloud Controller process: NATS connection, the store (JetStream KV buckets and the
// events stream), the admin bootstrap, and the HTTP API. It keeps no state of its own, so any
// number of them can run against one NATS. `kiln cc` calls runCcCommand; tests call startCc.
import { componentLife, componentReplicas, connectComponent } from "../kernel/lifecycle.js";
import { createLogger, type Logger } from "../kernel/log.js";
import { runUntilSignal } from "../kernel/run.js";
import type { KilnConnection } from "../messaging/connection.js";
import { appRoutes } from "./api/apps.js";
import { eventRoutes } from "./api/events.js";
import { infoRoutes } from "./api/info.js";
import { type PushContext, pushRoutes } from "./api/push.js";
import { routeRoutes } from "./api/routes.js";
import { type ApiServer, startApiServer } from "./api/server.js";
import { spaceRoutes } from "./api/spaces.js";
import { type ApiContext, RouteTable } from "./api/table.js";
import { tokenRoutes } from "./api/tokens.js";
import { userRoutes } from "./api/users.js";
import { ensureAdmin } from "./auth/bootstrap.js";
import { type CcConfig, ccConfig, parseCcArgs } from "./config.js";
import { startPush } from "./runner/start.js";
import { openStore } from "./store/store.js";

export interface CcHandle {
  readonly config: CcConfig;
  /** The API's port (the one chosen when config.port is 0). */
  readonly port: number;
  /** Closes the API, then drains and closes the NATS connection; idempotent. */
  stop(): Promise<void>;
  /** Resolves with the exit code once stopped (0), or 1 when the connection closed under it. */
  readonly done: Promise<number>;
}

/** Every resource's routes; a later part adds its file here. */
export function ccRoutes(ctx: ApiContext, push?: PushContext): RouteTable {
  return new RouteTable([
    ...infoRoutes(ctx),
    ...tokenRoutes(ctx),
    ...userRoutes(ctx),
    ...spaceRoutes(ctx),
    ...appRoutes(ctx, push === undefined ? undefined : (b, a) => void push.runner.reconcile(b, a)),
    ...(push === undefined ? [] : pushRoutes(ctx, push)),
    ...routeRoutes(ctx, push === undefined ? undefined : (apps) => void push.runner.routesChanged(apps)),
    ...eventRoutes(ctx),
  ]);
}

/** Starts the controller; resolves once the API listens. Aborting `signal` while NATS is awaited rejects. */
export async function startCc(
  config: CcConfig,
  log: Logger = createLogger("cc"),
  signal?: AbortSignal,
): Promise<CcHandle> {
  log.info("cc_starting", { nats: config.natsUrl });
  const bus: KilnConnection = await connectComponent("cc", config, log, signal);
  let api: ApiServer;
  try {
    const replicas = componentReplicas(bus, config.natsReplicas, log);
    const store = await openStore(bus.nc, replicas);
    await ensureAdmin(store, config.dataDir, log);
    const ctx: ApiContext = { store, config, log: log.child("api") };
    const push = await startPush(bus, store, config, log.child("runner"), replicas);
    api = await startApiServer(ctx, ccRoutes(ctx, push));
  } catch (err) {
    await bus.close().catch(() => {});
    throw err;
  }

  const { done, stop } = componentLife(bus, log, {
    wind: () => api.close(),
    lost: () => api.close(),
    stopped: () => ({ event: "cc_stopped", fields: {} }),
  });
  log.info("cc_listening", {
    port: api.port,
    host: config.host,
    domain: config.domain,
    nats: config.natsUrl,
  });
  return { config, port: api.port, stop, done };
}

/** `kiln cc [flags]`: runs until SIGTERM/SIGINT and resolves with the exit code. */
export async function runCcCommand(argv: string[]): Promise<number> {
  const log = createLogger("cc");
  const config = ccConfig(parseCcArgs(argv));
  return runUntilSignal(
    log,
    (signal) => startCc(config, log, signal),
    (cc) => void cc.stop(),
  );
}
