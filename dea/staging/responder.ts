// dea.<id>.stage: decode the request, run it through stage() with its output shipped to
// logs.<app> (source STG), reply. A malformed request gets a failed reply with its code when
// it has a reply subject, and is counted either way; a stop aborts every staging under way.
import type { Msg, Subscription } from "nats";
import type { Logger } from "../../kernel/log.js";
import { decode, encode, type StageReply, type StageRequest } from "../../messaging/codec.js";
import type { KilnConnection } from "../../messaging/connection.js";
import { deaStage } from "../../messaging/subjects.js";
import type { LogShipper } from "../logs/shipper.js";
import { type StagingDeps, stage } from "./stager.js";

/** Staging containers' ids start with this (instances' with the instance layer's own prefix). */
export const stagingContainerPrefix = "kiln-stg-";

export interface StageCounters {
  staged: number;
  failed: number;
  rejected: number;
}

export class StageResponder {
  private sub: Subscription | null = null;
  private readonly running = new Set<AbortController>();
  private readonly stats: StageCounters = { staged: 0, failed: 0, rejected: 0 };

  constructor(
    private readonly o: {
      bus: KilnConnection;
      deaId: string;
      deps: StagingDeps;
      shipper: LogShipper;
      log: Logger;
    },
  ) {}

  start(): void {
    this.sub ??= this.o.bus.nc.subscribe(deaStage(this.o.deaId), {
      callback: (err, msg) => {
        if (err === null) void this.handle(msg);
      },
    });
  }

  counters(): StageCounters {
    return { ...this.stats };
  }

  /** Unsubscribes and aborts every staging under way (each replies KILN_DEA_STAGING_ABORTED). */
  stop(): void {
    this.sub?.unsubscribe();
    for (const a of this.running) a.abort(new Error("the DEA is stopping"));
  }

  private async handle(msg: Msg): Promise<void> {
    let req: StageRequest;
    try {
      req = decode("dea.stage", msg.data);
    } catch (err) {
      this.stats.rejected++;
      const code = (err as { code?: string }).code ?? "KILN_MSG_BAD_PROTOBUF";
      this.o.log.warn("stage_rejected", { error: err });
      this.reply(msg, {
        taskId: "invalid",
        ok: false,
        error: `malformed staging request: ${(err as Error).message}`,
        errorCode: code,
      });
      return;
    }
    const outlet = this.o.shipper.outlet({ app: req.app, source: "STG", index: 0 });
    const abort = new AbortController();
    this.running.add(abort);
    let reply: StageReply;
    try {
      reply = await stage(this.o.deps, req, (stream, text) => outlet.line(stream, text), abort.signal);
    } finally {
      this.running.delete(abort);
    }
    if (reply.ok) this.stats.staged++;
    else this.stats.failed++;
    this.reply(msg, reply);
  }

  private reply(msg: Msg, reply: Parameters<typeof encode<"dea.stage:reply">>[1]): void {
    if (msg.reply === undefined || msg.reply === "") {
      this.o.log.warn("stage_without_reply", { task: reply.taskId });
      return;
    }
    try {
      this.o.bus.publish(msg.reply, encode("dea.stage:reply", reply));
    } catch (err) {
      this.o.log.warn("stage_reply_failed", { task: reply.taskId, error: err });
    }
  }
}
