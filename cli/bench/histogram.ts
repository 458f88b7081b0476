// A latency histogram in microseconds with about 1.6 % resolution at any size, in fixed memory:
// autocannon's own keeps whole milliseconds, which reads 0 for every answer of a fast local app.

/** Values below this many µs get a bucket each. */
const EXACT = 128;
/** Buckets per power of two above that: 64 gives 1/64 relative resolution. */
const SUB = 64;
/** Up to 2^47 µs (over four years), far beyond any request timeout. */
const SIZE = EXACT + 40 * SUB;

function bucketOf(us: number): number {
  if (us < EXACT) return us;
  let shift = Math.floor(Math.log2(us)) - 6;
  let sub = Math.floor(us / 2 ** shift);
  // Math.log2 may land a hair off at a power of two: bring sub back into [SUB, 2 * SUB).
  if (sub >= 2 * SUB) sub = Math.floor(us / 2 ** ++shift);
  else if (sub < SUB) sub = Math.floor(us / 2 ** --shift);
  return Math.min(SIZE - 1, EXACT + (shift - 1) * SUB + (sub - SUB));
}

/** The middle of a bucket's range, so a percentile is off by at most half a bucket. */
function middleOf(bucket: number): number {
  if (bucket < EXACT) return bucket;
  const shift = Math.floor((bucket - EXACT) / SUB) + 1;
  const low = ((bucket - EXACT) % SUB) + SUB;
  return (low + 0.5) * 2 ** shift;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(SIZE);
  count = 0;
  private sumUs = 0;
  private maxUs = 0;

  recordMs(ms: number): void {
    const us = Math.max(0, Math.round(ms * 1000));
    const b = bucketOf(us);
    this.counts[b] = (this.counts[b] ?? 0) + 1;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  /** The `q` quantile (0 < q ≤ 1) in milliseconds; 0 when nothing was recorded. */
  percentileMs(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let b = 0; b < SIZE; b++) {
      seen += this.counts[b] ?? 0;
      if (seen >= rank) return Math.min(middleOf(b), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  meanMs(): number {
    return this.count === 0 ? 0 : this.sumUs / this.count / 1000;
  }

  maxMs(): number {
    return this.maxUs / 1000;
  }
}
