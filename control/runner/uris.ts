// An app's routes as the DEAs register them (`host.<domain>[/path]`): what a start request
// carries and what dea.update sends after a route map, unmap or delete. One function, so a
// running instance and a freshly started one never disagree on an app's routes.
import type { CcStore } from "../store/store.js";

/** Every route with `appGuid` among its destinations, in the store's key order. */
export async function appUris(store: CcStore, domain: string, appGuid: string): Promise<string[]> {
  const uris: string[] = [];
  for (const { value: r } of await store.routes.list("*"))
    if (r.destinations.some((d) => d.app_guid === appGuid)) uris.push(`${r.host}.${domain}${r.path}`);
  return uris;
}
