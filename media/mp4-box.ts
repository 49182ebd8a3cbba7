// ISO BMFF (ISO/IEC 14496-12) box plumbing: a growable writer that patches box sizes after
// the children are written, and a bounds-checked cursor plus box-header reader for parsing.
import { ParseError } from './types.ts';

const TWO_32 = 4294967296;

/** Four-character code as a big-endian u32 (`fourcc('moof')`). Call once, keep the number. */
export function fourcc(s: string): number {
  return (
    ((s.charCodeAt(0) << 24) | (s.charCodeAt(1) << 16) | (s.charCodeAt(2) << 8) | s.charCodeAt(3)) >>> 0
  );
}

/** The four characters of a box type, for messages and tests. */
export function fourccString(t: number): string {
  return String.fromCharCode((t >>> 24) & 0xff, (t >>> 16) & 0xff, (t >>> 8) & 0xff, t & 0xff);
}

/** Raised when a writer would grow past its byte cap. */
export class BoxWriterFullError extends Error {
  override name = 'BoxWriterFullError';
  constructor(
    readonly wanted: number,
    readonly max: number,
  ) {
    super(`box writer needs ${wanted} bytes, cap is ${max}`);
  }
}

/**
 * Big-endian writer over a buffer that doubles when full (up to `maxBytes`).
 * Reuse it: `reset()` keeps the buffer. `bytes()` is a view valid until the next write.
 */
export class BoxWriter {
  buf: Uint8Array;
  pos = 0;
  private view: DataView;

  constructor(
    capacity = 1024,
    readonly maxBytes = 0x7fffffff,
  ) {
    this.buf = new Uint8Array(Math.max(16, capacity));
    this.view = new DataView(this.buf.buffer);
  }

  reset(): void {
    this.pos = 0;
  }

  /** Make room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    if (need > this.maxBytes) throw new BoxWriterFullError(need, this.maxBytes);
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    if (cap > this.maxBytes) cap = this.maxBytes;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }
  u24(v: number): void {
    this.ensure(3);
    this.buf[this.pos] = (v >>> 16) & 0xff;
    this.buf[this.pos + 1] = (v >>> 8) & 0xff;
    this.buf[this.pos + 2] = v & 0xff;
    this.pos += 3;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.view.setInt32(this.pos, v | 0);
    this.pos += 4;
  }
  /** Unsigned 64-bit from a non-negative safe integer, written as two 32-bit halves. */
  u64(v: number): void {
    this.u32(Math.floor(v / TWO_32));
    this.u32(v >>> 0);
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }

  /** Start a box; returns its offset for `close()`. Size is patched at close. */
  open(type: number): number {
    const at = this.pos;
    this.u32(0);
    this.u32(type);
    return at;
  }
  /** Start a full box (version + 24-bit flags). */
  openFull(type: number, version: number, flags: number): number {
    const at = this.open(type);
    this.u8(version);
    this.u24(flags);
    return at;
  }
  close(at: number): void {
    this.view.setUint32(at, this.pos - at);
  }
  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0);
  }
  patchI32(at: number, v: number): void {
    this.view.setInt32(at, v | 0);
  }

  /** View of what was written; valid until the next write or reset. */
  result(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * Bounds-checked big-endian reader over `bytes[pos, end)`. Every read checks what is left
 * and throws `ParseError` (with the offset) rather than reading past `end`.
 */
export class BoxCursor {
  private view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    public pos = 0,
    public end = bytes.length,
  ) {
    if (pos < 0 || end > bytes.length || pos > end) throw new ParseError(`cursor range ${pos}..${end} outside ${bytes.length}`, pos);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  get remaining(): number {
    return this.end - this.pos;
  }
  need(n: number): void {
    if (n < 0 || this.pos + n > this.end) throw new ParseError(`need ${n} bytes, ${this.end - this.pos} left`, this.pos);
  }
  u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u24(): number {
    this.need(3);
    const b = this.bytes;
    const v = (b[this.pos]! << 16) | (b[this.pos + 1]! << 8) | b[this.pos + 2]!;
    this.pos += 3;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }
  /** Unsigned 64-bit as a number; throws beyond 2^53 (no media time gets there). */
  u64(): number {
    const at = this.pos;
    const hi = this.u32();
    const lo = this.u32();
    if (hi >= 0x200000) throw new ParseError(`64-bit value ${hi}:${lo} beyond 2^53`, at);
    return hi * TWO_32 + lo;
  }
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
  /** View of the next `n` bytes (no copy). */
  take(n: number): Uint8Array {
    this.need(n);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
}

/** One box header as found by `readBoxHeader`. Reuse an instance; fields are overwritten. */
export interface BoxHeader {
  type: number;
  /** Offset of the box's first byte. */
  start: number;
  /** Offset of the payload (after size, type and any largesize). */
  body: number;
  /** Offset just past the box. */
  end: number;
}

export const newBoxHeader = (): BoxHeader => ({ type: 0, start: 0, body: 0, end: 0 });

export const BOX_OK = 0;
/** Fewer bytes than the header or the announced size: the input was cut here. */
export const BOX_PARTIAL = 1;
/** Size field impossible (smaller than the header, or beyond 2^53). */
export const BOX_INVALID = 2;
export type BoxStatus = typeof BOX_OK | typeof BOX_PARTIAL | typeof BOX_INVALID;

/**
 * ISO/IEC 14496-12 §4.2 box header at `pos` within `[.., end)`. size 1 means a 64-bit
 * largesize follows; size 0 means "to the end of the enclosing space" (`end`). 'uuid'
 * boxes keep their 16-byte user type in the body. Fills `out` only when BOX_OK.
 */
export function readBoxHeader(b: Uint8Array, pos: number, end: number, out: BoxHeader): BoxStatus {
  if (pos + 8 > end) return BOX_PARTIAL;
  const size = ((b[pos]! << 24) | (b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!) >>> 0;
  const type = ((b[pos + 4]! << 24) | (b[pos + 5]! << 16) | (b[pos + 6]! << 8) | b[pos + 7]!) >>> 0;
  let body = pos + 8;
  let boxEnd: number;
  if (size === 1) {
    if (pos + 16 > end) return BOX_PARTIAL;
    const hi = ((b[pos + 8]! << 24) | (b[pos + 9]! << 16) | (b[pos + 10]! << 8) | b[pos + 11]!) >>> 0;
    const lo = ((b[pos + 12]! << 24) | (b[pos + 13]! << 16) | (b[pos + 14]! << 8) | b[pos + 15]!) >>> 0;
    if (hi >= 0x200000) return BOX_INVALID;
    body = pos + 16;
    const large = hi * TWO_32 + lo;
    if (large < 16) return BOX_INVALID;
    boxEnd = pos + large;
  } else if (size === 0) {
    boxEnd = end;
  } else {
    if (size < 8) return BOX_INVALID;
    boxEnd = pos + size;
  }
  if (boxEnd > end) return BOX_PARTIAL;
  out.type = type;
  out.start = pos;
  out.body = body;
  out.end = boxEnd;
  return BOX_OK;
}

/**
 * Find the first child of `type` among the boxes in `[start, end)`. Returns false when
 * absent or when a child header is partial or invalid before it is found.
 */
export function findBox(b: Uint8Array, start: number, end: number, type: number, out: BoxHeader): boolean {
  let pos = start;
  while (pos < end) {
    if (readBoxHeader(b, pos, end, out) !== BOX_OK) return false;
    if (out.type === type) return true;
    pos = out.end;
  }
  return false;
}
