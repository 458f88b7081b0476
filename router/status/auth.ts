// Who may read the status port's /routes and /metrics: anyone on loopback without credentials,
// otherwise only HTTP basic auth (RFC 7617) with statusUser / statusPass. /health stays open.
import { createHash, timingSafeEqual } from "node:crypto";
import { BlockList, isIP } from "node:net";
import type { RouterConfig } from "../config.js";
import { RouterError } from "../errors.js";

// 127.0.0.0/8 and ::1; BlockList also matches IPv4-mapped addresses (::ffff:127.0.0.1) to the v4 rule.
const loopback = new BlockList();
loopback.addSubnet("127.0.0.0", 8, "ipv4");
loopback.addAddress("::1", "ipv6");

/** Whether binding `host` keeps a port on this machine (a name other than localhost is not trusted to). */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  const family = isIP(host);
  return family !== 0 && loopback.check(host, family === 4 ? "ipv4" : "ipv6");
}

export interface StatusAuth {
  /** Whether an Authorization header value carries the configured user and password. */
  allows(authorization: string | undefined): boolean;
}

/** Canonical base64 (RFC 4648 §4, padded): Buffer.from would skip stray characters instead. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const sha256 = (data: string | Buffer): Buffer => createHash("sha256").update(data).digest();

/**
 * The status port's access rule, or null when it needs none (loopback, no credentials).
 * Configured credentials are checked on loopback too: other users and processes of the machine
 * (the apps a DEA runs on it among them) reach loopback as well. Throws KILN_ROUTER_CONFIG for
 * a status port off loopback without credentials, or with half of them.
 */
export function statusAuth(
  config: Pick<RouterConfig, "statusHost" | "statusUser" | "statusPass">,
): StatusAuth | null {
  const { statusHost: host, statusUser: user, statusPass: pass } = config;
  if (user === "" && pass === "") {
    if (isLoopback(host)) return null;
    throw new RouterError(
      "KILN_ROUTER_CONFIG",
      `the status port binds ${host}, off loopback, so /routes and /metrics need a user and password: set --status-user and --status-pass (or KILN_ROUTER_STATUS_USER and KILN_ROUTER_STATUS_PASS), or bind it to 127.0.0.1`,
    );
  }
  if (user === "" || pass === "")
    throw new RouterError(
      "KILN_ROUTER_CONFIG",
      `--status-user and --status-pass (KILN_ROUTER_STATUS_USER, KILN_ROUTER_STATUS_PASS) go together; only the ${user === "" ? "password" : "user"} is set`,
    );
  if (user.includes(":"))
    throw new RouterError(
      "KILN_ROUTER_CONFIG",
      "--status-user (KILN_ROUTER_STATUS_USER) must not contain a colon: basic auth ends the user at the first one",
    );
  // The whole "user:password" is compared, as digests so the comparison takes the same time
  // whatever the length and content of the guess. The user holds no colon, so a password may.
  const expected = sha256(`${user}:${pass}`);
  return {
    allows(authorization) {
      if (authorization === undefined) return false;
      const space = authorization.indexOf(" ");
      if (space < 0 || authorization.slice(0, space).toLowerCase() !== "basic") return false;
      const token = authorization.slice(space + 1).trim();
      if (!BASE64.test(token)) return false;
      return timingSafeEqual(sha256(Buffer.from(token, "base64")), expected);
    },
  };
}
