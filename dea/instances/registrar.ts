// The DEA's routes in the router: router.register for an instance once it is healthy, again
// every minimumRegisterIntervalInSeconds (learned from router.start and a router.greet at
// start; 20 s until a router speaks), and router.unregister the moment it stops serving.
import type { Subscription } from "nats";
import type { Logger } from "../../kernel/log.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { decodeRouterStart, encodeRegistryMessage } from "../../messaging/gorouter.js";
import { ROUTER_GREET, ROUTER_REGISTER, ROUTER_START, ROUTER_UNREGISTER } from "../../messaging/subjects.js";

export const DEFAULT_REGISTER_INTERVAL_MS = 20_000;

export interface Route {
  app: string;
  instanceId: string;
  index: number;
  port: number;
  uris: string[];
}

export class Registrar {
  private readonly routes = new Map<string, Uint8Array>();
  private sub: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  private intervalMs = DEFAULT_REGISTER_INTERVAL_MS;

  constructor(
    private readonly bus: KilnConnection,
    private readonly host: string,
    private readonly deaId: string,
    private readonly log: Logger,
  ) {}

  get registerIntervalMs(): number {
    return this.intervalMs;
  }

  /** Listens for router.start and greets the routers; re-registers on the interval from then on. */
  start(): void {
    if (this.sub !== null) return;
    this.sub = this.bus.nc.subscribe(ROUTER_START, {
      callback: (err, msg) => {
        if (err === null) this.learn(msg.data, ROUTER_START, true);
      },
    });
    this.bus.nc
      .request(ROUTER_GREET, new Uint8Array(0), { timeout: 2000 })
      .then((msg) => this.learn(msg.data, ROUTER_GREET, false))
      .catch(() => this.log.debug("router_greet_unanswered", { intervalMs: this.intervalMs }));
    this.schedule();
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = null;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  has(instanceId: string): boolean {
    return this.routes.has(instanceId);
  }

  register(route: Route): void {
    if (route.uris.length === 0) return;
    const msg = encodeRegistryMessage({
      host: this.host,
      port: route.port,
      uris: route.uris,
      app: route.app,
      privateInstanceId: route.instanceId,
      privateInstanceIndex: String(route.index),
      tags: { component: "dea", dea_id: this.deaId },
    });
    this.routes.set(route.instanceId, msg);
    this.publish(ROUTER_REGISTER, msg);
  }

  /** Publishes router.unregister when the instance was registered; true when it was. */
  unregister(instanceId: string): boolean {
    const msg = this.routes.get(instanceId);
    if (msg === undefined) return false;
    this.routes.delete(instanceId);
    this.publish(ROUTER_UNREGISTER, msg);
    return true;
  }

  private learn(data: Uint8Array, subject: string, routerRestarted: boolean): void {
    try {
      const start = decodeRouterStart(data, subject);
      const ms = start.minimumRegisterIntervalInSeconds * 1000;
      if (ms > 0 && ms !== this.intervalMs) {
        this.intervalMs = ms;
        this.schedule();
      }
      // A router that (re)started knows no routes: tell it ours now rather than at the next tick.
      if (routerRestarted) this.registerAll();
    } catch (err) {
      this.log.warn("router_start_rejected", { subject, error: err });
    }
  }

  private schedule(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = setInterval(() => this.registerAll(), this.intervalMs);
    this.timer.unref();
  }

  private registerAll(): void {
    for (const msg of this.routes.values()) this.publish(ROUTER_REGISTER, msg);
  }

  private publish(subject: string, msg: Uint8Array): void {
    try {
      this.bus.publish(subject, msg);
    } catch (err) {
      this.log.warn("router_publish_failed", { subject, error: err });
    }
  }
}
