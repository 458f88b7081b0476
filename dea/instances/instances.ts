// The DEA's running instances: dea.start fetches the droplet, gives each instance its own
// directory, uid, port and container, waits for its health check and registers its routes;
// the moment its process ends the DEA unregisters it and publishes droplet.exited, then cleans
// up. dea.update changes a running instance's routes in place (a route mapped or unmapped);
// dea.stop, evacuation, shutdown, adoption of a previous run's leftovers and the usage
// heartbeat complete the life cycle. One Instances object per DEA process.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmod, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ObjectStore, Subscription } from "nats";
import type { Logger } from "../../kernel/log.js";
import {
  type DeaHeartbeat,
  decode,
  type ExitReason,
  encode,
  type InstanceState,
  type StartRequest,
  type StopRequest,
  type UpdateRequest,
} from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { DEA_HEARTBEAT, DEA_STOP, DEA_UPDATE, DROPLET_EXITED, deaStart } from "../../messaging/subjects.js";
import { removeBundle } from "../container/bundle.js";
import { exitReason } from "../container/container.js";
import { removeLeftovers } from "../container/leftovers.js";
import type { Runc } from "../container/runc.js";
import { appMountPoint, type ContainerSpec, cpuSharesFor } from "../container/spec.js";
import { pipeLines } from "../logs/lines.js";
import type { ResourceLedger } from "../placement/ledger.js";
import type { ArchiveWork } from "../staging/archive.js";
import { instanceDefaults } from "./config.js";
import { DropletCache } from "./droplets.js";
import { instanceEnv } from "./env.js";
import { InstanceError } from "./errors.js";
import { checkOnce, type HealthCheck, healthCheckType, waitHealthy } from "./health.js";
import { PortPool } from "./ports.js";
import { type InstanceProcess, type ProcessExit, runContainer, runPlain, signalUid } from "./process.js";
import { Registrar } from "./registrar.js";
import { UidPool, type UidRange } from "./uids.js";

const run = promisify(execFile);

export interface InstanceOrigin {
  app: string;
  index: number;
  instanceId: string;
}

export interface InstancesOptions {
  bus: KilnConnection;
  deaId: string;
  /** Address the router reaches this DEA's instances on. */
  host: string;
  /** null: --isolation none (plain processes under prlimit). */
  runc: Runc | null;
  archive: ArchiveWork;
  /** The kiln_blobs object store holding droplets. */
  blobs: ObjectStore;
  ledger: ResourceLedger;
  /** The DEA's data directory: instances/ and droplets/ are made in it. */
  dataDir: string;
  uidRange?: UidRange;
  stopGraceMs?: number;
  heartbeatIntervalMs?: number;
  /** Every line an instance writes, split on \n, lines over 64 KiB cut. */
  output: (origin: InstanceOrigin, stream: "stdout" | "stderr", text: string) => void;
  log: Logger;
  dropletCacheBytes?: number;
  containerPrefix?: string;
  httpCheckIntervalMs?: number;
}

/** What the DEA keeps about an instance on disk, so a restarted DEA can report it. */
interface InstanceRecord {
  app: string;
  index: number;
  version: string;
  instanceId: string;
  containerId: string;
  uid: number;
  /** Host pid of a plain process (--isolation none); 0 in a container. */
  pid: number;
}

interface Instance {
  readonly req: StartRequest;
  readonly index: number;
  readonly instanceId: string;
  readonly containerId: string;
  readonly origin: InstanceOrigin;
  readonly dir: string;
  /** Its routes: req.uris at start, the latest dea.update's list after one. */
  uris: string[];
  uid: number;
  port: number;
  state: InstanceState;
  stateSince: number;
  proc: InstanceProcess | null;
  /** Why it ends, once the DEA has decided to end it. */
  reason: ExitReason | null;
  description: string;
  /** droplet.exited already published (evacuation announces before stopping). */
  announced: boolean;
  restart: boolean;
  killTimer: NodeJS.Timeout | null;
  cgroups: Record<string, string> | null;
  usage: { memoryBytes: number; diskBytes: number; cpuPermille: number; cpuNs: number; at: number };
  done: Promise<void>;
  resolveDone: () => void;
}

type Counts = Record<InstanceState, number>;

export class Instances {
  private readonly o: Required<Omit<InstancesOptions, "runc">> & { runc: Runc | null };
  private readonly live = new Map<string, Instance>();
  private readonly uids: UidPool;
  private readonly ports = new PortPool();
  private readonly droplets: DropletCache;
  private readonly registrar: Registrar;
  private readonly instancesDir: string;
  private subs: Subscription[] = [];
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private sampling = false;
  private beatAgain = false;
  private soonBeat: NodeJS.Timeout | null = null;
  private closing = false;
  /** Malformed dea.update messages, by error code. */
  private readonly updatesRejected: Record<string, number> = {};

  constructor(options: InstancesOptions) {
    this.o = {
      uidRange: instanceDefaults.uidRange,
      stopGraceMs: instanceDefaults.stopGraceMs,
      heartbeatIntervalMs: instanceDefaults.heartbeatIntervalMs,
      dropletCacheBytes: instanceDefaults.dropletCacheBytes,
      containerPrefix: instanceDefaults.containerPrefix,
      httpCheckIntervalMs: instanceDefaults.httpCheckIntervalMs,
      ...options,
    };
    this.uids = new UidPool(this.o.uidRange);
    this.instancesDir = join(this.o.dataDir, "instances");
    this.droplets = new DropletCache({
      blobs: this.o.blobs,
      archive: this.o.archive,
      dir: join(this.o.dataDir, "droplets"),
      maxBytes: this.o.dropletCacheBytes,
    });
    this.registrar = new Registrar(this.o.bus, this.o.host, this.o.deaId, this.o.log.child("router"));
  }

  /**
   * Subscribes to dea.<id>.start, dea.stop and dea.update, greets the routers and starts the
   * heartbeat. Call after adopt(); resolves once the server has the subscriptions. Malformed
   * requests are logged and dropped (dea.update's also counted by code).
   */
  async listen(): Promise<void> {
    if (this.subs.length > 0 || this.closing) return;
    const nc = this.o.bus.nc;
    this.subs.push(
      nc.subscribe(deaStart(this.o.deaId), {
        callback: (err, msg) => {
          if (err !== null) return;
          let req: StartRequest;
          try {
            req = decode("dea.start", msg.data);
          } catch (e) {
            this.o.log.warn("start_rejected", { error: e });
            return;
          }
          void this.start(req);
        },
      }),
      nc.subscribe(DEA_STOP, {
        callback: (err, msg) => {
          if (err !== null) return;
          let req: StopRequest;
          try {
            req = decode("dea.stop", msg.data);
          } catch (e) {
            this.o.log.warn("stop_rejected", { error: e });
            return;
          }
          void this.stop(req);
        },
      }),
      nc.subscribe(DEA_UPDATE, {
        callback: (err, msg) => {
          if (err !== null) return;
          let req: UpdateRequest;
          try {
            req = decode("dea.update", msg.data);
          } catch (e) {
            this.rejectUpdate(e);
            return;
          }
          this.update(req);
        },
      }),
    );
    this.registrar.start();
    this.heartbeatTimer = setInterval(() => void this.beat(), this.o.heartbeatIntervalMs);
    this.heartbeatTimer.unref();
    await this.o.bus.flush();
  }

  /**
   * Starts one instance per index of `req`; resolves once each is running (healthy) or has
   * failed. Never rejects: a failure is logged with its code and published as droplet.exited
   * CRASHED with the message as description.
   */
  async start(req: StartRequest): Promise<void> {
    const indices = [...new Set(req.indices)];
    await Promise.all(indices.map((index) => this.startOne(req, index)));
  }

  /**
   * Stops the instances `req` names (app; version, indices and instance ids when given):
   * unregisters them, SIGTERM, SIGKILL after the grace; each is reported STOPPED.
   * Resolves once they have ended.
   */
  async stop(req: StopRequest): Promise<void> {
    const ids = new Set(req.instanceIds);
    const indices = new Set(req.indices);
    const chosen: Instance[] = [];
    for (const inst of this.live.values()) {
      if (inst.req.app !== req.app) continue;
      if (req.version !== "" && inst.req.version !== req.version) continue;
      if (ids.size > 0 || indices.size > 0) {
        if (!ids.has(inst.instanceId) && !indices.has(inst.index)) continue;
      }
      // A stop also cancels a restart an http health check had asked for.
      inst.restart = false;
      chosen.push(inst);
    }
    await Promise.all(chosen.map((inst) => this.end(inst, "STOPPED")));
  }

  /**
   * Makes `req.uris` the routes of every starting or running instance of `req.app` at
   * `req.version` (Cloud Foundry's dea.update): a running one unregisters the routes it loses
   * and registers the ones it gains at once, and re-registers the new list from then on; a
   * starting one registers the new list once healthy. Instances of another version are left
   * alone. Returns how many instances changed; a repeated update changes none.
   */
  update(req: UpdateRequest): number {
    const uris = [...new Set(req.uris)];
    let changed = 0;
    for (const inst of this.live.values()) {
      if (inst.req.app !== req.app || inst.req.version !== req.version) continue;
      if (inst.state !== "RUNNING" && inst.state !== "STARTING") continue;
      if (sameRoutes(inst.uris, uris)) continue;
      inst.uris = uris;
      changed++;
      let moved: { added: string[]; removed: string[] } | null = null;
      if (inst.state === "RUNNING")
        moved = this.registrar.update({
          app: inst.req.app,
          instanceId: inst.instanceId,
          index: inst.index,
          port: inst.port,
          uris,
        });
      this.o.log.info("instance_routes_updated", {
        app: inst.req.app,
        index: inst.index,
        instanceId: inst.instanceId,
        state: inst.state,
        uris,
        ...(moved === null ? {} : moved),
      });
    }
    return changed;
  }

  /** Malformed dea.update messages so far, by error code. */
  rejectedUpdates(): Record<string, number> {
    return { ...this.updatesRejected };
  }

  /**
   * DEA leaving for good, its apps to run elsewhere: droplet.exited DEA_EVACUATION for every
   * instance first (so the Health Manager starts replacements at once), then stops them.
   */
  evacuate(): Promise<void> {
    return this.close("DEA_EVACUATION");
  }

  /** DEA shutting down without evacuation: every instance stopped, reported DEA_SHUTDOWN. */
  shutdown(): Promise<void> {
    return this.close("DEA_SHUTDOWN");
  }

  /**
   * At DEA start, before listen(): removes every container (ids with this DEA's prefix),
   * plain process, bundle and directory a previous run left, and publishes droplet.exited
   * CRASHED for each instance it can name. No leftover is taken back.
   */
  async adopt(): Promise<void> {
    await mkdir(this.instancesDir, { recursive: true });
    await chmod(this.instancesDir, 0o711);
    // A plain process reaches its directory by path: the data dir must let it pass (not list).
    if (this.o.runc === null) await chmod(this.o.dataDir, 0o711);
    const prefix = this.o.containerPrefix;
    const runc = this.o.runc;
    const containers = runc === null ? [] : await runc.list(prefix);
    const names = await readdir(this.instancesDir);
    const records = new Map<string, InstanceRecord | null>();
    for (const c of containers) if (!this.has(c.id)) records.set(c.id, null);
    for (const name of names) {
      const id = name.endsWith(".json") ? name.slice(0, -5) : name;
      if (!id.startsWith(prefix) || [...this.live.values()].some((i) => i.containerId === id)) continue;
      if (!records.has(id)) records.set(id, null);
      if (name.endsWith(".json")) {
        try {
          records.set(
            id,
            JSON.parse(await readFile(join(this.instancesDir, name), "utf8")) as InstanceRecord,
          );
        } catch {}
      }
    }
    for (const [id, rec] of records) {
      try {
        if (runc !== null) {
          await runc.delete(id);
          await removeBundle(runc.root, id);
        }
        if (rec !== null && rec.pid > 0 && rec.uid > 0) await signalUid(rec.uid, "SIGKILL");
        await rm(join(this.instancesDir, id), { recursive: true, force: true });
        await rm(join(this.instancesDir, `${id}.json`), { force: true });
      } catch (err) {
        this.o.log.error("leftover_not_removed", { containerId: id, error: err });
        continue;
      }
      this.o.log.info("leftover_removed", { containerId: id, app: rec?.app, index: rec?.index });
      if (rec !== null)
        this.publishExited({
          app: rec.app,
          instanceId: rec.instanceId,
          index: rec.index,
          version: rec.version,
          reason: "CRASHED",
          exitStatus: 0,
          description: "the DEA restarted and removed the instance it had lost",
        });
    }
    if (runc !== null) await removeLeftovers(runc, prefix, (c) => this.has(c.id));
  }

  /** The heartbeat of the moment: every instance with its latest sampled usage. */
  heartbeat(): DeaHeartbeat {
    const instances: DeaHeartbeat["instances"] = [];
    for (const inst of this.live.values()) {
      instances.push({
        app: inst.req.app,
        instanceId: inst.instanceId,
        index: inst.index,
        version: inst.req.version,
        state: inst.state,
        stateSince: inst.stateSince,
        memoryBytes: inst.usage.memoryBytes,
        diskBytes: inst.usage.diskBytes,
        cpuPermille: inst.usage.cpuPermille,
        host: this.o.host,
        port: inst.port,
      });
    }
    return { deaId: this.o.deaId, at: Date.now(), instances };
  }

  /** Instances per state. */
  counts(): Counts {
    const c: Counts = { STARTING: 0, RUNNING: 0, STOPPING: 0, STOPPED: 0, CRASHED: 0 };
    for (const inst of this.live.values()) c[inst.state]++;
    return c;
  }

  /** Samples every instance's usage (in the archive pool) and publishes dea.heartbeat. */
  async beat(): Promise<void> {
    if (this.sampling) {
      // One is being sampled: send another right after it, so a change is not held back.
      this.beatAgain = true;
      return;
    }
    this.sampling = true;
    try {
      await Promise.all([...this.live.values()].map((inst) => this.sample(inst)));
      this.o.bus.publish(DEA_HEARTBEAT, encode("dea.heartbeat", this.heartbeat()));
    } catch (err) {
      this.o.log.warn("heartbeat_failed", { error: err });
    } finally {
      this.sampling = false;
    }
    if (this.beatAgain && !this.closing) {
      this.beatAgain = false;
      void this.beat();
    }
  }

  /**
   * A heartbeat soon, off the interval: an instance became RUNNING, and the controller (which
   * waits for it to say a push is done) should not wait up to a whole interval to hear it.
   * Instances turning RUNNING together share one.
   */
  private beatSoon(): void {
    if (this.soonBeat !== null || this.closing) return;
    this.soonBeat = setTimeout(() => {
      this.soonBeat = null;
      void this.beat();
    }, 20);
    this.soonBeat.unref();
  }

  private has(containerId: string): boolean {
    for (const inst of this.live.values()) if (inst.containerId === containerId) return true;
    return false;
  }

  private async close(reason: "DEA_EVACUATION" | "DEA_SHUTDOWN"): Promise<void> {
    this.closing = true;
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    const all = [...this.live.values()];
    for (const inst of all) {
      if (inst.state === "STOPPED" || inst.state === "CRASHED" || inst.announced) continue;
      inst.reason ??= reason;
      inst.announced = true;
      this.publishExited({
        ...this.exitFields(inst),
        reason: inst.reason,
        exitStatus: 0,
        description: reason === "DEA_EVACUATION" ? "the DEA is evacuating" : "the DEA is shutting down",
      });
    }
    await Promise.all(all.map((inst) => this.end(inst, reason)));
    this.registrar.stop();
  }

  private async startOne(req: StartRequest, index: number): Promise<void> {
    const instanceId = randomUUID();
    const containerId = `${this.o.containerPrefix}${instanceId}`;
    let resolveDone: () => void = () => {};
    const done = new Promise<void>((r) => {
      resolveDone = r;
    });
    const inst: Instance = {
      req,
      index,
      instanceId,
      containerId,
      origin: { app: req.app, index, instanceId },
      dir: join(this.instancesDir, containerId),
      uris: req.uris,
      uid: 0,
      port: 0,
      state: "STARTING",
      stateSince: Date.now(),
      proc: null,
      reason: null,
      description: "",
      announced: false,
      restart: false,
      killTimer: null,
      cgroups: null,
      usage: { memoryBytes: 0, diskBytes: 0, cpuPermille: 0, cpuNs: -1, at: 0 },
      done,
      resolveDone,
    };
    this.live.set(instanceId, inst);
    let reserved = false;
    try {
      if (this.closing) throw new InstanceError("KILN_DEA_INSTANCE_START", "the DEA is shutting down");
      this.o.ledger.reserve({ instanceId, app: req.app, memoryMb: req.memoryMb, diskMb: req.diskMb });
      reserved = true;
      const droplet = await this.droplets.acquire(req.dropletKey, req.dropletSha1);
      let command: string;
      try {
        command = req.startCommand !== "" ? req.startCommand : droplet.meta.startCommand;
        if (command === "")
          throw new InstanceError(
            "KILN_DEA_INSTANCE_NO_COMMAND",
            `app ${req.app}: no start command in the request nor in droplet ${req.dropletKey}`,
          );
        inst.uid = this.uids.take();
        inst.port = await this.ports.take();
        await this.writeRecord(inst, 0);
        await this.prepareDir(inst, droplet.dir);
      } finally {
        this.droplets.release(droplet);
      }
      if (inst.reason !== null)
        throw new InstanceError("KILN_DEA_INSTANCE_START", "stopped before it started");
      const home = this.o.runc === null ? inst.dir : appMountPoint;
      const memoryMiB = Math.max(8, req.memoryMb);
      const spec: ContainerSpec = {
        id: containerId,
        appDir: inst.dir,
        command: ["/bin/sh", "-c", command],
        env: instanceEnv({
          req,
          index,
          instanceId,
          port: inst.port,
          host: this.o.host,
          home,
          fds: instanceDefaults.fds,
        }),
        uid: inst.uid,
        gid: inst.uid,
        memoryMiB,
        pids: instanceDefaults.pids,
        cpuShares: cpuSharesFor(memoryMiB),
      };
      const proc = this.o.runc === null ? runPlain(spec) : await runContainer(this.o.runc, spec);
      inst.proc = proc;
      void pipeLines(proc.stdout, (text) => this.emitLine(inst, "stdout", text));
      void pipeLines(proc.stderr, (text) => this.emitLine(inst, "stderr", text));
      void proc.exited.then((exit) => this.exited(inst, exit));
      if (this.o.runc === null) await this.writeRecord(inst, await proc.pid());
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const code = (e as { code?: string }).code ?? "KILN_DEA_INSTANCE_START";
      if (inst.reason === null)
        this.o.log.error("instance_start_failed", { app: req.app, index, instanceId, code, error: e });
      inst.description = e.message;
      await this.exited(inst, null, reserved);
      return;
    }
    this.o.log.info("instance_starting", { app: req.app, index, instanceId, port: inst.port, uid: inst.uid });
    if (inst.reason !== null) {
      // A stop arrived while it was being set up.
      void this.end(inst, inst.reason);
      return;
    }
    const check: HealthCheck = {
      type: healthCheckType(req.healthCheckType),
      port: inst.port,
      endpoint: req.healthCheckHttpEndpoint || "/",
    };
    const timeoutMs = req.healthCheckTimeoutMs || instanceDefaults.healthCheckTimeoutMs;
    const healthy = await waitHealthy(check, timeoutMs, () => inst.state !== "STARTING");
    if (inst.state !== "STARTING") return;
    if (!healthy) {
      this.o.log.warn("instance_unhealthy", {
        app: req.app,
        index,
        instanceId,
        timeoutMs,
        code: "KILN_DEA_INSTANCE_HEALTH",
      });
      inst.description = "health check timed out";
      void this.end(inst, "CRASHED");
      return;
    }
    this.setState(inst, "RUNNING");
    this.o.log.info("instance_running", { app: req.app, index, instanceId, port: inst.port });
    this.registrar.register({ app: req.app, instanceId, index, port: inst.port, uris: inst.uris });
    this.beatSoon();
    if (check.type === "http") void this.watchHealth(inst, check, timeoutMs);
  }

  /** "http" checks go on while it runs; failing for longer than the timeout restarts it. */
  private async watchHealth(inst: Instance, check: HealthCheck, timeoutMs: number): Promise<void> {
    let failingSince = 0;
    while (inst.state === "RUNNING") {
      await new Promise((r) => setTimeout(r, this.o.httpCheckIntervalMs));
      if (inst.state !== "RUNNING") return;
      if (await checkOnce(check)) {
        failingSince = 0;
        continue;
      }
      if (failingSince === 0) failingSince = Date.now();
      if (Date.now() - failingSince < timeoutMs) continue;
      if (inst.state !== "RUNNING") return;
      this.o.log.warn("instance_unhealthy", {
        app: inst.req.app,
        index: inst.index,
        instanceId: inst.instanceId,
        timeoutMs,
        code: "KILN_DEA_INSTANCE_HEALTH",
      });
      inst.description = "health check timed out";
      inst.restart = true;
      void this.end(inst, "CRASHED");
      return;
    }
  }

  /** Ends an instance for `reason`: unregistered at once, SIGTERM, SIGKILL after the grace. */
  private end(inst: Instance, reason: ExitReason): Promise<void> {
    if (inst.state === "STOPPED" || inst.state === "CRASHED") return inst.done;
    inst.reason ??= reason;
    if (inst.state !== "STOPPING") this.setState(inst, "STOPPING");
    this.registrar.unregister(inst.instanceId);
    const proc = inst.proc;
    if (proc !== null && inst.killTimer === null) {
      // To every process: `sh -c` is the container's pid 1 and, as such, ignores SIGTERM.
      void proc.signal("SIGTERM", true);
      inst.killTimer = setTimeout(() => void proc.signal("SIGKILL", true), this.o.stopGraceMs);
    }
    return inst.done;
  }

  /**
   * The instance's process ended (or it never started: `exit` null). Router and Health
   * Manager hear of it first; the slow work (container delete, directory removal) follows.
   */
  private async exited(inst: Instance, exit: ProcessExit | null, reserved = true): Promise<void> {
    if (inst.state === "STOPPED" || inst.state === "CRASHED") return;
    this.registrar.unregister(inst.instanceId);
    if (inst.killTimer !== null) clearTimeout(inst.killTimer);
    const reason = inst.reason ?? "CRASHED";
    const status = exit?.status ?? null;
    if (!inst.announced) {
      inst.announced = true;
      let description = inst.description;
      if (description === "")
        description =
          reason === "CRASHED" || exit?.outOfMemory
            ? exitReason(status, exit?.outOfMemory ?? false)
            : "stopped";
      this.publishExited({
        ...this.exitFields(inst),
        reason,
        exitStatus: status === null ? 0 : status > 128 ? -(status - 128) : status,
        description,
      });
    }
    this.setState(inst, reason === "CRASHED" ? "CRASHED" : "STOPPED");
    this.o.log.info("instance_exited", {
      app: inst.req.app,
      index: inst.index,
      instanceId: inst.instanceId,
      reason,
      status,
      outOfMemory: exit?.outOfMemory ?? false,
    });
    try {
      await inst.proc?.cleanup();
    } catch (err) {
      this.o.log.error("instance_cleanup_failed", { instanceId: inst.instanceId, error: err });
    }
    await rm(inst.dir, { recursive: true, force: true }).catch(() => {});
    await rm(`${inst.dir}.json`, { force: true }).catch(() => {});
    if (inst.uid !== 0) this.uids.give(inst.uid);
    if (inst.port !== 0) this.ports.give(inst.port);
    if (reserved) this.o.ledger.release(inst.instanceId);
    this.live.delete(inst.instanceId);
    inst.resolveDone();
    // Restarted with the routes it had last (a dea.update may have changed them since its start).
    if (inst.restart && !this.closing) void this.startOne({ ...inst.req, uris: inst.uris }, inst.index);
  }

  private rejectUpdate(err: unknown): void {
    const code = (err as { code?: string }).code ?? "KILN_MSG_BAD_PROTOBUF";
    this.updatesRejected[code] = (this.updatesRejected[code] ?? 0) + 1;
    const why = err instanceof Error ? err.message : String(err);
    // The reason is cut: a huge payload must not become a huge log line.
    this.o.log.warn("update_rejected", { code, reason: why.length > 200 ? `${why.slice(0, 200)}…` : why });
  }

  private emitLine(inst: Instance, stream: "stdout" | "stderr", text: string): void {
    try {
      this.o.output(inst.origin, stream, text);
    } catch (err) {
      // The sink's failure must not become an uncaught exception in a stream handler.
      this.o.log.warn("instance_output_failed", { instanceId: inst.instanceId, error: err });
    }
  }

  private exitFields(inst: Instance): { app: string; instanceId: string; index: number; version: string } {
    return { app: inst.req.app, instanceId: inst.instanceId, index: inst.index, version: inst.req.version };
  }

  private publishExited(e: {
    app: string;
    instanceId: string;
    index: number;
    version: string;
    reason: ExitReason;
    exitStatus: number;
    description: string;
  }): void {
    try {
      this.o.bus.publish(
        DROPLET_EXITED,
        encode("droplet.exited", { ...e, at: Date.now(), deaId: this.o.deaId }),
      );
    } catch (err) {
      this.o.log.error("droplet_exited_not_published", { app: e.app, instanceId: e.instanceId, error: err });
    }
  }

  private setState(inst: Instance, state: InstanceState): void {
    inst.state = state;
    inst.stateSince = Date.now();
  }

  /** The instance's own copy of the droplet, owned by its uid and closed to every other. */
  private async prepareDir(inst: Instance, from: string): Promise<void> {
    try {
      await mkdir(inst.dir, { mode: 0o700 });
      await run("cp", ["-a", `${from}/.`, inst.dir]);
      await run("chown", ["-R", `${inst.uid}:${inst.uid}`, inst.dir]);
      await chmod(inst.dir, 0o700);
    } catch (err) {
      throw new InstanceError(
        "KILN_DEA_INSTANCE_START",
        `instance ${inst.instanceId}: its directory could not be prepared: ${(err as Error).message}`,
        err,
      );
    }
  }

  private async writeRecord(inst: Instance, pid: number): Promise<void> {
    const rec: InstanceRecord = {
      app: inst.req.app,
      index: inst.index,
      version: inst.req.version,
      instanceId: inst.instanceId,
      containerId: inst.containerId,
      uid: inst.uid,
      pid,
    };
    await mkdir(this.instancesDir, { recursive: true, mode: 0o711 });
    await writeFile(`${inst.dir}.json`, JSON.stringify(rec), { mode: 0o600 });
  }

  private async sample(inst: Instance): Promise<void> {
    const proc = inst.proc;
    if (proc === null || inst.state === "STOPPED" || inst.state === "CRASHED") return;
    try {
      if (this.o.runc !== null) inst.cgroups ??= await proc.cgroups();
      const pid = this.o.runc === null ? await proc.pid() : 0;
      const s = await this.o.archive.sample({
        dir: inst.dir,
        ...(inst.cgroups !== null ? { cgroupPaths: inst.cgroups } : { pid }),
      });
      const now = Date.now();
      const u = inst.usage;
      if (u.cpuNs >= 0 && now > u.at)
        u.cpuPermille = Math.max(0, Math.round(((s.cpuNs - u.cpuNs) / ((now - u.at) * 1e6)) * 1000));
      u.cpuNs = s.cpuNs;
      u.at = now;
      u.memoryBytes = s.memoryBytes;
      u.diskBytes = s.diskBytes;
    } catch {
      // Ended while sampled: its last numbers stand.
    }
  }
}

/** Same set of routes, order aside (`b` holds no duplicates). */
function sameRoutes(a: readonly string[], b: readonly string[]): boolean {
  if (new Set(a).size !== b.length) return false;
  for (const u of b) if (!a.includes(u)) return false;
  return true;
}
