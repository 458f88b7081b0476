// GET /v3/apps/:guid/processes/web/stats: the app's instances as the DEAs' heartbeats last
// reported them (control/runner/actual.ts).
import type { ActualState } from "../runner/actual.js";
import { visibleApp } from "./apps.js";
import type { ApiContext, ApiRequest, Route } from "./table.js";

export function statsRoutes(ctx: ApiContext, actual: ActualState): Route[] {
  return [
    {
      method: "GET",
      path: "/v3/apps/:guid/processes/web/stats",
      handler: async (req) => {
        const app = await visibleApp(
          ctx.store,
          req.user as NonNullable<ApiRequest["user"]>,
          req.params.guid as string,
        );
        const now = Date.now();
        return {
          status: 200,
          body: {
            resources: actual.instances(app.guid).map((i) => ({
              index: i.index,
              state: i.state,
              host: i.host,
              port: i.port,
              uptime: Math.max(0, Math.floor((now - i.stateSince) / 1000)),
              version: i.version,
              usage: { mem: i.memoryBytes, disk: i.diskBytes, cpu: i.cpuPermille / 1000 },
            })),
          },
        };
      },
    },
  ];
}
