// A recorded keyframe read back from its segment file (what snapshots and the preview still
// use for a stream that is being recorded): the worker notes where the picture lies, the
// main thread reads it, falling back to the keyframe before when the latest is not on disk.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { splitAnnexB, toAnnexB } from '../media/annexb.ts';
import { isKeyframe } from '../media/h264.ts';
import { parseAvcC } from '../media/h264-config.ts';
import { decodeErrors, tempDir, videoClip, type Clip } from '../media/testdata/fmp4-clips.ts';
import type { SegmentClosed, SegmentOpened } from '../workers/control.ts';
import { Segmenter } from '../workers/segmenter.ts';
import { PortableWriter } from '../workers/writer.ts';
import { readRecordedKeyframe } from './keyframe-file.ts';

let tmp: ReturnType<typeof tempDir>;
let h264: Clip;
beforeAll(() => {
  tmp = tempDir();
  h264 = videoClip(tmp.dir, 'h264');
});
afterAll(() => tmp.cleanup());

/** Records the clip and notes where each keyframe landed. */
async function record(): Promise<{ at: { path: string; offset: number; size: number }[]; params: Uint8Array }> {
  const writer = new PortableWriter();
  const events: (SegmentOpened | SegmentClosed)[] = [];
  const seg = new Segmenter({
    streamId: 'cam', basePath: tmp.dir, segmentDurationMs: 60_000, fragmentDurationMs: 1000, wallBaseMs: Date.UTC(2026, 0, 1),
    firstSegmentNumber: 1, writer, syncOnClose: false, emit: (e) => void events.push(e), onError: (e) => { throw e; },
  });
  seg.setTracks([h264.track]);
  const at: { path: string; offset: number; size: number }[] = [];
  for (const au of h264.aus) {
    expect(seg.push(0, au)).toBe(true);
    if (au.keyframe) at.push(seg.lastSampleAt()!);
  }
  seg.close();
  await writer.drain();
  const c = parseAvcC(h264.track.config);
  return { at, params: toAnnexB([...c.sps, ...c.pps]) };
}

describe('readRecordedKeyframe', () => {
  test('reads the picture where the recorder put it: Annex-B with the parameter sets, a keyframe ffmpeg decodes', async () => {
    const { at, params } = await record();
    expect(at.length).toBe(2); // the clip's two GOPs
    const k = await readRecordedKeyframe({ codec: 'h264', width: 320, height: 240, wallMs: 5, parameterSets: params, at: [{ ...at[1]!, wallMs: 7 }] });
    expect(k).not.toBeNull();
    expect(k!.wallMs).toBe(7);
    const nalus: Uint8Array[] = [];
    splitAnnexB(k!.data, nalus);
    expect(isKeyframe(nalus)).toBe(true);
    const want = h264.aus.filter((a) => a.keyframe)[1]!;
    expect(nalus.slice(nalus.length - want.nalus.length)).toEqual(want.nalus);
    const file = join(tmp.dir, 'key.h264');
    writeFileSync(file, k!.data);
    expect(decodeErrors(file)).toBe('');
  });

  test('takes the keyframe before when the latest is not on disk yet (zeros), and null when nothing is readable', async () => {
    const { at, params } = await record();
    const base = { codec: 'h264' as const, width: 320, height: 240, wallMs: 0, parameterSets: params };
    const unwritten = { path: at[1]!.path, offset: 1 << 30, size: at[1]!.size, wallMs: 2 }; // past the end
    const zeros = join(tmp.dir, 'zeros.bin');
    writeFileSync(zeros, new Uint8Array(1 << 16));
    const k = await readRecordedKeyframe({ ...base, at: [{ path: zeros, offset: 0, size: 4096, wallMs: 3 }, unwritten, { ...at[0]!, wallMs: 1 }] });
    expect(k?.wallMs).toBe(1);
    const notKey = { ...at[0]!, offset: at[0]!.offset + 4, wallMs: 4 }; // inside the picture: no keyframe there
    expect(await readRecordedKeyframe({ ...base, at: [notKey, { path: join(tmp.dir, 'gone'), offset: 0, size: 10, wallMs: 5 }] })).toBeNull();
    expect(await readRecordedKeyframe({ ...base, at: [{ ...at[0]!, size: 0, wallMs: 6 }] })).toBeNull();
  });
});
