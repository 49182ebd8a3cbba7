// NAL unit framing: split Annex-B byte streams and length-prefixed (AVCC/HVCC) buffers
// into zero-copy NAL views, and write the 4-byte length-prefixed form for the muxer.

/**
 * Most NAL units one call (one access unit) may yield. H.265 Table A.8 allows up to 600
 * slice segments per picture (level 6.x) and H.264 level 6.2 allows a few hundred
 * slices; with parameter sets, SEI and filler 1024 is far above any real picture while
 * bounding the work a hostile peer can cause per access unit.
 */
export const MAX_NALUS_PER_AU = 1024;

/** Returned by the splitters when the input holds more NAL units than allowed. */
export const SPLIT_TOO_MANY = -1;
/** Returned by splitLengthPrefixed when a length runs past the end of the buffer. */
export const SPLIT_TRUNCATED = -2;

/** Byte range of one NAL unit found by findNal (start inclusive, end exclusive). */
export interface NalRange {
  start: number;
  end: number;
}

/**
 * ITU-T H.264 Annex B / H.265 Annex B: finds the first NAL unit whose start code begins at
 * or after `from`. Fills `out` (trailing zero bytes excluded: a NAL never ends in 0x00,
 * §7.4.1 appends 0x03 after a final cabac_zero_word) and returns the position to continue
 * from, or -1 when no further NAL exists. Bytes before the first start code belong to
 * no NAL. Empty NAL units (two start codes in a row) are skipped.
 */
export function findNal(buf: Uint8Array, from: number, out: NalRange): number {
  const n = buf.length;
  let i = from;
  let start = -1;
  while (i + 2 < n) {
    const b2 = buf[i + 2]!;
    if (b2 > 1) {
      i += 3; // no start code can cover byte i+2
      continue;
    }
    if (b2 === 1 && buf[i + 1] === 0 && buf[i] === 0) {
      if (start >= 0) {
        let end = i;
        while (end > start && buf[end - 1] === 0) end--;
        if (end > start) {
          out.start = start;
          out.end = end;
          return i;
        }
      }
      start = i + 3;
      i += 3;
      continue;
    }
    i++;
  }
  if (start < 0) return -1;
  let end = n;
  while (end > start && buf[end - 1] === 0) end--;
  if (end <= start) return -1;
  out.start = start;
  out.end = end;
  return n;
}

const scratchRange: NalRange = { start: 0, end: 0 };

/**
 * Splits an Annex-B buffer (3- and 4-byte start codes) into views of `buf`, written to
 * `out[0..count)`. Returns count, or SPLIT_TOO_MANY when more than `max` NAL units follow
 * (`out` then holds the first `max`). `out` is reused by the caller; its length is set.
 */
export function splitAnnexB(buf: Uint8Array, out: Uint8Array[], max = MAX_NALUS_PER_AU): number {
  let count = 0;
  let pos = 0;
  while ((pos = findNal(buf, pos, scratchRange)) >= 0) {
    if (count === max) {
      out.length = count;
      return SPLIT_TOO_MANY;
    }
    out[count++] = buf.subarray(scratchRange.start, scratchRange.end);
  }
  out.length = count;
  return count;
}

/**
 * ISO/IEC 14496-15 §5.3.2 / §8.3.2 sample format: NAL units each preceded by a
 * big-endian length of `lengthSize` (1, 2 or 4) bytes. Views of `buf` go to
 * `out[0..count)`; zero-length units are skipped. Returns count, SPLIT_TRUNCATED when a
 * length overruns the buffer, or SPLIT_TOO_MANY past `max` units.
 */
export function splitLengthPrefixed(
  buf: Uint8Array,
  lengthSize: 1 | 2 | 4,
  out: Uint8Array[],
  max = MAX_NALUS_PER_AU,
): number {
  let count = 0;
  let p = 0;
  const n = buf.length;
  while (p < n) {
    if (n - p < lengthSize) {
      out.length = count;
      return SPLIT_TRUNCATED;
    }
    let len = 0;
    for (let k = 0; k < lengthSize; k++) len = len * 256 + buf[p + k]!;
    p += lengthSize;
    if (len > n - p) {
      out.length = count;
      return SPLIT_TRUNCATED;
    }
    if (len === 0) continue;
    if (count === max) {
      out.length = count;
      return SPLIT_TOO_MANY;
    }
    out[count++] = buf.subarray(p, p + len);
    p += len;
  }
  out.length = count;
  return count;
}

/** Bytes needed to write `nalus[0..count)` each with a 4-byte length prefix. */
export function lengthPrefixedSize(nalus: readonly Uint8Array[], count = nalus.length): number {
  let size = 0;
  for (let i = 0; i < count; i++) size += 4 + nalus[i]!.length;
  return size;
}

/**
 * Writes `nalus[0..count)` as [u32 big-endian length][NAL] into `target` at `offset`;
 * returns the offset after the last byte. The caller sizes `target` with
 * lengthPrefixedSize(); a short target is a bug and throws RangeError.
 */
export function writeLengthPrefixed(
  nalus: readonly Uint8Array[],
  count: number,
  target: Uint8Array,
  offset: number,
): number {
  if (offset + lengthPrefixedSize(nalus, count) > target.length) {
    throw new RangeError(`length-prefixed NAL units need ${lengthPrefixedSize(nalus, count)} bytes at ${offset}, target has ${target.length}`);
  }
  let p = offset;
  for (let i = 0; i < count; i++) {
    const nal = nalus[i]!;
    const len = nal.length;
    target[p] = len >>> 24;
    target[p + 1] = (len >>> 16) & 0xff;
    target[p + 2] = (len >>> 8) & 0xff;
    target[p + 3] = len & 0xff;
    target.set(nal, p + 4);
    p += 4 + len;
  }
  return p;
}

const START_CODE = new Uint8Array([0, 0, 0, 1]);

/**
 * Annex-B bytes of `nalus`, a 4-byte start code before each: into `into` when it is large
 * enough (a view of the bytes used), else a new array.
 */
export function toAnnexB(nalus: readonly Uint8Array[], into?: Uint8Array): Uint8Array {
  let need = 0;
  for (const n of nalus) need += 4 + n.length;
  const out = into !== undefined && into.length >= need ? into : new Uint8Array(need);
  let at = 0;
  for (const n of nalus) {
    out.set(START_CODE, at);
    out.set(n, at + 4);
    at += 4 + n.length;
  }
  return out.length === need ? out : out.subarray(0, need);
}
