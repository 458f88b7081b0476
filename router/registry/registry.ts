// The router's route registry: learns routes only from NATS (gorouter's protocol),
// applies them to the table in batches, announces itself with router.start, and
// prunes stale endpoints — but never while NATS is down or freshly back, so a bus
// outage cannot empty the table.
import type { Msg, NatsConnection, Subscription } from "nats";
import type { KilnError } from "../../kernel/errors.js";
import type { Logger } from "../../kernel/log.js";
import {
  decodeRegister,
  decodeUnregister,
  encodeRouterStart,
  type RegistryMessage,
  toEndpointSpec,
  toPoolOptions,
} from "../../messaging/gorouter.js";
import { ROUTER_GREET, ROUTER_REGISTER, ROUTER_START, ROUTER_UNREGISTER } from "../../messaging/subjects.js";
import type { RouteSink, RouteUpdate } from "../../native/types.js";
import { routeServiceProblem } from "../handlers/route-service.js";
import { type RegistryConfig, registryDefaults } from "./config.js";

export interface RegistryOptions extends Partial<RegistryConfig> {
  nc: NatsConnection;
  sink: RouteSink;
  log: Logger;
  /** This router's id in router.start (a UUID). */
  routerId: string;
  /** Hosts (IP addresses) announced in router.start. */
  hosts?: string[];
  /** Clock for endpoint freshness (tests pass a fake one). */
  now?: () => number;
  /**
   * Whether routes may have a route service (the router has a routeServiceKey). Without, a
   * registration with route_service_url is refused: routing it straight to the app would skip
   * the service its owner put in front.
   */
  routeServices?: boolean;
}

export interface RegistryCounters {
  registers: number;
  unregisters: number;
  updatesApplied: number;
  badMessages: number;
  batches: number;
  pruned: number;
  /** Prune rounds skipped because NATS was down or back for less than one prune interval. */
  prunesSuspended: number;
  /** Registrations with a route_service_url refused (no key, or a URL the router cannot reach). */
  routeServiceRefused: number;
}

enum Op {
  Register = 0,
  Unregister = 1,
}

export class RouteRegistry {
  private readonly cfg: RegistryConfig;
  private readonly nc: NatsConnection;
  private readonly sink: RouteSink;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly startPayload: Uint8Array;
  private readonly c: RegistryCounters = {
    registers: 0,
    unregisters: 0,
    updatesApplied: 0,
    badMessages: 0,
    batches: 0,
    pruned: 0,
    prunesSuspended: 0,
    routeServiceRefused: 0,
  };
  private pending: RouteUpdate[] = [];
  private flushQueued = false;
  private subs: Subscription[] = [];
  private timers: NodeJS.Timeout[] = [];
  /** When NATS last (re)connected; null while it is down. */
  private natsUpSince: number | null = null;
  private isSynced = false;
  private lastBadLog = 0;
  private badSinceLog = 0;
  private readonly routeServices: boolean;
  private lastRsLog = 0;
  private rsSinceLog = 0;
  private stopped = false;

  constructor(o: RegistryOptions) {
    this.cfg = { ...registryDefaults };
    for (const k of Object.keys(registryDefaults) as (keyof RegistryConfig)[]) {
      const v = o[k];
      if (v !== undefined) this.cfg[k] = v;
    }
    this.nc = o.nc;
    this.sink = o.sink;
    this.log = o.log;
    this.now = o.now ?? Date.now;
    this.routeServices = o.routeServices ?? false;
    this.startPayload = encodeRouterStart({
      id: o.routerId,
      hosts: o.hosts ?? [],
      minimumRegisterIntervalInSeconds: this.cfg.minimumRegisterIntervalSec,
      pruneThresholdInSeconds: this.cfg.pruneThresholdSec,
    });
  }

  /** True once the first router.start has had time to be answered (the router's /health waits for it). */
  get synced(): boolean {
    return this.isSynced;
  }

  /** True while NATS is connected. */
  get natsConnected(): boolean {
    return this.natsUpSince !== null;
  }

  counters(): RegistryCounters {
    return { ...this.c };
  }

  async start(): Promise<void> {
    this.natsUpSince = Date.now();
    this.subs.push(
      this.nc.subscribe(ROUTER_REGISTER, { callback: (_err, msg) => this.onMessage(Op.Register, msg) }),
      this.nc.subscribe(ROUTER_UNREGISTER, { callback: (_err, msg) => this.onMessage(Op.Unregister, msg) }),
      this.nc.subscribe(ROUTER_GREET, { callback: (_err, msg) => this.onGreet(msg) }),
    );
    void this.watchConnection();
    // Subscriptions must be in place before registrars hear router.start and answer.
    await this.nc.flush();
    this.publishStart();
    this.timers.push(
      setInterval(() => this.publishStart(), this.cfg.startIntervalMs),
      setInterval(() => this.pruneRound(), this.cfg.pruneIntervalMs),
      setTimeout(() => {
        this.isSynced = true;
      }, this.cfg.startResponseDelayMs),
    );
    for (const t of this.timers) t.unref();
    this.log.info("registry_started", { pruneIntervalMs: this.cfg.pruneIntervalMs });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    this.flush();
  }

  private onMessage(op: Op, msg: Msg): void {
    let decoded: RegistryMessage;
    try {
      decoded = op === Op.Register ? decodeRegister(msg.data) : decodeUnregister(msg.data);
    } catch (err) {
      this.bad(op, err);
      return;
    }
    const endpoint = toEndpointSpec(decoded);
    if (op === Op.Register && decoded.routeServiceUrl !== "" && !this.routeServiceAllowed(decoded)) return;
    if (op === Op.Register) {
      this.c.registers++;
      const options = toPoolOptions(decoded);
      for (const uri of decoded.uris) this.pending.push({ op: "register", uri, endpoint, options });
    } else {
      this.c.unregisters++;
      for (const uri of decoded.uris) this.pending.push({ op: "unregister", uri, endpoint });
    }
    if (this.pending.length >= this.cfg.maxBatch) this.flush();
    else if (!this.flushQueued) {
      // Every message that arrived in the same socket read lands in one batch.
      this.flushQueued = true;
      setImmediate(this.flushBound);
    }
  }

  private readonly flushBound = (): void => this.flush();

  /** Applies what is pending now (exposed for tests and shutdown). */
  flush(): void {
    this.flushQueued = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.sink.apply(batch, this.now());
    this.c.batches++;
    this.c.updatesApplied += batch.length;
  }

  private bad(op: Op, err: unknown): void {
    this.c.badMessages++;
    this.badSinceLog++;
    const t = Date.now();
    if (t - this.lastBadLog < this.cfg.badMessageLogIntervalMs) return;
    const e = err as Partial<KilnError>;
    this.log.warn("bad_message", {
      subject: op === Op.Register ? ROUTER_REGISTER : ROUTER_UNREGISTER,
      code: e.code ?? "KILN_MSG_NOT_JSON",
      message: e.message,
      count: this.badSinceLog,
    });
    this.lastBadLog = t;
    this.badSinceLog = 0;
  }

  /** False (counted, logged at most once per badMessageLogIntervalMs) when the route service cannot be used. */
  private routeServiceAllowed(m: RegistryMessage): boolean {
    const why = this.routeServices
      ? routeServiceProblem(m.routeServiceUrl)
      : "no route service key is configured (routeServiceKey)";
    if (why === "") return true;
    this.c.routeServiceRefused++;
    this.rsSinceLog++;
    const t = Date.now();
    if (t - this.lastRsLog >= this.cfg.badMessageLogIntervalMs) {
      this.log.warn("route_service_refused", {
        code: "KILN_ROUTER_ROUTE_SERVICE_REFUSED",
        uris: m.uris,
        routeServiceUrl: m.routeServiceUrl,
        reason: why,
        count: this.rsSinceLog,
      });
      this.lastRsLog = t;
      this.rsSinceLog = 0;
    }
    return false;
  }

  private onGreet(msg: Msg): void {
    if (msg.reply) msg.respond(this.startPayload);
  }

  private publishStart(): void {
    if (this.stopped || this.nc.isClosed()) return;
    try {
      this.nc.publish(ROUTER_START, this.startPayload);
    } catch (err) {
      this.log.warn("router_start_publish_failed", { error: err });
    }
  }

  private pruneRound(): void {
    const up = this.natsUpSince;
    if (up === null || Date.now() - up < this.cfg.pruneIntervalMs) {
      this.c.prunesSuspended++;
      return;
    }
    this.flush();
    const removed = this.sink.prune(this.now());
    this.c.pruned += removed;
    if (removed > 0) this.log.info("pruned", { endpoints: removed });
  }

  private async watchConnection(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (this.stopped) return;
      if (s.type === "disconnect") {
        if (this.natsUpSince !== null) this.log.warn("nats_down_pruning_suspended");
        this.natsUpSince = null;
      } else if (s.type === "reconnect") {
        this.natsUpSince = Date.now();
        this.log.info("nats_back", { pruningResumesInMs: this.cfg.pruneIntervalMs });
        // Ask registrars to re-register now rather than at their next interval.
        this.publishStart();
      }
    }
  }
}
