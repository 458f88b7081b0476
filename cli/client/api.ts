// The one HTTP client of the Cloud Controller API (control/API.md): bearer token, JSON in
// and out, and every failure turned into one coded error a user can act on.
import { KilnError } from "../../kernel/errors.js";
import { ApiError, CliError } from "../errors.js";
import type { List } from "./types.js";

export interface ApiOptions {
  api: string;
  token?: string | undefined;
  /** Per-request limit for ordinary calls (streams have none). */
  timeoutMs?: number;
}

type Method = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";

interface RequestOptions {
  body?: unknown;
  /** A streamed upload instead of JSON. */
  stream?: { body: AsyncIterable<Uint8Array>; contentType: string };
  /** false for the calls that need no token (POST /v3/tokens, GET /v3/info). */
  auth?: boolean;
  /** No time limit: long polls and streamed uploads. */
  noTimeout?: boolean;
  signal?: AbortSignal;
}

const NOT_LOGGED_IN = "not logged in or token expired: run kiln login";

export class ApiClient {
  readonly api: string;
  readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: ApiOptions) {
    this.api = options.api.replace(/\/+$/, "");
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  get<T>(path: string): Promise<T> {
    return this.json<T>("GET", path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.json<T>("POST", path, { body: body ?? {} });
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.json<T>("PATCH", path, { body });
  }

  async delete(path: string): Promise<void> {
    await this.json<unknown>("DELETE", path);
  }

  /** Every page of a list, following `pagination.next`. */
  async list<T>(path: string): Promise<T[]> {
    const out: T[] = [];
    let next: string | null = path;
    while (next !== null) {
      const page: List<T> = await this.json<List<T>>("GET", next);
      if (page === null || typeof page !== "object" || !Array.isArray(page.resources)) {
        throw new CliError("KILN_CLI_API_RESPONSE", `GET ${this.api}${next}: not a list`);
      }
      for (const item of page.resources) {
        if (
          item === null ||
          typeof item !== "object" ||
          typeof (item as { guid?: unknown }).guid !== "string"
        ) {
          throw new CliError(
            "KILN_CLI_API_RESPONSE",
            `GET ${this.api}${next}: a listed resource has no guid`,
          );
        }
        out.push(item);
      }
      const href: string | undefined = page.pagination?.next?.href;
      if (href === undefined || href === null) next = null;
      else {
        const url = new URL(href, this.api);
        next = `${url.pathname}${url.search}`;
      }
    }
    return out;
  }

  /** A JSON request; resolves with the parsed body (`undefined` for 204). */
  async json<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, options);
    const text = await res.text();
    if (text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError("KILN_CLI_API_RESPONSE", `${method} ${this.api}${path}: the answer is not JSON`);
    }
  }

  /** The raw response of a successful request, for NDJSON streams. */
  async open(path: string, signal?: AbortSignal): Promise<Response> {
    return this.send("GET", path, { noTimeout: true, ...(signal === undefined ? {} : { signal }) });
  }

  async upload<T>(path: string, body: AsyncIterable<Uint8Array>, contentType: string): Promise<T> {
    return this.json<T>("POST", path, { stream: { body, contentType }, noTimeout: true });
  }

  private async send(method: Method, path: string, options: RequestOptions): Promise<Response> {
    const auth = options.auth ?? true;
    if (auth && (this.token === undefined || this.token === "")) {
      throw new CliError("KILN_CLI_NOT_LOGGED_IN", NOT_LOGGED_IN);
    }
    const headers: Record<string, string> = { accept: "application/json" };
    if (auth && this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const init: RequestInit & { duplex?: "half" } = { method, headers };
    if (options.stream !== undefined) {
      headers["content-type"] = options.stream.contentType;
      init.body = options.stream.body as unknown as RequestInit["body"];
      init.duplex = "half";
    } else if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    const signals: AbortSignal[] = [];
    if (options.signal !== undefined) signals.push(options.signal);
    if (options.noTimeout !== true) signals.push(AbortSignal.timeout(this.timeoutMs));
    if (signals.length > 0) init.signal = signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    let res: Response;
    try {
      res = await fetch(`${this.api}${path}`, init);
    } catch (err) {
      // A streamed body that failed on our side (an app file unreadable mid-upload) says so itself.
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof KilnError) throw cause;
      throw this.unreachable(err, options.signal);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => "");
    if (res.status === 401 && auth) throw new CliError("KILN_CLI_NOT_LOGGED_IN", NOT_LOGGED_IN);
    throw apiError(res.status, text, `${method} ${this.api}${path}`);
  }

  private unreachable(err: unknown, signal: AbortSignal | undefined): Error {
    if (signal?.aborted === true) return err as Error;
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === "TimeoutError") {
      return new CliError(
        "KILN_CLI_API_UNREACHABLE",
        `the Cloud Controller at ${this.api} did not answer within ${this.timeoutMs / 1000} s`,
      );
    }
    const why =
      e.cause?.code === "ECONNREFUSED"
        ? "connection refused"
        : e.cause?.message === "bad port"
          ? "fetch refuses that port (a blocked port); use another"
          : (e.cause?.code ?? e.cause?.message ?? e.message).toString();
    return new CliError(
      "KILN_CLI_API_UNREACHABLE",
      `cannot reach the Cloud Controller at ${this.api}: ${why}`,
    );
  }
}

/** `{errors:[{code,title,detail}]}` → one ApiError; anything else names the status. */
export function apiError(status: number, text: string, what: string): Error {
  try {
    const body = JSON.parse(text) as { errors?: { code?: unknown; title?: unknown; detail?: unknown }[] };
    const first = body.errors?.[0];
    if (first !== undefined && typeof first.code === "string") {
      const detail =
        typeof first.detail === "string" && first.detail !== ""
          ? first.detail
          : typeof first.title === "string"
            ? first.title
            : `HTTP ${status}`;
      return new ApiError(first.code, detail, status);
    }
  } catch {
    // Not the API's error JSON: reported below by status.
  }
  return new CliError("KILN_CLI_API_RESPONSE", `${what}: HTTP ${status} without the API's error JSON`);
}
