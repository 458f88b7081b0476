// GET /v3/audit_events: who did what, oldest first ("newest last"); a user sees the events of
// their spaces and their own, an admin all.
import { visibleSpaceGuids } from "../auth/access.js";
import { paginate } from "./pagination.js";
import type { ApiContext, ApiRequest, Route } from "./table.js";
import { queryList } from "./validate.js";

export function eventRoutes(ctx: ApiContext): Route[] {
  const { store } = ctx;
  return [
    {
      method: "GET",
      path: "/v3/audit_events",
      handler: async (req: ApiRequest) => {
        const user = req.user as NonNullable<ApiRequest["user"]>;
        const targets = queryList(req.url, "target_guids");
        const types = queryList(req.url, "types");
        const spaces = queryList(req.url, "space_guids");
        const visible = user.admin ? null : await visibleSpaceGuids(store, user);
        const list = await store.audit.list(
          (e) =>
            (visible === null ||
              (e.space_guid !== null && visible.has(e.space_guid)) ||
              (e.space_guid === null && e.actor === user.name)) &&
            (targets === null || targets.has(e.target_guid)) &&
            (types === null || types.has(e.type)) &&
            (spaces === null || (e.space_guid !== null && spaces.has(e.space_guid))),
        );
        return paginate(req, list);
      },
    },
  ];
}
