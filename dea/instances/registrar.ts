// The DEA's routes in the router: router.register for an instance once it is healthy, again
// every minimumRegisterIntervalInSeconds (learned from router.start and a router.greet at
// start; 20 s until a router speaks), and router.unregister the moment it stops serving. A
// dea.update changes a registered instance's routes in place (update()).
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

/** A registered instance: its route and the router.register message the refresh repeats. */
interface Registered {
  route: Route;
  msg: Uint8Array;
}

export class Registrar {
  private readonly routes = new Map<string, Registered>();
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
    const msg = this.message(route, route.uris);
    this.routes.set(route.instanceId, { route, msg });
    this.publish(ROUTER_REGISTER, msg);
  }

  /**
   * Makes `route.uris` the instance's routes now: router.unregister for the ones it had and
   * no longer has, router.register for the new ones, and the refresh repeats the new list
   * from then on (none left: nothing). An instance registered without routes is registered.
   */
  update(route: Route): { added: string[]; removed: string[] } {
    const had = this.routes.get(route.instanceId)?.route.uris ?? [];
    const removed = had.filter((u) => !route.uris.includes(u));
    const added = route.uris.filter((u) => !had.includes(u));
    if (removed.length > 0) this.publish(ROUTER_UNREGISTER, this.message(route, removed));
    if (route.uris.length === 0) {
      this.routes.delete(route.instanceId);
    } else {
      this.routes.set(route.instanceId, { route, msg: this.message(route, route.uris) });
      if (added.length > 0) this.publish(ROUTER_REGISTER, this.message(route, added));
    }
    return { added, removed };
  }

  /** Publishes router.unregister when the instance was registered; true when it was. */
  unregister(instanceId: string): boolean {
    const r = this.routes.get(instanceId);
    if (r === undefined) return false;
    this.routes.delete(instanceId);
    this.publish(ROUTER_UNREGISTER, r.msg);
    return true;
  }

  private message(route: Route, uris: string[]): Uint8Array {
    return encodeRegistryMessage({
      host: this.host,
      port: route.port,
      uris,
      app: route.app,
      privateInstanceId: route.instanceId,
      privateInstanceIndex: String(route.index),
      tags: { component: "dea", dea_id: this.deaId },
    });
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
    for (const r of this.routes.values()) this.publish(ROUTER_REGISTER, r.msg);
  }

  private publish(subject: string, msg: Uint8Array): void {
    try {
      this.bus.publish(subject, msg);
    } catch (err) {
      this.log.warn("router_publish_failed", { subject, error: err });
    }
  }
}
