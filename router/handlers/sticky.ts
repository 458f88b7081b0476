// Sticky sessions (gorouter's): when a response sets a session cookie, the router adds
// __VCAP_ID__=<instance id> with the same attributes, so later requests reach that instance.

export const VCAP_COOKIE = "__VCAP_ID__";

/** Name of the cookie a Set-Cookie value sets. */
export function setCookieName(value: string): string {
  const eq = value.indexOf("=");
  return (eq < 0 ? value : value.slice(0, eq)).trim();
}

/** The attribute part of a Set-Cookie value ("; Path=/; HttpOnly"), or "". */
export function setCookieAttributes(value: string): string {
  const semi = value.indexOf(";");
  return semi < 0 ? "" : value.slice(semi);
}

/** The Set-Cookie value the router adds for instance `instanceId`. */
export function vcapCookie(instanceId: string, attributes: string): string {
  return `${VCAP_COOKIE}=${instanceId}${attributes}`;
}

/** Attributes used when the router replaces a stale __VCAP_ID__ on its own. */
export const defaultVcapAttributes = "; Path=/; HttpOnly; SameSite=Lax";
