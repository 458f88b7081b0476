// Uniqueness keys: a name (an app's in its space, a space's, a route's host and path) is held by
// a key created before the record it names, so of two concurrent creates one wins. A key left
// without its record (a controller stopped between the two writes) is released once it is older
// than a grace period; a younger one may be a create still in flight, so it counts as held.
import type { Records } from "./kv.js";
import type { IndexRecord } from "./records.js";

export const ORPHAN_GRACE_MS = 30_000;

/**
 * Creates `key` → `value`; resolves null once it is ours, or with the holder's record when the
 * name is held. `live(guid)` tells whether the holder's record exists.
 */
export async function claim(
  index: Records<IndexRecord>,
  key: string,
  value: IndexRecord,
  live: (guid: string) => Promise<boolean>,
  graceMs = ORPHAN_GRACE_MS,
): Promise<IndexRecord | null> {
  for (let attempt = 0; attempt < 3; attempt++) {
    if ((await index.create(key, value)) !== null) return null;
    const held = await index.get(key);
    if (held === null) continue;
    if (Date.now() - held.created.getTime() < graceMs || (await live(held.value.guid))) return held.value;
    // An orphan: released at the revision read, so a key taken meanwhile is left alone.
    await index.delete(key, held.revision);
  }
  const held = await index.get(key);
  return held?.value ?? value;
}
