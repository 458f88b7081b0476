// Bearer tokens: 32 random bytes (base64url) handed out once, kept only as their SHA-256 under
// `token.<hex>` in kiln_users with the user and an expiry; revoking deletes the key. Every
// controller reads the same keys, so a logout through one is seen by all at once (no cache).
import { createHash, randomBytes } from "node:crypto";
import { CcError } from "../errors.js";
import { keys, type TokenRecord, type UserRecord } from "../store/records.js";
import type { CcStore } from "../store/store.js";
import { decoyHash, verifyPassword } from "./password.js";

export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

function unauthenticated(why: string): CcError {
  return new CcError("KILN_CC_UNAUTHENTICATED", why);
}

export interface Issued {
  token: string;
  expires_at: string;
  user: UserRecord;
}

/** Checks a user name and password and issues a token; a wrong name and a wrong password look the same. */
export async function login(
  store: CcStore,
  username: string,
  password: string,
  ttlS: number,
): Promise<Issued> {
  const user = /^[A-Za-z0-9_-]{1,64}$/.test(username) ? await store.users.get(keys.user(username)) : null;
  const ok = await verifyPassword(password, user?.value.password ?? (await decoyHash()));
  if (user === null || !ok) throw unauthenticated("wrong username or password");
  const token = randomBytes(32).toString("base64url");
  const now = Date.now();
  const record: TokenRecord = {
    user: user.value.name,
    user_guid: user.value.guid,
    expires_at: new Date(now + ttlS * 1000).toISOString(),
    created_at: new Date(now).toISOString(),
  };
  await store.tokens.create(keys.token(tokenHash(token)), record);
  return { token, expires_at: record.expires_at, user: user.value };
}

/** A base64url token of 32 bytes is 43 characters; anything else is not ours. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** The user an `Authorization` header belongs to; KILN_CC_UNAUTHENTICATED for anything but a live token of a live user. */
export async function authenticate(
  store: CcStore,
  header: string | undefined,
): Promise<{ user: UserRecord; tokenKey: string }> {
  if (header === undefined || header === "") throw unauthenticated("missing Authorization: Bearer <token>");
  const m = /^Bearer ([^\s]+)$/i.exec(header);
  if (m === null) throw unauthenticated("Authorization must be Bearer <token>");
  const token = m[1] as string;
  if (!TOKEN_SHAPE.test(token)) throw unauthenticated("unknown token");
  const tokenKey = keys.token(tokenHash(token));
  const rec = await store.tokens.get(tokenKey);
  if (rec === null) throw unauthenticated("unknown or revoked token");
  if (Date.parse(rec.value.expires_at) <= Date.now()) {
    await store.tokens.delete(tokenKey, rec.revision);
    throw unauthenticated("token expired; log in again");
  }
  const user = await store.users.get(keys.user(rec.value.user));
  if (user === null || user.value.guid !== rec.value.user_guid)
    throw unauthenticated("the token's user no longer exists");
  return { user: user.value, tokenKey };
}

/** Revokes a token by its key (from authenticate). */
export async function revoke(store: CcStore, tokenKey: string): Promise<void> {
  await store.tokens.delete(tokenKey);
}
