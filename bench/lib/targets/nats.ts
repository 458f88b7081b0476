// A private nats-server for a bench's router, from messaging's launcher (per-component
// users, as `kiln up` runs it): the router connects as "router", the bench registers
// routes as a DEA would ("dea"). Stopped with everything else by stopAll()/SIGINT.
import { connect, type NatsConnection } from "nats";
import { type NatsComponent, startNatsServer } from "../../../messaging/nats-server.js";
import { registerStopper } from "../procs.js";

export interface BenchNats {
  url: string;
  pid: number;
  /** Environment for a Kiln component connecting as `component` (as kernel/up.ts passes it). */
  env(component: NatsComponent): NodeJS.ProcessEnv;
  /** A client connection as `component`. */
  connectAs(component: NatsComponent, name: string): Promise<NatsConnection>;
  stop(): Promise<void>;
}

export async function startBenchNats(dataDir: string): Promise<BenchNats> {
  const handle = await startNatsServer({ dataDir, port: 0 });
  const forget = registerStopper(() => handle.stop());
  return {
    url: handle.url,
    pid: handle.pid,
    env(component) {
      const c = handle.credentials(component);
      return { ...process.env, KILN_NATS_URL: handle.url, KILN_NATS_USER: c.user, KILN_NATS_PASS: c.pass };
    },
    connectAs(component, name) {
      const c = handle.credentials(component);
      return connect({ servers: handle.url, user: c.user, pass: c.pass, name });
    },
    async stop() {
      forget();
      await handle.stop();
    },
  };
}
