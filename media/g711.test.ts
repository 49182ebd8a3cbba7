import { describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALAW_TO_LINEAR, audioTrackInfoPcma, audioTrackInfoPcmu, g711Samples, ULAW_TO_LINEAR } from './g711.ts';

/** Decodes all 256 codes with ffmpeg's G.711 decoder, an independent implementation. */
function ffmpegDecode(format: 'alaw' | 'mulaw'): Int16Array {
  const dir = mkdtempSync(join(tmpdir(), 'g711-'));
  try {
    const input = join(dir, 'codes.raw');
    const output = join(dir, 'pcm.raw');
    writeFileSync(input, Uint8Array.from({ length: 256 }, (_, i) => i));
    const r = Bun.spawnSync(['ffmpeg', '-hide_banner', '-loglevel', 'error', '-f', format, '-ar', '8000', '-ac', '1', '-i', input, '-f', 's16le', output]);
    if (r.exitCode !== 0) throw new Error(r.stderr.toString());
    const bytes = readFileSync(output);
    return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('G.711 expansion tables', () => {
  test('A-law decodes every code as ffmpeg does', () => {
    expect([...ALAW_TO_LINEAR]).toEqual([...ffmpegDecode('alaw')]);
  });

  test('mu-law decodes every code as ffmpeg does', () => {
    expect([...ULAW_TO_LINEAR]).toEqual([...ffmpegDecode('mulaw')]);
  });

  test('known points of ITU-T G.711: silence codes and the extremes', () => {
    expect(ULAW_TO_LINEAR[0xff]).toBe(0);
    expect(ULAW_TO_LINEAR[0x7f]).toBe(0);
    expect(ULAW_TO_LINEAR[0x00]).toBe(-32124);
    expect(ULAW_TO_LINEAR[0x80]).toBe(32124);
    expect(ALAW_TO_LINEAR[0xd5]).toBe(8);
    expect(ALAW_TO_LINEAR[0x55]).toBe(-8);
    expect(ALAW_TO_LINEAR[0xaa]).toBe(32256);
    expect(ALAW_TO_LINEAR[0x2a]).toBe(-32256);
  });
});

describe('G.711 tracks', () => {
  test('default to 8000 Hz mono with the MSE codec strings and no config', () => {
    expect(audioTrackInfoPcma()).toEqual({ kind: 'audio', codec: 'pcma', timescale: 8000, sampleRate: 8000, channels: 1, config: new Uint8Array(0), codecString: 'alaw' });
    expect(audioTrackInfoPcmu(16000, 2)).toEqual({ kind: 'audio', codec: 'pcmu', timescale: 16000, sampleRate: 16000, channels: 2, config: new Uint8Array(0), codecString: 'ulaw' });
    expect(() => audioTrackInfoPcma(0)).toThrow(RangeError);
  });

  test('count one sample per byte per channel', () => {
    expect(g711Samples(160)).toBe(160);
    expect(g711Samples(320, 2)).toBe(160);
  });
});
