// The Cloud Controller's side of the DEA subjects: find a DEA with room (dea.discover, first
// reply wins), stage a package on it (dea.<id>.stage), start instances (dea.<id>.start, one
// discover per instance so they spread), stop them (dea.stop), change their routes
// (dea.update). Only NATS; no HTTP, no KV, so the API handlers and the Health Manager's
// requests share it.
import type { Logger } from "../../kernel/log.js";
import {
  type DeaDiscover,
  type DeaDiscoverReply,
  decode,
  encode,
  type StageReply,
  type StageRequest,
  type StartRequest,
  type StopRequest,
  type UpdateRequest,
} from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { DEA_DISCOVER, DEA_STOP, DEA_UPDATE, deaStage, deaStart } from "../../messaging/subjects.js";
import { RunnerError } from "./errors.js";

export interface DeaClientOptions {
  bus: KilnConnection;
  log: Logger;
  /** How long one dea.discover waits for the first reply, ms. */
  discoverTimeoutMs?: number;
  /** How many times a discover is sent before giving up. */
  discoverTries?: number;
}

/** What one instance needs: the start request without its indices. */
export type InstanceSpec = Omit<StartRequest, "indices">;

export class DeaClient {
  private readonly bus: KilnConnection;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly tries: number;

  constructor(o: DeaClientOptions) {
    this.bus = o.bus;
    this.log = o.log;
    this.timeoutMs = o.discoverTimeoutMs ?? 2_000;
    this.tries = o.discoverTries ?? 3;
  }

  /**
   * The first DEA with room for `need` (its reply came first because its taint delay was the
   * shortest). KILN_CC_NO_DEA when none answered in any of the tries.
   */
  async discover(
    need: Omit<DeaDiscover, "excludeDeaIds"> & { excludeDeaIds?: string[] },
  ): Promise<DeaDiscoverReply> {
    const payload = encode("dea.discover", { ...need, excludeDeaIds: need.excludeDeaIds ?? [] });
    let last: unknown = null;
    for (let attempt = 1; attempt <= this.tries; attempt++) {
      try {
        const msg = await this.bus.nc.request(DEA_DISCOVER, payload, { timeout: this.timeoutMs });
        return decode("dea.discover:reply", msg.data);
      } catch (err) {
        last = err;
        this.log.debug("discover_retry", { app: need.app, attempt, error: err });
      }
    }
    throw new RunnerError(
      "KILN_CC_NO_DEA",
      `no DEA has room for ${need.memoryMb} MiB of memory and ${need.diskMb} MiB of disk${need.stack ? ` on stack ${need.stack}` : ""} (no reply to dea.discover in ${this.tries} tries of ${this.timeoutMs} ms)`,
      { cause: last },
    );
  }

  /** Stages on the DEA `deaId`; resolves with its reply (ok or a coded failure). */
  async stage(deaId: string, req: StageRequest, timeoutMs: number): Promise<StageReply> {
    try {
      const msg = await this.bus.nc.request(deaStage(deaId), encode("dea.stage", req), {
        // The DEA answers once the droplet is stored or the staging failed; its own timeout
        // comes first, this one covers a DEA that died meanwhile.
        timeout: timeoutMs + 30_000,
      });
      return decode("dea.stage:reply", msg.data);
    } catch (err) {
      throw new RunnerError(
        "KILN_CC_STAGING_LOST",
        `DEA ${deaId} did not answer the staging of task ${req.taskId}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /**
   * Starts `indices` of an app, each on the DEA that answers its own discover first (so a
   * DEA's growing taint spreads them). Resolves with the DEA chosen per index; indices no DEA
   * took are listed under `failed` with the reason, and the rest still start.
   */
  async start(
    spec: InstanceSpec,
    indices: readonly number[],
  ): Promise<{ placed: Map<number, string>; failed: Map<number, string> }> {
    const placed = new Map<number, string>();
    const failed = new Map<number, string>();
    const byDea = new Map<string, number[]>();
    for (const index of indices) {
      try {
        const dea = await this.discover({
          app: spec.app,
          version: spec.version,
          memoryMb: spec.memoryMb,
          diskMb: spec.diskMb,
          stack: "",
        });
        placed.set(index, dea.deaId);
        byDea.set(dea.deaId, [...(byDea.get(dea.deaId) ?? []), index]);
        // Tell that DEA now: its ledger (and so its taint for the next discover) grows at once.
        this.bus.publish(deaStart(dea.deaId), encode("dea.start", { ...spec, indices: [index] }));
      } catch (err) {
        failed.set(index, (err as Error).message);
      }
    }
    this.log.info("instances_placed", {
      app: spec.app,
      version: spec.version,
      deas: Object.fromEntries(byDea),
    });
    return { placed, failed };
  }

  /** Stops instances on every DEA (by app; version, indices and instance ids narrow it). */
  stop(req: Partial<StopRequest> & { app: string }): void {
    this.bus.publish(
      DEA_STOP,
      encode("dea.stop", {
        app: req.app,
        version: req.version ?? "",
        indices: req.indices ?? [],
        instanceIds: req.instanceIds ?? [],
      }),
    );
  }

  /** Gives every running instance of the app at `req.version` the route list `req.uris`. */
  update(req: UpdateRequest): void {
    this.bus.publish(DEA_UPDATE, encode("dea.update", req));
  }
}
