// The end-to-end recording scenario, shared by the runs with each writer: the engine records
// looping H.264 and H.265 files; ffprobe judges the segments.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { IndexDb, type SegmentRecord } from '../engine/index-db.ts';
import { decodeErrors, makeClip, probe, sleep, startEngine, tempDir, type EngineProcess } from './helpers.ts';

const FPS = 25;
const FRAME_MS = 1000 / FPS;

export interface RecordingRun {
  /** Label of the describe block, e.g. 'native writer'. */
  name: string;
  /** Extra TOML after [video.storage] (e.g. a [video.storage.performance] table). */
  toml?: string;
  env?: Record<string, string>;
  /** The start-up log line naming the writer must match this. */
  writerLog: RegExp;
}

/** The recording scenario and its checks, for one writer set-up. */
export function recordingScenario(run: RecordingRun): void {
describe(run.name, () => {
const dir = tempDir('rec');
let engine: EngineProcess;
let segments: Record<string, SegmentRecord[]> = {};
let listedOverHttp: { segments: unknown[] } | null = null;

beforeAll(async () => {
  // Odd sizes (not multiples of 16) exercise SPS cropping; 2 s GOP as cameras send.
  const h264 = await makeClip(join(dir, 'clips'), { codec: 'h264', width: 642, height: 362, fps: FPS, seconds: 6 });
  const h265 = await makeClip(join(dir, 'clips'), { codec: 'h265', width: 642, height: 362, fps: FPS, seconds: 6 });
  engine = startEngine(
    dir,
    `[video.storage]
base_path = "${dir}/data"
segment_duration = 2
[video.demo]
enabled = false
[[video.streams]]
stream_id = "cam264"
protocol = "file"
source_url = "file://${h264}"
[[video.streams]]
stream_id = "cam265"
protocol = "file"
source_url = "file://${h265}"
${run.toml ?? ''}`,
    run.env,
  );
  await engine.waitForLog(/FLUX video ready/);
  await sleep(7_500); // longer than the clip: the loop point is recorded too
  const res = await fetch(`http://127.0.0.1:${engine.port}/api/video/recordings/cam264?start=0&end=${Date.now() + 60_000}`);
  listedOverHttp = (await res.json()) as { segments: unknown[] };
  expect(await engine.stop('SIGTERM')).toBe(0);
  const index = IndexDb.open(join(dir, 'data/index'));
  for (const id of ['cam264', 'cam265']) segments[id] = index.querySegments(id, 0, Date.now() + 60_000);
  await index.close();
}, 60_000);

afterAll(async () => {
  await engine?.stop('SIGKILL');
});

test('the start-up log names the writer in use', () => {
  expect(engine.output()).toMatch(run.writerLog);
});

describe.each([
  ['cam264', 'h264'],
  ['cam265', 'hevc'],
])('recording %s', (id, codecName) => {
  test('closes every segment with a file that ffprobe reads as the source codec and size', async () => {
    const segs = segments[id]!;
    expect(segs.length).toBeGreaterThanOrEqual(3);
    for (const s of segs) {
      expect(s.state).toBe('closed');
      const file = join(dir, 'data', s.path);
      expect(statSync(file).size).toBe(s.bytes);
      const p = await probe(file);
      expect(p.codec).toBe(codecName);
      expect([p.width, p.height]).toEqual([642, 362]);
    }
  });

  test('decodes every segment without a single ffmpeg error', async () => {
    for (const s of segments[id]!) expect(await decodeErrors(join(dir, 'data', s.path))).toBe('');
  });

  test('rotates at the keyframe after segment_duration, each segment starting with a keyframe', async () => {
    const segs = segments[id]!;
    for (const s of segs.slice(0, -1)) expect(s.end_ms - s.start_ms).toBeCloseTo(2000, -1); // 2 s GOP = 2 s segments
    for (const s of segs) {
      const p = await probe(join(dir, 'data', s.path));
      expect(p.keyframeTimes[0]).toBeCloseTo(p.startTime, 3);
      expect(p.frames).toBe(Math.round((s.end_ms - s.start_ms) / FRAME_MS));
    }
  });

  test('covers the recorded interval with no gap larger than one frame, in the index and in media time', async () => {
    const segs = segments[id]!;
    const probes = await Promise.all(segs.map((s) => probe(join(dir, 'data', s.path))));
    for (let i = 1; i < segs.length; i++) {
      const gapMs = segs[i]!.start_ms - segs[i - 1]!.end_ms;
      expect(gapMs).toBeGreaterThanOrEqual(0);
      expect(gapMs).toBeLessThanOrEqual(FRAME_MS);
      const mediaGap = probes[i]!.startTime - (probes[i - 1]!.startTime + probes[i - 1]!.duration);
      expect(Math.abs(mediaGap)).toBeLessThanOrEqual(FRAME_MS / 1000);
    }
    for (let i = 0; i < segs.length; i++) {
      // The index's wall-clock duration and ffprobe's media duration agree within a frame.
      expect(Math.abs(probes[i]!.duration * 1000 - (segs[i]!.end_ms - segs[i]!.start_ms))).toBeLessThanOrEqual(FRAME_MS);
    }
    const total = segs.at(-1)!.end_ms - segs[0]!.start_ms;
    expect(total).toBeGreaterThan(6_000);
  });
});

test('the recordings API lists the segments the index holds', () => {
  expect(listedOverHttp?.segments.length).toBeGreaterThanOrEqual(3);
});

test('the segment files follow the layout <stream>/<YYYY-MM-DD>/<HH>/<start_unix>.mp4 in UTC', () => {
  for (const s of segments.cam264!) {
    const d = new Date(s.start_ms).toISOString();
    expect(s.path).toBe(`cam264/${d.slice(0, 10)}/${d.slice(11, 13)}/${Math.floor(s.start_ms / 1000)}.mp4`);
  }
});
});
}
