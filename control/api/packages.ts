// Packages: POST /v3/packages (AWAITING_UPLOAD), GET, and the upload, which moves the record
// AWAITING_UPLOAD → PROCESSING_UPLOAD → READY or FAILED by compare-and-set, so of two uploads
// to one package only one runs. The receiving controller holds a lease on PROCESSING_UPLOAD.
import { randomUUID } from "node:crypto";
import type { ObjectStore } from "nats";
import { CcError, invalid, notFound } from "../errors.js";
import { UNCHANGED } from "../store/kv.js";
import { holdLease, leaseExpired } from "../store/lease.js";
import { type PackageRecord, type PushRecords, pushKeys } from "../store/push.js";
import { visibleApp } from "./apps.js";
import { receivePackage } from "./package-upload.js";
import type { ApiContext, ApiRequest, Route } from "./table.js";
import { requiredObject, requiredString } from "./validate.js";

type User = NonNullable<ApiRequest["user"]>;

/** The package, or 404 when it is missing or its app is in a space the user cannot see. */
export async function visiblePackage(ctx: ApiContext, recs: PushRecords, user: User, guid: string) {
  const p = await recs.packages.get(pushKeys.pkg(guid));
  if (p === null) throw notFound("package", guid);
  try {
    await visibleApp(ctx.store, user, p.value.app_guid);
  } catch (err) {
    if ((err as { code?: string }).code !== "KILN_CC_NOT_FOUND") throw err;
    throw notFound("package", guid);
  }
  const now = Date.now();
  if (p.value.state !== "PROCESSING_UPLOAD" || !leaseExpired(p.value.updated_at, ctx.config.leaseMs, now))
    return p.value;
  // Its controller died mid-upload (control/store/lease.ts): FAILED, so nothing waits on it.
  const done = await recs.packages.update(pushKeys.pkg(guid), (cur) =>
    cur.state !== "PROCESSING_UPLOAD" || !leaseExpired(cur.updated_at, ctx.config.leaseMs, now)
      ? UNCHANGED
      : {
          ...cur,
          state: "FAILED",
          error: `the controller receiving the upload stopped before it finished (no word for ${ctx.config.leaseMs} ms); upload again`,
          updated_at: new Date().toISOString(),
        },
  );
  return done?.value ?? p.value;
}

export function packageRoutes(ctx: ApiContext, recs: PushRecords, blobs: ObjectStore): Route[] {
  const setState = (guid: string, from: PackageRecord["state"], change: Partial<PackageRecord>) =>
    recs.packages.update(pushKeys.pkg(guid), (p) =>
      p.state !== from ? UNCHANGED : { ...p, ...change, updated_at: new Date().toISOString() },
    );
  return [
    {
      method: "POST",
      path: "/v3/packages",
      handler: async (req) => {
        const user = req.user as User;
        const body = await req.json();
        if (body.type !== undefined && body.type !== "bits") throw invalid("type", "must be bits");
        const rel = requiredObject(body, "relationships");
        const app = requiredObject(
          requiredObject(rel, "app", "relationships."),
          "data",
          "relationships.app.",
        );
        const appGuid = requiredString(app, "guid", 64);
        await visibleApp(ctx.store, user, appGuid);
        const now = new Date().toISOString();
        const pkg: PackageRecord = {
          guid: randomUUID(),
          type: "bits",
          state: "AWAITING_UPLOAD",
          app_guid: appGuid,
          sha256: null,
          size: null,
          files_sha256: null,
          error: null,
          created_at: now,
          updated_at: now,
        };
        await recs.packages.create(pushKeys.pkg(pkg.guid), pkg);
        return { status: 201, body: pkg };
      },
    },
    {
      method: "GET",
      path: "/v3/packages/:guid",
      handler: async (req) => ({
        status: 200,
        body: await visiblePackage(ctx, recs, req.user as User, req.params.guid as string),
      }),
    },
    {
      method: "POST",
      path: "/v3/packages/:guid/upload",
      handler: async (req) => {
        const guid = req.params.guid as string;
        await visiblePackage(ctx, recs, req.user as User, guid);
        const taken = await setState(guid, "AWAITING_UPLOAD", { state: "PROCESSING_UPLOAD" });
        if (taken === null) throw notFound("package", guid);
        if (taken.value.state !== "PROCESSING_UPLOAD")
          throw invalid(
            "state",
            `of package ${guid} is ${taken.value.state}; only AWAITING_UPLOAD takes an upload`,
          );
        // Other controllers reading the package while it streams in see it alive (the lease).
        const release = holdLease(ctx.config.leaseMs, () =>
          setState(guid, "PROCESSING_UPLOAD", { state: "PROCESSING_UPLOAD" }),
        );
        try {
          const got = await receivePackage(req.raw, blobs, guid, ctx.config.maxPackageMb * 1024 * 1024);
          const done = await setState(guid, "PROCESSING_UPLOAD", { state: "READY", ...got });
          return { status: 200, body: done?.value };
        } catch (err) {
          await setState(guid, "PROCESSING_UPLOAD", { state: "FAILED", error: (err as Error).message }).catch(
            () => {},
          );
          if (!(err instanceof CcError)) ctx.log.error("upload_failed", { package: guid, error: err });
          throw err;
        } finally {
          release();
        }
      },
    },
  ];
}
