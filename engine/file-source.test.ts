// The looping file source: clip loading and its errors, real-time pacing, timestamps that
// continue across loops, and a full ring dropping frames until the next keyframe.
import { describe, expect, test } from 'bun:test';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ANNEXB_CTS_BYTES, FLAG_KEYFRAME, KIND_ANNEXB_AU } from '../workers/ring-format.ts';
import { FileSource, loadClip, SourceError } from './file-source.ts';
import type { StreamHandle } from './media-pool.ts';
import { makeClip, tempDir } from '../test/helpers.ts';

const dir = tempDir('filesrc');

/** Records what the source writes; `full` makes the ring refuse (as a full ring does). */
function sink() {
  const got: { flags: number; ts: number; bytes: number }[] = [];
  const s = {
    full: false,
    got,
    writeParts(kind: number, flags: number, ts: number, parts: readonly Uint8Array[]): boolean {
      expect(kind).toBe(KIND_ANNEXB_AU);
      expect(parts[0]!.length).toBe(ANNEXB_CTS_BYTES);
      if (s.full) return false;
      got.push({ flags, ts, bytes: parts[1]!.length });
      return true;
    },
  };
  return s;
}

describe('loadClip', () => {
  test('reads codec, size and frame rate from the stream itself', async () => {
    const h264 = await makeClip(dir, { codec: 'h264', fps: 30, seconds: 2, gop: 30 });
    const c = loadClip(`file://${h264}`);
    expect([c.codec, c.track.width, c.track.height, c.fps]).toEqual(['h264', 640, 360, 30]);
    expect(c.aus.length).toBe(60);
    expect(c.aus.filter((a) => a.keyframe).length).toBe(2);
    const h265 = await makeClip(dir, { codec: 'h265', fps: 25, seconds: 2 });
    const e = loadClip(`file://${h265}`);
    expect([e.codec, e.track.width, e.track.height, e.aus.length]).toEqual(['h265', 640, 360, 50]);
  });

  test('sniffs the codec when the file name does not tell, and honours ?fps= and ?codec=', async () => {
    const h265 = await makeClip(dir, { codec: 'h265', fps: 25, seconds: 2 });
    const odd = join(dir, 'camera.bin');
    copyFileSync(h265, odd);
    expect(loadClip(`file://${odd}`).codec).toBe('h265');
    expect(loadClip(`file://${odd}?fps=12.5`).fps).toBe(12.5);
    expect(loadClip(`file://${odd}?codec=h265`).codec).toBe('h265');
  });

  test.each([
    ['a missing file', () => 'file:///nonexistent/clip.h264', /cannot read \/nonexistent\/clip\.h264/],
    ['a non-file URL', () => 'rtsp://cam/x', /needs a file:\/\/ URL/],
    ['a bad fps', () => `file://${join(dir, 'clip-h264-640x360-30-2s-g30-b0.h264')}?fps=0`, /fps=0 must be a number from 1 to 240/],
    ['a file without pictures', () => { const f = join(dir, 'noise.h264'); writeFileSync(f, new Uint8Array(4096).fill(7)); return `file://${f}`; }, /no keyframe/],
  ])('%s gives a SourceError saying what is wrong', async (_n, url, re) => {
    await makeClip(dir, { codec: 'h264', fps: 30, seconds: 2, gop: 30 });
    let err: unknown;
    try {
      loadClip(url());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(re);
  });
});

describe('FileSource', () => {
  test('paces frames in real time with 90 kHz timestamps that continue across loops', async () => {
    const clip = loadClip(`file://${await makeClip(dir, { codec: 'h264', fps: 30, seconds: 2, gop: 30 })}`);
    const s = sink();
    const src = new FileSource(clip, s as unknown as StreamHandle, 1_000_000);
    src.tick(1_000_000);
    expect(s.got.length).toBe(1);
    src.tick(1_000_000 + 1000);
    expect(s.got.length).toBe(31);
    for (let t = 1100; t <= 4500; t += 100) src.tick(1_000_000 + t); // past two loops of the 2 s clip
    expect(s.got.length).toBe(136);
    s.got.forEach((f, i) => expect(f.ts).toBe(i * 3000));
    // Keyframes where the clip has them, in every loop.
    const keys = s.got.flatMap((f, i) => ((f.flags & FLAG_KEYFRAME) !== 0 ? [i] : []));
    expect(keys).toEqual([0, 30, 60, 90, 120]);
  });

  test('a full ring drops frames and the stream resumes at the next keyframe', async () => {
    const clip = loadClip(`file://${await makeClip(dir, { codec: 'h264', fps: 30, seconds: 2, gop: 30 })}`);
    const s = sink();
    const src = new FileSource(clip, s as unknown as StreamHandle, 0);
    src.tick(100); // frames 0..3
    s.full = true;
    src.tick(200); // frame 4 refused; 5 and 6 are not keyframes, so not even tried
    s.full = false;
    src.tick(1500); // 7..29 skipped (not keyframes), 30 (keyframe) .. 45 sent
    expect(s.got.map((f) => f.ts / 3000)).toEqual([0, 1, 2, 3, ...Array.from({ length: 16 }, (_, i) => 30 + i)]);
    expect(src.skippedFrames).toBe(25);
  });

  test('after an event-loop stall it skips ahead instead of bursting, resuming at a keyframe', async () => {
    const clip = loadClip(`file://${await makeClip(dir, { codec: 'h264', fps: 30, seconds: 2, gop: 30 })}`);
    const s = sink();
    const src = new FileSource(clip, s as unknown as StreamHandle, 0);
    src.tick(0);
    src.tick(10_000); // 10 s late: 300 frames due
    expect(s.got.length).toBeLessThanOrEqual(51);
    expect(s.got[1]!.flags & FLAG_KEYFRAME).toBe(FLAG_KEYFRAME);
    expect(src.skippedFrames).toBeGreaterThan(200);
  });
});

describe('clips with B-frames', () => {
  test.each(['h264', 'h265'] as const)('%s: presentation offsets follow the picture order count', async (codec) => {
    const clip = loadClip(`file://${await makeClip(dir, { codec, fps: 25, seconds: 2, gop: 25, bframes: 3 })}`);
    expect(clip.reordered).toBe(true);
    // Presentation times (dts + cts) are a permutation of the frame grid: every slot once.
    const frame = 90_000 / 25;
    const pts = clip.parts.map(([cts], i) => i * frame + new DataView(cts.buffer, cts.byteOffset, 4).getInt32(0, true));
    const sorted = [...pts].sort((a, b) => a - b);
    const lift = sorted[0]!;
    expect(sorted).toEqual(pts.map((_, i) => lift + i * frame));
    pts.forEach((p, i) => expect(p).toBeGreaterThanOrEqual(i * frame)); // never shown before decoded
  });

  test('a clip without B-frames has zero offsets', async () => {
    const clip = loadClip(`file://${await makeClip(dir, { codec: 'h264', fps: 25, seconds: 2 })}`);
    expect(clip.reordered).toBe(false);
  });
});
