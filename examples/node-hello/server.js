// Kiln's first app: answers every request with a greeting naming the instance that served it,
// so `kiln scale hello -i 3` can be seen spreading requests over three instances.
const http = require("node:http");

const index = process.env.CF_INSTANCE_INDEX ?? "0";
const guid = process.env.CF_INSTANCE_GUID ?? "";
const server = http.createServer((_req, res) => {
  res.setHeader("x-instance-index", index);
  res.setHeader("x-instance-guid", guid);
  res.end(`Hello from Kiln (instance ${index})\n`);
});
server.listen(Number(process.env.PORT ?? 8080));
// Stopped or moved: finish the requests in flight, then leave.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
