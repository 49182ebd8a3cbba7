// Bit-level readers for codec headers: RBSP extraction (emulation-prevention removal),
// an Exp-Golomb bit reader and a bounds-checked byte cursor, all throwing ParseError.
import { ParseError } from './types.ts';

/**
 * Largest RBSP we unescape in one go. Parameter sets are tens of bytes (an SPS with
 * scaling lists and VUI+HRD stays under 1 KiB); slice headers are read from a short
 * prefix. 64 KiB is the largest NAL a length-prefixed record (u16 length) can carry.
 */
export const MAX_RBSP_BYTES = 65_536;

/**
 * ITU-T H.264 §7.4.1 / H.265 §7.4.2: copies `src[from..]` into `dst` without the
 * emulation_prevention_three_byte of every 0x000003 sequence; stops when `dst` is full.
 * Returns the number of bytes written. Never reads outside `src`, never writes `src`.
 */
export function unescapeRbsp(src: Uint8Array, from: number, dst: Uint8Array): number {
  let zeros = 0;
  let o = 0;
  const cap = dst.length;
  for (let i = from; i < src.length && o < cap; i++) {
    const b = src[i]!;
    if (zeros >= 2 && b === 3) {
      zeros = 0; // drop the emulation_prevention_three_byte
      continue;
    }
    dst[o++] = b;
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return o;
}

/** MSB-first bit reader over `buf[0..len)`; every read checks the end first. */
export class BitReader {
  private buf: Uint8Array;
  private len = 0;
  /** Position in bits from the start of the buffer. */
  pos = 0;

  constructor(buf: Uint8Array = new Uint8Array(0), len = buf.length) {
    this.buf = buf;
    this.reset(buf, len);
  }

  reset(buf: Uint8Array, len = buf.length): this {
    this.buf = buf;
    this.len = Math.min(len, buf.length) * 8;
    this.pos = 0;
    return this;
  }

  /** Bits left to read. */
  get bitsLeft(): number {
    return this.len - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.len) {
      throw new ParseError(`bit read of ${n} past end (bit ${this.pos} of ${this.len})`, this.pos >> 3);
    }
  }

  /** u(n), 0 <= n <= 32, as an unsigned number. */
  u(n: number): number {
    this.need(n);
    let v = 0;
    let p = this.pos;
    let left = n;
    while (left > 0) {
      const byte = this.buf[p >> 3]!;
      const bitOff = p & 7;
      const take = Math.min(8 - bitOff, left);
      const bits = (byte >> (8 - bitOff - take)) & ((1 << take) - 1);
      v = v * (1 << take) + bits; // multiply, not shift: keeps n = 32 unsigned
      p += take;
      left -= take;
    }
    this.pos = p;
    return v;
  }

  /** u(1) as a boolean. */
  flag(): boolean {
    this.need(1);
    const b = (this.buf[this.pos >> 3]! >> (7 - (this.pos & 7))) & 1;
    this.pos++;
    return b === 1;
  }

  /** ITU-T H.264 §9.1 ue(v); values up to 2^32 - 2 (31 leading zeros). */
  ue(): number {
    let zeros = 0;
    while (!this.flag()) {
      if (++zeros > 31) throw new ParseError('exp-Golomb code longer than 32 bits', this.pos >> 3);
    }
    return zeros === 0 ? 0 : 2 ** zeros - 1 + this.u(zeros);
  }

  /** ITU-T H.264 §9.1.1 se(v). */
  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : k === 0 ? 0 : -(k / 2);
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** ue(v) that must not exceed `max` (a spec range): a larger value means a broken stream. */
  ueMax(max: number, what: string): number {
    const at = this.pos >> 3;
    const v = this.ue();
    if (v > max) throw new ParseError(`${what} ${v} exceeds ${max}`, at);
    return v;
  }
}

/**
 * Unescapes NAL payloads into one reusable scratch buffer and hands out a reader over it.
 * The reader and its bytes are valid until the next `load()`.
 */
export class RbspReader {
  private readonly scratch: Uint8Array;
  readonly bits = new BitReader();

  constructor(capacity = MAX_RBSP_BYTES) {
    this.scratch = new Uint8Array(capacity);
  }

  /** Unescapes `nal[skip..]` (at most `maxBytes` of RBSP) and returns the reset reader. */
  load(nal: Uint8Array, skip: number, maxBytes = this.scratch.length): BitReader {
    const dst = maxBytes < this.scratch.length ? this.scratch.subarray(0, maxBytes) : this.scratch;
    const n = unescapeRbsp(nal, skip, dst);
    return this.bits.reset(this.scratch, n);
  }
}

/** Big-endian byte cursor; every read checks the remaining length first. */
export class ByteReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) {
      throw new ParseError(`${what}: need ${n} bytes, ${this.buf.length - this.pos} left`, this.pos);
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const p = this.pos;
    this.pos += 2;
    return (this.buf[p]! << 8) | this.buf[p + 1]!;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const p = this.pos;
    this.pos += 4;
    return ((this.buf[p]! << 24) | (this.buf[p + 1]! << 16) | (this.buf[p + 2]! << 8) | this.buf[p + 3]!) >>> 0;
  }

  /** A view (no copy) of the next `n` bytes. */
  bytes(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number, what = 'skip'): void {
    this.need(n, what);
    this.pos += n;
  }
}
