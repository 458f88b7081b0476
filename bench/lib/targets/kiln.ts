// The Kiln router under test: `node bin/kiln.js router` as a child with its own private
// nats-server; routes come in as gorouter `router.register` JSON over NATS, as a DEA would
// send them. Each instance serves one kind of case (one route, the big table, access log on)
// so a single-route case never runs against a router holding the big table.
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "nats";
import { kilnBin } from "../../../kernel/paths.js";
import { encodeRegistryMessage } from "../../../messaging/gorouter.js";
import { ROUTER_REGISTER, ROUTER_UNREGISTER } from "../../../messaging/subjects.js";
import { BenchError } from "../errors.js";
import { freePort, type Managed, startProcess, waitForPort, waitForStatus } from "../procs.js";
import { type BenchNats, startBenchNats } from "./nats.js";
import type { CaseId, Endpoint, RouteSet, Target } from "./types.js";

export type KilnRole = "single" | "table" | "accesslog";

export interface KilnOptions {
  backendPort: number;
  routes: RouteSet;
  /** Folder for this run's files (nats log, access log). */
  dir: string;
  /** The \`kiln\` entry script (default bin/kiln.js); run as \`node <kilnBin> router ...\`. */
  kilnBin?: string;
  /** "kiln-base" for the other build of a before/after run (target id "kiln-base"). */
  family?: "kiln" | "kiln-base";
  /** Extra router arguments for every instance (e.g. --threads 2). */
  extraArgs: readonly string[];
  /** Router arguments that turn the access log on; "{file}" becomes a path in `dir`. */
  accessLogArgs: readonly string[];
  /** Which instances to start (each one is a router + nats-server). */
  roles: readonly KilnRole[];
  /** Uris per router.register message for the big table. */
  urisPerMessage?: number;
  /** Re-register when the last registration is older than this (the router prunes stale routes). */
  refreshAfterMs?: number;
  log?: (line: string) => void;
}

/** A gorouter register/unregister message for the bench backend. */
export function registerMessage(backendPort: number, uris: readonly string[]): Uint8Array {
  return encodeRegistryMessage({
    host: "127.0.0.1",
    port: backendPort,
    uris: [...uris],
    app: "bench-app",
    privateInstanceId: "bench-backend-0",
    privateInstanceIndex: "0",
    // Long enough that nothing is pruned during a run; the bench also re-registers.
    staleThresholdInSeconds: 3600,
    tags: { component: "bench" },
  });
}

interface Instance {
  role: KilnRole;
  nats: BenchNats;
  nc: NatsConnection;
  router: Managed;
  port: number;
  statusPort: number;
  hosts: readonly string[];
  lastRegister: number;
  sentinel: number;
  /** Fields of the router's `router_listening` log line (threads, table, upstream), when seen. */
  listening: Record<string, unknown>;
}

/** The fields of the last `router_listening` JSON log line in a router's output. */
export function listeningInfo(output: string): Record<string, unknown> {
  const lines = output.split("\n").filter((l) => l.includes('"router_listening"'));
  const last = lines[lines.length - 1];
  if (last === undefined) return {};
  try {
    const v: unknown = JSON.parse(last.slice(last.indexOf("{")));
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function roleOf(c: CaseId): KilnRole {
  if (c === "routes100k") return "table";
  if (c === "accesslog") return "accesslog";
  return "single";
}

/**
 * Publishes every route of the instance, then a fresh sentinel route, and resolves once the
 * router answers the sentinel (NATS keeps one publisher's order, so everything before it is
 * applied). Like a real registrar it publishes again while the router has not taken it yet
 * (a message sent before the router's subscription is live is simply lost).
 */
async function registerAll(inst: Instance, o: KilnOptions): Promise<void> {
  const per = o.urisPerMessage ?? 1000;
  const prev = inst.sentinel;
  inst.sentinel++;
  const sentinel = `sentinel-${inst.sentinel}.bench.kiln`;
  const publishAll = async (): Promise<void> => {
    for (let i = 0; i < inst.hosts.length; i += per) {
      inst.nc.publish(ROUTER_REGISTER, registerMessage(o.backendPort, inst.hosts.slice(i, i + per)));
    }
    inst.nc.publish(ROUTER_REGISTER, registerMessage(o.backendPort, [sentinel]));
    await inst.nc.flush();
  };
  const deadline = Date.now() + 60_000;
  let ok = false;
  while (!ok && Date.now() < deadline) {
    await publishAll();
    ok = await waitForStatus(inst.port, "/", [sentinel], 200, 5_000);
  }
  if (!ok) {
    throw new BenchError(
      "KILN_BENCH_START_FAILED",
      `kiln router (${inst.role}) never answered 200 for registered routes:\n${inst.router.tail()}`,
    );
  }
  if (prev > 0) {
    inst.nc.publish(ROUTER_UNREGISTER, registerMessage(o.backendPort, [`sentinel-${prev}.bench.kiln`]));
  }
  inst.lastRegister = Date.now();
}

async function startInstance(role: KilnRole, o: KilnOptions): Promise<Instance> {
  const dir = join(o.dir, `kiln-${role}`);
  mkdirSync(dir, { recursive: true });
  const nats = await startBenchNats(join(dir, "nats"));
  const port = await freePort();
  const statusPort = await freePort();
  const args = [
    o.kilnBin ?? kilnBin,
    "router",
    "--nats",
    nats.url,
    "--port",
    String(port),
    "--status-port",
    String(statusPort),
  ];
  args.push(...o.extraArgs);
  if (role === "accesslog")
    args.push(...o.accessLogArgs.map((a) => a.replaceAll("{file}", join(dir, "access.log"))));
  const router = startProcess(`kiln router (${role})`, process.execPath, args, { env: nats.env("router") });
  let nc: NatsConnection | undefined;
  try {
    await waitForPort(port, router, 20_000);
    // /health turns 200 once the router is subscribed and has had its first route sync.
    await waitForStatus(statusPort, "/health", ["localhost"], 200, 20_000);
    nc = await nats.connectAs("dea", `bench-registrar-${role}`);
    const hosts = role === "table" ? o.routes.all : [o.routes.single];
    const inst: Instance = {
      role,
      nats,
      nc,
      router,
      port,
      statusPort,
      hosts,
      lastRegister: 0,
      sentinel: 0,
      listening: listeningInfo(router.tail()),
    };
    const t = Date.now();
    await registerAll(inst, o);
    // Spot-check the hosts the load will use.
    const probe = role === "table" ? o.routes.requested : hosts;
    if (!(await waitForStatus(port, "/", probe, 200, 30_000))) {
      throw new BenchError(
        "KILN_BENCH_START_FAILED",
        `kiln router (${role}) does not answer every requested host`,
      );
    }
    o.log?.(
      `kiln router (${role}) ready on ${port}, ${hosts.length} routes registered in ${Date.now() - t} ms`,
    );
    return inst;
  } catch (err) {
    await nc?.close().catch(() => {});
    await router.stop();
    await nats.stop();
    throw err;
  }
}

async function stopInstance(inst: Instance): Promise<void> {
  await inst.nc.close().catch(() => {});
  await inst.router.stop();
  await inst.nats.stop();
}

/**
 * Starts the router instances; throws a BenchError (with the router's output) when the
 * router cannot start, so the caller can skip Kiln and keep the references running.
 */
export async function startKiln(o: KilnOptions, label: string): Promise<Target> {
  const instances = new Map<KilnRole, Instance>();
  try {
    for (const role of o.roles) instances.set(role, await startInstance(role, o));
  } catch (err) {
    for (const inst of instances.values()) await stopInstance(inst);
    throw err;
  }
  const refreshAfter = o.refreshAfterMs ?? 60_000;
  return {
    id: o.family ?? "kiln",
    family: o.family ?? "kiln",
    label,
    endpoint(c: CaseId): Endpoint | undefined {
      const inst = instances.get(roleOf(c));
      if (inst === undefined) return undefined;
      return { port: inst.port, hosts: c === "routes100k" ? o.routes.requested : [o.routes.single] };
    },
    cpuRoots(c: CaseId): number[] {
      const inst = instances.get(roleOf(c));
      return inst === undefined ? [] : [inst.router.pid];
    },
    async prepare(c: CaseId): Promise<void> {
      const inst = instances.get(roleOf(c));
      if (inst === undefined) return;
      if (!inst.router.isAlive()) {
        throw new BenchError(
          "KILN_BENCH_START_FAILED",
          `kiln router (${inst.role}) exited:\n${inst.router.tail()}`,
        );
      }
      if (Date.now() - inst.lastRegister > refreshAfter) await registerAll(inst, o);
    },
    describe(): string[] {
      const out: string[] = [];
      const first = instances.values().next().value;
      if (first !== undefined) {
        const l = first.listening;
        const args = o.extraArgs.length > 0 ? `, arguments \`${o.extraArgs.join(" ")}\`` : "";
        const slice = typeof l.sliceUs === "number" && l.sliceUs > 0 ? ` with a ${l.sliceUs} µs slice` : "";
        const sched = typeof l.scheduling === "string" ? `, ${l.scheduling} scheduling${slice}` : "";
        out.push(
          `${label} as it reported itself: ${String(l.threads ?? "?")} worker threads, ${String(l.table ?? "?")} route table, ${String(l.upstream ?? "?")} upstream client${l.fastPath === true ? ", native request path" : ""}${sched}${args}.`,
        );
      }
      if (!instances.has("accesslog")) return out;
      const file = join(o.dir, "kiln-accesslog", "access.log");
      let size = -1;
      try {
        size = statSync(file).size;
      } catch {
        // no file: the flag did not turn the log on
      }
      out.push(
        size >= 0
          ? `Kiln access log case: router run with \`${o.accessLogArgs.join(" ")}\`; ${(size / 1048576).toFixed(1)} MiB of access log written over the run.`
          : `Kiln access log case: no access log file after \`${o.accessLogArgs.join(" ")}\`; the flag may not turn the log on.`,
      );
      return out;
    },
    async stop(): Promise<void> {
      for (const inst of instances.values()) await stopInstance(inst);
    },
  };
}
