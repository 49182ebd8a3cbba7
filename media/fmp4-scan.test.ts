import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_SCAN_TRACKS, scanFragments } from './fmp4-scan.ts';
import type { ScanResult } from './fmp4-scan.ts';
import { BoxWriter, fourcc, newBoxHeader, readBoxHeader } from './mp4-box.ts';
import { aacClip, decodeErrors, ffprobeJson, mulberry32, muxClips, tempDir, videoClip } from './testdata/fmp4-clips.ts';
import type { Clip } from './testdata/fmp4-clips.ts';

let tmp: ReturnType<typeof tempDir>;
let h264: Clip, aac: Clip;
let file: Uint8Array;
let full: ScanResult;

beforeAll(() => {
  tmp = tempDir();
  h264 = videoClip(tmp.dir, 'h264');
  aac = aacClip(tmp.dir);
  file = muxClips([h264, aac], { firstSequence: 11 }).bytes;
  full = scanFragments(file);
});
afterAll(() => tmp.cleanup());

const ends = (r: ScanResult) => r.fragments.map((f) => f.offset + f.size);

/** Top-level box boundaries of a file: where a cut leaves only complete boxes. */
function boundaries(b: Uint8Array): number[] {
  const out = [0];
  const h = newBoxHeader();
  for (let p = 0; p < b.length && readBoxHeader(b, p, b.length, h) === 0; p = h.end) out.push(h.end);
  return out;
}

function box(type: string, body: Uint8Array | number, large = false): Uint8Array {
  const w = new BoxWriter(64);
  const n = typeof body === 'number' ? body : body.length;
  if (large) { w.u32(1); w.u32(fourcc(type)); w.u64(16 + n); } else { w.u32(8 + n); w.u32(fourcc(type)); }
  if (typeof body === 'number') w.zeros(n); else w.bytes(body);
  return w.result().slice();
}

/** Invariants every scan result keeps, whatever the input. */
function checkInvariants(r: ScanResult, length: number): void {
  expect(r.initEnd).toBeGreaterThanOrEqual(0);
  expect(r.validEnd).toBeGreaterThanOrEqual(r.initEnd);
  expect(r.validEnd).toBeLessThanOrEqual(length);
  expect(r.tracks.length).toBeLessThanOrEqual(MAX_SCAN_TRACKS);
  let prev = r.initEnd;
  for (const f of r.fragments) {
    expect(f.offset).toBeGreaterThanOrEqual(prev);
    expect(f.size).toBeGreaterThanOrEqual(16);
    prev = f.offset + f.size;
    expect(f.sampleCounts.length).toBe(r.tracks.length);
    f.sampleCounts.forEach((n, t) => {
      expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
      expect(f.firstTrackBaseDts[t]! >= 0).toBe(n > 0);
      expect(f.durations[t]! >= 0 && Number.isFinite(f.durations[t]!)).toBe(true);
    });
  }
  expect(r.fragments.length ? prev : r.initEnd).toBe(r.validEnd);
}

describe('scanFragments on a complete recording', () => {
  test('finds the init, every fragment with its timing, and the end', () => {
    expect(full.truncated).toBe(false);
    expect(full.validEnd).toBe(file.length);
    expect(full.tracks.map((t) => [t.trackId, t.handler, t.timescale])).toEqual([[1, 'vide', 90000], [2, 'soun', 48000]]);
    expect(full.fragments.length).toBe(5); // 4 s of video, 4.03 s of audio, 1 s each
    expect(full.fragments[0]!.offset).toBe(full.initEnd);
    expect(full.fragments.map((f) => f.sequenceNumber)).toEqual([11, 12, 13, 14, 15]);
    expect(full.fragments.map((f) => f.keyframe)).toEqual([true, false, true, false, false]);
    expect(full.fragments.map((f) => f.firstTrackBaseDts[0])).toEqual([0, 90000, 180000, 270000, -1]);
    const sum = (t: number, k: 'sampleCounts' | 'durations') => full.fragments.reduce((s, f) => s + f[k][t]!, 0);
    expect([sum(0, 'sampleCounts'), sum(1, 'sampleCounts')]).toEqual([h264.aus.length, aac.aus.length]);
    expect([sum(0, 'durations'), sum(1, 'durations')]).toEqual([100 * 3600, aac.aus.length * 1024]);
    expect(full.trackEnds).toEqual([360000, aac.aus.length * 1024]);
    checkInvariants(full, file.length);
  });

  test('skips unknown top-level boxes (free, styp, sidx, uuid, 64-bit sizes) between the known ones', () => {
    const ftypEnd = boundaries(file)[1]!;
    const pieces = [file.subarray(0, ftypEnd), box('free', 5), file.subarray(ftypEnd, full.initEnd), box('sidx', 24)];
    full.fragments.forEach((f, i) => {
      pieces.push(box('styp', 12), box('free', 3, true));
      if (i === 2) pieces.push(box('uuid', 16));
      pieces.push(file.subarray(f.offset, f.offset + f.size));
    });
    pieces.push(box('free', 0));
    const padded = new Uint8Array(Buffer.concat(pieces));
    const r = scanFragments(padded);
    expect(r.truncated).toBe(false);
    expect(r.fragments.length).toBe(full.fragments.length);
    expect(r.fragments.map(({ offset: _, ...f }) => f)).toEqual(full.fragments.map(({ offset: _, ...f }) => f));
    expect(r.validEnd).toBe(padded.length - 8);
    checkInvariants(r, padded.length);
  });
});

describe('scanFragments on files cut by a crash', () => {
  test('reports the last complete fragment before any cut, never past it', () => {
    // where a cut leaves only whole units: ftyp, moov, and moof+mdat pairs (not a moof alone)
    const bounds = [0, boundaries(file)[1]!, full.initEnd, ...ends(full)];
    const cuts = new Set<number>();
    for (const b of boundaries(file)) cuts.add(b); // moof ends too
    for (let c = 0; c <= full.initEnd + 40; c++) cuts.add(c);
    for (const b of bounds) for (let d = -20; d <= 20; d++) if (b + d >= 0 && b + d <= file.length) cuts.add(b + d);
    for (let c = 0; c < file.length; c += 97) cuts.add(c);
    for (const cut of cuts) {
      const r = scanFragments(file.subarray(0, cut));
      const expectedEnd = Math.max(cut >= full.initEnd ? full.initEnd : 0, ...ends(full).filter((e) => e <= cut));
      expect(r.validEnd).toBe(expectedEnd);
      expect(r.truncated).toBe(!bounds.includes(cut));
      expect(r.fragments).toEqual(full.fragments.filter((f) => f.offset + f.size <= cut));
      checkInvariants(r, cut);
    }
    expect(cuts.size).toBeGreaterThan(1000);
  });

  test('truncating at validEnd leaves a file ffmpeg decodes without error', () => {
    const last = ends(full);
    for (const cut of [full.initEnd + 100, last[1]! + 5000, file.length - 1]) {
      const r = scanFragments(file.subarray(0, cut));
      expect(r.truncated).toBe(true);
      const path = join(tmp.dir, `cut-${cut}.mp4`);
      writeFileSync(path, file.subarray(0, r.validEnd));
      if (r.fragments.length === 0) {
        // an init alone has nothing to decode (ffmpeg says so), but opens cleanly
        expect(ffprobeJson(['-show_streams', path]).streams.length).toBe(2);
        continue;
      }
      expect(decodeErrors(path)).toBe('');
      const frames = ffprobeJson(['-count_frames', '-select_streams', 'v', '-show_streams', path]).streams[0].nb_read_frames;
      expect(Number(frames)).toBe(r.fragments.reduce((s, f) => s + f.sampleCounts[0]!, 0));
    }
  });
});

describe('scanFragments on corrupt files', () => {
  const frag = (i: number) => full.fragments[i]!;

  test('stops at a moof not followed by its mdat', () => {
    const f1 = frag(1);
    const moofEnd = (() => { const h = newBoxHeader(); readBoxHeader(file, f1.offset, file.length, h); return h.end; })();
    const b = Buffer.concat([file.subarray(0, moofEnd), box('free', 4), file.subarray(moofEnd)]);
    const r = scanFragments(b);
    expect([r.fragments.length, r.validEnd, r.truncated]).toEqual([1, f1.offset, true]);
  });

  test('stops at a trun whose data offset points outside its mdat', () => {
    const b = file.slice();
    // first trun of fragment 2: moof(8) mfhd(16) traf(8) tfhd(16) tfdt(20) trun header(12) count(4) -> data_offset
    const at = frag(2).offset + 8 + 16 + 8 + 16 + 20 + 12 + 4;
    new DataView(b.buffer).setInt32(at, frag(2).size + 100);
    const r = scanFragments(b);
    expect([r.fragments.length, r.validEnd, r.truncated]).toEqual([2, frag(2).offset, true]);
  });

  test('stops at an impossible box size and at fragments before any moov', () => {
    const b = file.slice();
    new DataView(b.buffer).setUint32(frag(3).offset, 7);
    expect(scanFragments(b).validEnd).toBe(frag(3).offset);
    const orphan = scanFragments(file.subarray(full.initEnd));
    expect([orphan.fragments.length, orphan.validEnd, orphan.truncated]).toEqual([0, 0, true]);
    expect(scanFragments(new Uint8Array(0))).toMatchObject({ validEnd: 0, truncated: false, fragments: [] });
  });

  test('fuzz: mutated recordings and random boxes keep every invariant and rescans agree', () => {
    const rand = mulberry32(0x5ca9);
    const small = muxClips([h264, aac], { toSeconds: 2, fragmentSeconds: 0.5 }).bytes;
    // structural offsets: box headers at every nesting level of moov and moofs
    const hot: number[] = [];
    const walk = (s: number, e: number, depth: number) => {
      const h = newBoxHeader();
      for (let p = s; p < e && readBoxHeader(small, p, e, h) === 0; p = h.end) {
        for (let k = 0; k < 16; k++) hot.push(p + k);
        if (depth < 6 && h.type !== fourcc('mdat')) walk(h.body + (h.type === fourcc('stsd') ? 8 : 0), h.end, depth + 1);
      }
    };
    walk(0, small.length, 0);
    const TYPES = ['moov', 'moof', 'mdat', 'free', 'trak', 'traf', 'tfhd', 'trun', 'tfdt', 'mfhd', 'mvex', 'trex'];
    const t0 = performance.now();
    for (let iter = 0; iter < 10000; iter++) {
      let b: Uint8Array;
      const kind = iter % 5;
      if (kind === 4) {
        // random box soup: plausible types, random sizes and bodies
        const w = new BoxWriter(256);
        const n = 1 + Math.floor(rand() * 8);
        for (let k = 0; k < n; k++) {
          w.u32(rand() < 0.2 ? Math.floor(rand() * 0xffffffff) : 8 + Math.floor(rand() * 64));
          w.u32(fourcc(TYPES[Math.floor(rand() * TYPES.length)]!));
          for (let j = Math.floor(rand() * 64); j > 0; j--) w.u8(Math.floor(rand() * 256));
        }
        b = w.result();
      } else {
        b = small.slice();
        const view = new DataView(b.buffer);
        const edits = 1 + Math.floor(rand() * 6);
        for (let k = 0; k < edits; k++) {
          const at = rand() < 0.8 ? hot[Math.floor(rand() * hot.length)]! : Math.floor(rand() * b.length);
          if (kind === 0) b[at] = b[at]! ^ (1 << Math.floor(rand() * 8));
          else if (kind === 1) b[at] = Math.floor(rand() * 256);
          else if (kind === 2 && at + 4 <= b.length) view.setUint32(at, [0, 1, 7, 8, 0xffffffff, Math.floor(rand() * 0x100000000)][Math.floor(rand() * 6)]!);
        }
        if (kind === 3) {
          const a = Math.floor(rand() * b.length), c = Math.floor(rand() * b.length);
          b = new Uint8Array(Buffer.concat([b.subarray(0, a), b.subarray(c)])); // splice
        }
        if (rand() < 0.3) b = b.subarray(0, Math.floor(rand() * b.length));
      }
      const r = scanFragments(b);
      checkInvariants(r, b.length);
      const again = scanFragments(b.subarray(0, r.validEnd));
      expect(again.fragments).toEqual(r.fragments);
      expect(again.validEnd).toBe(r.validEnd);
    }
    expect(performance.now() - t0).toBeLessThan(8000);
  });
});
