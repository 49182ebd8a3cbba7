import { describe, expect, test } from 'bun:test';
import { MAX_NALUS_PER_AU } from './annexb.ts';
import { AnnexBAuAssembler, splitAccessUnits } from './annexb-au.ts';
import * as h264 from './h264.ts';
import * as h265 from './h265.ts';
import { videoTrackInfoH264 } from './h264-config.ts';
import type { VideoCodec } from './types.ts';
import {
  assertUnchanged, findBox, H264_CASES, H265_CASES, hex, mulberry32, mutate, probePackets, probeStream, randInt,
  randomBytes, videoFixture, videoMp4,
allNalus,
} from './testdata/test-helpers.ts';

const ALL = [...H264_CASES, ...H265_CASES];
const u8 = (...b: number[]) => new Uint8Array(b);


interface SeenAu {
  count: number;
  bytes: number;
  keyframe: boolean;
  types: number[];
}

function assemble(buf: Uint8Array, codec: VideoCodec, asm = new AnnexBAuAssembler(codec)): SeenAu[] {
  const seen: SeenAu[] = [];
  const type = codec === 'h264' ? h264.nalType : h265.nalType;
  const take = () => {
    const au = asm.au;
    let sum = 0;
    for (const n of au.nalus) {
      sum += n.length;
      expect(n.buffer).toBe(buf.buffer); // views, no copies
    }
    expect(au.bytes).toBe(sum);
    seen.push({ count: au.nalus.length, bytes: au.bytes, keyframe: au.keyframe, types: au.nalus.map(type) });
  };
  for (const nal of allNalus(buf)) if (asm.push(nal)) take();
  if (asm.flush()) take();
  return seen;
}

describe('access units of real streams (judged by ffprobe packets)', () => {
  for (const c of ALL) {
    test(`splits into ffprobe's packets with the same keyframes: ${c.codec} ${c.name}`, () => {
      const f = videoFixture(c);
      const packets = probePackets(f.path);
      const ranges = assertUnchanged(f.bytes, () => splitAccessUnits(f.bytes, c.codec));
      expect(ranges.length).toBe(packets.length);
      expect(ranges.map((r) => r.keyframe)).toEqual(packets.map((p) => p.key));
      ranges.forEach((r, i) => {
        // ffprobe counts the 4-byte start code of the first NAL; we start at its 00 00 01
        expect(packets[i]!.size - r.length).toBeGreaterThanOrEqual(0);
        expect(packets[i]!.size - r.length).toBeLessThanOrEqual(4);
        expect([...f.bytes.subarray(r.offset, r.offset + 3)]).toEqual([0, 0, 1]);
      });
      const aus = assertUnchanged(f.bytes, () => assemble(f.bytes, c.codec));
      expect(aus.length).toBe(packets.length);
      expect(aus.map((a) => a.keyframe)).toEqual(packets.map((p) => p.key));
    });
  }

  test('drops access unit delimiters from the AU but keeps every other NAL', () => {
    for (const c of [H264_CASES[6]!, H265_CASES[4]!]) {
      const { bytes } = videoFixture(c);
      const aud = c.codec === 'h264' ? h264.NAL_AUD : h265.NAL_AUD;
      const aus = assemble(bytes, c.codec);
      const nalCount = allNalus(bytes).length;
      expect(aus.every((a) => !a.types.includes(aud))).toBe(true);
      expect(aus.reduce((s, a) => s + a.count, 0)).toBe(nalCount - aus.length); // one AUD per AU
      expect(aus.every((a) => a.types.filter((t) => (c.codec === 'h264' ? h264.isVcl(t) : h265.isVcl(t))).length === 4)).toBe(true);
    }
  });

  test('reports the track once the parameter sets are known', () => {
    for (const c of ALL) {
      const f = videoFixture(c);
      const asm = new AnnexBAuAssembler(c.codec);
      expect(asm.videoTrackInfo()).toBeNull();
      assemble(f.bytes, c.codec, asm);
      expect(asm.paramsVersion).toBe(c.codec === 'h264' ? 2 : 3); // repeated identical sets do not count
      const info = asm.videoTrackInfo()!;
      const st = probeStream(f.path);
      expect([info.codec, info.width, info.height]).toEqual([c.codec, st.width, st.height]);
      expect(hex(info.config)).toBe(hex(findBox(videoMp4(c).bytes, c.codec === 'h264' ? 'avcC' : 'hvcC')!));
      expect(asm.videoTrackInfo()).toBe(info); // cached until a set changes
    }
  });

  test('needs the VPS before describing an H.265 track', () => {
    const nalus = allNalus(videoFixture(H265_CASES[0]!).bytes.subarray(0, 3000));
    const asm = new AnnexBAuAssembler('h265');
    for (const n of nalus) if (h265.nalType(n) === h265.NAL_SPS || h265.nalType(n) === h265.NAL_PPS) asm.push(n);
    expect(asm.videoTrackInfo()).toBeNull();
    asm.push(nalus.find((n) => h265.nalType(n) === h265.NAL_VPS)!);
    expect(asm.videoTrackInfo()?.width).toBe(642);
  });

  test('follows a change of parameter sets mid-stream', () => {
    const a = videoFixture(H264_CASES[0]!).bytes;
    const b = videoFixture(H264_CASES[2]!).bytes;
    const joined = new Uint8Array(a.length + b.length);
    joined.set(a);
    joined.set(b, a.length);
    const asm = new AnnexBAuAssembler('h264');
    const sizes: string[] = [];
    for (const nal of allNalus(joined)) {
      if (asm.push(nal)) {
        const info = asm.videoTrackInfo()!;
        sizes.push(`${info.width}x${info.height}`);
      }
    }
    expect(asm.paramsVersion).toBe(4);
    expect(sizes.filter((s) => s === '320x240').length).toBe(50);
    expect(sizes.filter((s) => s === '642x362').length).toBe(49); // the last AU waits for flush
    expect(splitAccessUnits(joined, 'h264').length).toBe(100);
    const ps = asm.parameterSets();
    expect(hex(asm.videoTrackInfo()!.config)).toBe(hex(videoTrackInfoH264([ps.sps], [ps.pps]).config));
  });
});

describe('grouping rules on hand-made NAL units', () => {
  const idr = u8(0x65, 0x88); // first_mb_in_slice 0
  const idrCont = u8(0x65, 0x40); // first_mb_in_slice 1
  const pSlice = u8(0x41, 0x9a);
  const sei = u8(0x06, 0x05, 0x01, 0x80);
  const eos = u8(0x0b);

  test('starts a new AU at SEI after a slice, at a first slice, and after end of stream', () => {
    const asm = new AnnexBAuAssembler('h264');
    const counts: number[] = [];
    for (const n of [sei, idr, idrCont, sei, pSlice, pSlice, eos, u8(0x41, 0x40)]) if (asm.push(n)) counts.push(asm.au.nalus.length);
    if (asm.flush()) counts.push(asm.au.nalus.length);
    expect(counts).toEqual([3, 2, 2, 1]);
  });

  test('keeps H.265 suffix SEI in the current AU and splits at prefix SEI', () => {
    const asm = new AnnexBAuAssembler('h265');
    const firstIdr = u8(0x26, 0x01, 0xaf);
    const trail = u8(0x02, 0x01, 0xd0);
    const suffix = u8(0x50, 0x01, 0x05);
    const prefix = u8(0x4e, 0x01, 0x05);
    const done: boolean[] = [];
    for (const n of [firstIdr, suffix, prefix, trail, suffix]) {
      if (asm.push(n)) done.push(asm.au.keyframe);
    }
    expect(done).toEqual([true]);
    expect(asm.au.nalus.length).toBe(2);
    expect(asm.flush()).toBe(true);
    expect([asm.au.nalus.length, asm.au.keyframe]).toEqual([3, false]);
  });

  test('caps NAL units per AU and counts the dropped ones', () => {
    const asm = new AnnexBAuAssembler('h264');
    asm.push(idr);
    for (let i = 0; i < MAX_NALUS_PER_AU + 9; i++) asm.push(idrCont);
    expect(asm.flush()).toBe(true);
    expect(asm.au.nalus.length).toBe(MAX_NALUS_PER_AU);
    expect(asm.droppedNalus).toBe(10);
  });

  test('ignores a broken SPS and emits nothing without a slice', () => {
    const asm = new AnnexBAuAssembler('h264');
    asm.push(u8(0x67, 0x64));
    expect(asm.badParameterSets).toBe(1);
    expect(asm.paramsVersion).toBe(0);
    expect(asm.flush()).toBe(false);
  });
});

describe('fuzz', () => {
  test('mutated streams give ordered in-bounds ranges and consistent AUs', () => {
    const rnd = mulberry32(42);
    const seeds = ALL.map((c) => ({ codec: c.codec, bytes: videoFixture(c).bytes.subarray(0, 6000) }));
    for (let i = 0; i < 600; i++) {
      const seed = seeds[i % seeds.length]!;
      const input = i % 10 === 0 ? randomBytes(rnd, randInt(rnd, 400)).map((b) => (b < 60 ? 0 : b < 80 ? 1 : b)) : mutate(seed.bytes, rnd);
      const ranges = assertUnchanged(input, () => splitAccessUnits(input, seed.codec));
      let end = 0;
      for (const r of ranges) {
        expect(r.offset).toBeGreaterThanOrEqual(end);
        expect(r.length).toBeGreaterThan(3);
        end = r.offset + r.length;
        expect(end).toBeLessThanOrEqual(input.length);
      }
      const asm = new AnnexBAuAssembler(seed.codec);
      const aus = assemble(input, seed.codec, asm);
      expect(aus.length).toBe(ranges.length);
      expect(aus.every((a) => a.count <= MAX_NALUS_PER_AU)).toBe(true);
      const info = asm.videoTrackInfo();
      if (info) expect(info.width > 0 && info.height > 0 && info.config.length > 0).toBe(true);
    }
  });
});
