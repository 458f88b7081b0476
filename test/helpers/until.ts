// The one polling wait of the tests: conditions on real processes (a log line, a NATS message,
// an HTTP answer) come when they come, so tests poll them against a deadline instead of sleeping.

type Maybe<T> = T | null | undefined | false;

/**
 * Polls `f` every `everyMs` until it gives a value (anything but null, undefined or false) and
 * resolves with it; rejects naming `what` once `ms` have passed.
 */
export async function until<T>(
  what: string,
  f: () => Maybe<T> | Promise<Maybe<T>>,
  ms = 30_000,
  everyMs = 10,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
