// Users: created by an admin (or the first start), names unique by the compare-and-set
// create of `user.<name>` in kiln_users.
import { randomUUID } from "node:crypto";
import { CcError, invalid } from "../errors.js";
import { keys, type UserRecord } from "../store/records.js";
import type { CcStore } from "../store/store.js";
import { hashPassword } from "./password.js";

/** User and space names become KV keys and subject tokens: letters, digits, `-` and `_`. */
export const NAME = /^[A-Za-z0-9_-]{1,64}$/;

export async function createUser(
  store: CcStore,
  name: string,
  password: string,
  admin: boolean,
): Promise<UserRecord> {
  if (!NAME.test(name)) throw invalid("username", "must be 1 to 64 letters, digits, '-' or '_'");
  if (password.length < 1 || password.length > 1024)
    throw invalid("password", "must be 1 to 1024 characters");
  const now = new Date().toISOString();
  const user: UserRecord = {
    guid: randomUUID(),
    name,
    admin,
    password: await hashPassword(password),
    created_at: now,
    updated_at: now,
  };
  if ((await store.users.create(keys.user(name), user)) === null)
    throw new CcError("KILN_CC_NAME_TAKEN", `user ${name} already exists`);
  return user;
}

/** A user as the API shows it (never the password hash). */
export function publicUser(u: UserRecord): {
  guid: string;
  name: string;
  admin: boolean;
  created_at: string;
} {
  return { guid: u.guid, name: u.name, admin: u.admin, created_at: u.created_at };
}
