// How a component's command runs (`kiln router`, `kiln dea`): started, then stopped by the
// first SIGTERM or SIGINT; a signal while it is still starting (waiting for NATS, say)
// aborts the start, since there is nothing to drain yet.
import type { Logger } from "./log.js";

/** A started component: `done` resolves with the process's exit code once it has stopped. */
export interface Running {
  done: Promise<number>;
}

/** Runs `start` until a signal calls `stop` on what it started; resolves with the exit code. */
export async function runUntilSignal<H extends Running>(
  log: Logger,
  start: (signal: AbortSignal) => Promise<H>,
  stop: (h: H) => void,
): Promise<number> {
  let running: H | null = null;
  const starting = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    log.info("signal", { signal });
    if (running === null) starting.abort(new Error(`stopped by ${signal} while starting`));
    else stop(running);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    const started = await start(starting.signal);
    running = started;
    // A signal that came while it was starting, past the point where the start could be
    // aborted (the NATS connect): stop it now rather than run on with nobody to stop it.
    if (starting.signal.aborted) stop(started);
    return await started.done;
  } catch (err) {
    if (!starting.signal.aborted) throw err;
    // Only the NATS client may still be retrying its first connect, which cannot be
    // cancelled: leave without waiting for it.
    setTimeout(() => process.exit(0), 200).unref();
    return 0;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
