// First start: when `user.admin` is missing an admin with a random password is created and the
// password written once to <data dir>/admin-credentials.json (0600). Whichever controller wins
// the create writes the file; a later start, or the loser of a race, leaves it alone.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../kernel/log.js";
import { CcError } from "../errors.js";
import { keys } from "../store/records.js";
import type { CcStore } from "../store/store.js";
import { createUser } from "./users.js";

export const ADMIN = "admin";
export const CREDENTIALS_FILE = "admin-credentials.json";

/**
 * A random password (24 bytes, base64url) that never starts with "-": `kiln login -p -…` reads
 * such a value as a flag and refuses it as ambiguous, so one admin in 64 could not log in.
 */
export function newPassword(): string {
  for (;;) {
    const password = randomBytes(24).toString("base64url");
    if (!password.startsWith("-")) return password;
  }
}

/** Creates the admin when missing (`announce` prints the password once); returns the credentials file written, or null when the admin existed. */
export async function ensureAdmin(
  store: CcStore,
  dataDir: string,
  log: Logger,
  announce: (line: string) => void = (line) => {
    process.stdout.write(line);
  },
): Promise<string | null> {
  if ((await store.users.get(keys.user(ADMIN))) !== null) return null;
  const password = newPassword();
  try {
    await createUser(store, ADMIN, password, true);
  } catch (err) {
    if (err instanceof CcError && err.code === "KILN_CC_NAME_TAKEN") return null;
    throw err;
  }
  const file = join(dataDir, CREDENTIALS_FILE);
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // Only the controller whose create won gets here, once per store. A file already there is
    // from a store that is gone (its password no longer works): replaced whole, by a rename.
    if (existsSync(file)) log.warn("admin_credentials_replaced", { credentials: file });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ user: ADMIN, password })}\n`, { mode: 0o600, flag: "wx" });
    renameSync(tmp, file);
  } catch (err) {
    throw new CcError(
      "KILN_CC_DATA_DIR",
      `the admin was created but ${file} could not be written (${(err as Error).message}); delete user.admin from kiln_users to start over`,
      err,
    );
  }
  log.info("admin_created", { user: ADMIN, credentials: file });
  announce(`kiln cc: admin user created; credentials in ${file} (user admin, password ${password})\n`);
  return file;
}
