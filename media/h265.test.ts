import { describe, expect, test } from 'bun:test';
import { splitAnnexB } from './annexb.ts';
import * as h265 from './h265.ts';
import { ParseError } from './types.ts';
import {
  assertUnchanged, BitWriter, escapeRbsp, H265_CASES, mulberry32, mutate, probeStream, randInt, randomBytes, rate,
  traceHeaders, videoFixture,
} from './testdata/test-helpers.ts';

function nalus(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const n = splitAnnexB(bytes, out, 100_000);
  return out.slice(0, n);
}

const spsOf = (bytes: Uint8Array) => nalus(bytes.subarray(0, 5000)).find((n) => h265.nalType(n) === h265.NAL_SPS)!;

/**
 * A hand-made SPS exercising the branches x265 never writes: sub-layer profile/level,
 * 4:2:2 conformance window, explicit scaling lists, PCM, inter-predicted short-term RPS,
 * long-term refs, and a VUI with SAR, colour, chroma location and a default display window.
 */
function handSps(): Uint8Array {
  const w = new BitWriter().u(4, 0).u(3, 2).u(1, 0);
  // profile_tier_level(1, 2)
  w.u(2, 0).u(1, 1).u(5, 4).u(32, 0x08000000);
  for (const b of [0x9e, 0x08, 0, 0, 0, 0]) w.u(8, b);
  w.u(8, 153);
  w.u(1, 1).u(1, 1).u(1, 0).u(1, 1); // sub-layer 0: profile+level, sub-layer 1: level
  w.u(12, 0); // reserved_zero_2bits x 6
  w.u(32, 0xffffffff).u(32, 0x12345678).u(24, 0xabcdef).u(8, 120); // sub-layer 0 profile (88 bits), level
  w.u(8, 90); // sub-layer 1 level
  w.ue(1).ue(2).ue(1280).ue(720).u(1, 1).ue(1).ue(2).ue(3).ue(4); // sps id, 4:2:2, size, conformance window
  w.ue(2).ue(2).ue(4).u(1, 1);
  for (let i = 0; i < 3; i++) w.ue(4).ue(2).ue(0);
  w.ue(0).ue(3).ue(0).ue(3).ue(1).ue(1);
  w.u(1, 1).u(1, 1); // scaling_list_enabled, sps_scaling_list_data_present
  for (let sizeId = 0; sizeId < 4; sizeId++) {
    for (let matrixId = 0; matrixId < 6; matrixId += sizeId === 3 ? 3 : 1) {
      if ((sizeId + matrixId) % 2 === 0) {
        w.u(1, 0).ue(matrixId > 0 ? 1 : 0);
      } else {
        w.u(1, 1);
        if (sizeId > 1) w.se(-3);
        for (let i = 0; i < Math.min(64, 1 << (4 + (sizeId << 1))); i++) w.se(i % 5 - 2);
      }
    }
  }
  w.u(1, 1).u(1, 1).u(1, 1).u(4, 7).u(4, 7).ue(0).ue(1).u(1, 1); // amp, sao, pcm
  w.ue(3); // num_short_term_ref_pic_sets
  w.ue(2).ue(1).ue(0).u(1, 1).ue(1).u(1, 1).ue(0).u(1, 0); // RPS 0: 3 pictures
  w.u(1, 1).u(1, 0).ue(0).u(1, 1).u(1, 0).u(1, 1).u(1, 0).u(1, 0).u(1, 1); // RPS 1 from RPS 0: 3 pictures
  w.u(1, 1).u(1, 1).ue(1);
  for (let j = 0; j <= 3; j++) w.u(1, 0).u(1, 0); // RPS 2 from RPS 1: 0 pictures
  w.u(1, 1).ue(2).u(8, 17).u(1, 1).u(8, 200).u(1, 0); // long-term refs
  w.u(1, 1).u(1, 1); // temporal mvp, strong intra smoothing
  w.u(1, 1); // vui_parameters_present_flag
  w.u(1, 1).u(8, 255).u(16, 4).u(16, 3).u(1, 1).u(1, 0).u(1, 1).u(3, 5).u(1, 0).u(1, 1).u(8, 1).u(8, 1).u(8, 1);
  w.u(1, 1).ue(1).ue(1).u(3, 0).u(1, 1).ue(8).ue(8).ue(4).ue(4);
  w.u(1, 1).u(32, 1001).u(32, 60000).u(1, 0).u(1, 0);
  w.u(1, 0).u(1, 0); // bitstream_restriction_flag, sps_extension_present_flag
  return new Uint8Array([0x42, 0x01, ...escapeRbsp(w.rbsp())]);
}

describe('NAL unit types', () => {
  test('reads the type from the 2-byte header and treats 16..23 as IRAP', () => {
    expect(h265.nalType(new Uint8Array([0x40, 0x01]))).toBe(h265.NAL_VPS);
    expect(h265.nalType(new Uint8Array([0x26, 0x01]))).toBe(h265.NAL_IDR_W_RADL);
    expect(h265.nalType(new Uint8Array([0x26]))).toBe(-1);
    for (let t = 0; t < 64; t++) {
      expect(h265.isIrap(t)).toBe(t >= 16 && t <= 23);
      expect(h265.isVcl(t)).toBe(t <= 31);
    }
    expect(h265.isKeyframe([new Uint8Array([0x40, 1]), new Uint8Array([0x2a, 1, 0xaf])])).toBe(true); // CRA
    expect(h265.isKeyframe([new Uint8Array([0x02, 1, 0xd0])])).toBe(false); // TRAIL_R
  });
});

describe('parseSps on ffmpeg/x265 streams (judged by ffprobe)', () => {
  for (const c of H265_CASES) {
    test(`reads size, bit depth, frame rate, profile and level: ${c.name}`, () => {
      const f = videoFixture(c);
      const st = probeStream(f.path);
      const nal = spsOf(f.bytes);
      const sps = assertUnchanged(nal, () => h265.parseSps(nal));
      expect(sps.width).toBe(st.width);
      expect(sps.height).toBe(st.height);
      expect(sps.fps).toBeCloseTo(rate(st.r_frame_rate), 9);
      expect(sps.ptl.generalLevelIdc).toBe(st.level);
      const profiles: Record<string, number> = { Main: 1, 'Main 10': 2, Rext: 4 };
      expect(sps.ptl.generalProfileIdc).toBe(profiles[st.profile]!);
      expect(sps.bitDepthLuma).toBe(st.pix_fmt.includes('10') ? 10 : 8);
      expect(sps.chromaFormatIdc).toBe(st.pix_fmt.startsWith('yuv444') ? 3 : 1);
    });
  }

  test('skips sub-layer fields of a stream with two temporal sub-layers', () => {
    const sps = h265.parseSps(spsOf(videoFixture(H265_CASES[3]!).bytes));
    expect(sps.maxSubLayers).toBe(2);
    expect([sps.width, sps.height, sps.fps]).toEqual([320, 240, 25]);
  });

  test('applies the conformance window to the padded coded size', () => {
    const sps = h265.parseSps(spsOf(videoFixture(H265_CASES[0]!).bytes));
    expect([sps.codedWidth, sps.codedHeight, sps.width, sps.height]).toEqual([648, 368, 642, 362]);
  });
});

describe('parseSps on a hand-made parameter set', () => {
  test('follows every optional branch up to the VUI timing', () => {
    const sps = h265.parseSps(handSps());
    expect(sps.maxSubLayers).toBe(3);
    expect(sps.temporalIdNesting).toBe(false);
    expect(sps.ptl.generalTierFlag).toBe(1);
    expect(sps.ptl.generalProfileIdc).toBe(4);
    expect(sps.ptl.generalProfileCompatibilityFlags).toBe(0x08000000);
    expect([...sps.ptl.generalConstraintIndicatorFlags]).toEqual([0x9e, 0x08, 0, 0, 0, 0]);
    expect(sps.ptl.generalLevelIdc).toBe(153);
    expect([sps.spsId, sps.chromaFormatIdc, sps.bitDepthLuma, sps.bitDepthChroma]).toEqual([1, 2, 10, 10]);
    // 4:2:2: SubWidthC 2, SubHeightC 1
    expect([sps.width, sps.height]).toEqual([1280 - 2 * 3, 720 - 7]);
    expect(sps.fps).toBeCloseTo(59.94, 2);
  });

  test('a VUI cut before its timing costs only the frame rate', () => {
    const nal = handSps();
    const cut = h265.parseSps(nal.subarray(0, nal.length - 12));
    expect([cut.width, cut.height, cut.fps]).toEqual([1274, 713, 0]);
  });

  test('rejects a conformance window larger than the picture', () => {
    const w = new BitWriter().u(4, 0).u(3, 0).u(1, 1).u(2, 0).u(1, 0).u(5, 1).u(32, 0).u(24, 0).u(24, 0).u(8, 30);
    w.ue(0).ue(1).ue(16).ue(16).u(1, 1).ue(4).ue(4).ue(0).ue(0);
    expect(() => h265.parseSps(new Uint8Array([0x42, 0x01, ...escapeRbsp(w.rbsp())]))).toThrow(ParseError);
  });
});

describe('firstSliceSegmentInPic', () => {
  test('matches ffmpeg trace_headers on every slice segment of a multi-slice stream', () => {
    const f = videoFixture(H265_CASES[4]!);
    const ours = nalus(f.bytes).filter((n) => h265.isVcl(h265.nalType(n))).map((n): number => (h265.firstSliceSegmentInPic(n) ? 1 : 0));
    const ref = traceHeaders(f.path, 'first_slice_segment_in_pic_flag');
    expect(ours.length).toBeGreaterThan(100);
    expect(ours).toEqual(ref);
  });
});

describe('fuzz', () => {
  test('parseSps throws only ParseError and returns sane pictures', () => {
    const rnd = mulberry32(265);
    const seeds = [...H265_CASES.map((c) => spsOf(videoFixture(c).bytes)), handSps()];
    for (let i = 0; i < 4000; i++) {
      const input = i % 8 === 0 ? new Uint8Array([0x42, 0x01, ...randomBytes(rnd, randInt(rnd, 60))]) : mutate(seeds[i % seeds.length]!, rnd);
      try {
        const sps = assertUnchanged(input, () => h265.parseSps(input));
        expect(sps.width).toBeGreaterThan(0);
        expect(sps.height).toBeGreaterThan(0);
        expect(sps.width).toBeLessThanOrEqual(sps.codedWidth);
        expect(sps.codedHeight).toBeLessThanOrEqual(h265.MAX_DIMENSION);
        expect(sps.ptl.generalConstraintIndicatorFlags.length).toBe(6);
        expect(Number.isFinite(sps.fps) && sps.fps >= 0 && sps.fps <= h265.MAX_FPS).toBe(true);
      } catch (e) {
        expect(e).toBeInstanceOf(ParseError);
      }
    }
  });
});
