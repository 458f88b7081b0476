// Kiln example: a Node.js app with one dependency, installed offline from vendor/.
const greeting = require("greeting");
require("node:http")
  .createServer((_req, res) => res.end(greeting("node-dep")))
  .listen(Number(process.env.PORT ?? 8080));
