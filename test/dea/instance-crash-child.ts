// A DEA that crashes, for the adoption test in instances.test.ts: it starts the instances
// of the start request in argv, prints their ids and waits to be killed with SIGKILL, so
// none of its handlers runs and its containers outlive it. Run compiled (dist/test/dea).
import { Runc } from "../../dea/container/runc.js";
import { Instances } from "../../dea/instances/instances.js";
import { ResourceLedger } from "../../dea/placement/ledger.js";
import { ArchiveWork } from "../../dea/staging/archive.js";
import { createLogger } from "../../kernel/log.js";
import type { StartRequest } from "../../messaging/codec.js";
import { connectNats } from "../../messaging/connection.js";

interface CrashConfig {
  natsUrl: string;
  user: string;
  pass: string;
  runcRoot: string;
  dataDir: string;
  prefix: string;
  request: StartRequest;
}

if (process.argv[2] === undefined) {
  // Run by a test runner as a file of its own: nothing to do without the test's config.
  process.stdout.write("1..0 # SKIP started by instances.test.ts only\n");
  process.exit(0);
}
const config = JSON.parse(process.argv[2]) as CrashConfig;
const bus = await connectNats({
  servers: config.natsUrl,
  user: config.user,
  pass: config.pass,
  name: "crashing-dea",
});
const instances = new Instances({
  bus,
  deaId: "dea-crash",
  host: "127.0.0.1",
  runc: new Runc({ root: config.runcRoot }),
  archive: new ArchiveWork({ maxThreads: 1 }),
  blobs: await bus.nc.jetstream().views.os("kiln_blobs"),
  ledger: new ResourceLedger({ memoryMb: 4096, diskMb: 8192 }),
  dataDir: config.dataDir,
  uidRange: { first: 32_000, count: 100 },
  containerPrefix: config.prefix,
  output: () => {},
  log: createLogger("crashing-dea", { level: "warn" }),
});
await instances.adopt();
await instances.start(config.request);
process.stdout.write(`${JSON.stringify(instances.heartbeat().instances.map((i) => i.instanceId))}\n`);
setInterval(() => {}, 60_000);
