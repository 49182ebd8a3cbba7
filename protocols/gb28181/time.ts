// GB/T 28181 time strings in MANSCDP bodies (no XML here, so the HTTP routes can use them cheaply).

/** GB/T 28181 time format in MANSCDP: local time `YYYY-MM-DDTHH:mm:ss` (we use UTC offset `tzOffsetMin`). */
export function gbTime(ms: number, tzOffsetMin = 0): string {
  return new Date(ms + tzOffsetMin * 60_000).toISOString().slice(0, 19);
}
export function parseGbTime(s: string, tzOffsetMin = 0): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})/.exec(s);
  if (m === null) return null;
  const t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  return Number.isFinite(t) ? t - tzOffsetMin * 60_000 : null;
}
