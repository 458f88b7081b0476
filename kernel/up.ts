// `kiln up`: the embedded default kernel on one machine — a private nats-server and
// one of each component as supervised child processes. Stops everything on SIGINT/SIGTERM.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ccConfig, parseCcArgs } from "../control/config.js";
import { containerRoot, type DeaConfig, deaConfig, parseDeaArgs } from "../dea/config.js";
import { probeIsolation } from "../dea/container/probe.js";
import { Runc } from "../dea/container/runc.js";
import { hmConfig, parseHmArgs } from "../hm/config.js";
import { type NatsServerHandle, startNatsServer } from "../messaging/nats-server.js";
import { parseRouterArgs, type RouterConfig, routerConfig, routerEnv } from "../router/config.js";
import { isLoopback, statusAuth } from "../router/status/auth.js";
import type { KernelConfig } from "./config.js";
import { KilnError } from "./errors.js";
import type { Logger } from "./log.js";
import { kilnBin } from "./paths.js";
import { loadOrCreateStatusCredentials, statusCredentialsPath } from "./status-credentials.js";
import { Supervisor } from "./supervisor.js";

export interface Kernel {
  nats: NatsServerHandle;
  supervisor: Supervisor;
  /** Lines telling the user where things listen and what to do next. */
  summary(): string[];
  stop(): Promise<void>;
}

/**
 * The settings of the kernel's components, checked before anything starts: each child reads the
 * same environment and flags, and one that cannot start would be restarted forever. Throws the
 * component's coded config error.
 */
export function componentSettings(
  config: KernelConfig,
  env: NodeJS.ProcessEnv = process.env,
): {
  router: RouterConfig;
  /** One per DEA, in start order. */
  deas: DeaConfig[];
  flags: { router: string[]; cc: string[]; deas: string[][]; hm: string[] };
} {
  const routerFlags = [
    "--port",
    String(config.routerPort),
    "--status-port",
    String(config.routerStatusPort),
    "--status-host",
    config.routerStatusHost,
    // Its registrars are this machine's DEAs, answering router.start over loopback in
    // milliseconds: a quarter of the standalone router's second is plenty to hear them.
    "--start-response-delay-ms",
    "250",
  ];
  const router = routerConfig(parseRouterArgs(routerFlags), env);
  // The controller writes the admin's first password into the kernel's data dir.
  const ccFlags = [
    "--port",
    String(config.ccPort),
    "--data-dir",
    config.dataDir,
    "--router-port",
    String(config.routerPort),
  ];
  ccConfig(parseCcArgs(ccFlags), env);
  // Several DEAs on one machine split its memory and disk (measured or configured) and each
  // has its own data dir (the first keeps `dea`, as with one) and its own 10000 uids.
  const first = deaConfig(parseDeaArgs(["--data-dir", deaDataDir(config, 0)]), env);
  const deaFlags = Array.from({ length: config.deas }, (_, i) => [
    "--data-dir",
    deaDataDir(config, i),
    ...(config.deas === 1
      ? []
      : [
          "--memory-mb",
          String(Math.max(1, Math.floor(first.memoryMb / config.deas))),
          "--disk-mb",
          String(Math.max(1, Math.floor(first.diskMb / config.deas))),
          "--uid-base",
          String(first.uidBase - i * 10_000),
        ]),
  ]);
  const deas = config.deas === 1 ? [first] : deaFlags.map((f) => deaConfig(parseDeaArgs(f), env));
  // The HM counts missed heartbeats in the DEA's own interval.
  const hmFlags = ["--heartbeat-ms", String(first.heartbeatIntervalMs)];
  hmConfig(parseHmArgs(hmFlags), env);
  return { router, deas, flags: { router: routerFlags, cc: ccFlags, deas: deaFlags, hm: hmFlags } };
}

/** The supervisor's name for the kernel's DEA number `i` (from 0): `dea`, then `dea-2`, `dea-3`, … */
function deaName(i: number): string {
  return i === 0 ? "dea" : `dea-${i + 1}`;
}

/** The data dir of the kernel's DEA number `i`, named as the DEA. */
function deaDataDir(config: KernelConfig, i: number): string {
  return join(config.dataDir, deaName(i));
}

/**
 * Removes every container left under the kernel's DEAs' data dirs: a DEA that had to be killed
 * (it did not stop in time) could not stop its instances. Nothing is found after a clean stop.
 */
async function removeLeftContainers(deas: DeaConfig[], log: Logger): Promise<void> {
  for (const dea of deas) {
    if (dea.isolation !== "runc") continue;
    const runc = new Runc({ root: containerRoot(dea.dataDir) });
    const left = await runc.list().catch(() => []);
    for (const c of left) {
      log.warn("container_left", { id: c.id, dataDir: dea.dataDir });
      await runc
        .delete(c.id)
        .catch((err: unknown) => log.error("container_remove_failed", { id: c.id, error: err }));
    }
  }
}

export async function startKernel(config: KernelConfig, log: Logger): Promise<Kernel> {
  const { router, deas, flags } = componentSettings(config);
  const dea = deas[0] as DeaConfig;
  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new KilnError(
      "KILN_KERNEL_DATA_DIR",
      `cannot create ${config.dataDir}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  // Whether the DEA can isolate apps here: one that cannot would exit at once and be restarted
  // forever, so it is left out and the summary says why. The probe (a container, some 200 ms)
  // runs while NATS and the other components start.
  const probing: Promise<string | null> =
    dea.isolation === "runc"
      ? probeIsolation(new Runc({ root: containerRoot(dea.dataDir) }))
      : Promise.resolve(null);
  // Settled early so a failure before it is awaited is not an unhandled rejection.
  probing.catch(() => {});
  // Status credentials given in the environment are the operator's; otherwise the data dir's,
  // passed in the environment (not argv, which every local user can read).
  const ownCredentials = router.statusUser === "" && router.statusPass === "";
  const statusEnv: NodeJS.ProcessEnv = {};
  if (ownCredentials) {
    const c = loadOrCreateStatusCredentials(config.dataDir);
    router.statusUser = c.user;
    router.statusPass = c.password;
    statusEnv[routerEnv.statusUser] = c.user;
    statusEnv[routerEnv.statusPass] = c.password;
  }
  statusAuth(router);
  const natsDir = join(config.dataDir, "nats");
  let nats = await startNatsServer({ dataDir: natsDir, port: config.natsPort });
  let stopping = false;
  // A dead nats-server comes back on the same port with the same users and JetStream store;
  // the components reconnect on their own and the router keeps its table meanwhile.
  const watchNats = (handle: NatsServerHandle): void => {
    void handle.exited.then(async (exit) => {
      if (stopping) return;
      log.error("nats_exited", { code: exit.code, signal: exit.signal, restarting: true });
      for (let attempt = 0; !stopping; attempt++) {
        try {
          nats = await startNatsServer({ dataDir: natsDir, port: handle.port });
          if (stopping) await nats.stop();
          else {
            log.info("nats_restarted", { url: nats.url, attempts: attempt + 1 });
            watchNats(nats);
          }
          return;
        } catch (err) {
          log.error("nats_restart_failed", { error: err, attempt: attempt + 1 });
          await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt)));
        }
      }
    });
  };
  watchNats(nats);
  const supervisor = new Supervisor(log.child("supervisor"));
  const componentEnv = (component: "router" | "cc" | "dea" | "hm"): NodeJS.ProcessEnv => {
    const c = nats.credentials(component);
    return { KILN_NATS_URL: nats.url, KILN_NATS_USER: c.user, KILN_NATS_PASS: c.pass };
  };
  supervisor.start({
    name: "router",
    command: process.execPath,
    args: [kilnBin, "router", "--nats", nats.url, ...flags.router],
    env: { ...componentEnv("router"), ...statusEnv },
    stopOrder: 3,
  });

  supervisor.start({
    name: "cc",
    command: process.execPath,
    args: [kilnBin, "cc", "--nats", nats.url, ...flags.cc],
    env: componentEnv("cc"),
    stopOrder: 1,
  });
  const deaUnable = await probing;
  if (deaUnable === null) {
    flags.deas.forEach((deaFlags, i) => {
      supervisor.start({
        name: deaName(i),
        command: process.execPath,
        args: [kilnBin, "dea", "--nats", nats.url, ...deaFlags],
        env: componentEnv("dea"),
        stopOrder: 2,
      });
    });
  } else log.warn("dea_not_started", { reason: deaUnable });
  supervisor.start({
    name: "hm",
    command: process.execPath,
    args: [kilnBin, "hm", "--nats", nats.url, ...flags.hm],
    env: componentEnv("hm"),
    stopOrder: 0,
  });

  const wildcard = ["0.0.0.0", "::"].includes(config.routerStatusHost);
  const statusAddress = wildcard
    ? "localhost"
    : config.routerStatusHost.includes(":")
      ? `[${config.routerStatusHost}]`
      : config.routerStatusHost;
  let stopped: Promise<void> | null = null;
  return {
    /** The running server (a new handle after a restart). */
    get nats() {
      return nats;
    },
    supervisor,
    summary: () => [
      `Kiln is up (data in ${config.dataDir}).`,
      `  NATS      ${nats.url}  (users and passwords in ${join(nats.dataDir, "credentials.json")})`,
      `  router    http://localhost:${config.routerPort}  (status http://${statusAddress}:${config.routerStatusPort}/health)`,
      `  status    /routes and /metrics need ${ownCredentials ? `the user and password in ${statusCredentialsPath(config.dataDir)}` : `${routerEnv.statusUser} and ${routerEnv.statusPass}`}${isLoopback(config.routerStatusHost) ? "" : `; listening on ${config.routerStatusHost}, off loopback`}`,
      `  API       http://localhost:${config.ccPort}  (first admin password in ${join(config.dataDir, "admin-credentials.json")})`,
      deaUnable === null
        ? `  ${deas.length === 1 ? "DEA " : "DEAs"}      ${deas.length === 1 ? "runs" : `${deas.length} run`} apps in ${dea.isolation === "runc" ? "runc containers" : "plain processes (--isolation none: not isolated)"}, ${dea.memoryMb} MiB for instances${deas.length === 1 ? "" : " each"} (data in ${deas.map((d) => d.dataDir).join(", ")})`
        : `  DEA       not started: ${deaUnable}. Set KILN_DEA_ISOLATION=none to run apps as plain processes (not isolated).`,
      "  HM        restarts crashed and lost instances, stops extra ones (asks the controller)",
      "Next:",
      `  - log in:           node bin/kiln.js login -a http://localhost:${config.ccPort} -u admin -p <the password in ${join(config.dataDir, "admin-credentials.json")}>`,
      "  - choose a space:   node bin/kiln.js create-space dev && node bin/kiln.js target -s dev",
      "  - push an app:      cd examples/node-hello && node ../../bin/kiln.js push   (its manifest.yml names it hello)",
      `  - check it:         curl http://hello.localhost:${config.routerPort}/   (or open it in a browser)`,
      "  - scale it:         node ../../bin/kiln.js scale hello -i 3",
      "  - stop:             Ctrl-C",
    ],
    stop: () => {
      stopped ??= (async () => {
        stopping = true;
        await supervisor.stop(config.stopTimeoutMs);
        if (deaUnable === null) await removeLeftContainers(deas, log);
        await nats.stop();
      })();
      return stopped;
    },
  };
}
