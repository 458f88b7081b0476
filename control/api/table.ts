// The API's route table: method + path pattern with `:params`, matched segment by segment.
// Each resource file exports its routes (appRoutes(ctx), …) and main.ts concatenates them, so a
// later part (packages, builds, logs) adds a file and one line.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../kernel/log.js";
import type { CcConfig } from "../config.js";
import type { UserRecord } from "../store/records.js";
import type { CcStore } from "../store/store.js";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** What every handler can reach. */
export interface ApiContext {
  store: CcStore;
  config: CcConfig;
  log: Logger;
}

export interface ApiRequest {
  readonly params: Readonly<Record<string, string>>;
  readonly url: URL;
  /** The authenticated caller (null only on routes declared `auth: false`). */
  readonly user: UserRecord | null;
  /** The key of the caller's token (for logout). */
  readonly tokenKey: string | null;
  /** The JSON body, parsed and size-limited; KILN_CC_INVALID / KILN_CC_BODY_TOO_LARGE otherwise. */
  json(): Promise<Record<string, unknown>>;
  readonly raw: IncomingMessage;
}

/** A JSON answer; `body` undefined sends no body (204). `stream` takes over the response instead. */
export interface ApiResponse {
  status: number;
  body?: unknown;
  stream?: (res: ServerResponse) => Promise<void>;
}

export interface Route {
  method: Method;
  /** `/v3/apps/:guid/actions/start` */
  path: string;
  /** Default true: needs a live bearer token. */
  auth?: boolean;
  handler: (req: ApiRequest) => Promise<ApiResponse>;
}

interface Compiled {
  route: Route;
  segments: string[];
}

export class RouteTable {
  private readonly compiled: Compiled[] = [];

  constructor(routes: Route[]) {
    for (const r of routes) this.add(r);
  }

  add(route: Route): void {
    this.compiled.push({ route, segments: route.path.split("/").slice(1) });
  }

  /** The route and its params, or null (404: unknown routes and unknown methods look the same). */
  match(method: string, pathname: string): { route: Route; params: Record<string, string> } | null {
    const parts = pathname.split("/").slice(1);
    for (const c of this.compiled) {
      if (c.route.method !== method || c.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length; i++) {
        const seg = c.segments[i] as string;
        const part = parts[i] as string;
        if (seg.startsWith(":")) {
          if (part === "") {
            ok = false;
            break;
          }
          try {
            params[seg.slice(1)] = decodeURIComponent(part);
          } catch {
            ok = false;
            break;
          }
        } else if (seg !== part) {
          ok = false;
          break;
        }
      }
      if (ok) return { route: c.route, params };
    }
    return null;
  }
}
