import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FragmentBuilder, MAX_FRAGMENT_BYTES, MAX_SAMPLES_PER_FRAGMENT, StageBlocks } from './fmp4-fragment.ts';
import { SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC } from './fmp4-init.ts';
import { BoxCursor, findBox, fourcc, newBoxHeader } from './mp4-box.ts';
import { scanFragments } from './fmp4-scan.ts';
import { aacClip, decodeErrors, ffprobeJson, muxClips, tempDir, videoClip } from './testdata/fmp4-clips.ts';
import type { Clip } from './testdata/fmp4-clips.ts';
import type { AccessUnit, TrackInfo } from './types.ts';

let tmp: ReturnType<typeof tempDir>;
let h264: Clip, h265: Clip, aac: Clip;

beforeAll(() => {
  tmp = tempDir();
  h264 = videoClip(tmp.dir, 'h264');
  h265 = videoClip(tmp.dir, 'h265');
  aac = aacClip(tmp.dir);
});
afterAll(() => tmp.cleanup());

function save(name: string, bytes: Uint8Array): string {
  const file = join(tmp.dir, name);
  writeFileSync(file, bytes);
  return file;
}

function probe(file: string, stream: 'v' | 'a'): any {
  return ffprobeJson(['-count_frames', '-select_streams', stream, '-show_streams', file]).streams[0];
}

function packets(file: string, stream: 'v' | 'a'): { pts: number; dts: number; flags: string }[] {
  return ffprobeJson(['-select_streams', stream, '-show_entries', 'packet=pts,dts,flags', file]).packets.map((p: any) => ({
    pts: Number(p.pts), dts: Number(p.dts), flags: p.flags,
  }));
}

function keyframeTimes(file: string): number[] {
  const j = ffprobeJson(['-select_streams', 'v', '-skip_frame', 'nokey', '-show_entries', 'frame=pts', file]);
  return j.frames.map((f: any) => Number(f.pts));
}

const expectedKeyPts = (c: Clip) => c.aus.filter((a) => a.keyframe).map((a) => a.pts);

describe('FragmentBuilder with real streams (judged by ffprobe)', () => {
  test('H.264 with B-frames and AAC mux into a file ffprobe decodes frame-exactly', () => {
    const file = save('h264-aac.mp4', muxClips([h264, aac]).bytes);
    expect(decodeErrors(file)).toBe('');
    const v = probe(file, 'v');
    expect(v.codec_name).toBe('h264');
    expect([v.width, v.height]).toEqual([320, 240]);
    expect(Number(v.nb_read_frames)).toBe(h264.aus.length);
    expect(Math.abs(Number(v.duration) - 4)).toBeLessThanOrEqual(1 / 25);
    const a = probe(file, 'a');
    expect(a.codec_name).toBe('aac');
    expect(Number(a.sample_rate)).toBe(48000);
    expect(a.channels).toBe(2);
    expect(Number(a.nb_read_frames)).toBe(aac.aus.length);
  });

  test('packet dts/pts and keyframe flags equal the input, so composition offsets survive', () => {
    const file = save('h264-times.mp4', muxClips([h264, aac]).bytes);
    const got = packets(file, 'v');
    expect(got.map((p) => [p.dts, p.pts, p.flags[0] === 'K'])).toEqual(h264.aus.map((a) => [a.dts, a.pts, a.keyframe]));
    expect(h264.aus.some((a) => a.pts !== a.dts)).toBe(true); // the clip does have B-frames
    expect(keyframeTimes(file)).toEqual(expectedKeyPts(h264));
    expect(expectedKeyPts(h264)).toEqual([7200, 7200 + 180000]); // GOP boundaries, 2 s apart
    expect(packets(file, 'a').map((p) => p.dts)).toEqual(aac.aus.map((a) => a.dts));
  });

  test('H.265 muxes into hvc1 that ffprobe decodes with keyframes at the GOP boundaries', () => {
    const file = save('h265.mp4', muxClips([h265]).bytes);
    expect(decodeErrors(file)).toBe('');
    const v = probe(file, 'v');
    expect(v.codec_name).toBe('hevc');
    expect(v.codec_tag_string).toBe('hvc1');
    expect([v.width, v.height]).toEqual([320, 240]);
    expect(Number(v.nb_read_frames)).toBe(h265.aus.length);
    expect(Math.abs(Number(v.duration) - 4)).toBeLessThanOrEqual(1 / 25);
    expect(keyframeTimes(file)).toEqual(expectedKeyPts(h265));
  });

  test('patching durations with setLastDuration gives the same bytes as knowing them up front', () => {
    const direct = muxClips([h264, aac]).bytes;
    const patched = muxClips([h264, aac], { patchDurations: true }).bytes;
    expect(Buffer.compare(direct, patched)).toBe(0);
  });

  test('a second segment whose tfdt continues from the first starts at the right time', () => {
    const a = save('seg-a.mp4', muxClips([h264, aac], { toSeconds: 2 }).bytes);
    const second = muxClips([h264, aac], { fromSeconds: 2, firstSequence: 3 });
    const b = save('seg-b.mp4', second.bytes);
    for (const f of [a, b]) expect(decodeErrors(f)).toBe('');
    const firstB = h264.aus.find((au) => au.dts >= 180000)!;
    expect(firstB.keyframe).toBe(true);
    const vb = probe(b, 'v');
    expect(Number(vb.start_pts)).toBe(firstB.pts);
    expect(Number(vb.nb_read_frames)).toBe(h264.aus.length - 50);
    expect(Number(probe(a, 'v').nb_read_frames)).toBe(50);
    const firstAudio = aac.aus.find((au) => au.dts >= 96000)!;
    expect(Number(probe(b, 'a').start_pts)).toBe(firstAudio.dts);
    // the first file ends where the second begins
    const endA = scanFragments(second.bytes).fragments[0]!;
    expect(endA.sequenceNumber).toBe(3);
    const scanA = scanFragments(muxClips([h264, aac], { toSeconds: 2 }).bytes);
    expect(scanA.trackEnds[0]).toBe(endA.firstTrackBaseDts[0]!);
    expect(scanA.trackEnds[1]).toBe(endA.firstTrackBaseDts[1]!);
  });

  test('tfdt beyond 2^32 is written as 64 bits and read back exactly', () => {
    const offset = 2 ** 32 + 90000 * 7;
    const { bytes } = muxClips([h264, aac], { dtsOffset: [offset, 2 ** 33 + 3] });
    const file = save('big-tfdt.mp4', bytes);
    expect(decodeErrors(file)).toBe('');
    const got = packets(file, 'v');
    expect(got[0]!.dts).toBe(offset);
    expect(got[got.length - 1]!.pts).toBe(offset + h264.aus[h264.aus.length - 1]!.pts);
    expect(packets(file, 'a')[0]!.dts).toBe(2 ** 33 + 3);
    const scan = scanFragments(bytes);
    expect(scan.fragments[1]!.firstTrackBaseDts).toEqual([offset + 90000, 2 ** 33 + 3 + aac.aus.find((a) => a.dts >= 48000)!.dts]);
  });
});

describe('FragmentBuilder layout', () => {
  const tracks = (): TrackInfo[] => [h264.track, aac.track];

  function build(samples: [number, AccessUnit][], bases = [0, 0], blocks = new StageBlocks()): { fb: FragmentBuilder; parts: Uint8Array[] } {
    const fb = new FragmentBuilder(tracks(), blocks);
    fb.begin(9);
    for (const [t, au] of samples) expect(fb.addSample(t, au, 1000)).toBe(true);
    return { fb, parts: fb.finish(bases) };
  }

  test('trun data offsets with two tracks point at each track’s first sample in mdat', () => {
    const samples: [number, AccessUnit][] = [[0, h264.aus[0]!], [1, aac.aus[0]!], [0, h264.aus[1]!], [1, aac.aus[1]!]];
    const { parts } = build(samples);
    expect(parts.length).toBe(3);
    const frag = Buffer.concat(parts);
    const h = newBoxHeader();
    expect(findBox(frag, 0, frag.length, fourcc('moof'), h)).toBe(true);
    const moofEnd = h.end;
    expect(findBox(frag, moofEnd, frag.length, fourcc('mdat'), h)).toBe(true);
    expect(h.end).toBe(frag.length);
    const trafs: { trackId: number; dataOffset: number; sizes: number[]; flags: number[]; version: number }[] = [];
    let pos = 8;
    while (findBox(frag, pos, moofEnd, fourcc('traf'), h)) {
      pos = h.end;
      const t = newBoxHeader();
      findBox(frag, h.body, h.end, fourcc('tfhd'), t);
      const trackId = new BoxCursor(frag, t.body + 4, t.end).u32();
      findBox(frag, h.body, h.end, fourcc('trun'), t);
      const c = new BoxCursor(frag, t.body, t.end);
      const version = c.u8();
      const flags = c.u24();
      const n = c.u32(), dataOffset = c.i32();
      const sizes: number[] = [], sflags: number[] = [];
      for (let i = 0; i < n; i++) {
        c.u32(); sizes.push(c.u32()); sflags.push(c.u32());
        if (flags & 0x800) c.i32();
      }
      trafs.push({ trackId, dataOffset, sizes, flags: sflags, version });
    }
    expect(trafs.map((t) => t.trackId)).toEqual([1, 2]);
    expect(trafs[0]!.version).toBe(1); // signed composition offsets
    expect(trafs[0]!.flags).toEqual([SAMPLE_FLAGS_SYNC, SAMPLE_FLAGS_NON_SYNC]);
    expect(trafs[1]!.flags).toEqual([SAMPLE_FLAGS_SYNC, SAMPLE_FLAGS_SYNC]);
    // video: [len][nal] ...; the first NAL of the first AU sits right at the offset
    const v0 = h264.aus[0]!.nalus[0]!;
    const vo = trafs[0]!.dataOffset;
    expect(new BoxCursor(frag, vo).u32()).toBe(v0.length);
    expect(Buffer.compare(frag.subarray(vo + 4, vo + 4 + v0.length), v0)).toBe(0);
    const ao = trafs[1]!.dataOffset;
    expect(ao).toBe(vo + trafs[0]!.sizes[0]! + trafs[0]!.sizes[1]!);
    expect(Buffer.compare(frag.subarray(ao, ao + aac.aus[0]!.bytes), aac.aus[0]!.nalus[0]!)).toBe(0);
    expect(ao + trafs[1]!.sizes[0]! + trafs[1]!.sizes[1]!).toBe(frag.length);
  });

  test('a track without samples is left out of the moof', () => {
    const { parts } = build([[1, aac.aus[0]!]]);
    expect(parts.length).toBe(2);
    const frag = Buffer.concat(parts);
    const h = newBoxHeader();
    findBox(frag, 0, frag.length, fourcc('moof'), h);
    expect(findBox(frag, h.body, h.end, fourcc('traf'), h)).toBe(true);
    findBox(frag, h.body, h.end, fourcc('tfhd'), h);
    expect(new BoxCursor(frag, h.body + 4).u32()).toBe(2);
    const scan = scanFragments(Buffer.concat([Buffer.from(muxClips([h264, aac], { toSeconds: 0 }).bytes), frag]));
    expect(scan.fragments[0]!.sampleCounts).toEqual([0, 1]);
    expect(scan.fragments[0]!.firstTrackBaseDts).toEqual([-1, 0]);
    expect(scan.fragments[0]!.keyframe).toBe(false);
  });

  test('addSample copies without mutating the access unit buffers', () => {
    const before = h264.aus.slice(0, 10).map((a) => a.nalus.map((n) => n.slice()));
    const { parts } = build(h264.aus.slice(0, 10).map((a) => [0, a] as [number, AccessUnit]));
    h264.aus.slice(0, 10).forEach((a, i) => a.nalus.forEach((n, k) => expect(Buffer.compare(n, before[i]![k]!)).toBe(0)));
    for (const p of parts) for (const a of h264.aus.slice(0, 10)) for (const n of a.nalus) expect(p.buffer).not.toBe(n.buffer);
  });

  test('staging blocks are reused from one fragment to the next', () => {
    const pool = new StageBlocks();
    const fb = new FragmentBuilder(tracks(), pool);
    const buffers = new Set<ArrayBufferLike>();
    let most = 0;
    for (let f = 0; f < 4; f++) {
      fb.begin(f);
      for (let i = 0; i < 25; i++) fb.addSample(0, h264.aus[f * 25 + i]!, 3600);
      const parts = fb.finish([f * 90000, 0]);
      for (const p of parts) buffers.add(p.buffer);
      most = Math.max(most, parts.length);
    }
    expect(buffers.size).toBe(most); // one head writer, and the blocks of the largest fragment
    fb.release();
    expect(pool.stats.inUse).toBe(0);
    expect(pool.stats.idle).toBe(most - 1);
  });

  test('any block size gives the same bytes, with samples and length prefixes across block ends', () => {
    const samples: [number, AccessUnit][] = [];
    for (let i = 0; i < 12; i++) samples.push([0, h264.aus[i]!], [1, aac.aus[i]!]);
    const want = Buffer.concat(build(samples, [7, 9]).parts);
    for (const size of [16, 23, 4096, 1 << 20]) {
      const pool = new StageBlocks(size);
      const { fb, parts } = build(samples, [7, 9], pool);
      expect(Buffer.compare(Buffer.concat(parts), want)).toBe(0);
      if (size === 16) expect(parts.length).toBeGreaterThan(100);
      for (const p of parts.slice(1)) expect(p.length).toBeLessThanOrEqual(size);
      fb.release();
      expect(pool.stats.inUse).toBe(0);
    }
  });

  test('refuses the sample that would pass the caps, and keeps the fragment intact', () => {
    const fb = new FragmentBuilder([aac.track]);
    fb.begin(1);
    const au = aac.aus[0]!;
    for (let i = 0; i < MAX_SAMPLES_PER_FRAGMENT; i++) expect(fb.addSample(0, au, 1024)).toBe(true);
    expect(fb.addSample(0, au, 1024)).toBe(false);
    expect(fb.sampleCount(0)).toBe(MAX_SAMPLES_PER_FRAGMENT);
    fb.begin(2);
    const huge: AccessUnit = { nalus: [new Uint8Array(MAX_FRAGMENT_BYTES - 10), new Uint8Array(11)], bytes: MAX_FRAGMENT_BYTES + 1, keyframe: true, dts: 0, pts: 0 };
    expect(fb.addSample(0, huge, 1024)).toBe(false);
    expect(fb.bytes).toBe(0);
    expect(fb.addSample(0, au, 1024)).toBe(true);
  });

  test('rejects caller bugs loudly', () => {
    const fb = new FragmentBuilder(tracks());
    expect(() => fb.addSample(0, h264.aus[0]!, 1)).toThrow(Error); // before begin()
    fb.begin(1);
    expect(() => fb.addSample(2, h264.aus[0]!, 1)).toThrow(RangeError);
    expect(() => fb.addSample(0, h264.aus[0]!, -1)).toThrow(RangeError);
    expect(() => fb.setLastDuration(1, 5)).toThrow(RangeError);
    fb.addSample(0, h264.aus[0]!, 1);
    expect(() => fb.finish([-1, 0])).toThrow(RangeError);
    expect(() => fb.finish([1.5, 0])).toThrow(RangeError);
  });
});
