import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FragmentBuilder } from './fmp4-fragment.ts';
import { addRecordedSample, MAX_READ_SAMPLES, newRemuxUnit, readFragment, readInit, remuxTracks, runDuration, sameTracks } from './fmp4-read.ts';
import type { InitInfo, RecordedFragment } from './fmp4-read.ts';
import { scanFragments } from './fmp4-scan.ts';
import { aacClip, decodeErrors, ffprobeJson, mulberry32, muxClips, tempDir, videoClip } from './testdata/fmp4-clips.ts';
import type { Clip } from './testdata/fmp4-clips.ts';
import { ParseError } from './types.ts';

let tmp: ReturnType<typeof tempDir>;
let h264: Clip, aac: Clip, h265: Clip;
let file: Uint8Array;
let init: InitInfo;
/** [offset, size] of each moof+mdat in `file`. */
let frags: Array<[number, number]>;

beforeAll(() => {
  tmp = tempDir();
  h264 = videoClip(tmp.dir, 'h264');
  h265 = videoClip(tmp.dir, 'h265');
  aac = aacClip(tmp.dir);
  file = muxClips([h264, aac], { fragmentSeconds: 1 }).bytes;
  init = readInit(file);
  frags = scanFragments(file).fragments.map((f) => [f.offset, f.size]);
});
afterAll(() => tmp.cleanup());

const fragmentAt = (i: number) => file.subarray(frags[i]![0], frags[i]![0] + frags[i]![1]);

describe('readInit', () => {
  test('finds the tracks with their handler and timescale', () => {
    expect(init.tracks.map((t) => [t.trackId, t.video, t.timescale])).toEqual([[1, true, 90_000], [2, false, 48_000]]);
    expect(init.end).toBe(frags[0]![0]);
  });

  test('tells inits with the same decoder set-up from different ones', () => {
    const again = readInit(muxClips([h264, aac], { toSeconds: 1 }).bytes);
    const other = readInit(muxClips([h265], { toSeconds: 1 }).bytes);
    expect(sameTracks(init, again)).toBe(true);
    expect(sameTracks(init, other)).toBe(false);
  });

  test('throws ParseError for a file without a moov', () => {
    expect(() => readInit(fragmentAt(0))).toThrow(ParseError);
  });
});

describe('readFragment', () => {
  test('returns every sample of the clip with its size, duration, composition offset and sync flag', () => {
    const got: Record<number, { size: number; duration: number; cts: number; sync: boolean }[]> = { 0: [], 1: [] };
    for (let i = 0; i < frags.length; i++) {
      const f = readFragment(fragmentAt(i), init, frags[i]![0]);
      expect(f.sequenceNumber).toBe(i + 1);
      expect(f.size).toBe(frags[i]![1]);
      for (const r of f.runs) for (const s of r.samples) got[r.track]!.push({ size: s.size, duration: s.duration, cts: s.cts, sync: s.sync });
    }
    const want = (c: Clip, video: boolean) =>
      c.aus.map((au, i) => ({ size: au.bytes + (video ? 4 * au.nalus.length : 0), duration: c.durations[i]!, cts: au.pts - au.dts, sync: au.keyframe }));
    expect(got[0]).toEqual(want(h264, true));
    expect(got[1]).toEqual(want(aac, false));
  });

  test('reads only the moof in header-only mode, from a buffer cut after the mdat header', () => {
    const whole = readFragment(fragmentAt(1), init);
    const moofSize = new DataView(file.buffer, file.byteOffset + frags[1]![0]).getUint32(0);
    const head = readFragment(fragmentAt(1).subarray(0, moofSize + 8), init, 0, true);
    expect(head).toEqual(whole);
    expect(() => readFragment(fragmentAt(1).subarray(0, moofSize + 8), init)).toThrow(ParseError);
  });

  test('does not mutate its input', () => {
    const copy = file.slice();
    readFragment(fragmentAt(2), init);
    expect(file).toEqual(copy);
  });
});

/** Re-muxes `file` through addRecordedSample with every dts moved by `shift` ticks of track 0. */
function remux(keyframesOnly: boolean, shiftSeconds: number): Uint8Array {
  const b = new FragmentBuilder(remuxTracks(init));
  const unit = newRemuxUnit();
  const out: Uint8Array[] = [file.subarray(0, init.end)];
  let seq = 1;
  for (let i = 0; i < frags.length; i++) {
    const f: RecordedFragment = readFragment(fragmentAt(i), init);
    const data = fragmentAt(i);
    b.begin(seq);
    const bases: number[] = [0, 0];
    let added = 0;
    for (const r of f.runs) {
      const tr = init.tracks[r.track]!;
      if (keyframesOnly && !tr.video) continue;
      let dts = r.baseDts;
      const total = runDuration(r);
      for (const s of r.samples) {
        if (!keyframesOnly || s.sync) {
          if (b.sampleCount(r.track) === 0) bases[r.track] = dts + shiftSeconds * tr.timescale;
          expect(addRecordedSample(b, r.track, tr.video, data, s, keyframesOnly ? total : s.duration, unit)).toBe(true);
          added++;
        }
        dts += s.duration;
      }
    }
    if (added === 0) continue;
    for (const p of b.finish(bases)) out.push(p.slice());
    seq++;
  }
  return Buffer.concat(out);
}

describe('re-muxing recorded samples', () => {
  test('gives a file ffmpeg decodes without errors, with the same packets moved in time', () => {
    const path = join(tmp.dir, 'remux.mp4');
    writeFileSync(path, remux(false, 10));
    expect(decodeErrors(path)).toBe('');
    const j = ffprobeJson(['-select_streams', 'v:0', '-show_entries', 'packet=pts,flags', path]);
    expect(j.packets.length).toBe(h264.aus.length);
    const pts = j.packets.map((p: { pts: string }) => Number(p.pts)).sort((a: number, b: number) => a - b);
    const want = h264.aus.map((au) => au.pts + 10 * 90_000).sort((a, b) => a - b);
    expect(pts).toEqual(want);
  });

  test('keyframes only: every packet that comes out is a keyframe, one per GOP', () => {
    const path = join(tmp.dir, 'keys.mp4');
    writeFileSync(path, remux(true, 0));
    expect(decodeErrors(path)).toBe('');
    const j = ffprobeJson(['-show_entries', 'packet=pts,flags,duration', path]);
    const keys = h264.aus.filter((a) => a.keyframe).length;
    expect(j.packets.length).toBe(keys);
    for (const p of j.packets) expect(p.flags.startsWith('K')).toBe(true);
  });

  test('refuses a video sample whose NAL lengths do not add up', () => {
    const b = new FragmentBuilder(remuxTracks(init));
    b.begin(1);
    const bad = new Uint8Array([0, 0, 0, 9, 1, 2, 3]);
    expect(addRecordedSample(b, 0, true, bad, { offset: 0, size: 7, duration: 1, cts: 0, sync: true }, 1, newRemuxUnit())).toBe(false);
    expect(b.sampleCount(0)).toBe(0);
  });
});

describe('fuzz', () => {
  /** Invariants: returns or throws ParseError; samples lie inside the buffer (or the announced mdat). */
  function check(buf: Uint8Array, headerOnly: boolean): void {
    let f: RecordedFragment;
    try {
      f = readFragment(buf, init, 0, headerOnly);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      return;
    }
    let n = 0;
    for (const r of f.runs) {
      expect(r.track).toBeGreaterThanOrEqual(0);
      expect(r.track).toBeLessThan(init.tracks.length);
      for (const s of r.samples) {
        n++;
        expect(s.offset).toBeGreaterThanOrEqual(0);
        expect(s.offset + s.size).toBeLessThanOrEqual(f.size);
        if (!headerOnly) expect(s.offset + s.size).toBeLessThanOrEqual(buf.length);
      }
    }
    expect(n).toBeLessThanOrEqual(MAX_READ_SAMPLES);
  }

  test('mutated fragments and random buffers only ever throw ParseError, and samples stay in bounds', () => {
    const rnd = mulberry32(0x5eed);
    const int = (n: number) => Math.floor(rnd() * n);
    for (let iter = 0; iter < 3000; iter++) {
      const src = fragmentAt(int(frags.length));
      let b = src.slice();
      switch (iter % 5) {
        case 0: for (let k = 0; k < 1 + int(8); k++) { const i = int(Math.min(b.length, 600)); b[i]! ^= 1 << int(8); } break;
        case 1: b = b.subarray(0, int(b.length)); break;
        case 2: { const other = fragmentAt(int(frags.length)); const cut = int(Math.min(b.length, other.length)); b = Buffer.concat([b.subarray(0, cut), other.subarray(cut)]); break; }
        case 3: { const i = int(Math.min(b.length - 4, 400)); new DataView(b.buffer).setUint32(i, int(0x100000000)); break; }
        case 4: b = new Uint8Array(int(2048)).map(() => int(256)); break;
      }
      check(b, false);
      check(b, true);
    }
  });

  test('mutated inits only ever throw ParseError', () => {
    const rnd = mulberry32(7);
    const head = file.subarray(0, init.end);
    for (let iter = 0; iter < 2000; iter++) {
      const b = head.slice(0, iter % 3 === 0 ? Math.floor(rnd() * head.length) : head.length);
      for (let k = 0; k < 4; k++) if (b.length > 0) b[Math.floor(rnd() * b.length)]! ^= 1 << Math.floor(rnd() * 8);
      try {
        const r = readInit(b);
        expect(r.tracks.length).toBeGreaterThan(0);
        expect(r.end).toBeLessThanOrEqual(b.length);
        for (const t of r.tracks) expect(t.timescale).toBeGreaterThan(0);
      } catch (e) {
        expect(e).toBeInstanceOf(ParseError);
      }
    }
  });
});
