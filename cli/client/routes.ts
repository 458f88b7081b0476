// Routes of the shared domain as the API keeps them: `host` plus an optional `/path`, found in
// the space or created, and mapped to an app idempotently.
import type { ApiClient } from "./api.js";
import { q, type Session, targetSpace } from "./session.js";
import type { App, Route } from "./types.js";

/** `/path` as the API keeps it: "" for none, else a leading slash and no trailing one. */
export function normalPath(path: string | undefined): string {
  if (path === undefined || path === "" || path === "/") return "";
  const p = path.startsWith("/") ? path : `/${path}`;
  return p.replace(/\/+$/, "");
}

/** Splits `host[/path]` (a manifest route), dropping a trailing `.domain`. */
export function splitRoute(route: string, domain: string): { host: string; path: string } {
  const slash = route.indexOf("/");
  let host = slash === -1 ? route : route.slice(0, slash);
  const path = slash === -1 ? "" : normalPath(route.slice(slash));
  const suffix = `.${domain}`;
  if (domain !== "" && host.toLowerCase().endsWith(suffix.toLowerCase()) && host.length > suffix.length) {
    host = host.slice(0, -suffix.length);
  }
  return { host: host.toLowerCase(), path };
}

export async function findRoute(
  client: ApiClient,
  spaceGuid: string,
  host: string,
  path: string,
): Promise<Route | undefined> {
  const routes = await client.list<Route>(`/v3/routes?space_guids=${q(spaceGuid)}&per_page=5000`);
  return routes.find((r) => r.host === host && normalPath(r.path) === path);
}

/** Creates the route if the space has none such and maps it to the app (idempotent). */
export async function mapRoute(s: Session, app: App, host: string, path: string): Promise<Route> {
  const space = targetSpace(s);
  let route = await findRoute(s.client, space.guid, host, path);
  if (route === undefined) {
    const body: { host: string; space_guid: string; path?: string } = { host, space_guid: space.guid };
    if (path !== "") body.path = path;
    route = await s.client.post<Route>("/v3/routes", body);
  }
  if (!(route.destinations ?? []).some((d) => d.app_guid === app.guid)) {
    await s.client.post(`/v3/routes/${q(route.guid)}/destinations`, {
      destinations: [{ app: { guid: app.guid } }],
    });
  }
  return route;
}
