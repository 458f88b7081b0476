// Apps: desired state in kiln_apps. Create, list, read, PATCH, delete; env vars; start, stop,
// restart and scale change only the desired state here (the DEA side acts on it elsewhere).
// Names are unique per space through `name.<space>.<hex name>`, taken before the app is written.
import { randomUUID } from "node:crypto";
import { canSee, visibleSpace, visibleSpaceGuids } from "../auth/access.js";
import { CcError, invalid, notFound } from "../errors.js";
import { claim } from "../store/claim.js";
import { UNCHANGED } from "../store/kv.js";
import { type AppRecord, type AppState, type HealthCheck, keys } from "../store/records.js";
import type { CcStore } from "../store/store.js";
import { paginate } from "./pagination.js";
import type { ApiContext, ApiRequest, Route } from "./table.js";
import {
  envChanges,
  optionalInteger,
  optionalObject,
  optionalString,
  optionalStringList,
  queryList,
  requiredObject,
  requiredString,
} from "./validate.js";

export const appDefaults = { instances: 1, memory_in_mb: 256, disk_in_mb: 1024 } as const;
const MAX_INSTANCES = 1000;
const MAX_MB = 1024 * 1024;

/** A new version id: what runs changed (droplet, command, env, memory, disk), or a restart was asked. */
export function newVersion(): string {
  return randomUUID();
}

type User = NonNullable<ApiRequest["user"]>;

/** The app, or 404 when it is missing or in a space the user is not a member of. */
export async function visibleApp(store: CcStore, user: User, guid: string): Promise<AppRecord> {
  const app = await store.apps.get(keys.app(guid));
  if (app === null || !(await canSee(store, user, app.value.space_guid))) throw notFound("app", guid);
  return app.value;
}

function healthCheck(o: Record<string, unknown>): HealthCheck {
  const type = o.type ?? "port";
  if (type !== "port" && type !== "http" && type !== "process")
    throw invalid("health_check.type", "must be port, http or process");
  const endpoint = optionalString(o, "endpoint", 1024, "health_check.") ?? null;
  if (endpoint !== null && !endpoint.startsWith("/"))
    throw invalid("health_check.endpoint", "must start with /");
  const timeout = o.timeout === undefined || o.timeout === null ? null : o.timeout;
  if (
    timeout !== null &&
    (typeof timeout !== "number" || !Number.isInteger(timeout) || timeout < 1 || timeout > 600)
  )
    throw invalid("health_check.timeout", "must be an integer from 1 to 600 or null");
  return { type, endpoint, timeout };
}

function sameHealthCheck(a: HealthCheck, b: HealthCheck): boolean {
  return (
    a.type === b.type &&
    (a.endpoint ?? null) === (b.endpoint ?? null) &&
    (a.timeout ?? null) === (b.timeout ?? null)
  );
}

function appName(body: Record<string, unknown>): string {
  return requiredString(body, "name", 255);
}

/** Called after an app's record changed (after is null once deleted), so running instances follow it. */
export type AppChanged = (before: AppRecord, after: AppRecord | null) => void;

export function appRoutes(ctx: ApiContext, changed: AppChanged = () => {}): Route[] {
  const { store } = ctx;

  /** Takes an app name in a space; NAME_TAKEN when another app has it. */
  const takeName = async (key: string, guid: string, spaceGuid: string, name: string): Promise<void> => {
    const held = await claim(
      store.appNames,
      key,
      { guid, space_guid: spaceGuid },
      // Held while an app of that guid still has this name here (a rename gives the old one back).
      async (g) => {
        const a = await store.apps.get(keys.app(g));
        return a !== null && a.value.name === name && a.value.space_guid === spaceGuid;
      },
    );
    if (held !== null)
      throw new CcError("KILN_CC_NAME_TAKEN", `an app named ${name} already exists in this space`);
  };

  /** Applies `change` to the app (404 if gone meanwhile) and records `type`. */
  const change = async (
    user: User,
    guid: string,
    type: string,
    data: Record<string, unknown>,
    fn: (a: AppRecord) => AppRecord | typeof UNCHANGED,
  ): Promise<AppRecord> => {
    await visibleApp(store, user, guid);
    let before: AppRecord | null = null;
    const done = await store.apps.update(keys.app(guid), (a) => {
      before = a;
      return fn(a);
    });
    if (done === null) throw notFound("app", guid);
    if (before !== null) changed(before, done.value);
    await store.audit.record({
      type,
      actor: user.name,
      target_guid: guid,
      target_name: done.value.name,
      space_guid: done.value.space_guid,
      data,
    });
    return done.value;
  };

  const setState = (state: AppState, restart: boolean) => async (req: ApiRequest) => {
    const guid = req.params.guid as string;
    const app = await change(
      req.user as User,
      guid,
      restart ? "app.restart" : state === "STARTED" ? "app.start" : "app.stop",
      {},
      (a) =>
        a.state === state && !restart
          ? UNCHANGED
          : {
              ...a,
              state,
              version: restart ? newVersion() : a.version,
              updated_at: new Date().toISOString(),
            },
    );
    return { status: 200, body: app };
  };

  return [
    {
      method: "POST",
      path: "/v3/apps",
      handler: async (req) => {
        const user = req.user as User;
        const body = await req.json();
        const name = appName(body);
        const spaceGuid = requiredString(body, "space_guid", 64);
        const env = envChanges(optionalObject(body, "environment_variables") ?? {}, "environment_variables");
        const lifecycle = optionalObject(body, "lifecycle");
        const buildpacks = (lifecycle && optionalStringList(lifecycle, "buildpacks", "lifecycle.")) ?? [];
        await visibleSpace(store, user, spaceGuid);
        const environment: Record<string, string> = {};
        for (const [k, v] of Object.entries(env)) if (v !== null) environment[k] = v;
        const now = new Date().toISOString();
        const app: AppRecord = {
          guid: randomUUID(),
          name,
          space_guid: spaceGuid,
          state: "STOPPED",
          ...appDefaults,
          command: null,
          buildpacks,
          environment_variables: environment,
          health_check: { type: "port", endpoint: null, timeout: null },
          droplet_guid: null,
          version: newVersion(),
          created_at: now,
          updated_at: now,
        };
        const nameKey = keys.appName(spaceGuid, name);
        await takeName(nameKey, app.guid, spaceGuid, name);
        try {
          await store.apps.create(keys.app(app.guid), app);
        } catch (err) {
          await store.appNames.delete(nameKey).catch(() => {});
          throw err;
        }
        await store.audit.record({
          type: "app.create",
          actor: user.name,
          target_guid: app.guid,
          target_name: name,
          space_guid: spaceGuid,
          data: { buildpacks },
        });
        return { status: 201, body: app };
      },
    },
    {
      method: "GET",
      path: "/v3/apps",
      handler: async (req) => {
        const visible = await visibleSpaceGuids(store, req.user as User);
        const names = queryList(req.url, "names");
        const spaces = queryList(req.url, "space_guids");
        const guids = queryList(req.url, "guids");
        const out: AppRecord[] = [];
        for (const { value: a } of await store.apps.list("*")) {
          if (!visible.has(a.space_guid)) continue;
          if (names !== null && !names.has(a.name)) continue;
          if (spaces !== null && !spaces.has(a.space_guid)) continue;
          if (guids !== null && !guids.has(a.guid)) continue;
          out.push(a);
        }
        out.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.guid.localeCompare(b.guid));
        return paginate(req, out);
      },
    },
    {
      method: "GET",
      path: "/v3/apps/:guid",
      handler: async (req) => ({
        status: 200,
        body: await visibleApp(store, req.user as User, req.params.guid as string),
      }),
    },
    {
      method: "PATCH",
      path: "/v3/apps/:guid",
      handler: async (req) => {
        const user = req.user as User;
        const guid = req.params.guid as string;
        const current = await visibleApp(store, user, guid);
        const body = await req.json();
        const name = body.name === undefined ? undefined : appName(body);
        const command = optionalString(body, "command", 4096);
        const lifecycle = optionalObject(body, "lifecycle");
        const buildpacks =
          optionalStringList(body, "buildpacks") ??
          (lifecycle && optionalStringList(lifecycle, "buildpacks", "lifecycle."));
        const hc = optionalObject(body, "health_check");
        const health = hc === undefined ? undefined : healthCheck(hc);
        if (name === undefined && command === undefined && buildpacks === undefined && health === undefined)
          return { status: 200, body: current };
        // A rename takes the new name first and gives the old one back only once the app has it.
        let newNameKey: string | null = null;
        if (name !== undefined && name !== current.name) {
          newNameKey = keys.appName(current.space_guid, name);
          await takeName(newNameKey, guid, current.space_guid, name);
        }
        let before = current;
        try {
          const app = await change(user, guid, "app.update", { fields: Object.keys(body) }, (a) => {
            before = a;
            const next: AppRecord = { ...a };
            if (name !== undefined) next.name = name;
            if (command !== undefined) next.command = command === "" ? null : command;
            if (buildpacks !== undefined) next.buildpacks = buildpacks;
            if (health !== undefined) next.health_check = health;
            // A push sends every field its manifest names: the same values change nothing, so an
            // unchanged re-push keeps the version and its running instances.
            const healthChanged = !sameHealthCheck(next.health_check, a.health_check);
            if (
              next.name === a.name &&
              next.command === a.command &&
              JSON.stringify(next.buildpacks) === JSON.stringify(a.buildpacks) &&
              !healthChanged
            )
              return UNCHANGED;
            // The command and the health check are part of what each instance runs with.
            if (next.command !== a.command || healthChanged) next.version = newVersion();
            next.updated_at = new Date().toISOString();
            return next;
          });
          if (newNameKey !== null) await store.appNames.delete(keys.appName(before.space_guid, before.name));
          return { status: 200, body: app };
        } catch (err) {
          if (newNameKey !== null) await store.appNames.delete(newNameKey).catch(() => {});
          throw err;
        }
      },
    },
    {
      method: "DELETE",
      path: "/v3/apps/:guid",
      handler: async (req) => {
        const user = req.user as User;
        const guid = req.params.guid as string;
        const app = await visibleApp(store, user, guid);
        // Unmap first: a route never points at an app that is gone.
        for (const { key, value: r } of await store.routes.list("*")) {
          if (r.space_guid !== app.space_guid || !r.destinations.some((d) => d.app_guid === guid)) continue;
          await store.routes.update(key, (cur) => ({
            ...cur,
            destinations: cur.destinations.filter((d) => d.app_guid !== guid),
            updated_at: new Date().toISOString(),
          }));
        }
        if (!(await store.apps.delete(keys.app(guid)))) throw notFound("app", guid);
        changed(app, null);
        await store.appNames.delete(keys.appName(app.space_guid, app.name));
        await store.audit.record({
          type: "app.delete",
          actor: user.name,
          target_guid: guid,
          target_name: app.name,
          space_guid: app.space_guid,
          data: {},
        });
        return { status: 204 };
      },
    },
    { method: "POST", path: "/v3/apps/:guid/actions/start", handler: setState("STARTED", false) },
    { method: "POST", path: "/v3/apps/:guid/actions/stop", handler: setState("STOPPED", false) },
    { method: "POST", path: "/v3/apps/:guid/actions/restart", handler: setState("STARTED", true) },
    {
      method: "GET",
      path: "/v3/apps/:guid/environment_variables",
      handler: async (req) => {
        const app = await visibleApp(store, req.user as User, req.params.guid as string);
        return { status: 200, body: { var: app.environment_variables } };
      },
    },
    {
      method: "PATCH",
      path: "/v3/apps/:guid/environment_variables",
      handler: async (req) => {
        const user = req.user as User;
        const guid = req.params.guid as string;
        await visibleApp(store, user, guid);
        const changes = envChanges(requiredObject(await req.json(), "var"), "var");
        const app = await change(
          user,
          guid,
          "app.update",
          { environment_variables: Object.keys(changes) },
          (a) => {
            const env = { ...a.environment_variables };
            let changed = false;
            for (const [k, v] of Object.entries(changes)) {
              if (v === null) {
                if (k in env) {
                  delete env[k];
                  changed = true;
                }
              } else if (env[k] !== v) {
                env[k] = v;
                changed = true;
              }
            }
            if (!changed) return UNCHANGED;
            return {
              ...a,
              environment_variables: env,
              version: newVersion(),
              updated_at: new Date().toISOString(),
            };
          },
        );
        return { status: 200, body: { var: app.environment_variables } };
      },
    },
    {
      method: "POST",
      path: "/v3/apps/:guid/processes/web/actions/scale",
      handler: async (req) => {
        const user = req.user as User;
        const guid = req.params.guid as string;
        await visibleApp(store, user, guid);
        const body = await req.json();
        const instances = optionalInteger(body, "instances", 0, MAX_INSTANCES);
        const memory = optionalInteger(body, "memory_in_mb", 1, MAX_MB);
        const disk = optionalInteger(body, "disk_in_mb", 1, MAX_MB);
        const app = await change(
          user,
          guid,
          "app.scale",
          { instances, memory_in_mb: memory, disk_in_mb: disk },
          (a) => {
            const next: AppRecord = { ...a, updated_at: new Date().toISOString() };
            if (instances !== undefined) next.instances = instances;
            if (memory !== undefined) next.memory_in_mb = memory;
            if (disk !== undefined) next.disk_in_mb = disk;
            if (
              next.instances === a.instances &&
              next.memory_in_mb === a.memory_in_mb &&
              next.disk_in_mb === a.disk_in_mb
            )
              return UNCHANGED;
            if (next.memory_in_mb !== a.memory_in_mb || next.disk_in_mb !== a.disk_in_mb)
              next.version = newVersion();
            return next;
          },
        );
        return { status: 202, body: app };
      },
    },
  ];
}
