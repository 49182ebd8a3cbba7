// End to end: recordings played back over HTTP (HLS with byte ranges, the paced fMP4 stream,
// export) from a running engine, judged by ffmpeg/ffprobe; gaps and codec changes are reported.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scanFragments } from '../media/fmp4-scan.ts';
import { decodeErrors, makeClip, probe, run, sleep, startEngine, tempDir, waitFor, type EngineProcess } from './helpers.ts';

const GOP_S = 2;
const dir = tempDir('playback');
let engine: EngineProcess;
let base = '';
/** Start of cam's first segment (wall ms). */
let t0 = 0;
/** gapcam stopped around here and came back around gapEnd. */
let gapStart = 0, gapEnd = 0;

interface Listing {
  segments: { start_ms: number; end_ms: number; state: string; url: string | null }[];
  gaps: { start_ms: number; end_ms: number; duration_ms: number }[];
}
const list = async (id: string, q = 'start=0') => (await (await fetch(`${base}/api/video/recordings/${id}?${q}`)).json()) as Listing;

async function createStream(id: string, clip: string): Promise<void> {
  const res = await fetch(`${base}/api/video/streams`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ stream_id: id, protocol: 'file', source_url: `file://${clip}` }),
  });
  expect(res.status).toBe(201);
}

const deleteStream = async (id: string) => expect((await fetch(`${base}/api/video/streams/${id}`, { method: 'DELETE' })).status).toBe(204);

beforeAll(async () => {
  const clips = join(dir, 'clips');
  const a = await makeClip(clips, { codec: 'h264', width: 640, height: 360, fps: 25, seconds: 6 });
  const b = await makeClip(clips, { codec: 'h264', width: 320, height: 240, fps: 25, seconds: 6 });
  engine = startEngine(dir, `[video.storage]
base_path = "${dir}/data"
segment_duration = 2
[video.demo]
enabled = false
[[video.streams]]
stream_id = "cam"
protocol = "file"
source_url = "file://${a}"
`);
  await engine.waitForLog(/FLUX video ready/);
  base = `http://127.0.0.1:${engine.port}`;
  await createStream('gapcam', a);
  await createStream('changecam', a);
  await sleep(5_000);
  await Promise.all([deleteStream('gapcam'), deleteStream('changecam')]);
  gapStart = Date.now();
  await createStream('changecam', b); // new decoder set-up right away
  await sleep(3_000);
  gapEnd = Date.now();
  await createStream('gapcam', a);
  await sleep(5_500);
  t0 = (await list('cam')).segments[0]!.start_ms;
}, 60_000);

afterAll(async () => {
  await engine?.stop('SIGKILL');
});

describe('HLS', () => {
  test('ffmpeg decodes the playlist over HTTP without an error and its duration matches the range within a GOP', async () => {
    const start = t0 + 3_300, end = t0 + 9_300; // starts mid-GOP: the playlist backs up to the keyframe
    const url = `${base}/api/video/recordings/cam/playlist.m3u8?start=${start}&end=${end}`;
    expect(await decodeErrors(url)).toBe('');
    const p = await probe(url);
    expect(Math.abs(p.duration - (end - start) / 1000)).toBeLessThanOrEqual(GOP_S);
    expect(p.keyframeTimes[0]).toBeCloseTo(p.startTime, 2);
  });

  test('has one EXT-X-MAP per segment file and byte ranges that tile each file', async () => {
    const res = await fetch(`${base}/api/video/recordings/cam/playlist.m3u8?start=${t0}&end=${t0 + 6_000}`);
    expect(res.headers.get('content-type')).toBe('application/vnd.apple.mpegurl');
    const text = await res.text();
    expect(text.startsWith('#EXTM3U\n')).toBe(true);
    expect(text.trimEnd().endsWith('#EXT-X-ENDLIST')).toBe(true);
    const maps = [...text.matchAll(/#EXT-X-MAP:URI="([^"]+)",BYTERANGE="(\d+)@0"/g)];
    expect(maps.length).toBe(3);
    const ranges = [...text.matchAll(/#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)/g)].map((m) => [Number(m[1]), Number(m[2]), m[3]] as const);
    for (const [uri, initLen] of maps.map((m) => [m[1]!, Number(m[2])] as const)) {
      const mine = ranges.filter((r) => r[2] === uri);
      let at = initLen;
      for (const [len, off] of mine) { expect(off).toBe(at); at += len; }
    }
    expect(text).not.toContain('#EXT-X-DISCONTINUITY');
    expect(text).toContain('#EXT-X-PROGRAM-DATE-TIME:');
  });

  test('the I-frame playlist lists only fragments that start with a keyframe', async () => {
    const text = await (await fetch(`${base}/api/video/recordings/cam/iframes.m3u8?start=${t0}&end=${t0 + 8_000}`)).text();
    expect(text).toContain('#EXT-X-I-FRAMES-ONLY');
    const entries = [...text.matchAll(/#EXTINF:([\d.]+),\n#EXT-X-BYTERANGE:(\d+)@(\d+)\n(\S+)/g)];
    expect(entries.length).toBe(4); // 8 s of 2 s GOPs
    for (const m of entries) {
      expect(Number(m[1])).toBeCloseTo(GOP_S, 1);
      const bytes = new Uint8Array(await (await fetch(`${base}/api/video/recordings/cam/${m[4]}`, { headers: { Range: `bytes=${m[3]}-${Number(m[3]) + Number(m[2]) - 1}` } })).arrayBuffer());
      const init = new Uint8Array(await (await fetch(`${base}/api/video/recordings/cam/${m[4]}`, { headers: { Range: 'bytes=0-4095' } })).arrayBuffer());
      const scan = scanFragments(Buffer.concat([init.subarray(0, scanFragments(init).initEnd), bytes]));
      expect(scan.fragments.length).toBe(1);
      expect(scan.fragments[0]!.keyframe).toBe(true);
    }
  });

  test('the master playlist names the media and I-frame playlists', async () => {
    const text = await (await fetch(`${base}/api/video/recordings/cam/master.m3u8?start=${t0}&end=${t0 + 6_000}`)).text();
    expect(text).toMatch(/#EXT-X-STREAM-INF:BANDWIDTH=\d+,RESOLUTION=640x360\nplaylist\.m3u8\?start=/);
    expect(text).toMatch(/#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=\d+,RESOLUTION=640x360,URI="iframes\.m3u8\?start=/);
  });
});

describe('segment bytes', () => {
  test('answer a range with 206, an open-ended and a suffix range, the whole file with 200, and past the end with 416', async () => {
    const seg = (await list('cam')).segments[0]!;
    const url = `${base}${seg.url}`;
    const whole = await fetch(url);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    const all = new Uint8Array(await whole.arrayBuffer());
    const part = await fetch(url, { headers: { Range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${all.length}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(all.subarray(100, 200));
    const tail = await fetch(url, { headers: { Range: 'bytes=-50' } });
    expect(tail.status).toBe(206);
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(all.subarray(all.length - 50));
    const open = await fetch(url, { headers: { Range: `bytes=${all.length - 10}-` } });
    expect((await open.arrayBuffer()).byteLength).toBe(10);
    const past = await fetch(url, { headers: { Range: `bytes=${all.length}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${all.length}`);
  });

  test('unknown segment names and times are 404, never a file outside the index', async () => {
    expect((await fetch(`${base}/api/video/recordings/cam/segments/123.mp4`)).status).toBe(404);
    expect((await fetch(`${base}/api/video/recordings/cam/segments/..%2F..%2Fconfig.toml`)).status).toBe(404);
    expect((await fetch(`${base}/api/video/recordings/cam/segments/%2e%2e`)).status).toBe(404);
  });
});

/** Reads a response body, noting when each byte arrived; returns the fragments' media start (s) and arrival (ms). */
async function timedFragments(res: Response): Promise<{ bytes: Uint8Array; frags: { media: number; at: number; keyframe: boolean }[] }> {
  const chunks: Uint8Array[] = [];
  const arrivals: { end: number; at: number }[] = [];
  let n = 0;
  for await (const c of res.body!) {
    chunks.push(c);
    n += c.length;
    arrivals.push({ end: n, at: performance.now() });
  }
  const bytes = Buffer.concat(chunks);
  const scan = scanFragments(bytes);
  expect(scan.truncated).toBe(false);
  const ts = scan.tracks[0]!.timescale;
  return {
    bytes,
    frags: scan.fragments.map((f) => ({
      media: f.firstTrackBaseDts[0]! / ts,
      at: arrivals.find((a) => a.end >= f.offset + f.size)!.at,
      keyframe: f.keyframe,
    })),
  };
}

describe('paced playback', () => {
  test('at speed 4 delivers media time about 4 times as fast as wall time', async () => {
    const res = await fetch(`${base}/api/video/recordings/cam/playback?start=${t0}&end=${t0 + 12_000}&speed=4`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-flux-keyframes-only')).toBe('false');
    const { frags, bytes } = await timedFragments(res);
    const paced = frags.filter((f) => f.media >= 3); // the first ~2 s of media go out at once (the lead)
    const first = paced[0]!, last = paced.at(-1)!;
    const rate = (last.media - first.media) / ((last.at - first.at) / 1000);
    expect(last.media - first.media).toBeGreaterThan(7);
    expect(rate).toBeGreaterThan(3.2);
    expect(rate).toBeLessThan(5);
    const file = join(dir, 'speed4.mp4');
    writeFileSync(file, bytes);
    expect(await decodeErrors(file)).toBe('');
  }, 20_000);

  test('at speed 8 sends keyframes only, one per GOP', async () => {
    const res = await fetch(`${base}/api/video/recordings/cam/playback?start=${t0}&end=${t0 + 10_000}&speed=8`);
    expect(res.headers.get('x-flux-keyframes-only')).toBe('true');
    const { bytes } = await timedFragments(res);
    const file = join(dir, 'speed8.mp4');
    writeFileSync(file, bytes);
    const out = JSON.parse(await run(['ffprobe', '-v', 'error', '-show_entries', 'packet=pts_time,flags', '-of', 'json', file])) as { packets: { flags: string; pts_time: string }[] };
    expect(out.packets.length).toBe(5);
    for (const p of out.packets) expect(p.flags.startsWith('K')).toBe(true);
    expect(await decodeErrors(file)).toBe('');
  }, 20_000);

  test('refuses speeds outside 0.5..16 and a missing start with 400 naming the field', async () => {
    for (const [q, field] of [[`start=${t0}&speed=0.25`, 'speed'], [`start=${t0}&speed=17`, 'speed'], ['speed=2', 'start'], [`start=${t0}&speed=fast`, 'speed']] as const) {
      const res = await fetch(`${base}/api/video/recordings/cam/playback?${q}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { field: string }).field).toBe(field);
    }
  });
});

describe('export', () => {
  test('is one MP4 download that decodes silently, starts on a keyframe and lasts the range within one GOP', async () => {
    const start = t0 + 3_500, end = t0 + 9_500;
    const res = await fetch(`${base}/api/video/recordings/cam/export?start=${start}&end=${end}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="cam-\d{8}T\d{6}Z\.mp4"$/);
    const file = join(dir, 'export.mp4');
    writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
    expect(await decodeErrors(file)).toBe('');
    const p = await probe(file);
    expect(p.codec).toBe('h264');
    expect(Math.abs(p.duration - (end - start) / 1000)).toBeLessThanOrEqual(GOP_S);
    expect(p.keyframeTimes[0]).toBeCloseTo(p.startTime, 3);
    expect(Number(res.headers.get('x-flux-start-ms'))).toBeLessThanOrEqual(start);
    expect(Number(res.headers.get('x-flux-start-ms'))).toBeGreaterThan(start - GOP_S * 1000);
  });

  test('needs both start and end, and a range with nothing recorded is 404', async () => {
    expect((await fetch(`${base}/api/video/recordings/cam/export?start=${t0}`)).status).toBe(400);
    expect((await fetch(`${base}/api/video/recordings/cam/export?start=${t0 - 60_000}&end=${t0 - 30_000}`)).status).toBe(404);
  });
});

describe('gaps', () => {
  test('a stream stopped for a few seconds shows a gap in the recordings list', async () => {
    const l = await list('gapcam');
    expect(l.gaps.length).toBe(1);
    const g = l.gaps[0]!;
    expect(g.duration_ms).toBeGreaterThan(2_000);
    expect(g.start_ms).toBeLessThanOrEqual(gapStart + 100);
    expect(g.end_ms).toBeGreaterThanOrEqual(gapEnd - 100);
  });

  test('the playlist marks it with EXT-X-DISCONTINUITY and ffmpeg still decodes across it', async () => {
    const l = await list('gapcam');
    const url = `${base}/api/video/recordings/gapcam/playlist.m3u8?start=${l.segments[0]!.start_ms}&end=${l.segments.at(-1)!.end_ms}`;
    const res = await fetch(url);
    const text = await res.text();
    expect(text.match(/#EXT-X-DISCONTINUITY/g)?.length).toBe(1);
    expect(text).toMatch(/# gap: \S+ to \S+ not recorded/);
    expect(JSON.parse(res.headers.get('x-flux-gaps')!)).toHaveLength(1);
    expect(await decodeErrors(url)).toBe('');
  });

  test('the export keeps the gap as a jump in time and lists it in X-Flux-Gaps', async () => {
    const l = await list('gapcam');
    const g = l.gaps[0]!;
    const start = g.start_ms - 3_000, end = g.end_ms + 3_000;
    const res = await fetch(`${base}/api/video/recordings/gapcam/export?start=${start}&end=${end}`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.headers.get('x-flux-gaps')!)).toEqual([[g.start_ms, g.end_ms]]);
    const file = join(dir, 'export-gap.mp4');
    writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
    expect(await decodeErrors(file)).toBe('');
    const out = JSON.parse(await run(['ffprobe', '-v', 'error', '-show_entries', 'packet=dts_time', '-of', 'json', file])) as { packets: { dts_time: string }[] };
    const dts = out.packets.map((p) => Number(p.dts_time));
    const jumps = dts.slice(1).map((t, i) => t - dts[i]!).filter((d) => d > 0.5);
    expect(jumps).toHaveLength(1);
    expect(jumps[0]! * 1000).toBeCloseTo(g.duration_ms, -3);
    const p = await probe(file);
    expect(Math.abs(p.duration - (end - start) / 1000)).toBeLessThanOrEqual(GOP_S);
  });

  test('paced playback closes the gap up and reports it in X-Flux-Gaps', async () => {
    const g = (await list('gapcam')).gaps[0]!;
    const res = await fetch(`${base}/api/video/recordings/gapcam/playback?start=${g.start_ms - 2_000}&end=${g.end_ms + 2_000}&speed=16`);
    expect(JSON.parse(res.headers.get('x-flux-gaps')!)).toEqual([[g.start_ms, g.end_ms]]);
    const { frags } = await timedFragments(res);
    const media = frags.map((f) => f.media);
    for (let i = 1; i < media.length; i++) expect(media[i]! - media[i - 1]!).toBeLessThanOrEqual(GOP_S + 0.01);
  });
});

describe('codec changes', () => {
  test('an export across a change of decoder set-up is refused with 409 naming the time', async () => {
    const l = await waitFor(async () => { const x = await list('changecam'); return x.segments.length >= 4 ? x : null; }, 5_000, 'changecam segments');
    const res = await fetch(`${base}/api/video/recordings/changecam/export?start=${l.segments[0]!.start_ms}&end=${l.segments.at(-1)!.end_ms}`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toMatch(/codec parameters change at/);
  });

  test('playback across it stops at the change and says where (X-Flux-Cut-At-Ms)', async () => {
    const l = await list('changecam');
    const res = await fetch(`${base}/api/video/recordings/changecam/playback?start=${l.segments[0]!.start_ms}&end=${l.segments.at(-1)!.end_ms}&speed=16`);
    const cut = Number(res.headers.get('x-flux-cut-at-ms'));
    expect(cut).toBeGreaterThan(l.segments[0]!.start_ms);
    const file = join(dir, 'cut.mp4');
    writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
    expect(await decodeErrors(file)).toBe('');
    expect((await probe(file)).width).toBe(640);
  });

  test('the playlist marks the change with a discontinuity and a new EXT-X-MAP', async () => {
    const l = await list('changecam');
    const text = await (await fetch(`${base}/api/video/recordings/changecam/playlist.m3u8?start=${l.segments[0]!.start_ms}&end=${l.segments.at(-1)!.end_ms}`)).text();
    expect(text.match(/#EXT-X-DISCONTINUITY/g)?.length).toBe(1);
  });
});
