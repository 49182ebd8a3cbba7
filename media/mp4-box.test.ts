import { describe, expect, test } from 'bun:test';
import {
  BOX_INVALID, BOX_OK, BOX_PARTIAL, BoxCursor, BoxWriter, BoxWriterFullError, findBox, fourcc, fourccString,
  newBoxHeader, readBoxHeader,
} from './mp4-box.ts';
import { initSegment } from './fmp4-init.ts';
import { mulberry32 } from './testdata/fmp4-clips.ts';
import { ParseError } from './types.ts';
import type { AudioTrackInfo, VideoTrackInfo } from './types.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('BoxWriter', () => {
  test('patches nested box sizes when they close', () => {
    const w = new BoxWriter(16);
    const outer = w.open(fourcc('moof'));
    const inner = w.openFull(fourcc('mfhd'), 0, 0);
    w.u32(42);
    w.close(inner);
    w.close(outer);
    expect(hex(w.result())).toBe('00000018' + '6d6f6f66' + '00000010' + '6d666864' + '00000000' + '0000002a');
  });

  test('writes 64-bit values beyond 2^32 as two exact halves', () => {
    const w = new BoxWriter();
    w.u64(2 ** 32 + 5);
    w.u64(Number.MAX_SAFE_INTEGER);
    w.u64(0);
    expect(hex(w.result())).toBe('0000000100000005' + '001fffffffffffff' + '0000000000000000');
    expect(new BoxCursor(w.result()).u64()).toBe(2 ** 32 + 5);
  });

  test('grows by doubling, keeps what was written, and stops at its cap', () => {
    const w = new BoxWriter(16, 64);
    for (let i = 0; i < 16; i++) w.u32(i);
    expect(w.buf.length).toBe(64);
    expect(new BoxCursor(w.result(), 60).u32()).toBe(15);
    expect(() => w.u8(0)).toThrow(BoxWriterFullError);
    w.reset();
    w.u24(0x123456);
    w.i32(-2);
    expect(hex(w.result())).toBe('123456fffffffe');
  });
});

describe('BoxCursor', () => {
  const b = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  test('reads big-endian fields inside its range only', () => {
    const c = new BoxCursor(b, 1, 8);
    expect([c.u8(), c.u16(), c.u24()]).toEqual([1, 0x0203, 0x040506]);
    expect(c.remaining).toBe(1);
    expect(() => c.u16()).toThrow(ParseError);
    expect(c.u8()).toBe(7); // a failed read consumes nothing
    expect(() => c.u8()).toThrow('need 1 bytes, 0 left at offset 8');
  });

  test('throws ParseError for 64-bit values past 2^53, out-of-range views and bad ranges', () => {
    expect(() => new BoxCursor(new Uint8Array([0, 0x20, 0, 0, 0, 0, 0, 0])).u64()).toThrow(ParseError);
    const c = new BoxCursor(b);
    expect(() => c.take(11)).toThrow(ParseError);
    expect(() => c.skip(-1)).toThrow(ParseError);
    expect(c.take(3)).toEqual(new Uint8Array([0, 1, 2]));
    expect(() => new BoxCursor(b, 5, 11)).toThrow(ParseError);
    expect(() => new BoxCursor(b, 6, 5)).toThrow(ParseError);
  });

  test('reads through a subarray view at its own offsets', () => {
    const c = new BoxCursor(b.subarray(4));
    expect(c.i32()).toBe(0x04050607);
  });
});

describe('readBoxHeader', () => {
  const h = newBoxHeader();
  const sized = (size: number, type = 'free', total = size) => {
    const w = new BoxWriter();
    w.u32(size);
    w.u32(fourcc(type));
    w.zeros(Math.max(0, total - 8));
    return w.result().slice();
  };

  test('reads 32-bit, 64-bit and to-the-end sizes', () => {
    expect(readBoxHeader(sized(12), 0, 12, h)).toBe(BOX_OK);
    expect([fourccString(h.type), h.start, h.body, h.end]).toEqual(['free', 0, 8, 12]);
    const w = new BoxWriter();
    w.u32(1); w.u32(fourcc('mdat')); w.u64(20); w.u32(0);
    expect(readBoxHeader(w.result(), 0, 20, h)).toBe(BOX_OK);
    expect([h.body, h.end]).toEqual([16, 20]);
    expect(readBoxHeader(sized(0, 'mdat', 30), 0, 30, h)).toBe(BOX_OK);
    expect(h.end).toBe(30);
  });

  test('tells a cut box (partial) from an impossible one (invalid)', () => {
    expect(readBoxHeader(sized(12), 0, 7, h)).toBe(BOX_PARTIAL);
    expect(readBoxHeader(sized(12), 0, 11, h)).toBe(BOX_PARTIAL);
    expect(readBoxHeader(sized(7), 0, 8, h)).toBe(BOX_INVALID);
    const w = new BoxWriter();
    w.u32(1); w.u32(fourcc('mdat')); w.u32(0); w.u32(15);
    expect(readBoxHeader(w.result(), 0, 16, h)).toBe(BOX_INVALID);
    expect(readBoxHeader(w.result(), 0, 12, h)).toBe(BOX_PARTIAL);
    w.reset(); w.u32(1); w.u32(fourcc('mdat')); w.u32(0x200000); w.u32(0);
    expect(readBoxHeader(w.result(), 0, 16, h)).toBe(BOX_INVALID);
  });

  test('findBox finds a child and gives up on a broken sibling', () => {
    const two = new Uint8Array(Buffer.concat([sized(8, 'free'), sized(10, 'skip')]));
    expect(findBox(two, 0, two.length, fourcc('skip'), h)).toBe(true);
    expect(h.start).toBe(8);
    expect(findBox(two, 0, two.length, fourcc('moov'), h)).toBe(false);
    expect(findBox(two, 0, 17, fourcc('skip'), h)).toBe(false);
  });
});

// Containers we descend into when walking a box tree (§8 box hierarchy).
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl', 'dinf', 'mvex', 'udta', 'moof', 'traf'].map(fourcc));

/** Walk every box; the invariants a reader must keep on any input. Returns boxes seen. */
function walk(b: Uint8Array, start: number, end: number, depth: number): number {
  const h = newBoxHeader();
  let n = 0;
  let pos = start;
  while (pos < end) {
    const st = readBoxHeader(b, pos, end, h);
    if (st !== BOX_OK) break;
    expect(h.start).toBe(pos);
    expect(h.body).toBeGreaterThan(h.start);
    expect(h.end).toBeGreaterThanOrEqual(h.body);
    expect(h.end).toBeLessThanOrEqual(end);
    n++;
    if (depth < 8 && CONTAINERS.has(h.type)) n += walk(b, h.body, h.end, depth + 1);
    // read a full-box header and a few fields through the cursor: only ParseError may escape
    try {
      const c = new BoxCursor(b, h.body, h.end);
      c.u8(); c.u24(); c.u32(); c.u64(); c.take(c.u8());
    } catch (e) {
      expect(e).toBeInstanceOf(ParseError);
    }
    pos = h.end;
  }
  return n;
}

describe('box reader fuzz', () => {
  const video: VideoTrackInfo = { kind: 'video', codec: 'h264', timescale: 90000, width: 640, height: 360, fps: 25, config: new Uint8Array([1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]), codecString: 'avc1.64001f' };
  const audio: AudioTrackInfo = { kind: 'audio', codec: 'aac', timescale: 48000, sampleRate: 48000, channels: 2, config: new Uint8Array([0x11, 0x90]), codecString: 'mp4a.40.2' };
  const init = initSegment([video, audio], { streamId: 'cam', segmentNumber: 1, startUnixMs: 1 });

  test('walks a real init segment completely', () => {
    expect(walk(init, 0, init.length, 0)).toBeGreaterThan(30);
  });

  test('never reads outside its input for mutated and random buffers', () => {
    const rand = mulberry32(0xb0c5);
    for (let iter = 0; iter < 6000; iter++) {
      let b: Uint8Array;
      if (iter % 3 === 2) {
        b = new Uint8Array(Math.floor(rand() * 300));
        for (let i = 0; i < b.length; i++) b[i] = rand() < 0.5 ? Math.floor(rand() * 16) : Math.floor(rand() * 256);
      } else {
        b = init.slice();
        for (let k = 1 + Math.floor(rand() * 6); k > 0; k--) {
          const at = Math.floor(rand() * b.length);
          b[at] = iter % 3 === 0 ? b[at]! ^ (1 << Math.floor(rand() * 8)) : Math.floor(rand() * 256);
        }
        if (rand() < 0.3) b = b.subarray(0, Math.floor(rand() * b.length));
        if (rand() < 0.2) {
          const a = Math.floor(rand() * b.length);
          b = new Uint8Array(Buffer.concat([b.subarray(a), b.subarray(0, a)])); // splice: rotate
        }
      }
      // walk a view with a non-zero byteOffset too
      const framed = new Uint8Array(b.length + 3);
      framed.set(b, 3);
      const view = framed.subarray(3);
      expect(walk(view, 0, view.length, 0)).toBeLessThanOrEqual(view.length / 8);
    }
  });
});
