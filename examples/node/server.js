// Kiln example: a Node.js app without dependencies, answering on $PORT.
require("node:http")
  .createServer((_req, res) => res.end("hello from the node example\n"))
  .listen(Number(process.env.PORT ?? 8080));
