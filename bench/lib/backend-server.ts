// The bench backend: a Node `http` server answering any Host with a fixed body chosen by
// path ("/" tiny, "/16k", "/1m"), keep-alive without limits. Argument: the port.
import { createServer } from "node:http";

const port = Number(process.argv[2]);
const bodies = new Map<string, Buffer>([
  ["/", Buffer.from("ok")],
  ["/16k", Buffer.alloc(16 * 1024, "k")],
  ["/1m", Buffer.alloc(1024 * 1024, "m")],
]);
const tiny = bodies.get("/") as Buffer;

const server = createServer((req, res) => {
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
