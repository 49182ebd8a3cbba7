import { describe, expect, test } from 'bun:test';
import { splitAnnexB } from './annexb.ts';
import * as h264 from './h264.ts';
import { ParseError } from './types.ts';
import {
  assertUnchanged, BitWriter, escapeRbsp, H264_CASES, mulberry32, mutate, probeStream, randInt, traceHeaders, randomBytes, rate,
  videoFixture,
} from './testdata/test-helpers.ts';

function nalus(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const n = splitAnnexB(bytes.subarray(0, 200_000), out, 100_000);
  return out.slice(0, n);
}

const spsOf = (bytes: Uint8Array) => nalus(bytes).find((n) => h264.nalType(n) === h264.NAL_SPS)!;

interface HandSps {
  profileIdc: number;
  chroma?: number;
  separate?: boolean;
  pocType: number;
  widthMbs: number;
  heightMapUnits: number;
  frameMbsOnly: boolean;
  crop?: [number, number, number, number];
  timing?: [number, number];
}

/** A hand-made SPS NAL (with emulation prevention) following §7.3.2.1.1 field by field. */
function handSps(s: HandSps): Uint8Array {
  const w = new BitWriter().u(8, s.profileIdc).u(8, 0).u(8, 30).ue(0);
  if (s.chroma !== undefined) {
    w.ue(s.chroma);
    if (s.chroma === 3) w.u(1, s.separate ? 1 : 0);
    w.ue(0).ue(0).u(1, 0).u(1, 0);
  }
  w.ue(0).ue(s.pocType);
  if (s.pocType === 0) w.ue(2);
  if (s.pocType === 1) w.u(1, 0).se(-3).se(5).ue(2).se(4).se(-1);
  w.ue(1).u(1, 0).ue(s.widthMbs - 1).ue(s.heightMapUnits - 1).u(1, s.frameMbsOnly ? 1 : 0);
  if (!s.frameMbsOnly) w.u(1, 0);
  w.u(1, 1).u(1, s.crop ? 1 : 0);
  if (s.crop) for (const c of s.crop) w.ue(c);
  w.u(1, s.timing ? 1 : 0);
  if (s.timing) w.u(4, 0).u(1, 1).u(32, s.timing[0]).u(32, s.timing[1]).u(1, 1);
  const rbsp = w.rbsp();
  return new Uint8Array([0x67, ...escapeRbsp(rbsp)]);
}

describe('NAL unit types', () => {
  test('classifies NAL headers per Table 7-1', () => {
    expect(h264.nalType(new Uint8Array([0x65]))).toBe(h264.NAL_IDR);
    expect(h264.nalType(new Uint8Array([0x67]))).toBe(h264.NAL_SPS);
    expect(h264.nalType(new Uint8Array(0))).toBe(-1);
    expect([1, 2, 3, 4, 5].every(h264.isVcl)).toBe(true);
    expect([0, 6, 7, 8, 9, 14, 20].some(h264.isVcl)).toBe(false);
    expect(h264.isKeyframe([new Uint8Array([0x67]), new Uint8Array([0x65, 0x88])])).toBe(true);
    expect(h264.isKeyframe([new Uint8Array([0x41, 0x9a])])).toBe(false);
  });
});

describe('parseSps on ffmpeg/x264 streams (judged by ffprobe)', () => {
  for (const c of H264_CASES) {
    test(`reads size, frame rate, profile and level: ${c.name}`, () => {
      const f = videoFixture(c);
      const st = probeStream(f.path);
      const nal = spsOf(f.bytes);
      const sps = assertUnchanged(nal, () => h264.parseSps(nal));
      expect(sps.width).toBe(st.width);
      expect(sps.height).toBe(st.height);
      expect(sps.fps).toBeCloseTo(rate(st.r_frame_rate), 9);
      expect(sps.levelIdc).toBe(st.level);
      const profiles: Record<string, number> = { 'Constrained Baseline': 66, Main: 77, High: 100, 'High 4:4:4 Predictive': 244 };
      expect(sps.profileIdc).toBe(profiles[st.profile]!);
      expect(sps.chromaFormatIdc).toBe(st.pix_fmt === 'yuv444p' ? 3 : 1);
      expect(sps.frameMbsOnly).toBe(st.field_order === 'progressive');
      expect(sps.bitDepthLuma).toBe(8);
    });
  }

  test('the baseline stream carries constraint_set0 and set1 (Constrained Baseline)', () => {
    expect(h264.parseSps(spsOf(videoFixture(H264_CASES[0]!).bytes)).constraintFlags).toBe(0xc0);
  });
});

describe('parseSps on hand-made parameter sets', () => {
  test('reports fps 0 without VUI and skips pic_order_cnt_type 1 fields', () => {
    const sps = h264.parseSps(handSps({ profileIdc: 66, pocType: 1, widthMbs: 20, heightMapUnits: 15, frameMbsOnly: true }));
    expect([sps.width, sps.height, sps.fps, sps.picOrderCntType]).toEqual([320, 240, 0, 1]);
  });

  test('crops monochrome field pictures in units of 1 x 2 (§7.4.2.1.1)', () => {
    const sps = h264.parseSps(handSps({ profileIdc: 100, chroma: 0, pocType: 0, widthMbs: 20, heightMapUnits: 8, frameMbsOnly: false, crop: [1, 2, 1, 1] }));
    expect([sps.width, sps.height, sps.chromaFormatIdc]).toEqual([320 - 3, 256 - 4, 0]);
  });

  test('crops 4:2:2 field pictures in units of 2 x 2', () => {
    const sps = h264.parseSps(handSps({ profileIdc: 122, chroma: 2, pocType: 2, widthMbs: 20, heightMapUnits: 8, frameMbsOnly: false, crop: [0, 1, 0, 3] }));
    expect([sps.width, sps.height]).toEqual([318, 250]);
  });

  test('crops separate colour planes in luma units', () => {
    const sps = h264.parseSps(handSps({ profileIdc: 244, chroma: 3, separate: true, pocType: 2, widthMbs: 4, heightMapUnits: 4, frameMbsOnly: true, crop: [0, 3, 0, 5], timing: [1001, 60000] }));
    expect([sps.width, sps.height, sps.separateColourPlane]).toEqual([61, 59, true]);
    expect(sps.fps).toBeCloseTo(29.97, 2);
  });

  test('rejects cropping larger than the picture and non-SPS input', () => {
    expect(() => h264.parseSps(handSps({ profileIdc: 66, pocType: 2, widthMbs: 1, heightMapUnits: 1, frameMbsOnly: true, crop: [4, 4, 0, 0] }))).toThrow(ParseError);
    expect(() => h264.parseSps(new Uint8Array([0x68, 1, 2, 3]))).toThrow(ParseError);
  });

  test('a truncated VUI costs only the frame rate', () => {
    const full = handSps({ profileIdc: 66, pocType: 2, widthMbs: 20, heightMapUnits: 15, frameMbsOnly: true, timing: [1, 50] });
    expect(h264.parseSps(full).fps).toBe(25);
    const cut = h264.parseSps(full.subarray(0, full.length - 5));
    expect([cut.width, cut.height, cut.fps]).toEqual([320, 240, 0]);
  });
});

describe('firstMbInSlice', () => {
  test('matches ffmpeg trace_headers on every slice of a multi-slice stream', () => {
    const c = H264_CASES[6]!;
    const f = videoFixture(c);
    const ours = nalus(f.bytes).filter((n) => h264.isVcl(h264.nalType(n))).map(h264.firstMbInSlice);
    const ref = traceHeaders(f.path, 'first_mb_in_slice');
    expect(ours.length).toBe(200); // 50 pictures x 4 slices
    expect(ours).toEqual(ref);
  });

  test('returns -1 when the slice header is cut', () => {
    expect(h264.firstMbInSlice(new Uint8Array([0x41]))).toBe(-1);
    expect(h264.firstMbInSlice(new Uint8Array([0x41, 0, 0, 3, 0]))).toBe(-1);
  });
});

describe('fuzz', () => {
  test('parseSps throws only ParseError and returns sane pictures', () => {
    const rnd = mulberry32(264);
    const seeds = H264_CASES.map((c) => spsOf(videoFixture(c).bytes));
    for (let i = 0; i < 4000; i++) {
      const input = i % 8 === 0 ? new Uint8Array([0x67, ...randomBytes(rnd, randInt(rnd, 40))]) : mutate(seeds[i % seeds.length]!, rnd);
      try {
        const sps = assertUnchanged(input, () => h264.parseSps(input));
        expect(sps.width).toBeGreaterThan(0);
        expect(sps.height).toBeGreaterThan(0);
        expect(sps.width).toBeLessThanOrEqual(h264.MAX_DIMENSION_MBS * 16);
        expect(sps.height).toBeLessThanOrEqual(h264.MAX_DIMENSION_MBS * 32);
        expect(Number.isFinite(sps.fps) && sps.fps >= 0 && sps.fps <= h264.MAX_FPS).toBe(true);
      } catch (e) {
        expect(e).toBeInstanceOf(ParseError);
      }
    }
  });

  test('firstMbInSlice never throws and returns -1 or a valid ue(v)', () => {
    const rnd = mulberry32(5);
    const slices = nalus(videoFixture(H264_CASES[6]!).bytes).filter((n) => h264.isVcl(h264.nalType(n))).slice(0, 20);
    for (let i = 0; i < 3000; i++) {
      const input = mutate(slices[i % slices.length]!.subarray(0, 24), rnd);
      const v = h264.firstMbInSlice(input);
      expect(Number.isInteger(v) && v >= -1 && v <= 2 ** 32 - 2).toBe(true);
    }
  });
});
