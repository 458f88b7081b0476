// Routes: list the space's routes, map and unmap `host[/path]` on the shared domain.
import { parseCommand } from "../args.js";
import { findRoute, mapRoute, normalPath } from "../client/routes.js";
import { findApp, q, session, targetSpace } from "../client/session.js";
import type { App, Route } from "../client/types.js";
import type { Command } from "../command.js";
import { CliError } from "../errors.js";
import { ok, output, printJson, printTable } from "../output/print.js";

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
