// Builds and droplets: POST /v3/builds answers 201 STAGING at once and stages in the
// background (control/runner/staging.ts); GET /v3/builds/:guid and GET /v3/droplets/:guid.
import { randomUUID } from "node:crypto";
import { invalid, notFound } from "../errors.js";
import { liveBuild, type StagingDeps, stageBuild, stagingKey } from "../runner/staging.js";
import { UNCHANGED } from "../store/kv.js";
import { type BuildRecord, type PushRecords, pushKeys } from "../store/push.js";
import { type AppRecord, keys } from "../store/records.js";
import { visibleApp } from "./apps.js";
import { visiblePackage } from "./packages.js";
import type { ApiContext, ApiRequest, Route } from "./table.js";
import { requiredObject, requiredString } from "./validate.js";

type User = NonNullable<ApiRequest["user"]>;

export function buildRoutes(ctx: ApiContext, recs: PushRecords, staging: StagingDeps): Route[] {
  /** A record of an app the user can see, or 404. */
  const visible = async <T extends { app_guid: string }>(
    user: User,
    kind: string,
    guid: string,
    v: T | null,
  ) => {
    if (v === null) throw notFound(kind, guid);
    try {
      await visibleApp(ctx.store, user, v.app_guid);
    } catch (err) {
      if ((err as { code?: string }).code !== "KILN_CC_NOT_FOUND") throw err;
      throw notFound(kind, guid);
    }
    return v;
  };
  return [
    {
      method: "POST",
      path: "/v3/builds",
      handler: async (req) => {
        const user = req.user as User;
        const pkgGuid = requiredString(requiredObject(await req.json(), "package"), "guid", 64, "package.");
        const pkg = await visiblePackage(ctx, recs, user, pkgGuid);
        if (pkg.state !== "READY") throw invalid("package.guid", `${pkgGuid} is ${pkg.state}, not READY`);
        const app = await visibleApp(ctx.store, user, pkg.app_guid);
        // The files, not the tar.gz's bytes: those depend on which files the controller held.
        const files = pkg.files_sha256 ?? pkg.sha256 ?? "";
        const key = stagingKey(files, app);
        const current =
          app.droplet_guid === null ? null : await recs.droplets.get(pushKeys.droplet(app.droplet_guid));
        // Same files, buildpacks and environment as the running droplet: staging again would make
        // the same droplet, so the build is STAGED at once with it.
        const reuse = current !== null && current.value.staging_key === key ? current.value.guid : null;
        const now = new Date().toISOString();
        const build: BuildRecord = {
          guid: randomUUID(),
          state: reuse === null ? "STAGING" : "STAGED",
          error: null,
          error_code: null,
          log_tail: [],
          droplet_guid: reuse,
          package_guid: pkg.guid,
          app_guid: pkg.app_guid,
          created_at: now,
          updated_at: now,
        };
        await recs.builds.create(pushKeys.build(build.guid), build);
        if (reuse === null) void stageBuild(staging, build, files);
        return { status: 201, body: build };
      },
    },
    {
      method: "GET",
      path: "/v3/builds/:guid",
      handler: async (req) => {
        const guid = req.params.guid as string;
        const b = await liveBuild(ctx.store, staging.leaseMs, guid);
        return { status: 200, body: await visible(req.user as User, "build", guid, b) };
      },
    },
    {
      // A finished build already makes its droplet the app's; this sets an older one back
      // (a rollback), or is a no-op for the current one. A new droplet on a started app
      // restarts it, as any change of what runs does.
      method: "PATCH",
      path: "/v3/apps/:guid/relationships/current_droplet",
      handler: async (req) => {
        const user = req.user as User;
        const appGuid = req.params.guid as string;
        await visibleApp(ctx.store, user, appGuid);
        const dropletGuid = requiredString(requiredObject(await req.json(), "data"), "guid", 64, "data.");
        const d = await recs.droplets.get(pushKeys.droplet(dropletGuid));
        if (d === null || d.value.app_guid !== appGuid)
          throw invalid("data.guid", `droplet ${dropletGuid} is not a droplet of app ${appGuid}`);
        let before: AppRecord | null = null;
        const after = await ctx.store.apps.update(keys.app(appGuid), (a) => {
          before = a;
          if (a.droplet_guid === dropletGuid) return UNCHANGED;
          return {
            ...a,
            droplet_guid: dropletGuid,
            version: randomUUID(),
            updated_at: new Date().toISOString(),
          };
        });
        if (after === null) throw notFound("app", appGuid);
        if (before !== null && (before as AppRecord).droplet_guid !== dropletGuid)
          await staging.runner.reconcile(before, after.value);
        return { status: 200, body: { data: { guid: dropletGuid } } };
      },
    },
    {
      method: "GET",
      path: "/v3/droplets/:guid",
      handler: async (req) => {
        const guid = req.params.guid as string;
        const d = await recs.droplets.get(pushKeys.droplet(guid));
        return { status: 200, body: await visible(req.user as User, "droplet", guid, d?.value ?? null) };
      },
    },
  ];
}
