// Medians and the interleaved run order shared by every bench: on a noisy VM a result is
// the median over rounds in which every case and proxy ran in a rotated order.

/** Median of a list (mean of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return Number.NaN;
  const s = [...finite].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Smallest and largest finite value, NaN when none. */
export function range(values: readonly number[]): { min: number; max: number } {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { min: Number.NaN, max: Number.NaN };
  return { min: Math.min(...finite), max: Math.max(...finite) };
}

/** `items` rotated left by `by` places (by may exceed the length or be negative). */
export function rotate<T>(items: readonly T[], by: number): T[] {
  const n = items.length;
  if (n === 0) return [];
  const k = ((by % n) + n) % n;
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * The run order of every round: round r is `items` rotated by r × ⌈n / rounds⌉, so each
 * item runs early in one round and late in another and slow drifts of the machine spread
 * over all items instead of landing on one.
 */
export function interleave<T>(items: readonly T[], rounds: number): T[][] {
  const step = Math.max(1, Math.ceil(items.length / Math.max(1, rounds)));
  const plan: T[][] = [];
  for (let r = 0; r < rounds; r++) plan.push(rotate(items, r * step));
  return plan;
}

/** a ÷ b, NaN when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) {
    return Number.NaN;
  }
  return a / b;
}

/** The p-quantile (0 < p ≤ 1) by nearest rank: a value that was measured; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
}
