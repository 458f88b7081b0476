// A RouteSink that applies registry batches to one route table (the shared native
// table, or the main thread's copy when the fallback is in use).
import type { RouteSink, RouteTable, RouteUpdate } from "../../native/types.js";

/**
 * `onReject` hears about an update the table refused (e.g. a uri that is not a valid
 * route); the rest of the batch is still applied.
 */
export function tableSink(
  table: RouteTable,
  onReject?: (update: RouteUpdate, err: unknown) => void,
): RouteSink {
  return {
    apply(updates: readonly RouteUpdate[], nowMs: number): void {
      for (let i = 0; i < updates.length; i++) {
        const u = updates[i] as RouteUpdate;
        try {
          if (u.op === "register") table.register(u.uri, u.endpoint, u.options, nowMs);
          else table.unregister(u.uri, u.endpoint, nowMs);
        } catch (err) {
          onReject?.(u, err);
        }
      }
    },
    prune: (nowMs: number) => table.prune(nowMs),
  };
}
