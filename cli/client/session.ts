// What the client commands share: the saved login, an API client built from it, the targeted
// space, and finding an app of the space by name.

import { CliError } from "../errors.js";
import { ApiClient } from "./api.js";
import { type CliConfig, loadConfig } from "./config.js";
import type { App, InstanceStats, Space } from "./types.js";

export interface Session {
  config: CliConfig;
  client: ApiClient;
}

export function session(): Session {
  const config = loadConfig();
  if (config.api === undefined) {
    throw new CliError("KILN_CLI_NOT_LOGGED_IN", "no API set: run kiln login -a URL");
  }
  if (config.token === undefined) {
    throw new CliError("KILN_CLI_NOT_LOGGED_IN", "not logged in or token expired: run kiln login");
  }
  return { config, client: new ApiClient({ api: config.api, token: config.token }) };
}

export function targetSpace(s: Session): { name: string; guid: string } {
  if (s.config.space === undefined) {
    throw new CliError("KILN_CLI_NO_TARGET", "no space targeted: run kiln target -s SPACE");
  }
  return s.config.space;
}

export const q = encodeURIComponent;

export async function findSpace(client: ApiClient, name: string): Promise<Space> {
  const spaces = await client.list<Space>("/v3/spaces?per_page=5000");
  const space = spaces.find((sp) => sp.name === name);
  if (space === undefined) throw new CliError("KILN_CLI_NOT_FOUND", `space ${name} not found`);
  return space;
}

export async function lookupApp(s: Session, name: string): Promise<App | undefined> {
  const space = targetSpace(s);
  const apps = await s.client.list<App>(`/v3/apps?names=${q(name)}&space_guids=${q(space.guid)}`);
  return apps.find((a) => a.name === name);
}

export async function findApp(s: Session, name: string): Promise<App> {
  const app = await lookupApp(s, name);
  if (app === undefined) {
    throw new CliError("KILN_CLI_NOT_FOUND", `app ${name} not found in space ${targetSpace(s).name}`);
  }
  return app;
}

/** The web process's instances, from the DEAs' heartbeats. */
export async function appStats(client: ApiClient, app: App): Promise<InstanceStats[]> {
  const stats = await client.get<{ resources?: InstanceStats[] }>(
    `/v3/apps/${q(app.guid)}/processes/web/stats`,
  );
  return Array.isArray(stats?.resources) ? stats.resources : [];
}
