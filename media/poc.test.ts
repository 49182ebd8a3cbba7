import { describe, expect, test } from 'bun:test';
import { splitAnnexB } from './annexb.ts';
import { presentationOffsets, PocCounter } from './poc.ts';
import { ffmpegFixture, mulberry32, mutate, randInt, randomBytes } from './testdata/test-helpers.ts';
import { ParseError } from './types.ts';

describe('presentationOffsets', () => {
  test('no reordering gives zero offsets', () => {
    expect([...presentationOffsets([0, 2, 4, 6], [true, false, false, false])]).toEqual([0, 0, 0, 0]);
  });

  test('I P B B order is presented as I B B P, lifted by the reorder depth', () => {
    // Decode order I0 P6 B2 B4 (POC), presentation I0 B2 B4 P6: ranks 0 3 1 2, depth 1.
    expect([...presentationOffsets([0, 6, 2, 4], [true, false, false, false])]).toEqual([1, 3, 0, 0]);
  });

  test('each IDR period is ordered on its own', () => {
    expect([...presentationOffsets([0, 4, 2, 0, 4, 2], [true, false, false, true, false, false])]).toEqual([1, 2, 0, 1, 2, 0]);
  });

  test('an unknown POC anywhere means no reordering rather than a wrong order', () => {
    expect([...presentationOffsets([0, 4, -1, 2], [true, false, false, false])]).toEqual([0, 0, 0, 0]);
  });
});

describe('PocCounter on real streams', () => {
  test.each([
    ['h264', ['-c:v', 'libx264', '-bf', '3', '-g', '24', '-f', 'h264'], 'h264'],
    ['h265', ['-c:v', 'libx265', '-x265-params', 'bframes=3:keyint=24:log-level=error', '-f', 'hevc'], 'hevc'],
  ] as const)('%s: POCs are a permutation of presentation order within each GOP', (codec, enc, ext) => {
    const { bytes } = ffmpegFixture(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=24', '-t', '2', '-pix_fmt', 'yuv420p', ...enc], ext);
    const nalus: Uint8Array[] = [];
    splitAnnexB(bytes, nalus);
    const poc = new PocCounter(codec);
    const pocs: number[] = [];
    for (const n of nalus) {
      const t = codec === 'h264' ? n[0]! & 0x1f : (n[0]! >> 1) & 0x3f;
      if (codec === 'h264' ? t === 7 || t === 8 : t >= 32 && t <= 34) poc.parameterSet(n);
      else if (codec === 'h264' ? t >= 1 && t <= 5 : t <= 31) pocs.push(poc.picture(n));
    }
    expect(pocs.length).toBe(48);
    expect(pocs.every((p) => p >= 0)).toBe(true);
    // Not already in order (B-frames exist), and distinct within the clip.
    expect(pocs.some((p, i) => i > 0 && p < pocs[i - 1]!)).toBe(true);
  });
});

test('fuzz: random and mutated NAL units never throw from picture(), parameterSet() throws only ParseError', () => {
  const rnd = mulberry32(0x90c);
  const { bytes } = ffmpegFixture(['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10', '-t', '1', '-c:v', 'libx264', '-bf', '2', '-f', 'h264'], 'h264');
  const seeds: Uint8Array[] = [];
  splitAnnexB(bytes, seeds);
  for (let i = 0; i < 3000; i++) {
    const codec = i % 2 === 0 ? 'h264' : 'h265';
    const c = new PocCounter(codec);
    for (let k = 0; k < 6; k++) {
      const n = rnd() < 0.5 ? mutate(seeds[randInt(rnd, seeds.length)]!, rnd) : randomBytes(rnd, 1 + randInt(rnd, 64));
      if (n.length < 2) continue;
      try {
        c.parameterSet(n);
      } catch (e) {
        expect(e).toBeInstanceOf(ParseError);
      }
      const p = c.picture(n);
      expect(Number.isInteger(p)).toBe(true);
    }
  }
});
