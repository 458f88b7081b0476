// GET /v3/info: what a client needs before logging in (no token).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { projectRoot } from "../../kernel/paths.js";
import type { ApiContext, Route } from "./table.js";

function kilnVersion(): string {
  return (JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string }).version;
}

export function infoRoutes(ctx: ApiContext): Route[] {
  const body = {
    name: "kiln",
    version: kilnVersion(),
    domain: ctx.config.domain,
    router_port: ctx.config.routerPort,
    api_version: "3",
  };
  return [{ method: "GET", path: "/v3/info", auth: false, handler: async () => ({ status: 200, body }) }];
}
