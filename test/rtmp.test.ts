// End to end over RTMP: ffmpeg publishes H.264 + AAC to the engine (run as users run it);
// ffprobe judges the recordings; refusals, re-publishing and 30 concurrent publishers.
// RTMP_SOAK_SECONDS sets the length of the 30-publisher run (default 60).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IndexDb } from '../engine/index-db.ts';
import { decodeErrors, run, sleep, startEngine, tempDir, waitFor, type EngineProcess } from './helpers.ts';

const FPS = 25;
const FRAME_MS = 1000 / FPS;
const SOAK_SECONDS = Number(process.env.RTMP_SOAK_SECONDS ?? 60);
const SOAK_STREAMS = 30;

/** ffmpeg publishing `seconds` of moving H.264 (2 s GOP, no B-frames) and a 48 kHz AAC tone. */
function publish(url: string, seconds: number, size = '640x360', extra: string[] = []) {
  const p = Bun.spawn([
    'ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${FPS}`, '-f', 'lavfi', '-i', 'sine=sample_rate=48000',
    '-t', String(seconds), '-c:v', 'libx264', '-g', String(2 * FPS), '-bf', '0', ...extra, '-c:a', 'aac', '-f', 'flv', url,
  ], { stdout: 'ignore', stderr: 'pipe' });
  const kill = setTimeout(() => p.kill(), (seconds + 30) * 1000);
  return (async () => {
    const stderr = await new Response(p.stderr).text();
    const code = await p.exited;
    clearTimeout(kill);
    return { code, stderr };
  })();
}

function freePort(): number {
  const l = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

interface AvProbe { video: string; audio: string; vStart: number; aStart: number; frames: number }

/** ffprobe's view of one recorded segment: both codecs, their start times and the video packet count. */
async function probeAv(file: string): Promise<AvProbe> {
  const out = await run(['ffprobe', '-v', 'error', '-count_packets', '-show_entries',
    'stream=codec_type,codec_name,start_time,nb_read_packets', '-of', 'json', file]);
  const streams = (JSON.parse(out) as { streams: { codec_type: string; codec_name: string; start_time: string; nb_read_packets: string }[] }).streams;
  const v = streams.find((s) => s.codec_type === 'video');
  const a = streams.find((s) => s.codec_type === 'audio');
  return {
    video: v?.codec_name ?? '', audio: a?.codec_name ?? '',
    vStart: Number(v?.start_time), aStart: Number(a?.start_time), frames: Number(v?.nb_read_packets ?? 0),
  };
}

/** Runs `fn` over `items` with at most `n` at a time (ffprobe x 30 on a 2-core box). */
async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

const dir = tempDir('rtmp');
const rtmpPort = freePort();
let engine: EngineProcess;
const api = async (path: string) => (await fetch(`http://127.0.0.1:${engine.port}${path}`)).json() as Promise<any>;
const streamState = async (id: string): Promise<string | undefined> => (await api(`/api/video/streams/${id}`)).state;
/** A segment as GET /api/video/recordings/:id lists it, plus its file by the documented layout. */
interface Seg { start_ms: number; end_ms: number; bytes: number; state: string; file: string }
/** <base_path>/<stream>/<YYYY-MM-DD>/<HH>/<start_unix>.mp4 in UTC (the index is checked against it at the end). */
const layoutPath = (id: string, startMs: number) => {
  const d = new Date(startMs).toISOString();
  return `${id}/${d.slice(0, 10)}/${d.slice(11, 13)}/${Math.floor(startMs / 1000)}.mp4`;
};
const listSegments = async (id: string): Promise<Seg[]> =>
  ((await api(`/api/video/recordings/${id}?start=0&end=${Date.now() + 60_000}`)).segments ?? []).map(
    (s: Omit<Seg, 'file'>) => ({ ...s, file: join(dir, 'data', layoutPath(id, s.start_ms)) }),
  );
const url = (path: string) => `rtmp://127.0.0.1:${rtmpPort}/live/${path}`;

beforeAll(async () => {
  engine = startEngine(dir, `[rtmp]
port = ${rtmpPort}
host = "127.0.0.1"
allow_any = true
[video.storage]
base_path = "${dir}/data"
segment_duration = 2
[video.demo]
enabled = false
[[video.streams]]
stream_id = "pub1"
protocol = "rtmp"
publish_key = "SECRET"
`);
  await engine.waitForLog(/FLUX video ready/);
}, 30_000);

afterAll(async () => {
  await engine?.stop('SIGKILL');
});

/** Segments of one publish, judged once the publish ended: all closed, checks below. */
async function closedSegmentsSince(id: string, sinceMs: number): Promise<Seg[]> {
  return await waitFor(async () => {
    const segs = (await listSegments(id)).filter((s) => s.start_ms >= sinceMs);
    return segs.length > 0 && segs.every((s) => s.state === 'closed') ? segs : null;
  }, 15_000, `closed segments of ${id}`);
}

/** The checks every publish's recording must pass; returns the recorded video frames. */
async function checkPublish(segs: Seg[]): Promise<number> {
  const probes = await Promise.all(segs.map((s) => probeAv(s.file)));
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!, p = probes[i]!;
    expect(statSync(s.file).size).toBe(s.bytes);
    expect([p.video, p.audio]).toEqual(['h264', 'aac']);
    expect(Math.abs(p.vStart - p.aStart)).toBeLessThan(0.1); // A/V in sync
    expect(await decodeErrors(s.file)).toBe('');
    if (i === 0) continue;
    const gapMs = s.start_ms - segs[i - 1]!.end_ms; // the index: no hole, no overlap
    expect(gapMs).toBeGreaterThanOrEqual(0);
    expect(gapMs).toBeLessThanOrEqual(FRAME_MS);
    const prev = probes[i - 1]!;
    const mediaGap = p.vStart - (prev.vStart + prev.frames / FPS); // media time across files
    expect(Math.abs(mediaGap)).toBeLessThanOrEqual(1 / FPS + 1e-6);
  }
  return probes.reduce((n, p) => n + p.frames, 0);
}

describe('ffmpeg publishing to a configured stream', () => {
  let firstStart = 0;
  let firstSegs: Seg[] = [];

  test('the stream waits for its publisher', async () => {
    expect(await streamState('pub1')).toBe('connecting');
  });

  test('a wrong key fails ffmpeg with the server error, and nothing is recorded', async () => {
    const r = await publish(url('pub1?key=WRONG'), 2);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Server error: .*key/i);
    expect(await streamState('pub1')).toBe('connecting');
    expect(await listSegments('pub1')).toEqual([]);
  }, 30_000);

  test('6 s of H.264 + AAC: live while publishing, every segment closed after ffmpeg ends', async () => {
    firstStart = Date.now();
    const done = publish(url('pub1?key=SECRET'), 6);
    await waitFor(async () => (await streamState('pub1')) === 'live', 5_000, 'pub1 live');
    const r = await done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    firstSegs = await closedSegmentsSince('pub1', firstStart);
    expect(await waitFor(async () => (await streamState('pub1')) === 'connecting', 5_000, 'pub1 back to connecting')).toBe(true);
    expect(firstSegs.length).toBeGreaterThanOrEqual(3); // 6 s in 2 s segments
  }, 30_000);

  test('the recording passes ffprobe: h264 + aac, A/V in sync, silent decode, no gap, all 150 frames', async () => {
    expect(await checkPublish(firstSegs)).toBe(6 * FPS);
  }, 30_000);

  test('a second publish resumes in a new segment', async () => {
    const secondStart = Date.now();
    const r = await publish(url('pub1?key=SECRET'), 3);
    expect(r.code).toBe(0);
    const segs = await closedSegmentsSince('pub1', secondStart);
    expect(segs[0]!.start_ms).toBeGreaterThan(firstSegs.at(-1)!.end_ms);
    expect(await checkPublish(segs)).toBe(3 * FPS);
  }, 30_000);
});

test(`${SOAK_STREAMS} concurrent publishers for ${SOAK_SECONDS} s record with zero lost frames`, async () => {
  const ids = Array.from({ length: SOAK_STREAMS }, (_, i) => `soak${i}`);
  const t0 = Date.now();
  const runs = Promise.all(ids.map((id) => publish(url(id), SOAK_SECONDS, '320x240', ['-preset', 'ultrafast'])));
  // Sample the counters while the streams are live (an ended publish may drop its counters).
  const worst = new Map<string, { dropped: number; ringDrops: number; live: boolean }>();
  let finished = false;
  void runs.then(() => (finished = true));
  while (!finished) {
    for (const s of (await api('/api/video/streams')).streams as { stream_id: string; state: string; counters: { dropped_frames: number; ring_drops: number } | null }[]) {
      if (!s.stream_id.startsWith('soak')) continue;
      const w = worst.get(s.stream_id) ?? { dropped: 0, ringDrops: 0, live: false };
      w.live ||= s.state === 'live';
      w.dropped = Math.max(w.dropped, s.counters?.dropped_frames ?? 0);
      w.ringDrops = Math.max(w.ringDrops, s.counters?.ring_drops ?? 0);
      worst.set(s.stream_id, w);
    }
    await sleep(500);
  }
  const results = await runs;
  const wallMs = Date.now() - t0;
  for (const r of results) expect(r).toEqual({ code: 0, stderr: '' });
  for (const id of ids) expect({ id, ...worst.get(id) }).toEqual({ id, dropped: 0, ringDrops: 0, live: true });
  const segs = await Promise.all(ids.map((id) => closedSegmentsSince(id, t0)));
  // One ffprobe per stream over all its segments (the concat demuxer), not one per file.
  const frames = await pool(ids.map((id, i) => [id, segs[i]!] as const), 2, async ([id, list]) => {
    const listFile = join(dir, `${id}.concat`);
    writeFileSync(listFile, list.map((s) => `file '${s.file}'\n`).join(''));
    const out = await run(['ffprobe', '-v', 'error', '-f', 'concat', '-safe', '0', '-i', listFile, '-count_packets',
      '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0']);
    return { id, frames: Number(out.trim()) };
  });
  for (const f of frames) expect(f).toEqual({ id: f.id, frames: SOAK_SECONDS * FPS });
  console.log(`rtmp soak: ${SOAK_STREAMS} publishers x ${SOAK_SECONDS} s in ${wallMs} ms, ${segs.flat().length} segments counted in ${Date.now() - t0 - wallMs} ms`);
}, (SOAK_SECONDS + 120) * 1000);

test('H.265 over RTMP: this ffmpeg (5.1) cannot publish it, so only the refusal is checked', async () => {
  // FFmpeg 6.1+ writes Enhanced RTMP (hvc1); 5.1 refuses HEVC in FLV before connecting. The
  // session and media/flv.ts parse hvc1 (their unit tests); an end-to-end H.265 publish needs a newer ffmpeg.
  const p = Bun.spawn(['ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25',
    '-t', '1', '-c:v', 'libx265', '-x265-params', 'log-level=error', '-f', 'flv', url('pub1?key=SECRET')], { stderr: 'pipe' });
  const stderr = await new Response(p.stderr).text();
  if ((await p.exited) !== 0) {
    expect(stderr).toContain('not compatible with flv');
    return;
  }
  const segs = await closedSegmentsSince('pub1', Date.now() - 5_000);
  expect((await probeAv(segs[0]!.file)).video).toBe('hevc');
}, 30_000);

test('the index after a clean stop holds every segment closed', async () => {
  expect(await engine.stop('SIGTERM')).toBe(0);
  const index = IndexDb.open(join(dir, 'data/index'));
  try {
    for (const id of ['pub1', 'soak0']) {
      const segs = index.querySegments(id, 0, Date.now() + 60_000);
      expect(segs.length).toBeGreaterThan(0);
      for (const s of segs) expect([s.state, s.path]).toEqual(['closed', layoutPath(id, s.start_ms)]);
      // Numbers keep counting across publishes: a new publish is a new segment, never a reopened one.
      expect(segs.map((s) => s.segment_number)).toEqual(segs.map((_, i) => i + 1));
    }
  } finally {
    await index.close();
  }
}, 30_000);
