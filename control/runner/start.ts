// The controller's NATS side, started with it: the blob store and KILN_LOGS (made when missing),
// the DEA client, actual state from heartbeats, the runner and its cc.hm.requests subscription.
// Subscriptions end when main.ts drains the connection.
import type { Logger } from "../../kernel/log.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { blobStore, ensureLogStream } from "../../messaging/jetstream.js";
import type { PushContext } from "../api/push.js";
import type { CcConfig } from "../config.js";
import type { CcStore } from "../store/store.js";
import { ActualState } from "./actual.js";
import { AppRunner } from "./app-runner.js";
import { DeaClient } from "./dea-client.js";

export async function startPush(
  bus: KilnConnection,
  store: CcStore,
  config: CcConfig,
  log: Logger,
  replicas: number,
): Promise<PushContext> {
  const [blobs] = await Promise.all([blobStore(bus.nc, replicas), ensureLogStream(bus.nc, replicas)]);
  const client = new DeaClient({ bus, log, discoverTimeoutMs: config.discoverTimeoutMs });
  const actual = new ActualState({ bus, log });
  actual.start();
  const runner = new AppRunner({ store, client, actual, config, log });
  runner.subscribeHm(bus);
  return {
    nc: bus.nc,
    blobs,
    actual,
    runner,
    staging: { store, client, runner, log, leaseMs: config.leaseMs },
  };
}
