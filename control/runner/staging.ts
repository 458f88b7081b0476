// Staging a build: a DEA by dea.discover (the app's memory and disk), dea.<id>.stage of
// `packages/<guid>.tar.gz` with the app's buildpack and env, then the droplet record, the build
// STAGED and the app's current droplet (a new version, so a started app is restarted on it), or
// the build FAILED with the DEA's error. The staging controller holds a lease on the build while
// it waits for the DEA (control/store/lease.ts): if it dies, the next read of the build on any
// controller marks it FAILED (KILN_CC_STAGING_LOST) instead of leaving it STAGING forever.

import { createHash, randomUUID } from "node:crypto";
import { KilnError } from "../../kernel/errors.js";
import type { Logger } from "../../kernel/log.js";
import { UNCHANGED } from "../store/kv.js";
import { holdLease, leaseExpired } from "../store/lease.js";
import { type BuildRecord, type DropletRecord, pushKeys, pushRecords } from "../store/push.js";
import { type AppRecord, keys } from "../store/records.js";
import type { CcStore } from "../store/store.js";
import type { AppRunner } from "./app-runner.js";
import type { DeaClient } from "./dea-client.js";

/** How long the DEA may stage, ms. */
const STAGING_TIMEOUT_MS = 15 * 60_000;

export interface StagingDeps {
  store: CcStore;
  client: DeaClient;
  runner: AppRunner;
  log: Logger;
  /** control/store/lease.ts: how long a STAGING build may go unrefreshed. */
  leaseMs: number;
}

/**
 * What a droplet is made from: the package's files and the settings staging sees (buildpacks and
 * environment; memory and disk only bound it). A droplet with the key a new build would have is
 * what that build would make, so an unchanged push reuses it instead of staging again.
 */
export function stagingKey(
  /** The package's files_sha256 (its sha256 on records from before it existed). */
  packageFiles: string,
  app: Pick<AppRecord, "buildpacks" | "environment_variables">,
): string {
  const env = Object.entries(app.environment_variables).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash("sha256")
    .update(JSON.stringify([packageFiles, app.buildpacks, env]))
    .digest("hex");
}

export async function stageBuild(d: StagingDeps, build: BuildRecord, packageFiles: string): Promise<void> {
  const recs = pushRecords(d.store);
  const finish = (change: Partial<BuildRecord>) =>
    recs.builds.update(pushKeys.build(build.guid), (b) =>
      b.state !== "STAGING" ? UNCHANGED : { ...b, ...change, updated_at: new Date().toISOString() },
    );
  // Another controller reading this build while it stages sees it alive (the lease).
  const release = holdLease(d.leaseMs, () =>
    recs.builds.update(pushKeys.build(build.guid), (b) =>
      b.state !== "STAGING" ? UNCHANGED : { ...b, updated_at: new Date().toISOString() },
    ),
  );
  try {
    const got = await d.store.apps.get(keys.app(build.app_guid));
    if (got === null) throw new Error(`app ${build.app_guid} is gone`);
    const app = got.value;
    const dea = await d.client.discover({
      app: app.guid,
      version: app.version,
      memoryMb: app.memory_in_mb,
      diskMb: app.disk_in_mb,
      stack: "",
    });
    const reply = await d.client.stage(
      dea.deaId,
      {
        app: app.guid,
        taskId: build.guid,
        packageKey: pushKeys.packageBlob(build.package_guid),
        buildpack: app.buildpacks[0] ?? "",
        stack: "",
        env: app.environment_variables,
        memoryMb: app.memory_in_mb,
        diskMb: app.disk_in_mb,
        timeoutMs: STAGING_TIMEOUT_MS,
      },
      STAGING_TIMEOUT_MS,
    );
    if (!reply.ok) {
      await finish({
        state: "FAILED",
        error: reply.error,
        error_code: reply.errorCode,
        log_tail: reply.logTail,
      });
      return;
    }
    const now = new Date().toISOString();
    const droplet: DropletRecord = {
      guid: randomUUID(),
      state: "STAGED",
      app_guid: app.guid,
      sha1: reply.dropletSha1,
      key: reply.dropletKey,
      start_command: reply.startCommand,
      buildpack: reply.detectedBuildpack,
      staging_key: stagingKey(packageFiles, app),
      created_at: now,
      updated_at: now,
    };
    await recs.droplets.create(pushKeys.droplet(droplet.guid), droplet);
    await finish({ state: "STAGED", droplet_guid: droplet.guid, log_tail: reply.logTail });
    let before: AppRecord | null = null;
    const after = await d.store.apps.update(keys.app(app.guid), (a) => {
      before = a;
      return {
        ...a,
        droplet_guid: droplet.guid,
        version: randomUUID(),
        updated_at: new Date().toISOString(),
      };
    });
    if (before !== null && after !== null) await d.runner.reconcile(before, after.value);
  } catch (err) {
    const code = err instanceof KilnError ? err.code : "KILN_CC_STAGING_LOST";
    d.log.warn("staging_failed", { build: build.guid, error: err });
    await finish({ state: "FAILED", error: (err as Error).message, error_code: code }).catch(() => {});
  } finally {
    release();
  }
}

/**
 * The build as it stands: one still STAGING whose controller stopped refreshing it (it died
 * mid-push) is marked FAILED with KILN_CC_STAGING_LOST, so a client polling it gets an answer.
 */
export async function liveBuild(
  store: CcStore,
  leaseMs: number,
  guid: string,
  now = Date.now(),
): Promise<BuildRecord | null> {
  const recs = pushRecords(store);
  const got = await recs.builds.get(pushKeys.build(guid));
  if (got === null || got.value.state !== "STAGING" || !leaseExpired(got.value.updated_at, leaseMs, now))
    return got?.value ?? null;
  const done = await recs.builds.update(pushKeys.build(guid), (b) =>
    b.state !== "STAGING" || !leaseExpired(b.updated_at, leaseMs, now)
      ? UNCHANGED
      : {
          ...b,
          state: "FAILED",
          error: `the controller staging this build stopped before it finished (no word for ${leaseMs} ms); push again`,
          error_code: "KILN_CC_STAGING_LOST",
          updated_at: new Date().toISOString(),
        },
  );
  return done?.value ?? null;
}
