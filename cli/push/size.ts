// Memory and disk sizes as cf writes them: a whole number and M, MB, G or GB, in any case.

/** Megabytes in `text` (`256M`, `1G`, `512mb`), or null when it is not such a size. */
export function parseSizeMb(text: string): number | null {
  const m = /^\s*(\d+)\s*(M|MB|G|GB)\s*$/i.exec(text);
  if (m === null) return null;
  const n = Number(m[1]);
  const mb = (m[2] ?? "").toUpperCase().startsWith("G") ? n * 1024 : n;
  return Number.isSafeInteger(mb) && mb > 0 ? mb : null;
}

export function sizeProblem(text: string): string {
  return `${JSON.stringify(text)} is not a size like 256M`;
}

export function formatMb(mb: number): string {
  return mb % 1024 === 0 ? `${mb / 1024}G` : `${mb}M`;
}
