import { describe, expect, test } from 'bun:test';
import { splitAnnexB } from './annexb.ts';
import * as h264 from './h264.ts';
import { avcC, avcCodecString, hasAvcCExtension, MAX_AVCC_SPS, parseAvcC, videoTrackInfoH264 } from './h264-config.ts';
import { ParseError } from './types.ts';
import {
  assertUnchanged, findBox, H264_CASES, hex, mulberry32, mutate, probeStream, randInt, randomBytes, videoFixture, videoMp4,
} from './testdata/test-helpers.ts';

function paramSets(bytes: Uint8Array): { sps: Uint8Array[]; pps: Uint8Array[] } {
  const out: Uint8Array[] = [];
  const n = splitAnnexB(bytes.subarray(0, 4000), out, 1000);
  const nalus = out.slice(0, n);
  return {
    sps: nalus.filter((v) => h264.nalType(v) === h264.NAL_SPS),
    pps: nalus.filter((v) => h264.nalType(v) === h264.NAL_PPS),
  };
}

function build(c: (typeof H264_CASES)[number]): Uint8Array {
  const { sps, pps } = paramSets(videoFixture(c).bytes);
  return avcC(sps, pps);
}

describe('avcC', () => {
  for (const c of H264_CASES) {
    test(`builds the same record ffmpeg writes into MP4: ${c.name}`, () => {
      const { sps, pps } = paramSets(videoFixture(c).bytes);
      const ours = avcC(sps, pps);
      const theirs = findBox(videoMp4(c).bytes, 'avcC')!;
      expect(hex(ours)).toBe(hex(theirs));
    });
  }

  test('carries the chroma/bit-depth extension only for high profiles', () => {
    const high = parseAvcC(build(H264_CASES[3]!));
    expect([high.profileIdc, high.chromaFormat, high.bitDepthLumaMinus8, high.bitDepthChromaMinus8]).toEqual([244, 3, 0, 0]);
    const base = parseAvcC(build(H264_CASES[0]!));
    expect([base.profileIdc, base.chromaFormat]).toEqual([66, -1]);
    expect([100, 110, 122, 144, 244].every(hasAvcCExtension)).toBe(true);
    expect([66, 77, 88].some(hasAvcCExtension)).toBe(false);
  });

  test('round-trips several SPS and PPS through parseAvcC as views', () => {
    const sps = [new Uint8Array([0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40]), paramSets(videoFixture(H264_CASES[2]!).bytes).sps[0]!];
    sps.reverse();
    const pps = [new Uint8Array([0x68, 0xeb]), new Uint8Array([0x68, 0xee, 0x3c, 0x80]), new Uint8Array([0x68, 1])];
    const rec = avcC(sps, pps);
    const cfg = assertUnchanged(rec, () => parseAvcC(rec));
    expect(cfg.lengthSizeMinusOne).toBe(3);
    expect(cfg.sps.map(hex)).toEqual(sps.map(hex));
    expect(cfg.pps.map(hex)).toEqual(pps.map(hex));
    expect(cfg.sps[0]!.buffer).toBe(rec.buffer);
    expect(cfg.spsExt).toEqual([]);
  });

  test('parses the records ffmpeg wrote back to the stream parameter sets', () => {
    for (const c of H264_CASES) {
      const { sps, pps } = paramSets(videoFixture(c).bytes);
      const cfg = parseAvcC(findBox(videoMp4(c).bytes, 'avcC')!);
      expect(cfg.sps.map(hex)).toEqual(sps.map(hex));
      expect(cfg.pps.map(hex)).toEqual(pps.map(hex));
    }
  });

  test('rejects bad records with ParseError and oversize lists with RangeError', () => {
    const rec = build(H264_CASES[0]!);
    expect(() => parseAvcC(rec.subarray(0, rec.length - 1))).toThrow(ParseError);
    const v2 = rec.slice();
    v2[0] = 2;
    expect(() => parseAvcC(v2)).toThrow(ParseError);
    const sps = paramSets(videoFixture(H264_CASES[0]!).bytes).sps[0]!;
    expect(() => avcC(new Array(MAX_AVCC_SPS + 1).fill(sps), [])).toThrow(RangeError);
    expect(() => avcC([], [])).toThrow(RangeError);
  });
});

describe('codec string and track info', () => {
  test('formats RFC 6381 avc1.PPCCLL from the SPS', () => {
    const known: [number, string][] = [[0, 'avc1.42c00d'], [1, 'avc1.4d401e'], [2, 'avc1.64001e'], [3, 'avc1.f4000d']];
    for (const [i, s] of known) expect(avcCodecString(paramSets(videoFixture(H264_CASES[i]!).bytes).sps[0]!)).toBe(s);
    expect(avcCodecString(new Uint8Array([0x67, 0x64, 0x00, 0x33]))).toBe('avc1.640033');
  });

  test('describes the track like ffprobe does', () => {
    for (const c of H264_CASES) {
      const f = videoFixture(c);
      const { sps, pps } = paramSets(f.bytes);
      const info = videoTrackInfoH264(sps, pps);
      const st = probeStream(f.path);
      expect(info.kind).toBe('video');
      expect(info.codec).toBe('h264');
      expect(info.timescale).toBe(90000);
      expect([info.width, info.height]).toEqual([st.width, st.height]);
      expect(info.codecString).toBe(`avc1.${hex(sps[0]!.subarray(1, 4))}`);
      expect(hex(info.config)).toBe(hex(findBox(videoMp4(c).bytes, 'avcC')!));
    }
  });
});

describe('fuzz', () => {
  test('parseAvcC throws only ParseError and returns views inside the record', () => {
    const rnd = mulberry32(1);
    const seeds = H264_CASES.map((c) => findBox(videoMp4(c).bytes, 'avcC')!);
    for (let i = 0; i < 5000; i++) {
      const input = i % 6 === 0 ? randomBytes(rnd, randInt(rnd, 40)) : mutate(seeds[i % seeds.length]!, rnd);
      try {
        const cfg = assertUnchanged(input, () => parseAvcC(input));
        for (const v of [...cfg.sps, ...cfg.pps, ...cfg.spsExt]) {
          expect(v.buffer).toBe(input.buffer);
          expect(v.byteOffset + v.length).toBeLessThanOrEqual(input.byteOffset + input.length);
        }
        expect(cfg.sps.length).toBeLessThanOrEqual(31);
        expect([0, 1, 3]).toContain(cfg.lengthSizeMinusOne);
      } catch (e) {
        expect(e).toBeInstanceOf(ParseError);
      }
    }
  });
});
