// The API's HTTP server on node:http: route lookup, bearer auth, JSON answers, and every error
// as { errors: [{ code, title, detail }] } with its CcError's status. Not a hot path: one
// try/catch per request is fine here, unlike in the router.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KilnError } from "../../kernel/errors.js";
import { authenticate } from "../auth/tokens.js";
import { CcError } from "../errors.js";
import { readJson } from "./body.js";
import type { ApiContext, ApiRequest, ApiResponse, RouteTable } from "./table.js";

/** The `title` of an error answer: the code's words (KILN_CC_NOT_FOUND → "NotFound"), as CF titles go. */
function title(code: string): string {
  return code
    .replace(/^KILN_CC_/, "")
    .toLowerCase()
    .split("_")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: KilnError & { status: number }): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // A body we refused to read: close the connection rather than read it to reuse it.
  if (err.code === "KILN_CC_BODY_TOO_LARGE") res.setHeader("connection", "close");
  send(res, err.status, { errors: [{ code: err.code, title: title(err.code), detail: err.message }] });
}

export interface ApiServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startApiServer(ctx: ApiContext, table: RouteTable): Promise<ApiServer> {
  const { config, log, store } = ctx;

  const handle = async (raw: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(raw.url ?? "/", `http://${raw.headers.host ?? `${config.host}:${config.port}`}`);
    const found = table.match(raw.method ?? "GET", url.pathname);
    if (found === null) throw new CcError("KILN_CC_NOT_FOUND", `no route ${raw.method} ${url.pathname}`);
    let user: ApiRequest["user"] = null;
    let tokenKey: string | null = null;
    if (found.route.auth !== false) {
      const who = await authenticate(store, raw.headers.authorization);
      user = who.user;
      tokenKey = who.tokenKey;
    }
    const req: ApiRequest = {
      params: found.params,
      url,
      user,
      tokenKey,
      raw,
      json: () => readJson(raw, config.maxJsonBytes),
    };
    const answer: ApiResponse = await found.route.handler(req);
    if (answer.stream !== undefined) await answer.stream(res);
    else send(res, answer.status, answer.body);
  };

  const server: Server = createServer((raw, res) => {
    handle(raw, res).catch((err: unknown) => {
      // Any coded error with a status (CcError, or another part's KilnError) is the answer.
      if (err instanceof KilnError && err.status !== undefined) {
        if (err.status >= 500) log.error("request_failed", { method: raw.method, path: raw.url, error: err });
        sendError(res, err as KilnError & { status: number });
        return;
      }
      log.error("request_failed", { method: raw.method, path: raw.url, error: err });
      sendError(res, new CcError("KILN_CC_INTERNAL", "the controller failed; its log has the cause", err));
    });
  });
  // Idle keep-alive connections are closed by the clients first (fetch drops them a couple of
  // seconds before the server's advertised timeout): at 5 s, a loaded controller whose timers
  // ran late closed a socket while a client was reusing it (fetch: "other side closed").
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: Error) =>
      reject(
        new CcError(
          "KILN_CC_LISTEN_FAILED",
          `cannot listen on ${config.host}:${config.port}: ${err.message}`,
          err,
        ),
      ),
    );
    server.listen(config.port, config.host, () => {
      server.removeAllListeners("error");
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
