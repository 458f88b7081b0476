// Replicas of Kiln's JetStream assets: 3 on a 3-node cluster (the launcher's cluster mode,
// real servers on loopback), 1 on a lone server, the KILN_NATS_REPLICAS override and its
// coded config errors in every component that creates assets.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServerInfo } from "nats";
import t from "tap";
import { ccConfig } from "../../control/config.js";
import { deaConfig } from "../../dea/config.js";
import { hmConfig } from "../../hm/config.js";
import { KilnError } from "../../kernel/errors.js";
import { blobStore, ensureLogStream } from "../../messaging/jetstream.js";
import { startNatsServer } from "../../messaging/nats-server.js";
import { jetStreamReplicas, replicasFor } from "../../messaging/replicas.js";
import { STREAM_LOGS } from "../../messaging/subjects.js";
import { guardChildren } from "../helpers/children.js";
import { startTestNats, untilClusterFormed } from "../helpers/nats.js";
import { freePort } from "../helpers/ports.js";

guardChildren(t);

const info = (cluster: string | undefined, urls: string[] | undefined): ServerInfo =>
  ({ cluster, connect_urls: urls }) as ServerInfo;

t.test("replicasFor: 3 from three servers up, 1 below, the override wins", async (t) => {
  t.equal(replicasFor(undefined), 1);
  t.equal(replicasFor(info(undefined, undefined)), 1, "no cluster");
  t.equal(replicasFor(info("kiln", undefined)), 1, "a lone cluster node announces no URLs");
  t.equal(replicasFor(info("kiln", ["a:4222", "b:4222"])), 1);
  t.equal(replicasFor(info("kiln", ["a:4222", "b:4222", "c:4222"])), 3);
  t.equal(replicasFor(info("kiln", ["a:4222", "b:4222", "c:4222", "d:4222", "e:4222"])), 3);
  t.equal(replicasFor(info("kiln", ["a:4222", "a:4222", "b:4222"])), 1, "duplicates count once");
  t.equal(replicasFor(info("kiln", ["a:4222", "b:4222", "c:4222"]), 1), 1, "override down");
  t.equal(replicasFor(info(undefined, undefined), 3), 3, "override up");
  t.equal(replicasFor(info("kiln", ["a:4222", "b:4222", "c:4222"]), 0), 3, "0 = decide");
});

t.test("KILN_NATS_REPLICAS: 1..5, a coded config error otherwise", async (t) => {
  const configs = [
    ["KILN_CC_CONFIG", (env: NodeJS.ProcessEnv) => ccConfig({}, env).natsReplicas],
    ["KILN_DEA_CONFIG", (env: NodeJS.ProcessEnv) => deaConfig({}, env).natsReplicas],
    ["KILN_HM_CONFIG", (env: NodeJS.ProcessEnv) => hmConfig({}, env).natsReplicas],
  ] as const;
  for (const [code, read] of configs) {
    t.equal(read({}), 0, `${code}: decided from the cluster by default`);
    t.equal(read({ KILN_NATS_REPLICAS: "3" }), 3);
    t.equal(read({ KILN_NATS_REPLICAS: "1" }), 1);
    for (const bad of ["0", "6", "2.5", "three", " "]) {
      try {
        read({ KILN_NATS_REPLICAS: bad });
        t.fail(`${code}: ${JSON.stringify(bad)} accepted`);
      } catch (err) {
        t.ok(err instanceof KilnError, "coded");
        t.equal((err as KilnError).code, code);
        t.match((err as Error).message, /KILN_NATS_REPLICAS/);
      }
    }
  }
});

t.test("a lone server: replicas 1, assets R1", async (t) => {
  const nats = await startTestNats(t);
  const bus = await nats.connect();
  t.equal(jetStreamReplicas(bus.nc), 1);
  await ensureLogStream(bus.nc, jetStreamReplicas(bus.nc));
  const si = await (await bus.nc.jetstreamManager()).streams.info(STREAM_LOGS);
  t.equal(si.config.num_replicas, 1);
});

t.test("the launcher's cluster mode: three nodes, one set of users, R3 assets", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "kiln-replicas-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const clusterPorts = [await freePort(), await freePort(), await freePort()];
  const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
  const nodes: Awaited<ReturnType<typeof startNatsServer>>[] = [];
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
  for (let i = 0; i < 3; i++) {
    nodes.push(
      await startNatsServer({
        dataDir: join(root, `n${i}`),
        port: 0,
        serverName: `n${i}`,
        cluster: { port: clusterPorts[i] as number, routes },
        ...(i === 0 ? {} : { credentialsFile: join(root, "n0", "credentials.json") }),
      }),
    );
  }
  const [n0, n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
  t.same(n1.credentials("cc"), n0.credentials("cc"), "the second node took the first's users");
  t.same(n2.credentials("admin"), n0.credentials("admin"));

  const { connectNats } = await import("../../messaging/connection.js");
  const bus = await connectNats({ servers: n2.url, ...n2.credentials("admin"), waitOnFirstConnect: false });
  t.teardown(() => bus.close());
  await untilClusterFormed(n1, 3, 20_000);
  // Connected before the routes were up, `bus` may have seen fewer servers: ask a fresh one.
  const cc = await connectNats({ servers: n1.url, ...n1.credentials("cc"), waitOnFirstConnect: false });
  t.teardown(() => cc.close());
  t.equal(jetStreamReplicas(cc.nc), 3, "3 servers: R3");
  // The JetStream meta leader is elected a moment after the routes form: creating the assets
  // rides that out (duringFailover), as a component started with its cluster must.
  await ensureLogStream(cc.nc, 3);
  await blobStore(cc.nc, 3);
  const jsm = await bus.nc.jetstreamManager();
  t.equal((await jsm.streams.info(STREAM_LOGS)).config.num_replicas, 3, "KILN_LOGS is R3");
  t.equal((await jsm.streams.info("OBJ_kiln_blobs")).config.num_replicas, 3, "kiln_blobs is R3");

  t.test("a malformed route or credentials file is refused", async (t) => {
    await t.rejects(
      startNatsServer({
        dataDir: join(root, "bad1"),
        port: 0,
        cluster: { port: 0, routes: ["not a route"] },
      }),
      { code: "KILN_NATS_START_FAILED" },
    );
    await t.rejects(
      startNatsServer({ dataDir: join(root, "bad2"), port: 0, cluster: { port: 0, routes: [] } }),
      { code: "KILN_NATS_START_FAILED" },
    );
    await t.rejects(
      startNatsServer({ dataDir: join(root, "bad3"), port: 0, credentialsFile: join(root, "none.json") }),
      { code: "KILN_NATS_BAD_CREDENTIALS_FILE" },
    );
  });
});
