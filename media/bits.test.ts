import { describe, expect, test } from 'bun:test';
import { BitReader, ByteReader, RbspReader, unescapeRbsp } from './bits.ts';
import { ParseError } from './types.ts';
import { assertUnchanged, BitWriter, escapeRbsp, mulberry32, randInt, randomBytes } from './testdata/test-helpers.ts';

const u8 = (...b: number[]) => new Uint8Array(b);


function referenceUnescape(src: Uint8Array): number[] {
  const out: number[] = [];
  let zeros = 0;
  for (const b of src) {
    if (zeros === 2 && b === 3) {
      zeros = 0;
      continue;
    }
    out.push(b);
    zeros = b === 0 ? Math.min(zeros + 1, 2) : 0;
  }
  return out;
}

describe('unescapeRbsp', () => {
  const cases: [string, number[], number[]][] = [
    ['drops the 03 of 00 00 03', [0x67, 0, 0, 3, 1, 0x80], [0x67, 0, 0, 1, 0x80]],
    ['drops back-to-back escapes', [0, 0, 3, 0, 0, 3, 0], [0, 0, 0, 0, 0]],
    ['keeps a 03 that follows a dropped escape', [0, 0, 3, 3], [0, 0, 3]],
    ['drops an escape at the very end (after cabac_zero_word)', [5, 0, 0, 3], [5, 0, 0]],
    ['keeps 00 03 with a single zero', [0, 3, 0, 0, 4], [0, 3, 0, 0, 4]],
  ];
  for (const [name, src, want] of cases) {
    test(name, () => {
      const dst = new Uint8Array(16);
      const n = unescapeRbsp(u8(...src), 0, dst);
      expect([...dst.subarray(0, n)]).toEqual(want);
    });
  }

  test('stops when the destination is full and never writes the source', () => {
    const src = u8(1, 2, 0, 0, 3, 4, 5, 6);
    const dst = new Uint8Array(4);
    const n = assertUnchanged(src, () => unescapeRbsp(src, 1, dst));
    expect(n).toBe(4);
    expect([...dst]).toEqual([2, 0, 0, 4]);
  });

  test('inverts the escaping of random payloads', () => {
    const rnd = mulberry32(7);
    const dst = new Uint8Array(4096);
    for (let i = 0; i < 300; i++) {
      // zero-heavy payloads provoke escapes
      const raw = randomBytes(rnd, randInt(rnd, 200)).map((b) => (b < 160 ? 0 : b & 7));
      const esc = escapeRbsp(raw);
      const n = unescapeRbsp(esc, 0, dst);
      expect([...dst.subarray(0, n)]).toEqual([...raw]);
    }
  });

  test('fuzz: matches the reference on random bytes and stays within bounds', () => {
    const rnd = mulberry32(11);
    for (let i = 0; i < 2000; i++) {
      const src = randomBytes(rnd, randInt(rnd, 64)).map((b) => (b < 128 ? 0 : b & 3));
      const cap = randInt(rnd, 80);
      const dst = new Uint8Array(cap);
      const n = unescapeRbsp(src, 0, dst);
      expect(n).toBeLessThanOrEqual(Math.min(cap, src.length));
      expect([...dst.subarray(0, n)]).toEqual(referenceUnescape(src).slice(0, n));
    }
  });
});

describe('BitReader', () => {
  test('reads u(n) across byte boundaries, u(32) unsigned', () => {
    const r = new BitReader(u8(0b10110011, 0b01010101, 0xff, 0xff, 0xff, 0xff));
    expect(r.u(3)).toBe(0b101);
    expect(r.u(7)).toBe(0b1001101);
    expect(r.flag()).toBe(false);
    expect(r.u(5)).toBe(0b10101);
    expect(r.u(32)).toBe(0xffffffff);
    expect(r.bitsLeft).toBe(0);
  });

  test('decodes Exp-Golomb ue(v) and se(v) per §9.1 Table 9-2/9-3', () => {
    // bit strings: 1, 010, 011, 00100, 00101, 00110, 00111
    const r = new BitReader(u8(0b10100110, 0b01000010, 0b10011000, 0b11100000));
    expect([r.ue(), r.ue(), r.ue(), r.ue(), r.ue(), r.ue(), r.ue()]).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const s = new BitReader(u8(0b10100110, 0b01000010, 0b10011000, 0b11100000));
    expect([s.se(), s.se(), s.se(), s.se(), s.se(), s.se(), s.se()]).toEqual([0, 1, -1, 2, -2, 3, -3]);
  });

  test('round-trips values written by an independent writer, up to 2^32 - 2', () => {
    const rnd = mulberry32(3);
    const w = new BitWriter();
    const values: [string, number, number][] = [];
    for (let i = 0; i < 500; i++) {
      const kind = randInt(rnd, 3);
      if (kind === 0) {
        const n = 1 + randInt(rnd, 32);
        const v = Math.floor(rnd() * 2 ** n);
        w.u(n, v);
        values.push(['u', n, v]);
      } else if (kind === 1) {
        const v = i === 0 ? 2 ** 32 - 2 : Math.floor(rnd() ** 4 * 2 ** 20);
        w.ue(v);
        values.push(['ue', 0, v]);
      } else {
        const v = Math.floor((rnd() - 0.5) * 2 ** 16);
        w.se(v);
        values.push(['se', 0, v]);
      }
    }
    const r = new BitReader(w.bytes());
    for (const [kind, n, v] of values) {
      expect(kind === 'u' ? r.u(n) : kind === 'ue' ? r.ue() : r.se()).toBe(v);
    }
  });

  test('throws ParseError with the byte offset when reading past the end', () => {
    const r = new BitReader(u8(0xaa, 0xbb));
    r.u(12);
    try {
      r.u(5);
      throw new Error('no throw');
    } catch (e) {
      expect(e).toBeInstanceOf(ParseError);
      expect((e as ParseError).offset).toBe(1);
    }
    expect(r.pos).toBe(12); // a failed read consumes nothing
    expect(() => new BitReader(u8(0, 0, 0, 0, 0)).ue()).toThrow(ParseError); // > 31 leading zeros
    expect(() => new BitReader(u8(0xff)).skip(9)).toThrow(ParseError);
    expect(() => new BitReader(u8(0x10), 0).flag()).toThrow(ParseError);
  });

  test('ueMax rejects values above the spec range', () => {
    expect(() => new BitReader(u8(0b00111000)).ueMax(5, 'x')).toThrow('x 6 exceeds 5');
  });

  test('fuzz: random operations on random bytes throw only ParseError and stay in bounds', () => {
    const rnd = mulberry32(99);
    const r = new BitReader();
    for (let i = 0; i < 3000; i++) {
      const buf = randomBytes(rnd, randInt(rnd, 12)).map((b) => (rnd() < 0.5 ? 0 : b));
      r.reset(buf);
      for (let k = 0; k < 20; k++) {
        try {
          const op = randInt(rnd, 5);
          if (op === 0) expect(r.u(randInt(rnd, 33))).toBeGreaterThanOrEqual(0);
          else if (op === 1) expect(r.ue()).toBeLessThanOrEqual(2 ** 32 - 2);
          else if (op === 2) expect(Number.isInteger(r.se())).toBe(true);
          else if (op === 3) r.skip(randInt(rnd, 9));
          else r.flag();
        } catch (e) {
          expect(e).toBeInstanceOf(ParseError);
        }
        expect(r.pos).toBeLessThanOrEqual(buf.length * 8);
        expect(r.bitsLeft).toBeGreaterThanOrEqual(0);
      }
    }
  });
});

describe('RbspReader', () => {
  test('reads fields across an emulation-prevention byte and reuses its scratch', () => {
    const rbsp = new RbspReader(64);
    const nal = u8(0x67, 0x00, 0x00, 0x03, 0x01, 0xff);
    const r = assertUnchanged(nal, () => rbsp.load(nal, 1));
    expect(r.u(24)).toBe(0x000001);
    expect(r.u(8)).toBe(0xff);
    const r2 = rbsp.load(u8(0x68, 0x80), 1);
    expect(r2).toBe(r);
    expect(r2.bitsLeft).toBe(8);
  });

  test('limits the RBSP to maxBytes', () => {
    const r = new RbspReader(64).load(u8(9, 1, 2, 3, 4, 5), 1, 2);
    expect(r.bitsLeft).toBe(16);
  });
});

describe('ByteReader', () => {
  test('reads big-endian fields and views, and throws ParseError at the end', () => {
    const buf = u8(1, 2, 3, 4, 5, 6, 7, 0xff, 0xff, 0xff, 0xff);
    const c = new ByteReader(buf);
    expect(c.u8()).toBe(1);
    expect(c.u16()).toBe(0x0203);
    const v = c.bytes(2);
    expect(v.buffer).toBe(buf.buffer);
    expect([...v]).toEqual([4, 5]);
    c.skip(2);
    expect(c.u32()).toBe(0xffffffff);
    expect(c.remaining).toBe(0);
    expect(() => c.u8('tag')).toThrow(/tag: need 1 bytes, 0 left at offset 11/);
  });
});
