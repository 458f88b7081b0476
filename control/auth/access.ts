// Who may see what: an admin sees every space; a user only the spaces they are a member of.
// Another space's resource is answered like a missing one (404), so names do not leak.
import { CcError, notFound } from "../errors.js";
import type { SpaceRecord, UserRecord } from "../store/records.js";
import type { CcStore } from "../store/store.js";

export function requireAdmin(user: UserRecord): void {
  if (!user.admin) throw new CcError("KILN_CC_FORBIDDEN", "only an admin may do this");
}

export function isMember(user: UserRecord, space: SpaceRecord): boolean {
  return user.admin || space.members.includes(user.name);
}

/** True when `user` may see resources of the space `spaceGuid` (false for a space that does not exist). */
export async function canSee(store: CcStore, user: UserRecord, spaceGuid: string): Promise<boolean> {
  if (user.admin) return (await store.spaces.get(spaceGuid)) !== null;
  const space = await store.spaces.get(spaceGuid);
  return space !== null && isMember(user, space.value);
}

/** The space, or 404 when it is missing or not the user's. */
export async function visibleSpace(
  store: CcStore,
  user: UserRecord,
  spaceGuid: string,
): Promise<SpaceRecord> {
  const space = typeof spaceGuid === "string" && spaceGuid !== "" ? await store.spaces.get(spaceGuid) : null;
  if (space === null || !isMember(user, space.value)) throw notFound("space", String(spaceGuid));
  return space.value;
}

/** Guids of the spaces the user sees (every one for an admin). */
export async function visibleSpaceGuids(store: CcStore, user: UserRecord): Promise<Set<string>> {
  const all = await store.spaces.list("*");
  const out = new Set<string>();
  for (const s of all) if (isMember(user, s.value)) out.add(s.value.guid);
  return out;
}
