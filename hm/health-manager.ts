// The Health Manager's loop. Desired state from the kiln_apps watch, actual state from the
// DEAs' heartbeats and exits (the controller's ActualState), and between them: a crash is
// answered the moment its droplet.exited arrives (subject to the crash policy), and a periodic
// analysis (hm/analyze.ts) catches what messages missed: lost, missing, extra and old-version
// instances. Every action is a cc.hm.requests to some controller; the HM never talks to a DEA.
// Only the holder of the lease (hm/lease.ts) acts; the other HM keeps its state warm.

import { ActualState } from "../control/runner/actual.js";
import { AuditLog } from "../control/store/events.js";
import { componentReplicas } from "../kernel/lifecycle.js";
import type { Logger } from "../kernel/log.js";
import { type DropletExited, encode, type HmRequest } from "../messaging/codec.js";
import type { KilnConnection } from "../messaging/connection.js";
import { CC_HM_REQUESTS } from "../messaging/subjects.js";
import { analyze, type DesiredApp, holdKey } from "./analyze.js";
import type { HmConfig } from "./config.js";
import { CrashHistory } from "./crashes.js";
import { DesiredState } from "./desired.js";
import { LeaderLease } from "./lease.js";

/** Heartbeats a DEA may miss before its instances are lost. */
const LOST_AFTER_HEARTBEATS = 3;

export interface HmCounters {
  starts: number;
  stops: number;
  crashes: number;
  rejected: number;
}

export class HealthManager {
  private readonly actual: ActualState;
  private readonly desired: DesiredState;
  private readonly lease: LeaderLease;
  private readonly crashes = new CrashHistory();
  private readonly holdUntil = new Map<string, number>();
  private audit: AuditLog | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** No analysis before every DEA has had time to beat once: an empty actual state is not "nothing runs". */
  private analyzeFrom = 0;
  private readonly counts = { starts: 0, stops: 0, crashes: 0 };
  /** Whether the last analysis held its STARTs back for want of a DEA (logged once per change). */
  private waitingForDea = false;

  constructor(
    private readonly bus: KilnConnection,
    private readonly config: HmConfig,
    private readonly log: Logger,
  ) {
    this.actual = new ActualState({
      bus,
      log: log.child("actual"),
      staleAfterMs: LOST_AFTER_HEARTBEATS * config.heartbeatMs,
      rejectCode: "KILN_HM_BAD_MESSAGE",
      onExited: (x) => this.onExited(x),
    });
    this.desired = new DesiredState(log.child("desired"));
    this.lease = new LeaderLease(config.leaseMs, log.child("lease"), (leader) => {
      // A new leader has the same warm-up as a new process: its actual state may be young.
      if (leader) this.analyzeFrom = Math.max(this.analyzeFrom, Date.now());
    });
  }

  get counters(): HmCounters {
    return { ...this.counts, rejected: this.actual.rejectedMessages + this.desired.rejectedRecords };
  }

  get leader(): boolean {
    return this.lease.leader;
  }

  async start(): Promise<void> {
    this.analyzeFrom = Date.now() + Math.round(1.5 * this.config.heartbeatMs);
    this.actual.start();
    const replicas = componentReplicas(this.bus, this.config.natsReplicas, this.log);
    await this.desired.start(this.bus.nc, replicas);
    this.audit = await AuditLog.open(this.bus.nc, replicas);
    await this.lease.start(this.bus.nc, replicas);
    this.timer = setInterval(() => this.analyze(), this.config.analysisMs);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.actual.stop();
    this.desired.stop();
    await this.lease.stop();
  }

  /** One analysis pass (also run by the timer); sends what it finds when this HM leads. */
  analyze(now = Date.now()): HmRequest[] {
    if (!this.lease.leader || now < this.analyzeFrom) return [];
    for (const [k, t] of this.holdUntil) if (t <= now) this.holdUntil.delete(k);
    const actual = new Map<string, ReturnType<ActualState["instances"]>>();
    for (const app of this.actual.apps()) actual.set(app, this.actual.instances(app));
    const requests = analyze({
      apps: this.desired.apps,
      deleted: this.desired.deleted,
      actual,
      holdUntil: this.holdUntil,
      now,
      graceMs: this.config.graceMs,
    });
    // With no DEA heard from (the kernel is still starting, or every DEA is gone) a START
    // cannot be placed, and its grace would delay the next one: the STARTs wait for a DEA.
    const noDea = this.actual.liveDeas() === 0;
    if (noDea !== this.waitingForDea) {
      this.waitingForDea = noDea;
      if (noDea) this.log.warn("no_dea", { waiting: requests.filter((r) => r.op === "START").length });
    }
    const sent = noDea ? requests.filter((r) => r.op !== "START") : requests;
    for (const r of sent) this.send(r, "analysis", now);
    return sent;
  }

  private onExited(x: DropletExited): void {
    // STOPPED is the controller's own doing; anything else (a crash, a DEA going away) wants a replacement.
    if (!this.lease.leader || x.reason === "STOPPED") return;
    const app = this.desired.apps.get(x.app);
    if (
      app === undefined ||
      app.state !== "STARTED" ||
      !app.hasDroplet ||
      x.version !== app.version ||
      x.index >= app.instances
    )
      return;
    const now = Date.now();
    const key = holdKey(x.app, x.index);
    if (x.reason === "CRASHED") {
      this.counts.crashes++;
      const v = this.crashes.crash(key, now);
      void this.record(app, x, "app.crash", {
        crashes: v.crashes,
        exit_status: x.exitStatus,
        description: x.description,
        // When the replacement may start: now, or after the back-off.
        restart_at: new Date(v.restartAt).toISOString(),
      });
      if (v.becameFlapping) {
        this.log.warn("app_flapping", { app: x.app, index: x.index, crashes: v.crashes });
        void this.record(app, x, "app.flapping", { crashes: v.crashes });
      }
      if (v.restartAt > now) {
        // The periodic analysis starts it once the hold is over.
        this.holdUntil.set(key, v.restartAt);
        this.log.info("restart_delayed", {
          app: x.app,
          index: x.index,
          crashes: v.crashes,
          restartAt: v.restartAt,
        });
        return;
      }
    }
    // Another instance of that index may already be up (a START raced this exit).
    for (const i of this.actual.instances(x.app))
      if (
        i.index === x.index &&
        i.version === app.version &&
        (i.state === "RUNNING" || i.state === "STARTING")
      )
        return;
    this.send({ op: "START", app: x.app, indices: [x.index], version: app.version }, "exited", now);
  }

  private send(r: HmRequest, why: string, now: number): void {
    if (r.op === "START") {
      this.counts.starts++;
      // A START's instance shows in a heartbeat only later: no second START for the grace period.
      for (const i of r.indices) this.holdUntil.set(holdKey(r.app, i), now + this.config.graceMs);
    } else this.counts.stops++;
    this.log.info("hm_request", { why, op: r.op, app: r.app, indices: r.indices, version: r.version });
    this.bus.nc.publish(CC_HM_REQUESTS, encode("cc.hm.requests", r));
  }

  /**
   * Crashes and FLAPPING are audit events the HM records itself (its NATS user may publish
   * events.*): the HM may not change an app's record, and `kiln app`/`kiln events` read the
   * audit trail. Only the leader acts on exits, so each is recorded once.
   */
  private async record(
    app: DesiredApp,
    x: DropletExited,
    type: "app.crash" | "app.flapping",
    data: Record<string, unknown>,
  ): Promise<void> {
    await this.audit
      ?.record({
        type,
        actor: "hm",
        target_guid: x.app,
        target_name: app.name,
        space_guid: app.space === "" ? null : app.space,
        data: { index: x.index, version: x.version, ...data },
      })
      .catch((err: unknown) => this.log.warn("event_failed", { error: err }));
  }
}
