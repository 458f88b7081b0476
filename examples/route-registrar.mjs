#!/usr/bin/env node
// Announces a backend to the Kiln router the way a DEA does: router.register now, again
// every minimumRegisterIntervalInSeconds (and on every router.start), router.unregister
// on Ctrl-C. Until the DEA lands, this is how to route to an app you started yourself:
//   node examples/route-registrar.mjs myapp.localhost 127.0.0.1:3000 [--data-dir .kiln]
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { connect } from "nats";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { "data-dir": { type: "string" }, nats: { type: "string" } },
});
const [uri, backend] = positionals;
const [host, portText] = (backend ?? "").split(":");
const port = Number(portText);
if (!uri || !host || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write(
    "usage: node examples/route-registrar.mjs URI HOST:PORT [--data-dir DIR] [--nats URL]\n",
  );
  process.exit(2);
}
const dataDir = resolve(values["data-dir"] ?? process.env.KILN_DATA_DIR ?? ".kiln");
const creds = JSON.parse(readFileSync(join(dataDir, "nats", "credentials.json"), "utf8"));
// The data dir's credentials.json maps each component's NATS user to its password.
const dea = { user: "dea", pass: creds.users.dea };
const servers =
  values.nats ?? process.env.KILN_NATS_URL ?? `nats://127.0.0.1:${process.env.KILN_NATS_PORT ?? 4222}`;
const nc = await connect({ servers, user: dea.user, pass: dea.pass, maxReconnectAttempts: -1 });

const message = JSON.stringify({
  host,
  port,
  uris: [uri],
  app: "example-app",
  private_instance_id: `example-${host}-${port}`,
  private_instance_index: "0",
});
let intervalSec = 20;
const register = () => nc.publish("router.register", message);
nc.subscribe("router.start", {
  callback: (_err, msg) => {
    const start = JSON.parse(new TextDecoder().decode(msg.data));
    if (Number.isInteger(start.minimumRegisterIntervalInSeconds))
      intervalSec = start.minimumRegisterIntervalInSeconds;
    register();
  },
});
register();
let timer = setInterval(register, intervalSec * 1000);
setInterval(() => {
  clearInterval(timer);
  timer = setInterval(register, intervalSec * 1000);
}, 60_000).unref();
process.stdout.write(`registered http://${uri} → ${host}:${port} (Ctrl-C unregisters)\n`);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, async () => {
    nc.publish("router.unregister", message);
    await nc.drain();
    process.exit(0);
  });
}
