// Routes on the shared domain: `host[/path]` held by one space through the uniqueness key
// `host.<host>[.<hex path>]` (taken before the route is written), mapped to apps of that space.
// A map, unmap or delete that changes an app's routes is handed on (routesChanged), so its
// running instances take the new list at once.
import { randomUUID } from "node:crypto";
import { canSee, visibleSpace, visibleSpaceGuids } from "../auth/access.js";
import { CcError, invalid, notFound } from "../errors.js";
import { claim } from "../store/claim.js";
import { UNCHANGED } from "../store/kv.js";
import { keys, type RouteRecord } from "../store/records.js";
import type { CcStore } from "../store/store.js";
import { visibleApp } from "./apps.js";
import { paginate } from "./pagination.js";
import type { ApiContext, ApiRequest, Route } from "./table.js";
import { optionalString, queryList, requiredObject, requiredString } from "./validate.js";

type User = NonNullable<ApiRequest["user"]>;

const HOST = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const PATH = /^(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/;

export async function visibleRoute(store: CcStore, user: User, guid: string): Promise<RouteRecord> {
  const r = await store.routes.get(keys.route(guid));
  if (r === null || !(await canSee(store, user, r.value.space_guid))) throw notFound("route", guid);
  return r.value;
}

/** Called with the apps whose routes a map, unmap or route delete changed. */
export type RoutesChanged = (appGuids: string[]) => void;

export function routeRoutes(ctx: ApiContext, routesChanged: RoutesChanged = () => {}): Route[] {
  const { store, config } = ctx;

  const record = (user: User, type: string, r: RouteRecord, data: Record<string, unknown>) =>
    store.audit.record({
      type,
      actor: user.name,
      target_guid: r.guid,
      target_name: r.url,
      space_guid: r.space_guid,
      data,
    });

  /** Takes `host[/path]` for the route; ROUTE_TAKEN when another route holds it. */
  const takeHost = async (route: RouteRecord): Promise<void> => {
    const held = await claim(
      store.hosts,
      keys.host(route.host, route.path),
      { guid: route.guid, space_guid: route.space_guid },
      async (guid) => (await store.routes.get(keys.route(guid))) !== null,
    );
    if (held === null) return;
    const where =
      held.space_guid === route.space_guid ? "already exists in this space" : "is held by another space";
    throw new CcError("KILN_CC_ROUTE_TAKEN", `the route ${route.url} ${where}`);
  };

  return [
    {
      method: "POST",
      path: "/v3/routes",
      handler: async (req) => {
        const user = req.user as User;
        const body = await req.json();
        const host = requiredString(body, "host", 63).toLowerCase();
        if (!HOST.test(host))
          throw invalid("host", "must be a DNS label: letters, digits and '-', at most 63");
        let path = optionalString(body, "path", 1024) ?? "";
        if (path === "/") path = "";
        if (path !== "" && (!PATH.test(path) || path.split("/").includes("..")))
          throw invalid("path", "must start with / and hold only URL path characters (no '..', '?' or '#')");
        const spaceGuid = requiredString(body, "space_guid", 64);
        await visibleSpace(store, user, spaceGuid);
        const now = new Date().toISOString();
        const route: RouteRecord = {
          guid: randomUUID(),
          host,
          path,
          url: `${host}.${config.domain}${path}`,
          space_guid: spaceGuid,
          destinations: [],
          created_at: now,
          updated_at: now,
        };
        await takeHost(route);
        try {
          await store.routes.create(keys.route(route.guid), route);
        } catch (err) {
          await store.hosts.delete(keys.host(host, path)).catch(() => {});
          throw err;
        }
        await record(user, "route.create", route, {});
        return { status: 201, body: route };
      },
    },
    {
      method: "GET",
      path: "/v3/routes",
      handler: async (req) => {
        const visible = await visibleSpaceGuids(store, req.user as User);
        const spaces = queryList(req.url, "space_guids");
        const apps = queryList(req.url, "app_guids");
        const hosts = queryList(req.url, "hosts");
        const out: RouteRecord[] = [];
        for (const { value: r } of await store.routes.list("*")) {
          if (!visible.has(r.space_guid)) continue;
          if (spaces !== null && !spaces.has(r.space_guid)) continue;
          if (hosts !== null && !hosts.has(r.host)) continue;
          if (apps !== null && !r.destinations.some((d) => apps.has(d.app_guid))) continue;
          out.push(r);
        }
        out.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.guid.localeCompare(b.guid));
        return paginate(req, out);
      },
    },
    {
      method: "GET",
      path: "/v3/routes/:guid",
      handler: async (req) => ({
        status: 200,
        body: await visibleRoute(store, req.user as User, req.params.guid as string),
      }),
    },
    {
      method: "DELETE",
      path: "/v3/routes/:guid",
      handler: async (req) => {
        const user = req.user as User;
        const route = await visibleRoute(store, user, req.params.guid as string);
        if (!(await store.routes.delete(keys.route(route.guid)))) throw notFound("route", route.guid);
        const hostKey = keys.host(route.host, route.path);
        const held = await store.hosts.get(hostKey);
        if (held !== null && held.value.guid === route.guid) await store.hosts.delete(hostKey, held.revision);
        // Handed on before the audit record: the change is made, whatever becomes of the record.
        if (route.destinations.length > 0) routesChanged(route.destinations.map((d) => d.app_guid));
        await record(user, "route.delete", route, {});
        return { status: 204 };
      },
    },
    {
      method: "POST",
      path: "/v3/routes/:guid/destinations",
      handler: async (req) => {
        const user = req.user as User;
        const route = await visibleRoute(store, user, req.params.guid as string);
        const body = await req.json();
        const list = body.destinations;
        if (!Array.isArray(list) || list.length === 0 || list.length > 100)
          throw invalid("destinations", "must be a list of 1 to 100 { app: { guid } }");
        const guids: string[] = [];
        for (let i = 0; i < list.length; i++) {
          const d = list[i];
          if (typeof d !== "object" || d === null || Array.isArray(d))
            throw invalid(`destinations[${i}]`, "must be an object { app: { guid } }");
          const app = requiredObject(d as Record<string, unknown>, "app", `destinations[${i}].`);
          const guid = requiredString(app, "guid", 64, `destinations[${i}].app.`);
          const a = await visibleApp(store, user, guid);
          if (a.space_guid !== route.space_guid)
            throw invalid(`destinations[${i}].app.guid`, "names an app of another space than the route's");
          guids.push(guid);
        }
        // The apps this map adds (set by the last, successful try of the update).
        let added: string[] = [];
        const done = await store.routes.update(keys.route(route.guid), (r) => {
          const have = new Set(r.destinations.map((d) => d.app_guid));
          const add = guids.filter((g) => !have.has(g));
          added = add;
          if (add.length === 0) return UNCHANGED;
          return {
            ...r,
            destinations: [...r.destinations, ...[...new Set(add)].map((app_guid) => ({ app_guid }))],
            updated_at: new Date().toISOString(),
          };
        });
        if (done === null) throw notFound("route", route.guid);
        if (added.length > 0) routesChanged(added);
        await record(user, "route.map", done.value, { app_guids: guids });
        return { status: 200, body: done.value };
      },
    },
    {
      method: "DELETE",
      path: "/v3/routes/:guid/destinations/:app_guid",
      handler: async (req) => {
        const user = req.user as User;
        const route = await visibleRoute(store, user, req.params.guid as string);
        const appGuid = req.params.app_guid as string;
        if (!route.destinations.some((d) => d.app_guid === appGuid)) throw notFound("destination", appGuid);
        let removed = false;
        const done = await store.routes.update(keys.route(route.guid), (r) => {
          removed = r.destinations.some((d) => d.app_guid === appGuid);
          return removed
            ? {
                ...r,
                destinations: r.destinations.filter((d) => d.app_guid !== appGuid),
                updated_at: new Date().toISOString(),
              }
            : UNCHANGED;
        });
        if (done === null) throw notFound("route", route.guid);
        if (removed) routesChanged([appGuid]);
        await record(user, "route.unmap", done.value, { app_guid: appGuid });
        return { status: 204 };
      },
    },
  ];
}
