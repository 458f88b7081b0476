// Every NATS subject and JetStream name Kiln uses, in one place. Parameterised subjects
// are functions that refuse a token which would change the subject's meaning.
import { MessagingError } from "./errors.js";

/** Router subjects (gorouter JSON, see gorouter.ts). */
export const ROUTER_REGISTER = "router.register";
export const ROUTER_UNREGISTER = "router.unregister";
export const ROUTER_START = "router.start";
export const ROUTER_GREET = "router.greet";

/** DEA subjects (protobuf, see codec.ts). */
export const DEA_DISCOVER = "dea.discover";
export const DEA_STOP = "dea.stop";
/** An app's complete route list after a map/unmap, to every DEA (Cloud Foundry's dea.update). */
export const DEA_UPDATE = "dea.update";
export const DEA_HEARTBEAT = "dea.heartbeat";
export const DEA_ADVERTISE = "dea.advertise";
/** Wildcards a DEA-side tool subscribes to for every DEA's stage/start requests. */
export const DEA_STAGE_ANY = "dea.*.stage";
export const DEA_START_ANY = "dea.*.start";

export const DROPLET_EXITED = "droplet.exited";
/** Health Manager → Cloud Controllers (subscribed in the queue group below). */
export const CC_HM_REQUESTS = "cc.hm.requests";
export const CC_HM_QUEUE = "cc";

/** Every app's log subject (`logs.<app_guid>`), as the KILN_LOGS stream captures it. */
export const LOGS_ANY = "logs.*";
/** Audit events (`events.<kind>`), as the KILN_EVENTS stream captures them. */
export const EVENTS_ANY = "events.*";

/** JetStream key-value buckets. */
export const KV_APPS = "kiln_apps";
export const KV_ROUTES = "kiln_routes";
export const KV_SPACES = "kiln_spaces";
export const KV_USERS = "kiln_users";
export const KV_SERVICES = "kiln_services";
export const KV_BUCKETS = [KV_APPS, KV_ROUTES, KV_SPACES, KV_USERS, KV_SERVICES] as const;
/** The Health Managers' own bucket: the leader lease. Only the `hm` user writes it. */
export const KV_HM = "kiln_hm";

/** JetStream streams and the subjects they capture. */
export const STREAM_EVENTS = "KILN_EVENTS";
export const STREAM_LOGS = "KILN_LOGS";
export const STREAM_SUBJECTS: Readonly<Record<typeof STREAM_EVENTS | typeof STREAM_LOGS, readonly string[]>> =
  {
    [STREAM_EVENTS]: [EVENTS_ANY],
    [STREAM_LOGS]: [LOGS_ANY],
  };

/** JetStream object store for application files, packages and droplets. */
export const OBJECT_STORE_BLOBS = "kiln_blobs";

/** Prefix of request/reply inboxes (nats.js default); permissions grant it to every component. */
export const INBOX_PREFIX = "_INBOX";

/**
 * A single subject token: non-empty, no `.`, `*`, `>` or whitespace/control characters.
 * Char codes instead of a regex: this runs for every log line published.
 */
export function isValidToken(token: string): boolean {
  const n = token.length;
  if (n === 0 || n > 256) return false;
  for (let i = 0; i < n; i++) {
    const c = token.charCodeAt(i);
    // 0x2e '.', 0x2a '*', 0x3e '>', 0x20 space, < 0x20 controls, 0x7f DEL, and Unicode spaces.
    if (c <= 0x20 || c === 0x2e || c === 0x2a || c === 0x3e || c === 0x7f) return false;
    if (c >= 0x80 && /\s/.test(token[i] as string)) return false;
  }
  return true;
}

function token(kind: string, value: string): string {
  if (typeof value !== "string" || !isValidToken(value)) {
    throw new MessagingError(
      "KILN_MSG_BAD_SUBJECT_TOKEN",
      `${kind} ${JSON.stringify(value)} cannot be used in a NATS subject (empty, or holds '.', '*', '>' or whitespace)`,
    );
  }
  return value;
}

/** `dea.<id>.stage`: staging request to one DEA. */
export function deaStage(deaId: string): string {
  return `dea.${token("DEA id", deaId)}.stage`;
}

/** `dea.<id>.start`: start request to one DEA. */
export function deaStart(deaId: string): string {
  return `dea.${token("DEA id", deaId)}.start`;
}

/** `logs.<app_guid>`: an app's log lines. */
export function logs(appGuid: string): string {
  return `logs.${token("app guid", appGuid)}`;
}

/** `events.<kind>`: an audit event (KILN_EVENTS). */
export function events(kind: string): string {
  return `events.${token("event kind", kind)}`;
}
