// The segmenter across a track change: the new segment's first keyframe lands in the new
// tracks' state, so the file starts at that picture with strictly increasing timestamps.
// (A stale state once gave the first fragment a wrong start and a repeated timestamp, which
// ffmpeg rejects: every RTMP publish whose audio header followed the video one hit it.)
import { expect, test } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SegmentClosed, SegmentOpened } from './control.ts';
import { PsRtpInput } from './input-ps.ts';
import { psRtpPackets } from '../media/testdata/ps-rtp-fixture.ts';
import { KIND_RTP } from './ring-format.ts';
import { Segmenter } from './segmenter.ts';
import { PortableWriter } from './writer.ts';


async function ffprobeVideoPts(file: string): Promise<number[]> {
  const p = Bun.spawn(['ffprobe', '-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts', '-of', 'csv=p=0', file], { stdout: 'pipe', stderr: 'pipe' });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(err).toBe('');
  return out.split('\n').filter((l) => l.trim() !== '').map(Number);
}

test('after a track change (H.264 + G.711 to H.265 + G.711) the new segment starts at its keyframe with increasing timestamps', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flux-seg-'));
  const events: (SegmentOpened | SegmentClosed)[] = [];
  const writer = new PortableWriter();
  const seg = new Segmenter({
    streamId: 'gb', basePath: dir, segmentDurationMs: 60_000, fragmentDurationMs: 1000, wallBaseMs: Date.UTC(2026, 0, 1),
    firstSegmentNumber: 1, writer, syncOnClose: false, emit: (e) => void events.push(e), onError: (e) => { throw e; },
  });
  const input = new PsRtpInput({ kind: 'ps-rtp', transport: 'tcp' }, {
    setTracks: (t) => seg.setTracks(t),
    unit: (t, au) => void seg.push(t, au),
    dropped: () => {},
  });
  const a = psRtpPackets('h264', 100, 90_000);
  const b = psRtpPackets('h265', 100 + a.length, 90_000 + 50 * 3600);
  [...a, ...b].forEach((p, i) => input.push(KIND_RTP, 0, 1000 + Math.floor(i / 8), p));
  seg.close();
  await writer.drain();
  const opened = events.filter((e): e is SegmentOpened => e.type === 'segment-open');
  expect(opened.map((e) => e.codecs[0])).toEqual(['h264', 'h265']);
  const second = join(dir, opened[1]!.path);
  const pts = await ffprobeVideoPts(second);
  expect(pts.length).toBe(49); // the last H.265 picture waits for a successor
  for (let i = 1; i < pts.length; i++) expect(pts[i]! - pts[i - 1]!).toBeGreaterThan(0);
  const closed = events.filter((e): e is SegmentClosed => e.type === 'segment-close');
  expect(closed[1]!.startMs).toBe(opened[1]!.startMs);
  expect(opened[1]!.startMs - opened[0]!.startMs).toBe(2000); // 50 pictures at 25 fps
});
