// `kiln up` (the whole embedded kernel) and `kiln nats` (the private nats-server alone).
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  deasSetting,
  type KernelConfig,
  kernelConfig,
  kernelFlags,
  portSetting,
} from "../../kernel/config.js";
import { KilnError } from "../../kernel/errors.js";
import { createLogger } from "../../kernel/log.js";
import { DEFAULT_CLUSTER_NAME, NATS_NAME } from "../../messaging/nats-server.js";
import { parseFlags } from "../args.js";
import type { Command } from "../command.js";

/**
 * The first SIGINT or SIGTERM. Later ones are ignored while the stop runs (it has its own
 * time limits): Ctrl-C under `npm start` reaches the kernel twice, from the terminal and from
 * npm forwarding it, and the default action would end the process before it stopped what it
 * started. The listeners do not keep the process alive.
 */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let first: NodeJS.Signals | null = null;
    const on = (sig: NodeJS.Signals) => {
      if (first !== null) return;
      first = sig;
      resolve(sig);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

/** `kiln up`'s settings: its flags over the environment's (KILN_*_PORT, …) over the defaults. */
export function upConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): KernelConfig {
  const s = { type: "string" } as const;
  const f = parseFlags("up", argv, {
    [kernelFlags.dataDir]: s,
    [kernelFlags.natsPort]: s,
    [kernelFlags.routerPort]: s,
    [kernelFlags.routerStatusPort]: s,
    [kernelFlags.routerStatusHost]: s,
    [kernelFlags.ccPort]: s,
    [kernelFlags.deas]: s,
  });
  const port = (flag: "nats-port" | "router-port" | "router-status-port" | "cc-port"): number | undefined => {
    const raw = f[flag];
    return raw === undefined ? undefined : portSetting(raw, `--${flag}`);
  };
  return kernelConfig(
    {
      dataDir: f["data-dir"],
      natsPort: port("nats-port"),
      routerPort: port("router-port"),
      routerStatusPort: port("router-status-port"),
      routerStatusHost: f["router-status-host"] || undefined,
      ccPort: port("cc-port"),
      deas:
        f[kernelFlags.deas] === undefined ? undefined : deasSetting(f[kernelFlags.deas] as string, "--deas"),
    },
    env,
  );
}

/** `kiln nats`'s settings: where and how the server runs, and the cluster it joins, if any. */
export interface NatsSettings {
  dataDir: string;
  port: number;
  host: string;
  /** server_name; unique per node of a cluster (the launcher picks one when absent). */
  name: string | undefined;
  cluster: { name: string; port: number; routes: string[] } | undefined;
  /** Another node's credentials.json to share its users. */
  credentials: string | undefined;
}

function natsConfigError(flag: string, what: string, raw: string): KilnError {
  return new KilnError("KILN_KERNEL_CONFIG", `${flag} must be ${what}, got "${raw}"`);
}

/** A comma-separated list of nats://host:port route URLs (the other nodes' cluster ports). */
function routesSetting(raw: string): string[] {
  const routes = raw
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r !== "");
  const ok = (r: string): boolean => {
    try {
      const u = new URL(r.includes("://") ? r : `nats://${r}`);
      return (u.protocol === "nats:" || u.protocol === "nats-route:") && u.hostname !== "" && u.port !== "";
    } catch {
      return false;
    }
  };
  if (routes.length === 0 || !routes.every(ok))
    throw natsConfigError("--routes", "a comma-separated list of nats://host:port", raw);
  return routes;
}

/** `kiln nats`'s settings: its flags over the environment's over the defaults. */
export function natsSettings(argv: string[], env: NodeJS.ProcessEnv = process.env): NatsSettings {
  const f = parseFlags("nats", argv, {
    "data-dir": { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
    name: { type: "string" },
    "cluster-name": { type: "string" },
    "cluster-port": { type: "string" },
    routes: { type: "string" },
    credentials: { type: "string" },
  });
  const config = kernelConfig({ dataDir: f["data-dir"] }, env);
  const host = f.host;
  if (host !== undefined && (host === "" || /[\s\p{Cc}]/u.test(host)))
    throw natsConfigError("--host", "an address without spaces", host);
  for (const flag of ["name", "cluster-name"] as const) {
    const v = f[flag];
    if (v !== undefined && !NATS_NAME.test(v))
      throw natsConfigError(`--${flag}`, "letters, digits, '_', '.' or '-' (at most 64)", v);
  }
  const clusterPort =
    f["cluster-port"] === undefined ? undefined : portSetting(f["cluster-port"], "--cluster-port");
  const routes = f.routes === undefined ? undefined : routesSetting(f.routes);
  // nats-server 2.9 will not run JetStream in a cluster without routes, nor route without a port.
  if ((clusterPort === undefined) !== (routes === undefined)) {
    const [given, missing] =
      clusterPort === undefined ? ["routes", "cluster-port"] : ["cluster-port", "routes"];
    throw new KilnError(
      "KILN_KERNEL_CONFIG",
      `--${given} "${f[given as "routes"]}" needs --${missing} too: a cluster node listens for routes and dials the other nodes`,
    );
  }
  const credentials = f.credentials;
  if (credentials !== undefined && !existsSync(credentials))
    throw natsConfigError("--credentials", "an existing credentials.json (from the first node)", credentials);
  return {
    dataDir: config.dataDir,
    port: f.port === undefined ? config.natsPort : portSetting(f.port, "--port"),
    host: host ?? "127.0.0.1",
    name: f.name,
    cluster:
      clusterPort === undefined || routes === undefined
        ? undefined
        : { name: f["cluster-name"] ?? DEFAULT_CLUSTER_NAME, port: clusterPort, routes },
    credentials: credentials === undefined ? undefined : resolve(credentials),
  };
}

export const upCommand: Command = {
  summary: "start the embedded kernel: private NATS and one of each component (--deas N: N DEAs)",
  usage:
    "[--data-dir DIR] [--nats-port N] [--router-port N] [--router-status-port N] [--router-status-host H] [--cc-port N] [--deas N]",
  async run(argv) {
    const config = upConfig(argv);
    const log = createLogger("kernel");
    const signal = untilSignal();
    // Loaded here, not at the top: every client command would pay for the kernel's modules.
    const { startKernel } = await import("../../kernel/up.js");
    const kernel = await startKernel(config, log);
    process.stdout.write(`${kernel.summary().join("\n")}\n`);
    const sig = await signal;
    log.info("stopping", { signal: sig });
    await kernel.stop();
    log.info("stopped");
    return 0;
  },
};

export const natsCommand: Command = {
  summary: "run the private nats-server (JetStream, per-component users), alone or as a cluster node",
  usage:
    "[--data-dir DIR] [--port N] [--host ADDR] [--name NAME] [--cluster-port N --routes URL,URL [--cluster-name NAME]] [--credentials FILE]",
  async run(argv) {
    const settings = natsSettings(argv);
    const signal = untilSignal();
    const { startNatsServer } = await import("../../messaging/nats-server.js");
    const log = createLogger("nats");
    const nats = await startNatsServer({
      dataDir: join(settings.dataDir, "nats"),
      port: settings.port,
      host: settings.host,
      ...(settings.name === undefined ? {} : { serverName: settings.name }),
      ...(settings.cluster === undefined ? {} : { cluster: settings.cluster }),
      ...(settings.credentials === undefined ? {} : { credentialsFile: settings.credentials }),
      // The server's warnings and errors (a route that does not answer, a lost peer) matter to
      // whoever runs a cluster node; its info lines would drown them.
      log: (line) => {
        // (Plaintext passwords: by design, in a 0600 file.)
        if ((line.level === "warn" || line.level === "error") && !line.msg.startsWith("Plaintext passwords"))
          log[line.level](line.msg, { source: line.source });
      },
    });
    const cluster = settings.cluster;
    process.stdout.write(
      [
        `nats-server listening on ${nats.url}`,
        ...(cluster === undefined
          ? []
          : [`cluster ${cluster.name}: routes on port ${cluster.port}, to ${cluster.routes.join(", ")}`]),
        `credentials: ${join(nats.dataDir, "credentials.json")}`,
        "stop: Ctrl-C",
        "",
      ].join("\n"),
    );
    const ended = await Promise.race([signal, nats.exited]);
    if (typeof ended !== "string") {
      // The server died under us (killed, out of disk): say so and fail, so a supervisor restarts us.
      log.error("nats_server_exited", { code: ended.code, signal: ended.signal });
      return 1;
    }
    await nats.stop();
    return 0;
  },
};
