// Sticky sessions: the app keeps each session's visits in this instance's memory and sets a
// JSESSIONID cookie; the router adds __VCAP_ID__ next to it and sends the client back to the same
// instance, so the count keeps going up while the app runs several instances.
const http = require("node:http");
const { randomUUID } = require("node:crypto");

const index = process.env.CF_INSTANCE_INDEX ?? "0";
const visits = new Map();
const server = http.createServer((req, res) => {
  const session = /(?:^|;\s*)JSESSIONID=([^;]+)/.exec(req.headers.cookie ?? "")?.[1];
  const known = session !== undefined && visits.has(session);
  const id = known ? session : randomUUID();
  const count = (visits.get(id) ?? 0) + 1;
  visits.set(id, count);
  if (!known) res.setHeader("set-cookie", `JSESSIONID=${id}; Path=/; HttpOnly`);
  res.setHeader("x-instance-index", index);
  res.end(`visit ${count} of this session, on instance ${index}\n`);
});
server.listen(Number(process.env.PORT ?? 8080));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
