// Hashing and the Maglev lookup table, bit-for-bit the same as native/src/route_table.cc
// so the native table and the fallback send a hash key to the same endpoint.

export const SEED_OFFSET = 0x9e3779b9;
export const SEED_SKIP = 0x85ebca6b;
export const SEED_KEY = 0xc2b2ae35;
const MAGLEV_SMALL = 4093;
const MAGLEV_LARGE = 65521;
const EMPTY = 0xffff;

function step(h: number, byte: number): number {
  return Math.imul(h ^ byte, 16777619);
}

/** FNV-1a over the UTF-8 bytes of `s` (lone surrogates as U+FFFD, like N-API) then murmur3's fmix32. */
export function hashString(s: string, seed: number): number {
  let h = (2166136261 ^ seed) | 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = step(h, c);
      continue;
    }
    if (c < 0x800) {
      h = step(step(h, 0xc0 | (c >> 6)), 0x80 | (c & 0x3f));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        h = step(h, 0xf0 | (c >> 18));
        h = step(h, 0x80 | ((c >> 12) & 0x3f));
        h = step(h, 0x80 | ((c >> 6) & 0x3f));
        h = step(h, 0x80 | (c & 0x3f));
        continue;
      }
      c = 0xfffd;
    }
    h = step(step(step(h, 0xe0 | (c >> 12)), 0x80 | ((c >> 6) & 0x3f)), 0x80 | (c & 0x3f));
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Maglev table (Eisenbud et al. 2016, §3.4) over endpoint keys in pool order: entry -> member index. */
export function buildMaglev(keys: readonly string[]): Uint16Array {
  const n = keys.length;
  const m = n <= 400 ? MAGLEV_SMALL : MAGLEV_LARGE;
  const table = new Uint16Array(m);
  if (n === 0) return table;
  table.fill(EMPTY);
  const offset = new Array<number>(n);
  const skip = new Array<number>(n);
  const next = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    const key = keys[i] as string;
    offset[i] = hashString(key, SEED_OFFSET) % m;
    skip[i] = (hashString(key, SEED_SKIP) % (m - 1)) + 1;
  }
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      const off = offset[i] as number;
      const sk = skip[i] as number;
      let nx = next[i] as number;
      // offset + next * skip stays below 2^53: next < m and both factors are < 2^16.
      let c = (off + nx * sk) % m;
      while (table[c] !== EMPTY) {
        nx++;
        c = (off + nx * sk) % m;
      }
      table[c] = i;
      next[i] = nx + 1;
      if (++filled === m) return table;
    }
  }
}
