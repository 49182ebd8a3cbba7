import { describe, expect, test } from 'bun:test';
import {
  lengthPrefixedSize, MAX_NALUS_PER_AU, SPLIT_TOO_MANY, SPLIT_TRUNCATED,
  splitAnnexB, splitLengthPrefixed, toAnnexB, writeLengthPrefixed,
} from './annexb.ts';
import {
  assertUnchanged, findBox, H264_CASES, H265_CASES, mulberry32, mutate, naiveNalus, randInt, randomBytes,
  videoFixture, videoMp4,
allNalus,
} from './testdata/test-helpers.ts';

const u8 = (...b: number[]) => new Uint8Array(b);
const list = (nalus: Uint8Array[], n: number) => nalus.slice(0, n).map((v) => [...v]);


describe('splitAnnexB', () => {
  test('splits 3- and 4-byte start codes into views', () => {
    const buf = u8(0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5);
    const out: Uint8Array[] = [];
    const n = assertUnchanged(buf, () => splitAnnexB(buf, out));
    expect(n).toBe(3);
    expect(out.length).toBe(3);
    expect(list(out, n)).toEqual([[0x67, 1, 2], [0x68, 3], [0x65, 4, 5]]);
    expect(out[0]!.buffer).toBe(buf.buffer);
  });

  test('leaves trailing zero bytes and leading garbage out of every NAL', () => {
    const buf = u8(9, 9, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 0, 0, 1, 0x41, 7, 0, 0);
    const out: Uint8Array[] = [];
    expect(list(out, splitAnnexB(buf, out))).toEqual([[0x09, 0xf0], [0x41, 7]]);
  });

  test('skips empty NAL units and returns 0 for buffers without a start code', () => {
    const out: Uint8Array[] = [u8(1)];
    expect(splitAnnexB(u8(0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0x65), out)).toBe(1);
    expect(splitAnnexB(u8(0, 0, 1), out)).toBe(0);
    expect(splitAnnexB(u8(1, 2, 3, 0, 0), out)).toBe(0);
    expect(splitAnnexB(new Uint8Array(0), out)).toBe(0);
    expect(out.length).toBe(0);
  });

  test('caps the NAL count per call at MAX_NALUS_PER_AU', () => {
    const many = new Uint8Array((MAX_NALUS_PER_AU + 1) * 4);
    for (let i = 0; i <= MAX_NALUS_PER_AU; i++) many.set([0, 0, 1, 0x41], i * 4);
    const out: Uint8Array[] = [];
    expect(splitAnnexB(many, out)).toBe(SPLIT_TOO_MANY);
    expect(out.length).toBe(MAX_NALUS_PER_AU);
    expect(splitAnnexB(many.subarray(0, MAX_NALUS_PER_AU * 4), out)).toBe(MAX_NALUS_PER_AU);
    expect(splitAnnexB(many, out, 3)).toBe(SPLIT_TOO_MANY);
  });

  test('finds the same NAL units as a naive scan in real H.264 and H.265 streams', () => {
    for (const c of [H264_CASES[2]!, H264_CASES[6]!, H265_CASES[0]!, H265_CASES[4]!]) {
      const { bytes } = videoFixture(c);
      const ours = assertUnchanged(bytes, () => allNalus(bytes));
      const ref = naiveNalus(bytes);
      expect(ours.length).toBe(ref.length);
      ours.forEach((v, i) => {
        expect(v.byteOffset).toBe(ref[i]!.byteOffset);
        expect(v.length).toBe(ref[i]!.length);
      });
    }
  });

  test('writes exactly the mdat ffmpeg writes when it remuxes the stream to MP4', () => {
    // ffmpeg keeps every NAL unit (SEI, SPS, PPS, AUD included) with 4-byte lengths.
    for (const c of [H264_CASES[1]!, H264_CASES[6]!]) {
      const nalus = allNalus(videoFixture(c).bytes);
      const mdat = findBox(videoMp4(c).bytes, 'mdat')!;
      const out = new Uint8Array(lengthPrefixedSize(nalus) + 3);
      expect(writeLengthPrefixed(nalus, nalus.length, out, 3)).toBe(out.length);
      expect(Buffer.from(out.subarray(3)).equals(Buffer.from(mdat))).toBe(true);
    }
  });
});

describe('splitLengthPrefixed', () => {
  test('round-trips with 1-, 2- and 4-byte lengths and skips empty units', () => {
    const nalus = [u8(0x65, 1, 2, 3), u8(0x41), u8(0x06, 9, 9)];
    for (const size of [1, 2, 4] as const) {
      const parts: number[] = [];
      for (const n of [...nalus, u8()]) {
        for (let k = size - 1; k >= 0; k--) parts.push((n.length >> (8 * k)) & 0xff);
        parts.push(...n);
      }
      const buf = new Uint8Array(parts);
      const out: Uint8Array[] = [];
      const count = assertUnchanged(buf, () => splitLengthPrefixed(buf, size, out));
      expect(count).toBe(3);
      expect(list(out, count)).toEqual(nalus.map((n) => [...n]));
    }
  });

  test('reads back what writeLengthPrefixed wrote', () => {
    const nalus = allNalus(videoFixture(H265_CASES[0]!).bytes).slice(0, 40);
    const buf = new Uint8Array(lengthPrefixedSize(nalus));
    writeLengthPrefixed(nalus, nalus.length, buf, 0);
    const out: Uint8Array[] = [];
    const n = splitLengthPrefixed(buf, 4, out);
    expect(n).toBe(40);
    out.forEach((v, i) => expect(Buffer.from(v).equals(Buffer.from(nalus[i]!))).toBe(true));
  });

  test('reports a length that overruns the buffer and too many units', () => {
    const out: Uint8Array[] = [];
    expect(splitLengthPrefixed(u8(0, 0, 0, 5, 1, 2), 4, out)).toBe(SPLIT_TRUNCATED);
    expect(splitLengthPrefixed(u8(1, 7, 0), 2, out)).toBe(SPLIT_TRUNCATED);
    expect(out.length).toBe(0);
    expect(splitLengthPrefixed(u8(1, 1, 1, 2, 1, 3), 1, out, 2)).toBe(SPLIT_TOO_MANY);
    expect(out.length).toBe(2);
  });

  test('writeLengthPrefixed refuses a target that is too small', () => {
    expect(() => writeLengthPrefixed([u8(1, 2, 3)], 1, new Uint8Array(6), 0)).toThrow(RangeError);
  });
});

describe('fuzz', () => {
  test('Annex-B split: views stay inside the input, ordered, non-empty, without start codes', () => {
    const rnd = mulberry32(1234);
    const seeds = [H264_CASES[0]!, H265_CASES[0]!].map((c) => videoFixture(c).bytes.subarray(0, 3000));
    const out: Uint8Array[] = [];
    for (let i = 0; i < 1500; i++) {
      const input = i % 5 === 0 ? randomBytes(rnd, randInt(rnd, 300)).map((b) => (b < 100 ? 0 : b < 120 ? 1 : b)) : mutate(seeds[i % 2]!, rnd);
      const n = assertUnchanged(input, () => splitAnnexB(input, out, 64));
      expect(n === SPLIT_TOO_MANY || (n >= 0 && n <= 64)).toBe(true);
      let prevEnd = 0;
      for (const v of out) {
        const start = v.byteOffset - input.byteOffset;
        expect(v.buffer).toBe(input.buffer);
        expect(start).toBeGreaterThanOrEqual(prevEnd + 3);
        expect(start + v.length).toBeLessThanOrEqual(input.length);
        expect(v.length).toBeGreaterThan(0);
        expect(v[v.length - 1]).not.toBe(0);
        for (let k = 0; k + 2 < v.length; k++) expect(v[k] === 0 && v[k + 1] === 0 && v[k + 2] === 1).toBe(false);
        prevEnd = start + v.length;
      }
    }
  });

  test('length-prefixed split: units stay inside the input and account for every byte', () => {
    const rnd = mulberry32(77);
    const nalus = allNalus(videoFixture(H264_CASES[0]!).bytes).slice(0, 6);
    const seed = new Uint8Array(lengthPrefixedSize(nalus));
    writeLengthPrefixed(nalus, nalus.length, seed, 0);
    const out: Uint8Array[] = [];
    for (let i = 0; i < 3000; i++) {
      const input = i % 4 === 0 ? randomBytes(rnd, randInt(rnd, 64)) : mutate(seed, rnd);
      const size = ([1, 2, 4] as const)[randInt(rnd, 3)]!;
      const n = assertUnchanged(input, () => splitLengthPrefixed(input, size, out, 16));
      expect([SPLIT_TOO_MANY, SPLIT_TRUNCATED].includes(n) || (n >= 0 && n <= 16)).toBe(true);
      let used = 0;
      for (const v of out) {
        expect(v.byteOffset - input.byteOffset).toBeGreaterThanOrEqual(used + size);
        used = v.byteOffset - input.byteOffset + v.length;
        expect(used).toBeLessThanOrEqual(input.length);
      }
    }
  });
});

test('toAnnexB puts a 4-byte start code before each NAL unit, into a given buffer when it fits', () => {
  const nalus = [new Uint8Array([0x67, 1, 2]), new Uint8Array([0x68, 3])];
  expect([...toAnnexB(nalus)]).toEqual([0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]);
  const into = new Uint8Array(32);
  const v = toAnnexB(nalus, into);
  expect(v.buffer).toBe(into.buffer);
  expect(v.length).toBe(13);
  expect(toAnnexB(nalus, new Uint8Array(4)).length).toBe(13); // too small: a new array
  expect(toAnnexB([]).length).toBe(0);
});
