// POST /v3/resource_matches: which of the client's files (by SHA-1) the controller already holds
// as `files/<sha1>` in kiln_blobs, so a push uploads only the others.
import type { ObjectStore } from "nats";
import { invalid } from "../errors.js";
import { pushKeys } from "../store/push.js";
import type { Route } from "./table.js";

export const SHA1 = /^[0-9a-f]{40}$/;
/** Resources one request may ask about. */
const MAX_RESOURCES = 10_000;

interface Resource {
  checksum: { value: string };
  size_in_bytes: number;
}

function resources(body: Record<string, unknown>): Resource[] {
  const list = body.resources;
  if (!Array.isArray(list) || list.length > MAX_RESOURCES)
    throw invalid("resources", `must be a list of at most ${MAX_RESOURCES} resources`);
  return list.map((r: unknown, i) => {
    const o = r as { checksum?: { value?: unknown }; size_in_bytes?: unknown } | null;
    if (typeof o !== "object" || o === null || Array.isArray(o))
      throw invalid(`resources[${i}]`, "must be an object");
    const sha1 = o.checksum?.value;
    if (typeof sha1 !== "string" || !SHA1.test(sha1))
      throw invalid(`resources[${i}].checksum.value`, "must be a SHA-1 as 40 lower-case hex digits");
    const size = o.size_in_bytes;
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)
      throw invalid(`resources[${i}].size_in_bytes`, "must be a non-negative integer");
    return { checksum: { value: sha1 }, size_in_bytes: size };
  });
}

export function resourceMatchRoutes(blobs: ObjectStore): Route[] {
  return [
    {
      method: "POST",
      path: "/v3/resource_matches",
      handler: async (req) => {
        const asked = resources(await req.json());
        const held = await Promise.all(
          asked.map(async (r) => (await blobs.info(pushKeys.fileBlob(r.checksum.value))) !== null),
        );
        return { status: 201, body: { resources: asked.filter((_, i) => held[i]) } };
      },
    },
  ];
}
