// Route services, as gorouter does them: a request to a route registered with a
// route_service_url goes first to that service, with X-CF-Forwarded-Url and a signature of
// that URL and the time; the service calls the forwarded URL back through the router, which
// checks the signature and its age and then forwards to the app. Only routes with a service
// come here (the table answers SelectError.RouteService for them), never the common request.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { hostNameEnd } from "../../native/fallback/uri.js";
import { SelectError } from "../../native/types.js";
import type { RouterConfig } from "../config.js";
import { type Refusal, Refusals } from "../errors.js";
import type { EndpointEntry, ProxyContext } from "../proxy/context.js";
import type { HttpRequest } from "../uws.js";
import { hashKeyFor, parseAppInstance } from "./request-headers.js";

export const FORWARDED_URL = "x-cf-forwarded-url";
export const SIGNATURE = "x-cf-proxy-signature";
export const METADATA = "x-cf-proxy-metadata";

/** A callback dated this far ahead of the router's clock still passes (clocks of two hosts). */
const FUTURE_SKEW_MS = 5_000;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * The AES-256-GCM key: SHA-256 of the configured secret (any string; use a long random one).
 * gorouter derives a 16-byte key with PBKDF2; both ends here are this router, so only the
 * header format needs to match gorouter's, not the key.
 */
export function routeServiceKey(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/**
 * gorouter's signature (routeservice/signature.go): X-CF-Proxy-Signature = base64url of the
 * sealed JSON {forwarded_url, requested_time} (ciphertext then tag, as Go's gcm.Seal),
 * X-CF-Proxy-Metadata = base64url of JSON {nonce: base64 of the 12-byte nonce}.
 */
export function signRouteService(
  key: Buffer,
  forwardedUrl: string,
  nowMs: number,
): { signature: string; metadata: string } {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const plain = JSON.stringify({
    forwarded_url: forwardedUrl,
    requested_time: new Date(nowMs).toISOString(),
  });
  const sealed = Buffer.concat([cipher.update(plain, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return {
    signature: sealed.toString("base64url"),
    metadata: Buffer.from(JSON.stringify({ nonce: nonce.toString("base64") })).toString("base64url"),
  };
}

export const Verdict = { Ok: 0, Bad: 1, Expired: 2 } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/**
 * Checks a route service's callback: the signature decrypts under `key` with the metadata's
 * nonce, names `requestUrl`, and was made at most `maxAgeMs` ago (and not in the future).
 */
export function verifyRouteService(
  key: Buffer,
  signature: string,
  metadata: string,
  requestUrl: string,
  nowMs: number,
  maxAgeMs: number,
): Verdict {
  let contents: { forwarded_url?: unknown; requested_time?: unknown };
  try {
    const meta = JSON.parse(Buffer.from(metadata, "base64url").toString("utf8")) as { nonce?: unknown };
    if (typeof meta.nonce !== "string") return Verdict.Bad;
    const nonce = Buffer.from(meta.nonce, "base64");
    const sealed = Buffer.from(signature, "base64url");
    if (nonce.length !== NONCE_BYTES || sealed.length <= TAG_BYTES) return Verdict.Bad;
    const decipher = createDecipheriv("aes-256-gcm", key, nonce);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const plain = Buffer.concat([
      decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]);
    contents = JSON.parse(plain.toString("utf8")) as typeof contents;
  } catch {
    // Bad base64, JSON or tag: all one answer, so a client learns nothing from which.
    return Verdict.Bad;
  }
  if (contents.forwarded_url !== requestUrl || typeof contents.requested_time !== "string")
    return Verdict.Bad;
  const at = Date.parse(contents.requested_time);
  if (Number.isNaN(at)) return Verdict.Bad;
  if (nowMs - at > maxAgeMs || at - nowMs > FUTURE_SKEW_MS) return Verdict.Expired;
  return Verdict.Ok;
}

/**
 * Why the router cannot send requests to this route service ("" when it can): the upstream
 * clients have no TLS, and the native one connects to IP addresses only.
 */
export function routeServiceProblem(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "route_service_url is not a URL";
  }
  if (u.protocol !== "http:") return "only http:// route services are supported (no TLS to backends)";
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  if (isIP(host) === 0)
    return "the route service's host must be an IP address (the router does not resolve names)";
  return "";
}

/** The URL the client asked for, as gorouter forms X-CF-Forwarded-Url: scheme, host without port, target. */
export function forwardedUrl(proto: string, host: string, target: string): string {
  return `${proto}://${host.slice(0, hostNameEnd(host))}${target}`;
}

/** Drops the route-service lines (and, when `replaceHost` is set, the Host line) from a head block. */
function rewriteHead(head: string, replaceHost: string): string {
  const lines = head.split("\r\n");
  let out = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue;
    const name = line.slice(0, line.indexOf(":"));
    if (name === FORWARDED_URL || name === SIGNATURE || name === METADATA) continue;
    if (replaceHost !== "" && name === "host") out += `host: ${replaceHost}\r\n`;
    else out += `${line}\r\n`;
  }
  return out;
}

interface ServiceTarget {
  entry: EndpointEntry;
  /** Request target at the service: its URL's path and query. */
  target: string;
  /** Host header for the service. */
  host: string;
}

/** What to do with a request to a route that has a route service (fields of one reused object). */
export const Step = { App: 0, Service: 1, Refused: 2 } as const;

/** One per worker thread: the key, the services' upstream entries, and the step's result. */
export class RouteServices {
  private readonly key: Buffer | null;
  private readonly maxAgeMs: number;
  private readonly proto: string;
  private readonly ctx: ProxyContext;
  private readonly targets = new Map<string, ServiceTarget | null>();
  // Result of the last step(): read right after the call (one worker, synchronous).
  kind: number = Step.Refused;
  refusal: Refusal | null = null;
  entry: EndpointEntry | null = null;
  /** Request target and header block to send (the client's head block rewritten). */
  target = "";
  head = "";
  /** Lines to add to the head for the service (X-CF-Forwarded-Url and the signature). */
  extra = "";
  /** The hash key selectApp used ("" when the route does not hash). */
  hashKey = "";

  constructor(cfg: RouterConfig, ctx: ProxyContext) {
    this.key = cfg.routeServiceKey === "" ? null : routeServiceKey(cfg.routeServiceKey);
    this.maxAgeMs = cfg.routeServiceMaxAgeSec * 1000;
    this.proto = cfg.forwardedProto;
    this.ctx = ctx;
  }

  /**
   * Decides for a request whose select answered SelectError.RouteService. `head` is the
   * client's header block as scanned; `signature` and `metadata` its X-CF-Proxy-* values.
   * Step.App: the callback checked out, select again with routeServiceDone and send `head`.
   * Step.Service: send `target` + `head` + `extra` to `entry`. Step.Refused: answer `refusal`.
   */
  step(
    host: string,
    url: string,
    target: string,
    head: string,
    signature: string,
    metadata: string,
    nowMs: number,
  ): number {
    this.refusal = null;
    this.entry = null;
    this.extra = "";
    const rsUrl = this.ctx.table.routeService(host, url);
    const key = this.key;
    if (rsUrl === "") {
      // The route lost its service between the two lookups: it is a plain route now.
      this.kind = Step.App;
      this.target = target;
      this.head = head;
      return this.kind;
    }
    const requested = forwardedUrl(this.proto, host, target);
    if (signature !== "" && key !== null) {
      // The service calling back (gorouter's hasBeenToRouteService): check, then strip the
      // route-service headers, which the app has no use for.
      const v = verifyRouteService(key, signature, metadata, requested, nowMs, this.maxAgeMs);
      if (v !== Verdict.Ok) {
        this.kind = Step.Refused;
        this.refusal = v === Verdict.Expired ? Refusals.routeServiceExpired : Refusals.routeServiceSignature;
        return this.kind;
      }
      this.kind = Step.App;
      this.target = target;
      this.head = rewriteHead(head, "");
      return this.kind;
    }
    const t = key === null ? null : this.serviceTarget(rsUrl);
    if (t === null) {
      // Registered before the key went, or a URL the registry now refuses: never the app directly.
      this.kind = Step.Refused;
      this.refusal = Refusals.noEndpoints;
      return this.kind;
    }
    const sig = signRouteService(key as Buffer, requested, nowMs);
    this.kind = Step.Service;
    this.entry = t.entry;
    this.target = t.target;
    this.head = rewriteHead(head, t.host);
    this.extra = `${FORWARDED_URL}: ${requested}\r\n${SIGNATURE}: ${sig.signature}\r\n${METADATA}: ${sig.metadata}\r\n`;
    return this.kind;
  }

  /**
   * After Step.App: the request's endpoint, chosen as the worker chose before (pinned instance,
   * sticky id, hash key), now that the route service's callback is checked.
   */
  selectApp(
    appInstance: string,
    stickyId: string,
    req: HttpRequest,
    client: string,
    host: string,
    url: string,
    nowMs: number,
  ): number {
    const table = this.ctx.table;
    this.hashKey = "";
    if (appInstance !== "") {
      const inst = parseAppInstance(appInstance);
      return inst === null
        ? SelectError.UnknownInstance
        : table.selectInstance(host, url, inst.app, inst.index, nowMs, true);
    }
    const handle = table.select(host, url, stickyId, "", nowMs, true);
    if (handle !== SelectError.NeedHashKey) return handle;
    this.hashKey = hashKeyFor(table, host, url, req, client);
    return table.select(host, url, stickyId, this.hashKey, nowMs, true);
  }

  private serviceTarget(rsUrl: string): ServiceTarget | null {
    const hit = this.targets.get(rsUrl);
    if (hit !== undefined) return hit;
    let t: ServiceTarget | null = null;
    if (routeServiceProblem(rsUrl) === "") {
      const u = new URL(rsUrl);
      const ip = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
      t = {
        entry: this.ctx.serviceEntry(ip, u.port === "" ? 80 : Number(u.port)),
        target: `${u.pathname}${u.search}`,
        host: u.host,
      };
    }
    if (this.targets.size >= 10_000) this.targets.clear();
    this.targets.set(rsUrl, t);
    return t;
  }
}
