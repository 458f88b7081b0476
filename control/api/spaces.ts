// Spaces: created by an admin (names unique through `name.<name>`), listed per caller, and
// their members (user names) added by an admin.
import { randomUUID } from "node:crypto";
import { isMember, requireAdmin, visibleSpace } from "../auth/access.js";
import { NAME } from "../auth/users.js";
import { CcError, invalid } from "../errors.js";
import { claim } from "../store/claim.js";
import { UNCHANGED } from "../store/kv.js";
import { keys, type SpaceRecord } from "../store/records.js";
import { paginate } from "./pagination.js";
import type { ApiContext, Route } from "./table.js";
import { requiredString } from "./validate.js";

export function spaceRoutes(ctx: ApiContext): Route[] {
  const { store } = ctx;
  return [
    {
      method: "POST",
      path: "/v3/spaces",
      handler: async (req) => {
        const actor = req.user as NonNullable<typeof req.user>;
        requireAdmin(actor);
        const body = await req.json();
        const name = requiredString(body, "name", 64);
        if (!NAME.test(name)) throw invalid("name", "must be 1 to 64 letters, digits, '-' or '_'");
        const now = new Date().toISOString();
        const space: SpaceRecord = {
          guid: randomUUID(),
          name,
          members: [],
          created_at: now,
          updated_at: now,
        };
        // The name first: of two concurrent creates only one gets it, and no space exists without its name.
        const held = await claim(
          store.spaceNames,
          keys.spaceName(name),
          { guid: space.guid },
          async (g) => (await store.spaces.get(keys.space(g))) !== null,
        );
        if (held !== null) throw new CcError("KILN_CC_NAME_TAKEN", `space ${name} already exists`);
        await store.spaces.create(keys.space(space.guid), space);
        await store.audit.record({
          type: "space.create",
          actor: actor.name,
          target_guid: space.guid,
          target_name: name,
          space_guid: space.guid,
          data: {},
        });
        return { status: 201, body: space };
      },
    },
    {
      method: "GET",
      path: "/v3/spaces",
      handler: async (req) => {
        const user = req.user as NonNullable<typeof req.user>;
        const all = await store.spaces.list("*");
        const mine: SpaceRecord[] = [];
        for (const s of all) if (isMember(user, s.value)) mine.push(s.value);
        mine.sort((a, b) => a.created_at.localeCompare(b.created_at));
        return paginate(req, mine);
      },
    },
    {
      method: "GET",
      path: "/v3/spaces/:guid",
      handler: async (req) => ({
        status: 200,
        body: await visibleSpace(store, req.user as NonNullable<typeof req.user>, req.params.guid as string),
      }),
    },
    {
      method: "POST",
      path: "/v3/spaces/:guid/members",
      handler: async (req) => {
        const actor = req.user as NonNullable<typeof req.user>;
        requireAdmin(actor);
        const space = await visibleSpace(store, actor, req.params.guid as string);
        const body = await req.json();
        const username = requiredString(body, "username", 64);
        const member = NAME.test(username) ? await store.users.get(keys.user(username)) : null;
        if (member === null) throw invalid("username", `names no user (${username})`);
        await store.spaces.update(keys.space(space.guid), (s) =>
          s.members.includes(username)
            ? UNCHANGED
            : { ...s, members: [...s.members, username], updated_at: new Date().toISOString() },
        );
        await store.audit.record({
          type: "space.member_add",
          actor: actor.name,
          target_guid: space.guid,
          target_name: space.name,
          space_guid: space.guid,
          data: { username },
        });
        return { status: 204 };
      },
    },
  ];
}
