import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FragmentBuilder } from './fmp4-fragment.ts';
import { INIT_META_VERSION, MAX_STREAM_ID_BYTES, initSegment, readInitMeta } from './fmp4-init.ts';
import type { InitMeta } from './fmp4-init.ts';
import { BoxCursor, findBox, fourcc, fourccString, newBoxHeader, readBoxHeader } from './mp4-box.ts';
import type { BoxHeader } from './mp4-box.ts';
import { aacClip, decodeErrors, ffprobeJson, mulberry32, muxClips, run, tempDir, videoClip } from './testdata/fmp4-clips.ts';
import type { Clip } from './testdata/fmp4-clips.ts';
import type { AccessUnit, AudioTrackInfo } from './types.ts';

let tmp: ReturnType<typeof tempDir>;
let h264: Clip, aac: Clip;
beforeAll(() => {
  tmp = tempDir();
  h264 = videoClip(tmp.dir, 'h264');
  aac = aacClip(tmp.dir);
});
afterAll(() => tmp.cleanup());

/** Box at a path of four-character codes below [start, end), or throws. */
function box(b: Uint8Array, path: string[], start = 0, end = b.length): BoxHeader {
  const h = newBoxHeader();
  for (const t of path) {
    if (!findBox(b, start, end, fourcc(t), h)) throw new Error(`no ${t} in ${path.join('/')}`);
    start = h.body;
    end = h.end;
  }
  return h;
}

function children(b: Uint8Array, parent: BoxHeader, skip = 0): string[] {
  const out: string[] = [];
  const h = newBoxHeader();
  for (let p = parent.body + skip; p < parent.end; p = h.end) {
    expect(readBoxHeader(b, p, parent.end, h)).toBe(0);
    out.push(fourccString(h.type));
  }
  return out;
}

const META: InitMeta = { streamId: 'entrance-cam/1 – Süd', segmentNumber: 2 ** 40 + 17, startUnixMs: 1_732_500_000_123 };

describe('initSegment layout', () => {
  test('writes ftyp iso5 and a moov with one trak and one trex per track', () => {
    const init = initSegment([h264.track, aac.track], META);
    const ftyp = box(init, ['ftyp']);
    const c = new BoxCursor(init, ftyp.body, ftyp.end);
    const brands: string[] = [];
    while (c.remaining) brands.push(fourccString(c.u32()));
    expect(brands).toEqual(['iso5', '', 'iso5', 'iso6', 'mp41', 'avc1'].map((s, i) => (i === 1 ? fourccString(512) : s)));
    const moov = box(init, ['moov']);
    expect(moov.end).toBe(init.length);
    expect(children(init, moov)).toEqual(['mvhd', 'trak', 'trak', 'mvex', 'udta']);
    expect(children(init, box(init, ['moov', 'mvex']))).toEqual(['trex', 'trex']);
    expect(children(init, box(init, ['moov', 'trak', 'mdia', 'minf', 'stbl']))).toEqual(['stsd', 'stts', 'stsc', 'stco', 'stsz']);
    const tkhd = box(init, ['moov', 'trak', 'tkhd']);
    const t = new BoxCursor(init, tkhd.body, tkhd.end);
    expect(t.u32()).toBe(7); // version 0, enabled | in_movie | in_preview
    t.skip(8);
    expect(t.u32()).toBe(1);
    t.skip(tkhd.end - t.pos - 8); // to width, height
    expect([t.u32() / 65536, t.u32() / 65536]).toEqual([320, 240]);
  });

  test('writes an esds ffprobe and the spec agree on: OTI 0x40, audio stream, the ASC, SLConfig 2', () => {
    const init = initSegment([aac.track]);
    const esds = box(init, ['moov', 'trak', 'mdia', 'minf', 'stbl', 'stsd']);
    const mp4a = box(init, ['mp4a'], esds.body + 8, esds.end);
    const e = box(init, ['esds'], mp4a.body + 28, mp4a.end);
    const c = new BoxCursor(init, e.body + 4, e.end);
    expect(c.u8()).toBe(3);
    expect(c.u8()).toBe(e.end - e.body - 6);
    c.skip(3);
    expect([c.u8(), c.u8(), c.u8(), c.u8()]).toEqual([4, 15 + aac.track.config.length, 0x40, 0x15]);
    c.skip(11);
    expect([c.u8(), c.u8()]).toEqual([5, aac.track.config.length]);
    expect([...c.take(aac.track.config.length)]).toEqual([...aac.track.config]);
    expect([c.u8(), c.u8(), c.u8()]).toEqual([6, 1, 2]);
    expect(c.remaining).toBe(0);
  });

  test('an init segment alone tells ffprobe the codecs, size and audio format', () => {
    const file = join(tmp.dir, 'init.mp4');
    writeFileSync(file, initSegment([h264.track, aac.track]));
    const s = ffprobeJson(['-show_streams', file]).streams;
    expect(s.map((x: any) => x.codec_name)).toEqual(['h264', 'aac']);
    expect([s[0].width, s[0].height, Number(s[1].sample_rate), s[1].channels]).toEqual([320, 240, 48000, 2]);
  });
});

describe('G.711 sound entries', () => {
  for (const [codec, fmt, name] of [['pcma', 'alaw', 'pcm_alaw'], ['pcmu', 'mulaw', 'pcm_mulaw']] as const) {
    test(`${codec} records into '${codec === 'pcma' ? 'alaw' : 'ulaw'}' that ffprobe decodes as ${name}`, () => {
      const raw = join(tmp.dir, `a.${fmt}`);
      run(['ffmpeg', '-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=8000:duration=2', '-ac', '1', '-f', fmt, raw]);
      const pcm = new Uint8Array(readFileSync(raw));
      const track: AudioTrackInfo = { kind: 'audio', codec, timescale: 8000, sampleRate: 8000, channels: 1, config: new Uint8Array(0), codecString: fmt === 'alaw' ? 'alaw' : 'ulaw' };
      const fb = new FragmentBuilder([track]);
      const parts: Uint8Array[] = [initSegment([track])];
      for (let f = 0; f < 2; f++) {
        fb.begin(f + 1);
        for (let i = 0; i < 50; i++) {
          const off = (f * 50 + i) * 160; // 20 ms frames
          const au: AccessUnit = { nalus: [pcm.subarray(off, off + 160)], bytes: 160, keyframe: true, dts: off, pts: off };
          fb.addSample(0, au, 160);
        }
        for (const p of fb.finish([f * 8000])) parts.push(p.slice());
      }
      const file = join(tmp.dir, `${codec}.mp4`);
      writeFileSync(file, Buffer.concat(parts));
      expect(decodeErrors(file)).toBe('');
      const s = ffprobeJson(['-show_streams', file]).streams[0];
      expect([s.codec_name, Number(s.sample_rate), s.channels]).toEqual([name, 8000, 1]);
      expect(Math.abs(Number(s.duration) - 2)).toBeLessThan(0.021);
    });
  }
});

describe('segment identity (moov/udta/flxi)', () => {
  test('round-trips stream id, segment number and start time beyond 32 bits', () => {
    expect(readInitMeta(initSegment([h264.track, aac.track], META))).toEqual(META);
    const edge = { streamId: 'x'.repeat(MAX_STREAM_ID_BYTES), segmentNumber: 0, startUnixMs: Number.MAX_SAFE_INTEGER };
    expect(readInitMeta(initSegment([aac.track], edge))).toEqual(edge);
  });

  test('is read from a whole recorded file, which ffmpeg still decodes cleanly', () => {
    const { bytes } = muxClips([h264, aac], { meta: META });
    expect(readInitMeta(bytes)).toEqual(META);
    const file = join(tmp.dir, 'with-meta.mp4');
    writeFileSync(file, bytes);
    expect(decodeErrors(file)).toBe('');
  });

  test('is absent (null) without meta, when cut anywhere, or of an unknown version', () => {
    expect(readInitMeta(initSegment([h264.track]))).toBeNull();
    const init = initSegment([h264.track, aac.track], META);
    for (let cut = 0; cut < init.length; cut++) expect(readInitMeta(init.subarray(0, cut))).toBeNull();
    const flxi = box(init, ['moov', 'udta', 'flxi']);
    const future = init.slice();
    future[flxi.body] = INIT_META_VERSION + 1;
    expect(readInitMeta(future)).toBeNull();
  });

  test('rejects identities it cannot store', () => {
    expect(() => initSegment([aac.track], { ...META, streamId: 'é'.repeat(128) })).toThrow(RangeError);
    expect(() => initSegment([aac.track], { ...META, segmentNumber: -1 })).toThrow(RangeError);
    expect(() => initSegment([aac.track], { ...META, startUnixMs: 1.5 })).toThrow(RangeError);
  });

  test('fuzz: mutated init segments never make readInitMeta throw or invent a different identity shape', () => {
    const rand = mulberry32(0xf1c1);
    const init = initSegment([h264.track, aac.track], META);
    for (let iter = 0; iter < 3000; iter++) {
      const b = init.slice();
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips; k++) {
        const at = Math.floor(rand() * b.length);
        b[at] = rand() < 0.5 ? b[at]! ^ (1 << Math.floor(rand() * 8)) : Math.floor(rand() * 256);
      }
      const m = readInitMeta(rand() < 0.3 ? b.subarray(0, Math.floor(rand() * b.length)) : b);
      if (m) {
        expect(typeof m.streamId).toBe('string');
        expect(new TextEncoder().encode(m.streamId).length).toBeLessThanOrEqual(MAX_STREAM_ID_BYTES);
        expect(Number.isSafeInteger(m.segmentNumber) && Number.isSafeInteger(m.startUnixMs)).toBe(true);
      }
    }
    for (let iter = 0; iter < 500; iter++) {
      const b = new Uint8Array(Math.floor(rand() * 512));
      for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
      expect(() => readInitMeta(b)).not.toThrow();
    }
  });
});
