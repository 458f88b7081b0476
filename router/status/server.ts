// The status port: /health (200, or 503 while draining or before the first route sync),
// /routes (the table as JSON) and /metrics (Prometheus text). Off the hot path: node:http.
// Every path but /health answers 401 without the credentials `auth` asks for (status/auth.ts).
import { createServer, type Server } from "node:http";
import type { StatusAuth } from "./auth.js";

export interface StatusSource {
  healthy(): { ok: boolean; reason: string };
  routes(): unknown;
  metrics(): Promise<string>;
}

export function startStatusServer(
  host: string,
  port: number,
  auth: StatusAuth | null,
  src: StatusSource,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    // Load balancers probe /health without credentials; a path added later is guarded by default.
    if (auth !== null && path !== "/health" && !auth.allows(req.headers.authorization)) {
      res.writeHead(401, {
        "www-authenticate": 'Basic realm="kiln-router"',
        "content-type": "text/plain; charset=utf-8",
        "cache-control": "no-store",
      });
      res.end("401: this path needs the status port's user and password (KILN_ROUTER_STATUS_UNAUTHORIZED)\n");
      return;
    }
    if (path === "/health") {
      const h = src.healthy();
      res.writeHead(h.ok ? 200 : 503, {
        "content-type": "text/plain; charset=utf-8",
        "cache-control": "no-store",
      });
      res.end(h.ok ? "ok\n" : `${h.reason}\n`);
    } else if (path === "/routes") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(src.routes(), (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
    } else if (path === "/metrics") {
      src.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(`${err.message}\n`);
        },
      );
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
