import { describe, expect, test } from 'bun:test';
import { splitAnnexB } from './annexb.ts';
import * as h265 from './h265.ts';
import { hevcCodecString, hvcC, parseHvcC, videoTrackInfoH265 } from './h265-config.ts';
import { ParseError } from './types.ts';
import {
  assertUnchanged, findBox, H265_CASES, hex, mulberry32, mutate, probeStream, randInt, randomBytes, videoFixture, videoMp4,
} from './testdata/test-helpers.ts';

function paramSets(bytes: Uint8Array): [Uint8Array[], Uint8Array[], Uint8Array[]] {
  const out: Uint8Array[] = [];
  const nalus = out.slice(0, splitAnnexB(bytes.subarray(0, 5000), out, 1000));
  const of = (t: number) => nalus.filter((v) => h265.nalType(v) === t);
  return [of(h265.NAL_VPS), of(h265.NAL_SPS), of(h265.NAL_PPS)];
}

const ptl = (space: number, tier: number, idc: number, compat: number, flags: number[], level: number): h265.H265ProfileTierLevel => ({
  generalProfileSpace: space, generalTierFlag: tier, generalProfileIdc: idc, generalProfileCompatibilityFlags: compat,
  generalConstraintIndicatorFlags: new Uint8Array(flags), generalLevelIdc: level,
});

describe('hvcC', () => {
  for (const c of H265_CASES) {
    test(`builds the same record ffmpeg writes into MP4: ${c.name}`, () => {
      const ours = hvcC(...paramSets(videoFixture(c).bytes));
      const theirs = findBox(videoMp4(c).bytes, 'hvcC')!;
      expect(hex(ours)).toBe(hex(theirs));
    });
  }

  test('fills the header fields from the SPS and marks arrays complete', () => {
    const [vps, sps, pps] = paramSets(videoFixture(H265_CASES[3]!).bytes);
    const rec = hvcC(vps, sps, pps);
    const cfg = assertUnchanged(rec, () => parseHvcC(rec));
    expect(cfg.generalProfileIdc).toBe(1);
    expect(cfg.minSpatialSegmentationIdc).toBe(0);
    expect(cfg.parallelismType).toBe(0);
    expect([cfg.chromaFormat, cfg.bitDepthLumaMinus8, cfg.bitDepthChromaMinus8]).toEqual([1, 0, 0]);
    expect([cfg.avgFrameRate, cfg.constantFrameRate]).toEqual([0, 0]);
    expect([cfg.numTemporalLayers, cfg.temporalIdNested, cfg.lengthSizeMinusOne]).toEqual([2, false, 3]);
    expect(cfg.arrays.map((a) => [a.nalUnitType, a.arrayCompleteness, a.nalus.map(hex)])).toEqual([
      [32, true, vps.map(hex)], [33, true, sps.map(hex)], [34, true, pps.map(hex)],
    ]);
    expect(cfg.arrays[1]!.nalus[0]!.buffer).toBe(rec.buffer);
  });

  test('reports 10-bit and 4:4:4 streams in the header', () => {
    const ten = parseHvcC(hvcC(...paramSets(videoFixture(H265_CASES[2]!).bytes)));
    expect([ten.bitDepthLumaMinus8, ten.bitDepthChromaMinus8, ten.generalProfileIdc]).toEqual([2, 2, 2]);
    expect(parseHvcC(hvcC(...paramSets(videoFixture(H265_CASES[1]!).bytes))).chromaFormat).toBe(3);
  });

  test('rejects bad records with ParseError', () => {
    const rec = hvcC(...paramSets(videoFixture(H265_CASES[0]!).bytes));
    expect(() => parseHvcC(rec.subarray(0, rec.length - 1))).toThrow(ParseError);
    expect(() => parseHvcC(rec.subarray(0, 22))).toThrow(ParseError);
    const v0 = rec.slice();
    v0[0] = 0;
    expect(() => parseHvcC(v0)).toThrow(ParseError);
    expect(() => hvcC([], [], [])).toThrow(RangeError);
  });
});

describe('codec string and track info', () => {
  test('formats the Chromium / ISO/IEC 14496-15 Annex E examples', () => {
    expect(hevcCodecString(ptl(0, 0, 1, 0x60000000, [0xb0, 0, 0, 0, 0, 0], 93))).toBe('hvc1.1.6.L93.B0');
    expect(hevcCodecString(ptl(0, 0, 2, 0x20000000, [0xb0, 0, 0, 0, 0, 0], 120))).toBe('hvc1.2.4.L120.B0');
    expect(hevcCodecString(ptl(1, 1, 4, 0x08000000, [0x9e, 0, 0x23, 0, 0, 0], 153))).toBe('hvc1.A4.10.H153.9E.0.23');
    expect(hevcCodecString(ptl(3, 0, 1, 0x80000001, [0, 0, 0, 0, 0, 0], 30))).toBe('hvc1.C1.80000001.L30');
  });

  test('agrees with the profile fields of the hvcC ffmpeg writes', () => {
    for (const c of H265_CASES) {
      const theirs = parseHvcC(findBox(videoMp4(c).bytes, 'hvcC')!);
      const [, sps] = paramSets(videoFixture(c).bytes);
      expect(hevcCodecString(h265.parseSps(sps[0]!).ptl)).toBe(hevcCodecString(theirs));
    }
    expect(hevcCodecString(h265.parseSps(paramSets(videoFixture(H265_CASES[0]!).bytes)[1][0]!).ptl)).toBe('hvc1.1.6.L63.90');
  });

  test('describes the track like ffprobe does', () => {
    for (const c of H265_CASES) {
      const f = videoFixture(c);
      const info = videoTrackInfoH265(...paramSets(f.bytes));
      const st = probeStream(f.path);
      expect([info.kind, info.codec, info.timescale]).toEqual(['video', 'h265', 90000]);
      expect([info.width, info.height]).toEqual([st.width, st.height]);
      expect(info.codecString.startsWith('hvc1.')).toBe(true);
      expect(hex(info.config)).toBe(hex(findBox(videoMp4(c).bytes, 'hvcC')!));
    }
  });
});

describe('fuzz', () => {
  test('parseHvcC throws only ParseError and returns views inside the record', () => {
    const rnd = mulberry32(2);
    const seeds = H265_CASES.map((c) => findBox(videoMp4(c).bytes, 'hvcC')!);
    for (let i = 0; i < 5000; i++) {
      const input = i % 6 === 0 ? randomBytes(rnd, randInt(rnd, 60)) : mutate(seeds[i % seeds.length]!, rnd);
      try {
        const cfg = assertUnchanged(input, () => parseHvcC(input));
        for (const a of cfg.arrays) {
          expect(a.nalUnitType).toBeLessThan(64);
          for (const v of a.nalus) {
            expect(v.buffer).toBe(input.buffer);
            expect(v.byteOffset + v.length).toBeLessThanOrEqual(input.byteOffset + input.length);
          }
        }
        expect(cfg.numTemporalLayers).toBeLessThan(8);
      } catch (e) {
        expect(e).toBeInstanceOf(ParseError);
      }
    }
  });
});
