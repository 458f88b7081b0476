// App commands: list and show apps, start/stop/restart, scale and delete.
import { parseCommand } from "../args.js";
import { ask, canPrompt } from "../client/prompt.js";
import { appStats, findApp, q, session, targetSpace } from "../client/session.js";
import type { App, AuditEvent, InstanceStats, Route } from "../client/types.js";
import type { Command } from "../command.js";
import { CliError } from "../errors.js";
import { ok, output, printFields, printJson, printTable } from "../output/print.js";
import { formatTable } from "../output/table.js";
import { formatMb, parseSizeMb, sizeProblem } from "../push/size.js";

/**
 * Indices the Health Manager marked FLAPPING (3 crashes in 180 s) and has not forgotten: it
 * forgets an index's crashes after 16 crash-free minutes, so an older event no longer holds.
 */
const FLAPPING_HELD_MS = 16 * 60_000;
function flappingIndices(events: readonly AuditEvent[], now = Date.now()): number[] {
  const out = new Set<number>();
  for (const e of events) {
    const index = (e.data as { index?: unknown } | undefined)?.index;
    if (typeof index === "number" && now - Date.parse(e.created_at) <= FLAPPING_HELD_MS) out.add(index);
  }
  return [...out].sort((a, b) => a - b);
}

const running = (stats: readonly InstanceStats[]) => stats.filter((s) => s.state === "RUNNING").length;

function uptime(seconds: number | undefined): string {
  if (seconds === undefined) return "";
  const s = Math.floor(seconds);
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m${s % 60}s`
      : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

export const appsCommand: Command = {
  summary: "list the apps of the targeted space",
  usage: "[--json]",
  async run(argv) {
    const { flags } = parseCommand("apps", argv, { json: { type: "boolean" } }, 0, 0);
    const s = session();
    const space = targetSpace(s);
    const [apps, routes] = await Promise.all([
      s.client.list<App>(`/v3/apps?space_guids=${q(space.guid)}&per_page=5000`),
      s.client.list<Route>(`/v3/routes?space_guids=${q(space.guid)}&per_page=5000`),
    ]);
    // A listing still shows when one app's heartbeats cannot be read; its count is then 0.
    const stats = await Promise.all(apps.map((a) => appStats(s.client, a).catch(() => [])));
    const urls = (a: App) =>
      routes.filter((r) => r.destinations?.some((d) => d.app_guid === a.guid)).map((r) => r.url);
    if (output(flags.json).json) {
      printJson(apps.map((a, i) => ({ ...a, running_instances: running(stats[i] ?? []), urls: urls(a) })));
      return 0;
    }
    printTable(
      ["name", "state", "instances", "memory", "disk", "urls"],
      apps.map((a, i) => [
        a.name,
        a.state.toLowerCase(),
        `${running(stats[i] ?? [])}/${a.instances}`,
        formatMb(a.memory_in_mb),
        formatMb(a.disk_in_mb),
        urls(a).join(", "),
      ]),
    );
    return 0;
  },
};

export const appCommand: Command = {
  summary: "show one app: settings, routes and instances",
  usage: "NAME [--json]",
  async run(argv) {
    const { flags, args } = parseCommand("app", argv, { json: { type: "boolean" } }, 1, 1);
    const s = session();
    const app = await findApp(s, args[0] ?? "");
    const [routes, stats, flapped] = await Promise.all([
      s.client.list<Route>(`/v3/routes?app_guids=${q(app.guid)}&per_page=5000`),
      appStats(s.client, app),
      // The Health Manager's verdict is on the audit trail; without it the app is shown all the same.
      s.client
        .list<AuditEvent>(`/v3/audit_events?types=app.flapping&target_guids=${q(app.guid)}`)
        .catch(() => []),
    ]);
    const flapping = flappingIndices(flapped);
    if (output(flags.json).json) {
      printJson({ app, routes, instances: stats, flapping });
      return 0;
    }
    printFields([
      ["name", app.name],
      ["state", app.state.toLowerCase()],
      ["instances", `${running(stats)}/${app.instances}`],
      ...(flapping.length > 0 ? [["flapping", `FLAPPING: index ${flapping.join(", ")}`] as const] : []),
      ["memory", formatMb(app.memory_in_mb)],
      ["disk", formatMb(app.disk_in_mb)],
      ["routes", routes.map((r) => r.url).join(", ")],
      ["command", app.command],
      ["buildpacks", (app.buildpacks ?? []).join(", ")],
      ["health check", app.health_check?.type],
      ["droplet", app.droplet_guid],
      ["updated", app.updated_at],
    ]);
    if (stats.length > 0) {
      process.stdout.write(
        `\n${formatTable(
          ["#", "state", "since", "cpu", "memory", "disk"],
          stats.map((st) => [
            st.index,
            st.state.toLowerCase(),
            uptime(st.uptime),
            st.usage?.cpu === undefined ? "" : `${(st.usage.cpu * 100).toFixed(1)}%`,
            st.usage?.mem === undefined ? "" : `${(st.usage.mem / 1048576).toFixed(1)}M`,
            st.usage?.disk === undefined ? "" : `${(st.usage.disk / 1048576).toFixed(1)}M`,
          ]),
        )}`,
      );
    }
    return 0;
  },
};

function action(name: "start" | "stop" | "restart", summary: string): Command {
  return {
    summary,
    usage: "NAME",
    async run(argv) {
      const { args } = parseCommand(name, argv, {}, 1, 1);
      const s = session();
      const app = await findApp(s, args[0] ?? "");
      const after = await s.client.post<App>(`/v3/apps/${q(app.guid)}/actions/${name}`);
      ok(`${app.name}: ${(after?.state ?? (name === "stop" ? "STOPPED" : "STARTED")).toLowerCase()}`);
      return 0;
    },
  };
}

export const startCommand = action("start", "start an app's instances");
export const stopCommand = action("stop", "stop an app's instances");
export const restartCommand = action("restart", "stop and start an app's instances");

export const deleteCommand: Command = {
  summary: "delete an app (stops it and unmaps its routes; -r deletes them, freeing their hosts)",
  usage: "NAME [-f] [-r]",
  async run(argv) {
    const { flags, args } = parseCommand(
      "delete",
      argv,
      { force: { type: "boolean", short: "f" }, routes: { type: "boolean", short: "r" } },
      1,
      1,
    );
    const name = args[0] ?? "";
    if (flags.force !== true) {
      if (!canPrompt()) throw new CliError("KILN_CLI_USAGE", "kiln delete: -f is required off a terminal");
      const answer = await ask(`Really delete the app ${name}? [y/N] `);
      if (!/^y(es)?$/i.test(answer)) {
        ok("Not deleted");
        return 0;
      }
    }
    const s = session();
    const app = await findApp(s, name);
    // As cf's `delete -r`: a route outlives its app and keeps its host from every other space
    // until it is deleted too. Listed first, since deleting the app unmaps them.
    const routes =
      flags.routes === true
        ? await s.client.list<Route>(`/v3/routes?app_guids=${q(app.guid)}&per_page=5000`)
        : [];
    await s.client.delete(`/v3/apps/${q(app.guid)}`);
    ok(`${app.name}: deleted`);
    for (const r of routes) {
      await s.client.delete(`/v3/routes/${q(r.guid)}`);
      ok(`route ${r.url}: deleted`);
    }
    return 0;
  },
};

/** `-m 256M`-style flags; a bad value is a usage error naming the flag and the value. */
export function sizeFlag(command: string, flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const mb = parseSizeMb(raw);
  if (mb === null) throw new CliError("KILN_CLI_USAGE", `kiln ${command}: ${flag} ${sizeProblem(raw)}`);
  return mb;
}

export function countFlag(command: string, flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new CliError(
      "KILN_CLI_USAGE",
      `kiln ${command}: ${flag} ${JSON.stringify(raw)} is not a whole number`,
    );
  }
  return Number(raw);
}

export const scaleCommand: Command = {
  summary: "change an app's instances, memory or disk",
  usage: "NAME [-i N] [-m 256M] [-k 1G]",
  async run(argv) {
    const { flags, args } = parseCommand(
      "scale",
      argv,
      {
        instances: { type: "string", short: "i" },
        memory: { type: "string", short: "m" },
        disk: { type: "string", short: "k" },
      },
      1,
      1,
    );
    const body: { instances?: number; memory_in_mb?: number; disk_in_mb?: number } = {};
    const i = countFlag("scale", "-i", flags.instances);
    const m = sizeFlag("scale", "-m", flags.memory);
    const k = sizeFlag("scale", "-k", flags.disk);
    if (i !== undefined) body.instances = i;
    if (m !== undefined) body.memory_in_mb = m;
    if (k !== undefined) body.disk_in_mb = k;
    if (Object.keys(body).length === 0) {
      throw new CliError("KILN_CLI_USAGE", "kiln scale: give at least one of -i, -m, -k");
    }
    const s = session();
    const app = await findApp(s, args[0] ?? "");
    const after = await s.client.post<App>(`/v3/apps/${q(app.guid)}/processes/web/actions/scale`, body);
    const a = after ?? { ...app, ...body };
    ok(
      `${app.name}: ${a.instances} instances, ${formatMb(a.memory_in_mb)} memory, ${formatMb(a.disk_in_mb)} disk`,
    );
    return 0;
  },
};
