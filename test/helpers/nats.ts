// A private nats-server for one test: random port, temp data dir, stopped and removed in
// t.teardown together with every connection opened through `connect`.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { type ConnectNatsOptions, connectNats, type KilnConnection } from "../../messaging/connection.js";
import {
  type NatsComponent,
  type NatsServerHandle,
  type StartNatsServerOptions,
  startNatsServer,
} from "../../messaging/nats-server.js";
import { until } from "./until.js";

interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
}

export interface TestNats extends NatsServerHandle {
  /** Connects as a component's user (default admin); closed in teardown. Fails fast, reconnects quickly. */
  connect(component?: NatsComponent, options?: Partial<ConnectNatsOptions>): Promise<KilnConnection>;
}

/** What a component process started by a test needs of a server: its URL and the users' passwords. */
export type NatsEndpoint = Pick<TestNats, "url" | "credentials">;

export async function startTestNats(
  t: Teardownable,
  options: Partial<StartNatsServerOptions> = {},
): Promise<TestNats> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "kiln-nats-test-"));
  const connections: KilnConnection[] = [];
  let server: NatsServerHandle;
  try {
    server = await startNatsServer({ port: 0, ...options, dataDir });
  } catch (err) {
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  t.teardown(async () => {
    await Promise.allSettled(connections.map((c) => c.close()));
    await server.stop();
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  });
  const handle: TestNats = {
    url: server.url,
    port: server.port,
    host: server.host,
    dataDir: server.dataDir,
    pid: server.pid,
    exited: server.exited,
    credentials: (component) => server.credentials(component),
    stop: () => server.stop(),
    async connect(component = "admin", extra = {}) {
      const { user, pass } = server.credentials(component);
      const c = await connectNats({
        servers: server.url,
        user,
        pass,
        name: `test-${component}`,
        waitOnFirstConnect: false,
        reconnectTimeWaitMs: 100,
        reconnectJitterMs: 50,
        ...extra,
      });
      connections.push(c);
      return c;
    },
  };
  return handle;
}

/**
 * Resolves once a client of `node` is told of `servers` servers in its INFO: the cluster's
 * routes are up. (Its JetStream meta leader may still be in election.)
 */
export async function untilClusterFormed(node: NatsEndpoint, servers: number, ms: number): Promise<void> {
  await until(
    `${servers} servers in INFO`,
    async () => {
      const nc = await connect({ servers: node.url, ...node.credentials("admin") });
      const n = nc.info?.connect_urls?.length ?? 0;
      await nc.close();
      return n === servers;
    },
    ms,
    200,
  );
}
