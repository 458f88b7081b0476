// POST /v3/tokens (log in) and DELETE /v3/tokens/current (log out).
import { login, revoke } from "../auth/tokens.js";
import type { ApiContext, Route } from "./table.js";
import { requiredString } from "./validate.js";

export function tokenRoutes(ctx: ApiContext): Route[] {
  const { store, config } = ctx;
  return [
    {
      method: "POST",
      path: "/v3/tokens",
      auth: false,
      handler: async (req) => {
        const body = await req.json();
        const username = requiredString(body, "username", 64);
        const password = requiredString(body, "password", 1024);
        const issued = await login(store, username, password, config.tokenTtlS);
        await store.audit.record({
          type: "user.login",
          actor: issued.user.name,
          target_guid: issued.user.guid,
          target_name: issued.user.name,
          space_guid: null,
          data: {},
        });
        return {
          status: 201,
          body: {
            token: issued.token,
            expires_at: issued.expires_at,
            user: { name: issued.user.name, admin: issued.user.admin },
          },
        };
      },
    },
    {
      method: "DELETE",
      path: "/v3/tokens/current",
      handler: async (req) => {
        const user = req.user as NonNullable<typeof req.user>;
        await revoke(store, req.tokenKey as string);
        await store.audit.record({
          type: "user.logout",
          actor: user.name,
          target_guid: user.guid,
          target_name: user.name,
          space_guid: null,
          data: {},
        });
        return { status: 204 };
      },
    },
  ];
}
