// Routes: list the space's routes, map and unmap `host[/path]` on the shared domain.
import { parseCommand } from "../args.js";
import type { ApiClient } from "../client/api.js";
import type { App, Route } from "../client/types.js";
import type { Command } from "../command.js";
import { CliError } from "../errors.js";
import { ok, output, printJson, printTable } from "../output/print.js";
import { findApp, q, type Session, session, targetSpace } from "./session.js";

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

async function findRoute(
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

const routeFlags = { path: { type: "string" as const } };

export const routesCommand: Command = {
  summary: "list the routes of the targeted space",
  usage: "[--json]",
  async run(argv) {
    const { flags } = parseCommand("routes", argv, { json: { type: "boolean" } }, 0, 0);
    const s = session();
    const space = targetSpace(s);
    const [routes, apps] = await Promise.all([
      s.client.list<Route>(`/v3/routes?space_guids=${q(space.guid)}&per_page=5000`),
      s.client.list<App>(`/v3/apps?space_guids=${q(space.guid)}&per_page=5000`),
    ]);
    if (output(flags.json).json) {
      printJson(routes);
      return 0;
    }
    const names = new Map(apps.map((a) => [a.guid, a.name]));
    printTable(
      ["host", "path", "url", "apps"],
      routes.map((r) => [
        r.host,
        r.path,
        r.url,
        (r.destinations ?? []).map((d) => names.get(d.app_guid) ?? d.app_guid).join(", "),
      ]),
    );
    return 0;
  },
};

export const mapRouteCommand: Command = {
  summary: "route HOST[.domain][/path] to an app",
  usage: "NAME HOST [--path P]",
  async run(argv) {
    const { flags, args } = parseCommand("map-route", argv, routeFlags, 2, 2);
    const s = session();
    const app = await findApp(s, args[0] ?? "");
    const route = await mapRoute(s, app, (args[1] ?? "").toLowerCase(), normalPath(flags.path));
    ok(`${app.name}: mapped ${route.url}`);
    return 0;
  },
};

export const unmapRouteCommand: Command = {
  summary: "stop routing HOST[/path] to an app",
  usage: "NAME HOST [--path P]",
  async run(argv) {
    const { flags, args } = parseCommand("unmap-route", argv, routeFlags, 2, 2);
    const s = session();
    const app = await findApp(s, args[0] ?? "");
    const host = (args[1] ?? "").toLowerCase();
    const path = normalPath(flags.path);
    const route = await findRoute(s.client, targetSpace(s).guid, host, path);
    if (route === undefined || !(route.destinations ?? []).some((d) => d.app_guid === app.guid)) {
      throw new CliError("KILN_CLI_NOT_FOUND", `route ${host}${path} is not mapped to ${app.name}`);
    }
    await s.client.delete(`/v3/routes/${q(route.guid)}/destinations/${q(app.guid)}`);
    ok(`${app.name}: unmapped ${route.url}`);
    return 0;
  },
};
