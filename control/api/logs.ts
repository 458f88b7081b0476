// GET /v3/apps/:guid/logs: the app's lines from KILN_LOGS (subject `logs.<app guid>`) as NDJSON
// `{ seq, at, source, index, stream, text }`, read by an ordered consumer. `recent=true` sends
// what is stored up to now; `follow=true` keeps the response open and streams every later line
// (after `after_seq` when given), until the client goes away, which ends the consumer.
import type { ServerResponse } from "node:http";
import { DeliverPolicy, type NatsConnection } from "nats";
import { decode } from "../../messaging/codec.js";
import { jetStreamManager } from "../../messaging/jetstream.js";
import { logs, STREAM_LOGS } from "../../messaging/subjects.js";
import { invalid } from "../errors.js";
import { visibleApp } from "./apps.js";
import type { ApiContext, ApiRequest, Route } from "./table.js";

type User = NonNullable<ApiRequest["user"]>;
const NO_MESSAGE = 10037;

export function logRoutes(ctx: ApiContext, nc: NatsConnection): Route[] {
  const js = nc.jetstream();
  /** Sequence of the app's newest stored line (0: none). */
  const lastSeq = async (subject: string): Promise<number> => {
    const jsm = await jetStreamManager(nc);
    try {
      return (await jsm.streams.getMessage(STREAM_LOGS, { last_by_subj: subject })).seq;
    } catch (err) {
      if ((err as { api_error?: { err_code?: number } }).api_error?.err_code === NO_MESSAGE) return 0;
      if (/no message found/i.test((err as Error).message)) return 0;
      throw err;
    }
  };
  return [
    {
      method: "GET",
      path: "/v3/apps/:guid/logs",
      handler: async (req) => {
        const app = await visibleApp(ctx.store, req.user as User, req.params.guid as string);
        const recent = req.url.searchParams.get("recent") === "true";
        const follow = req.url.searchParams.get("follow") === "true";
        const afterRaw = req.url.searchParams.get("after_seq");
        const after = afterRaw === null ? null : Number(afterRaw);
        if (after !== null && (!Number.isSafeInteger(after) || after < 0))
          throw invalid("after_seq", "must be a non-negative integer");
        if (!recent && !follow) throw invalid("recent", "or follow must be true");
        const subject = logs(app.guid);
        const end = await lastSeq(subject);
        return {
          status: 200,
          stream: async (res: ServerResponse) => {
            res.writeHead(200, { "content-type": "application/x-ndjson; charset=utf-8" });
            // A follower learns at once that it is attached, before any line comes.
            if (follow) res.flushHeaders();
            if (!follow && (end === 0 || (after !== null && after >= end))) {
              res.end();
              return;
            }
            const start = after !== null ? after + 1 : recent ? 1 : end + 1;
            const consumer = await js.consumers.get(STREAM_LOGS, {
              filterSubjects: subject,
              deliver_policy: DeliverPolicy.StartSequence,
              opt_start_seq: start,
            });
            const messages = await consumer.consume();
            const gone = () => void messages.stop();
            res.on("close", gone);
            for await (const m of messages) {
              let line: string;
              try {
                const l = decode("logs", m.data);
                line = `${JSON.stringify({ seq: m.seq, at: new Date(l.at).toISOString(), source: l.source, index: l.index, stream: l.stream, text: l.text })}\n`;
              } catch {
                line = "";
              }
              if (line !== "" && !res.write(line))
                // A client gone while we wait for drain ends the wait too (no drain would come).
                await new Promise<void>((r) => {
                  const done = () => {
                    res.off("drain", done);
                    res.off("close", done);
                    r();
                  };
                  res.on("drain", done);
                  res.on("close", done);
                });
              if (res.destroyed) break;
              if (!follow && m.seq >= end) break;
            }
            res.off("close", gone);
            await messages.close().catch(() => {});
            res.end();
          },
        };
      },
    },
  ];
}
