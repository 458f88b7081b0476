// The user and password `kiln up` gives its router's status port (/routes and /metrics):
// generated once into the data dir, mode 0600, and kept across restarts, as the NATS
// passwords are (messaging/nats-server.ts).
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { KilnError } from "./errors.js";

export interface StatusCredentials {
  user: string;
  password: string;
}

export function statusCredentialsPath(dataDir: string): string {
  return join(dataDir, "router", "status-credentials.json");
}

/** The credentials in `dataDir`, made first when there are none. */
export function loadOrCreateStatusCredentials(dataDir: string): StatusCredentials {
  const path = statusCredentialsPath(dataDir);
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (!existsSync(path)) {
      const fresh: StatusCredentials = { user: "status", password: randomBytes(24).toString("base64url") };
      // Complete file under a temporary name, then link(2): nobody reads half a file, and of two
      // starts racing on a fresh data dir one password wins.
      const tmp = `${path}.${process.pid}.new`;
      writeFileSync(tmp, `${JSON.stringify(fresh, null, 2)}\n`, { mode: 0o600 });
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      } finally {
        rmSync(tmp, { force: true });
      }
    }
    // Someone loosened the mode: tighten it again rather than run with a readable password.
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } catch (err) {
    throw new KilnError("KILN_KERNEL_DATA_DIR", `cannot write ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw malformed(path, (err as Error).message, err);
  }
  const { user, password } = (parsed ?? {}) as Partial<Record<string, unknown>>;
  if (typeof user !== "string" || user === "" || user.includes(":"))
    throw malformed(path, "user must be a non-empty string without a colon");
  if (typeof password !== "string" || password === "")
    throw malformed(path, "password must be a non-empty string");
  return { user, password };
}

function malformed(path: string, why: string, cause?: unknown): KilnError {
  return new KilnError(
    "KILN_KERNEL_STATUS_CREDENTIALS",
    `${path} is malformed (${why}); fix it or delete it to generate new credentials`,
    { cause },
  );
}
