// Field checks for request bodies and queries: each returns the typed value or throws
// KILN_CC_INVALID naming the field, so a handler reads like the schema it accepts.
import { invalid } from "../errors.js";

type Obj = Record<string, unknown>;

function hasControl(s: string): boolean {
  return /\p{Cc}/u.test(s);
}

export function requiredString(o: Obj, field: string, max = 255, prefix = ""): string {
  const v = o[field];
  if (v === undefined || v === null) throw invalid(prefix + field, "is required");
  if (typeof v !== "string" || v.trim() === "" || v.length > max || hasControl(v))
    throw invalid(
      prefix + field,
      `must be a non-empty string of at most ${max} characters without control characters`,
    );
  return v;
}

export function optionalString(o: Obj, field: string, max = 4096, prefix = ""): string | null | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v !== "string" || v.length > max || hasControl(v))
    throw invalid(prefix + field, `must be a string of at most ${max} characters or null`);
  return v;
}

export function optionalInteger(o: Obj, field: string, min: number, max: number): number | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    throw invalid(field, `must be an integer from ${min} to ${max}`);
  return v;
}

export function optionalBoolean(o: Obj, field: string): boolean | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw invalid(field, "must be true or false");
  return v;
}

export function optionalObject(o: Obj, field: string, prefix = ""): Obj | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw invalid(prefix + field, "must be an object");
  return v as Obj;
}

export function requiredObject(o: Obj, field: string, prefix = ""): Obj {
  const v = optionalObject(o, field, prefix);
  if (v === undefined) throw invalid(prefix + field, "is required");
  return v;
}

export function optionalStringList(o: Obj, field: string, prefix = ""): string[] | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (
    !Array.isArray(v) ||
    v.length > 64 ||
    v.some((s) => typeof s !== "string" || s === "" || s.length > 1024 || hasControl(s))
  )
    throw invalid(prefix + field, "must be a list of at most 64 non-empty strings");
  return v as string[];
}

/** Comma-separated query values (`?names=a,b`), or null when the parameter is absent. */
export function queryList(url: URL, name: string): Set<string> | null {
  const raw = url.searchParams.get(name);
  if (raw === null) return null;
  return new Set(
    raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
  );
}

/** Environment variable names: what a shell can export. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/;

/** `{ K: "v", GONE: null }`: strings set, null removes. */
export function envChanges(o: Obj, field: string): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(o)) {
    if (!ENV_NAME.test(k)) throw invalid(`${field}.${k}`, "is not a valid environment variable name");
    if (v !== null && (typeof v !== "string" || v.length > 128 * 1024))
      throw invalid(`${field}.${k}`, "must be a string (at most 128 KiB) or null");
    out[k] = v as string | null;
  }
  return out;
}
