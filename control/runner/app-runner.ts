// Acting on desired state: after a start, stop, restart, scale or new droplet the API hands the
// app's record before and after to reconcile(), which starts and stops instances on the DEAs
// through DeaClient; cc.hm.requests from the Health Manager start missing indices and stop
// extra ones. Work on one app is serialized and runs in the background of the API answer.
// A route map, unmap or delete restarts nothing: routesChanged() sends each running app's
// complete new route list in dea.update, and the DEAs swap the routes of its instances in place.
import type { Logger } from "../../kernel/log.js";
import { decode, type HmRequest } from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { CC_HM_QUEUE, CC_HM_REQUESTS } from "../../messaging/subjects.js";
import type { CcConfig } from "../config.js";
import { pushKeys, pushRecords } from "../store/push.js";
import { type AppRecord, keys } from "../store/records.js";
import type { CcStore } from "../store/store.js";
import type { ActualState } from "./actual.js";
import type { DeaClient, InstanceSpec } from "./dea-client.js";
import { appUris } from "./uris.js";

export interface AppRunnerOptions {
  store: CcStore;
  client: DeaClient;
  actual: ActualState;
  config: CcConfig;
  log: Logger;
}

const range = (from: number, to: number): number[] => {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
};

/** An index asked to start counts as up this long before a heartbeat shows it, ms. */
const PENDING_MS = 30_000;

export class AppRunner {
  private readonly queues = new Map<string, Promise<void>>();
  /** Indices started by this controller and not yet in a heartbeat: app → index → version, when. */
  private readonly pending = new Map<string, Map<number, { version: string; at: number }>>();
  private hmRejected = 0;

  constructor(private readonly o: AppRunnerOptions) {}

  /** Runs `fn` after the app's earlier work; failures are logged, never thrown to the API. */
  private enqueue(app: string, what: string, fn: () => Promise<void>): Promise<void> {
    const next = (this.queues.get(app) ?? Promise.resolve())
      .then(fn)
      .catch((err: unknown) => this.o.log.warn("runner_failed", { app, what, error: err }));
    this.queues.set(app, next);
    void next.then(() => {
      if (this.queues.get(app) === next) this.queues.delete(app);
    });
    return next;
  }

  /** What the change from `before` to `after` (null: deleted) needs on the DEAs. */
  reconcile(before: AppRecord, after: AppRecord | null): Promise<void> {
    return this.enqueue(before.guid, "reconcile", async () => {
      const wasUp = before.state === "STARTED" && before.droplet_guid !== null;
      if (after === null || after.state !== "STARTED" || after.droplet_guid === null) {
        this.pending.delete(before.guid);
        if (wasUp || before.state === "STARTED") this.o.client.stop({ app: before.guid });
        return;
      }
      if (!wasUp) return this.start(after, range(0, after.instances));
      if (after.version !== before.version) {
        // What runs changed (droplet, env, limits, restart): replace every instance.
        this.o.client.stop({ app: after.guid, version: before.version });
        return this.start(after, range(0, after.instances));
      }
      if (after.instances > before.instances)
        return this.start(after, range(before.instances, after.instances));
      if (after.instances < before.instances) {
        const gone = range(after.instances, before.instances);
        for (const i of gone) this.pending.get(after.guid)?.delete(i);
        this.o.client.stop({ app: after.guid, indices: gone });
      }
    });
  }

  /** The start request of the app's current droplet. */
  private async spec(app: AppRecord): Promise<InstanceSpec | null> {
    if (app.droplet_guid === null) return null;
    const d = await pushRecords(this.o.store).droplets.get(pushKeys.droplet(app.droplet_guid));
    if (d === null) return null;
    const uris = await appUris(this.o.store, this.o.config.domain, app.guid);
    return {
      app: app.guid,
      appName: app.name,
      space: app.space_guid,
      version: app.version,
      dropletKey: d.value.key,
      dropletSha1: d.value.sha1,
      memoryMb: app.memory_in_mb,
      diskMb: app.disk_in_mb,
      startCommand: app.command ?? d.value.start_command,
      env: app.environment_variables,
      uris,
      servicesJson: "{}",
      healthCheckType: app.health_check.type,
      healthCheckHttpEndpoint: app.health_check.endpoint ?? "",
      healthCheckTimeoutMs: (app.health_check.timeout ?? 0) * 1000,
    };
  }

  /**
   * The routes of these apps changed (map, unmap, route delete): each one that runs gets
   * dea.update with its complete route list, read in its queue after any earlier work on it
   * (so a start in flight and the update agree). The list is whole, not a difference: a
   * repeated or late update leaves the instances where the store says they should be.
   */
  routesChanged(appGuids: Iterable<string>): Promise<void> {
    const each = [...new Set(appGuids)].map((guid) =>
      this.enqueue(guid, "routes", async () => {
        const got = await this.o.store.apps.get(keys.app(guid));
        if (got === null) return;
        const app = got.value;
        if (app.state !== "STARTED" || app.droplet_guid === null) return;
        const uris = await appUris(this.o.store, this.o.config.domain, guid);
        this.o.client.update({ app: guid, version: app.version, uris });
      }),
    );
    return Promise.all(each).then(() => {});
  }

  private async start(app: AppRecord, indices: number[]): Promise<void> {
    if (indices.length === 0) return;
    const spec = await this.spec(app);
    if (spec === null) {
      this.o.log.warn("start_skipped", { app: app.guid, reason: "no droplet" });
      return;
    }
    const { placed, failed } = await this.o.client.start(spec, indices);
    let p = this.pending.get(app.guid);
    if (p === undefined) {
      p = new Map();
      this.pending.set(app.guid, p);
    }
    for (const i of placed.keys()) p.set(i, { version: app.version, at: Date.now() });
    if (failed.size > 0) {
      const reasons = [...new Set(failed.values())];
      this.o.log.warn("start_failed", { app: app.guid, failed: Object.fromEntries(failed) });
      // On the app's audit trail, where its user (and a push waiting for it) can see why.
      await this.o.store.audit.record({
        type: "app.start_failed",
        actor: "cc",
        target_guid: app.guid,
        target_name: app.name,
        space_guid: app.space_guid,
        data: {
          version: app.version,
          indices: [...failed.keys()],
          code: "KILN_CC_NO_DEA",
          reason: reasons.join("; "),
        },
      });
    }
  }

  /** Subscribes cc.hm.requests in the `cc` queue group; the subscription ends with the connection. */
  subscribeHm(bus: KilnConnection): void {
    bus.nc.subscribe(CC_HM_REQUESTS, {
      queue: CC_HM_QUEUE,
      callback: (err, m) => {
        if (err !== null) return;
        let req: HmRequest;
        try {
          req = decode("cc.hm.requests", m.data);
        } catch (e) {
          this.hmRejected++;
          this.o.log.warn("hm_request_rejected", { rejected: this.hmRejected, error: e });
          return;
        }
        void this.onHm(req);
      },
    });
  }

  /** Malformed cc.hm.requests so far. */
  get rejectedHmRequests(): number {
    return this.hmRejected;
  }

  /** START: indices not running at that version are started; STOP: stopped. Both idempotent. */
  onHm(req: HmRequest): Promise<void> {
    return this.enqueue(req.app, `hm ${req.op}`, async () => {
      if (req.op === "STOP") {
        for (const i of req.indices) this.pending.get(req.app)?.delete(i);
        this.o.client.stop({ app: req.app, version: req.version, indices: req.indices });
        return;
      }
      const got = await this.o.store.apps.get(keys.app(req.app));
      if (got === null) return;
      const app = got.value;
      if (app.state !== "STARTED" || (req.version !== "" && req.version !== app.version)) return;
      const up = new Set<number>();
      for (const i of this.o.actual.instances(app.guid))
        if (i.version === app.version && (i.state === "RUNNING" || i.state === "STARTING")) up.add(i.index);
      // Started moments ago and not in a heartbeat yet: a repeated START must not start it twice.
      // An exit of that index since then spends the start: the Health Manager's restart of a
      // crash right after a start must not be taken for a repeat.
      const cutoff = Date.now() - PENDING_MS;
      for (const [i, p] of this.pending.get(app.guid) ?? [])
        if (p.version === app.version && p.at > cutoff && this.o.actual.lastExitAt(app.guid, i) < p.at)
          up.add(i);
      await this.start(
        app,
        req.indices.filter((i) => i < app.instances && !up.has(i)),
      );
    });
  }
}
