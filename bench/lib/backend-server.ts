// The bench backend: a Node `http` server answering any Host with a fixed body chosen by
// path ("/" tiny, "/16k", "/1m"), keep-alive without limits; "/_headers" answers the names of
// the request's headers (JSON), so the bench can see what each proxy adds. Argument: the port.
import { createServer } from "node:http";
import { backendPaths, headersPath } from "./backend-paths.js";

const port = Number(process.argv[2]);
const bodies = new Map<string, Buffer>([
  [backendPaths.tiny, Buffer.from("ok")],
  [backendPaths["16k"], Buffer.alloc(16 * 1024, "k")],
  [backendPaths["1m"], Buffer.alloc(1024 * 1024, "m")],
]);
const tiny = bodies.get(backendPaths.tiny) as Buffer;

const server = createServer((req, res) => {
  if (req.url === headersPath) {
    const names = req.rawHeaders.filter((_, i) => i % 2 === 0);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(names));
    return;
  }
  const body = bodies.get(req.url ?? "/") ?? tiny;
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
