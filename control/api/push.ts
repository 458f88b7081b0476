// The routes of pushing and running (resource matches, packages, builds, droplets, stats, logs),
// registered together by main.ts with what they share: the blob store, the runner, the NATS side.
import type { NatsConnection, ObjectStore } from "nats";
import type { ActualState } from "../runner/actual.js";
import type { AppRunner } from "../runner/app-runner.js";
import type { StagingDeps } from "../runner/staging.js";
import { pushRecords } from "../store/push.js";
import { buildRoutes } from "./builds.js";
import { logRoutes } from "./logs.js";
import { packageRoutes } from "./packages.js";
import { resourceMatchRoutes } from "./resource-matches.js";
import { statsRoutes } from "./stats.js";
import type { ApiContext, Route } from "./table.js";

export interface PushContext {
  nc: NatsConnection;
  blobs: ObjectStore;
  actual: ActualState;
  runner: AppRunner;
  staging: StagingDeps;
}

export function pushRoutes(ctx: ApiContext, p: PushContext): Route[] {
  const recs = pushRecords(ctx.store);
  return [
    ...resourceMatchRoutes(p.blobs),
    ...packageRoutes(ctx, recs, p.blobs),
    ...buildRoutes(ctx, recs, p.staging),
    ...statsRoutes(ctx, p.actual),
    ...logRoutes(ctx, p.nc),
  ];
}
