// The status port: /health (200, or 503 while draining or before the first route sync),
// /routes (the table as JSON) and /metrics (Prometheus text). Off the hot path: node:http.
import { createServer, type Server } from "node:http";

export interface StatusSource {
  healthy(): { ok: boolean; reason: string };
  routes(): unknown;
  metrics(): Promise<string>;
}

export function startStatusServer(host: string, port: number, src: StatusSource): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
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
