// POST /v3/users and GET /v3/users: admin only.
import { requireAdmin } from "../auth/access.js";
import { createUser, publicUser } from "../auth/users.js";
import { paginate } from "./pagination.js";
import type { ApiContext, Route } from "./table.js";
import { optionalBoolean, requiredString } from "./validate.js";

export function userRoutes(ctx: ApiContext): Route[] {
  const { store } = ctx;
  return [
    {
      method: "POST",
      path: "/v3/users",
      handler: async (req) => {
        const actor = req.user as NonNullable<typeof req.user>;
        requireAdmin(actor);
        const body = await req.json();
        const username = requiredString(body, "username", 64);
        const password = requiredString(body, "password", 1024);
        const admin = optionalBoolean(body, "admin") ?? false;
        const user = await createUser(store, username, password, admin);
        await store.audit.record({
          type: "user.create",
          actor: actor.name,
          target_guid: user.guid,
          target_name: user.name,
          space_guid: null,
          data: { admin },
        });
        return { status: 201, body: publicUser(user) };
      },
    },
    {
      method: "GET",
      path: "/v3/users",
      handler: async (req) => {
        requireAdmin(req.user as NonNullable<typeof req.user>);
        const users = await store.users.list("user.*");
        return paginate(
          req,
          users.map((u) => publicUser(u.value)),
        );
      },
    },
  ];
}
