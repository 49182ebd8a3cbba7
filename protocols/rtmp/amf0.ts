// AMF0 (Action Message Format 0) decoder and encoder for RTMP commands and data messages.
// Adobe "AMF 0 File Format Specification" (2007); section numbers below refer to it.
import { ParseError } from '../../media/types.ts';

/** §2.1 type markers. */
export const AMF0_NUMBER = 0x00;
export const AMF0_BOOLEAN = 0x01;
export const AMF0_STRING = 0x02;
export const AMF0_OBJECT = 0x03;
export const AMF0_MOVIECLIP = 0x04; // reserved, not supported
export const AMF0_NULL = 0x05;
export const AMF0_UNDEFINED = 0x06;
export const AMF0_REFERENCE = 0x07;
export const AMF0_ECMA_ARRAY = 0x08;
export const AMF0_OBJECT_END = 0x09;
export const AMF0_STRICT_ARRAY = 0x0a;
export const AMF0_DATE = 0x0b;
export const AMF0_LONG_STRING = 0x0c;
export const AMF0_UNSUPPORTED = 0x0d;
export const AMF0_XML_DOCUMENT = 0x0f;
export const AMF0_TYPED_OBJECT = 0x10;
export const AMF0_AVMPLUS = 0x11;

/**
 * Nesting depth a peer may send. connect's command object and onMetaData are depth 2; 16
 * leaves room for odd encoders while bounding recursion (stack) on hostile input.
 */
export const MAX_AMF_DEPTH = 16;
/**
 * Values (scalars and containers, all levels) decoded from one message. onMetaData from
 * OBS has ~30 entries; 4096 bounds the objects a single 64 KiB message can make us allocate.
 */
export const MAX_AMF_VALUES = 4096;

/** A decoded object or ECMA array: null prototype, so keys like "__proto__" stay plain data. */
export interface AmfObject {
  [key: string]: AmfValue;
}
export type AmfValue = number | boolean | string | null | undefined | Date | AmfObject | AmfValue[];

/** Non-enumerable marker on objects that came from (or should be written as) an ECMA array. */
export const AMF_ECMA_ARRAY: unique symbol = Symbol('amf0.ecmaArray');

/** A null-prototype object; `ecma` marks it to be written as an ECMA array (§2.10). */
export function amfObject(entries: Record<string, AmfValue> = {}, ecma = false): AmfObject {
  const o = Object.create(null) as AmfObject;
  for (const k of Object.keys(entries)) o[k] = entries[k];
  if (ecma) Object.defineProperty(o, AMF_ECMA_ARRAY, { value: true, enumerable: false });
  return o;
}

export const isEcmaArray = (o: AmfObject): boolean => (o as Record<symbol, unknown>)[AMF_ECMA_ARRAY] === true;

const utf8 = new TextDecoder('utf-8');
const utf8Enc = new TextEncoder();

/** Cursor over one AMF0 buffer; `value()` reads one value and throws ParseError on bad input. */
export class Amf0Reader {
  pos: number;
  private count = 0;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    private readonly maxValues = MAX_AMF_VALUES,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  private need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) throw new ParseError(`AMF0 ${what}: need ${n} bytes, ${this.buf.length - this.pos} left`, this.pos);
  }

  private u16(): number {
    this.need(2, 'u16');
    const p = this.pos;
    this.pos += 2;
    return (this.buf[p]! << 8) | this.buf[p + 1]!;
  }

  private u32(): number {
    this.need(4, 'u32');
    const p = this.pos;
    this.pos += 4;
    return ((this.buf[p]! << 24) | (this.buf[p + 1]! << 16) | (this.buf[p + 2]! << 8) | this.buf[p + 3]!) >>> 0;
  }

  private f64(): number {
    this.need(8, 'number');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0);
    this.pos += 8;
    return v;
  }

  private utf8(n: number, what: string): string {
    this.need(n, what);
    const s = utf8.decode(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }

  /** §2.4 UTF-8 with a u16 length (property names and short strings). */
  shortString(): string {
    return this.utf8(this.u16(), 'string');
  }

  /** One value of any supported type (§2.2-§2.18). */
  value(depth = 0): AmfValue {
    if (++this.count > this.maxValues) throw new ParseError(`AMF0 more than ${this.maxValues} values`, this.pos);
    this.need(1, 'type marker');
    const at = this.pos;
    const marker = this.buf[this.pos++]!;
    switch (marker) {
      case AMF0_NUMBER: return this.f64();
      case AMF0_BOOLEAN: this.need(1, 'boolean'); return this.buf[this.pos++] !== 0;
      case AMF0_STRING: return this.shortString();
      case AMF0_LONG_STRING: case AMF0_XML_DOCUMENT: return this.utf8(this.u32(), 'long string'); // §2.14, §2.17
      case AMF0_NULL: return null;
      case AMF0_UNDEFINED: case AMF0_UNSUPPORTED: return undefined;
      case AMF0_DATE: { // §2.13: ms since epoch, then a reserved s16 time zone
        const ms = this.f64();
        this.need(2, 'date time zone');
        this.pos += 2;
        return new Date(ms);
      }
      case AMF0_OBJECT: return this.properties(depth, false);
      case AMF0_TYPED_OBJECT: // §2.18: class name, then an anonymous object; the name is dropped
        this.shortString();
        return this.properties(depth, false);
      case AMF0_ECMA_ARRAY: // §2.10: the u32 count is only a hint
        this.u32();
        return this.properties(depth, true);
      case AMF0_STRICT_ARRAY: { // §2.12
        const n = this.u32();
        if (n > this.buf.length - this.pos) throw new ParseError(`AMF0 strict array of ${n} values in ${this.buf.length - this.pos} bytes`, at);
        if (depth >= MAX_AMF_DEPTH) throw new ParseError(`AMF0 nesting deeper than ${MAX_AMF_DEPTH}`, at);
        const arr: AmfValue[] = [];
        for (let i = 0; i < n; i++) arr.push(this.value(depth + 1));
        return arr;
      }
      default:
        throw new ParseError(`AMF0 unsupported type marker 0x${marker.toString(16)}`, at); // reference, movieclip, AVM+
    }
  }

  /**
   * §2.5 / §2.10 property list up to the object-end marker (00 00 09). Some encoders also leave out its end marker at the end
   * of the message, so the end of the buffer ends an ECMA array too.
   */
  private properties(depth: number, ecma: boolean): AmfObject {
    if (depth >= MAX_AMF_DEPTH) throw new ParseError(`AMF0 nesting deeper than ${MAX_AMF_DEPTH}`, this.pos);
    const o = Object.create(null) as AmfObject;
    if (ecma) Object.defineProperty(o, AMF_ECMA_ARRAY, { value: true, enumerable: false });
    for (;;) {
      if (ecma && this.done) return o;
      const key = this.shortString();
      if (key.length === 0) {
        this.need(1, 'object end');
        if (this.buf[this.pos] === AMF0_OBJECT_END) {
          this.pos++;
          return o;
        }
      }
      o[key] = this.value(depth + 1);
    }
  }
}

/** Decodes every value in `b` (a command or data message body). Throws ParseError. */
export function decodeAmf0(b: Uint8Array, maxValues = MAX_AMF_VALUES): AmfValue[] {
  const r = new Amf0Reader(b, 0, maxValues);
  const out: AmfValue[] = [];
  while (!r.done) out.push(r.value());
  return out;
}

/** Growable big-endian writer for the encoder (commands are small and rare). */
class Out {
  buf = new Uint8Array(256);
  len = 0;
  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.u8(v >> 8);
    this.u8(v & 0xff);
  }
  u32(v: number): void {
    this.u16(v >>> 16);
    this.u16(v & 0xffff);
  }
  f64(v: number): void {
    this.reserve(8);
    new DataView(this.buf.buffer).setFloat64(this.len, v);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
}

function writeKey(o: Out, key: string): void {
  const b = utf8Enc.encode(key);
  if (b.length > 0xffff) throw new RangeError(`AMF0 property name of ${b.length} bytes`);
  o.u16(b.length);
  o.bytes(b);
}

function writeValue(o: Out, v: AmfValue, depth: number): void {
  if (depth > MAX_AMF_DEPTH) throw new RangeError(`AMF0 value nested deeper than ${MAX_AMF_DEPTH}`);
  if (typeof v === 'number') {
    o.u8(AMF0_NUMBER);
    o.f64(v);
  } else if (typeof v === 'boolean') {
    o.u8(AMF0_BOOLEAN);
    o.u8(v ? 1 : 0);
  } else if (typeof v === 'string') {
    const b = utf8Enc.encode(v);
    if (b.length > 0xffff) {
      o.u8(AMF0_LONG_STRING);
      o.u32(b.length);
    } else {
      o.u8(AMF0_STRING);
      o.u16(b.length);
    }
    o.bytes(b);
  } else if (v === null) o.u8(AMF0_NULL);
  else if (v === undefined) o.u8(AMF0_UNDEFINED);
  else if (v instanceof Date) {
    o.u8(AMF0_DATE);
    o.f64(v.getTime());
    o.u16(0);
  } else if (Array.isArray(v)) {
    o.u8(AMF0_STRICT_ARRAY);
    o.u32(v.length);
    for (const e of v) writeValue(o, e, depth + 1);
  } else {
    const keys = Object.keys(v);
    if (isEcmaArray(v)) {
      o.u8(AMF0_ECMA_ARRAY);
      o.u32(keys.length);
    } else o.u8(AMF0_OBJECT);
    for (const k of keys) {
      writeKey(o, k);
      writeValue(o, v[k], depth + 1);
    }
    o.u16(0);
    o.u8(AMF0_OBJECT_END);
  }
}

/** Encodes values back to back (a command: name, transaction id, objects...). */
export function encodeAmf0(values: readonly AmfValue[]): Uint8Array {
  const o = new Out();
  for (const v of values) writeValue(o, v, 0);
  return o.buf.slice(0, o.len);
}
