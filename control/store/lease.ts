// Work in progress held by one controller: a package upload (PROCESSING_UPLOAD) or a staging
// (STAGING). The holder rewrites the record's `updated_at` every third of the lease while the
// work runs; a record in progress whose `updated_at` is older than the lease belongs to a
// controller that died mid-push, and whichever controller reads it next marks it FAILED by
// compare-and-set. A lease is what lets two controllers share one state with no process
// remembering what it was doing.

/** Starts refreshing; the returned function stops it. A failed refresh is retried next time. */
export function holdLease(leaseMs: number, refresh: () => Promise<unknown>): () => void {
  const timer = setInterval(() => void refresh().catch(() => {}), Math.max(50, Math.floor(leaseMs / 3)));
  timer.unref();
  return () => clearInterval(timer);
}

/** Whether a record in progress, last refreshed at `updatedAt`, has outlived its holder. */
export function leaseExpired(updatedAt: string, leaseMs: number, now = Date.now()): boolean {
  const at = Date.parse(updatedAt);
  return !Number.isFinite(at) || now - at > leaseMs;
}
