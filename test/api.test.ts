// End to end: the HTTP API of a running engine with a token: auth, stream CRUD with
// validation, persistence across a restart, recordings listing, system info and metrics.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { decodeErrors, makeClip, sleep, startEngine, tempDir, waitFor, type EngineProcess } from './helpers.ts';

const TOKEN = 'test-token-7f3a';
const dir = tempDir('api');
let clip = '';
let engine: EngineProcess;
let base = '';
const auth = { Authorization: `Bearer ${TOKEN}` };

/** startEngine writes the [http] table (port, host); the token comes as its environment override. */
const config = () => `[video.storage]
base_path = "${dir}/data"
segment_duration = 2
[video.demo]
enabled = false
[[video.streams]]
stream_id = "cam1"
protocol = "file"
source_url = "file://${clip}"
`;

const start = () => startEngine(dir, config(), { FLUX_HTTP_TOKEN: TOKEN });

async function api(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const headers: Record<string, string> = { ...auth, ...(init.headers as Record<string, string> | undefined) };
  let body = init.body;
  if (init.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  return fetch(`${base}${path}`, { ...init, headers, body });
}

async function expectError(res: Response, status: number, field?: string): Promise<string> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const j = (await res.json()) as { error: string; field?: string };
  expect(typeof j.error).toBe('string');
  if (field !== undefined) expect(j.field).toBe(field);
  return j.error;
}

beforeAll(async () => {
  clip = await makeClip(join(dir, 'clips'), { codec: 'h264', width: 320, height: 240, fps: 25, seconds: 4 });
  engine = start();
  await engine.waitForLog(/FLUX video ready/);
  base = `http://127.0.0.1:${engine.port}`;
}, 30_000);

afterAll(async () => {
  await engine?.stop('SIGKILL');
});

describe('auth', () => {
  test('every /api route and /metrics answer 401 with a JSON error without the token; /healthz stays open', async () => {
    for (const path of ['/api/video/streams', '/api/video/streams/cam1', '/api/video/recordings/cam1', '/api/video/system', '/metrics', '/api/video/streams/cam1/live', '/api/video/nope']) {
      const res = await fetch(`${base}${path}`);
      await expectError(res, 401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    await expectError(await fetch(`${base}/api/video/streams`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } }), 401);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  test('a wrong or malformed token is refused', async () => {
    for (const h of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${btoa(`u:${TOKEN}`)}`, TOKEN, 'Bearer']) {
      await expectError(await fetch(`${base}/api/video/streams`, { headers: { Authorization: h } }), 401);
    }
    await expectError(await fetch(`${base}/api/video/streams?token=nope`), 401);
  });

  test('?token= opens GET media URLs but never a request that changes state', async () => {
    expect((await fetch(`${base}/api/video/streams?token=${TOKEN}`)).status).toBe(200);
    const res = await fetch(`${base}/api/video/streams/cam1?token=${TOKEN}`, { method: 'DELETE' });
    await expectError(res, 401);
  });

  test('a playlist fetched with ?token= passes the token on to its segment URLs, which ffmpeg can then read', async () => {
    await sleep(4_500); // two segments closed
    const url = `${base}/api/video/recordings/cam1/playlist.m3u8?start=${Date.now() - 60_000}&token=${TOKEN}`;
    const text = await (await fetch(url)).text();
    expect(text).toContain(`.mp4?token=${TOKEN}`);
    expect(await decodeErrors(url)).toBe('');
  });
});

describe('streams', () => {
  const body = (over: Record<string, unknown> = {}) => ({ stream_id: 'cam2', protocol: 'file', source_url: `file://${clip}`, ...over });

  test('POST validates like config.toml: 400 with the field at fault', async () => {
    const cases: Array<[unknown, string]> = [
      [body({ stream_id: '../etc' }), 'stream_id'],
      [body({ stream_id: 'a\u0001b' }), 'stream_id'],
      [body({ stream_id: '' }), 'stream_id'],
      [body({ protocol: 'ftp' }), 'protocol'],
      [body({ protocol: 'gb28181' }), 'protocol'], // disabled by default, as in a config file
      [body({ source_url: 'http://example.com/x.h264' }), 'source_url'],
      [{ stream_id: 'cam2', protocol: 'file' }, 'source_url'],
      [body({ record: 'yes' }), 'record'],
      [body({ colour: 'red' }), 'colour'],
      [[1, 2], ''],
    ];
    for (const [b, field] of cases) await expectError(await api('/api/video/streams', { method: 'POST', json: b }), 400, field);
    await expectError(await api('/api/video/streams', { method: 'POST', body: '{"stream_id":', headers: { 'Content-Type': 'application/json' } }), 400);
    expect((await api('/api/video/streams', { method: 'POST', body: '{}', headers: { 'Content-Type': 'text/plain' } })).status).toBe(415);
    expect((await api('/api/video/streams', { method: 'POST', body: JSON.stringify({ x: 'y'.repeat(20_000) }), headers: { 'Content-Type': 'application/json' } })).status).toBe(413);
  });

  test('POST creates a stream that starts recording; a duplicate id is 409', async () => {
    const res = await api('/api/video/streams', { method: 'POST', json: body() });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/api/video/streams/cam2');
    const j = (await res.json()) as { stream_id: string; origin: string; state: string };
    expect(j).toMatchObject({ stream_id: 'cam2', origin: 'api', state: 'live' });
    await expectError(await api('/api/video/streams', { method: 'POST', json: body() }), 409);
    expect(await expectError(await api('/api/video/streams', { method: 'POST', json: body({ stream_id: 'cam1' }) }), 409)).toMatch(/config\.toml/);
  });

  test('GET lists config and API streams with their origin; GET one adds recording totals', async () => {
    const l = (await (await api('/api/video/streams')).json()) as { streams: { stream_id: string; origin: string }[] };
    expect(l.streams.map((s) => [s.stream_id, s.origin]).sort()).toEqual([['cam1', 'config'], ['cam2', 'api']]);
    const one = (await (await api('/api/video/streams/cam1')).json()) as { state: string; recording: { segments: number }; counters: { frames: number } };
    expect(one.state).toBe('live');
    expect(one.recording.segments).toBeGreaterThan(0);
    expect(one.counters.frames).toBeGreaterThan(0);
  });

  test('unknown ids are 404 and malformed ids 400 on every route that takes one', async () => {
    await expectError(await api('/api/video/streams/nope'), 404);
    await expectError(await api('/api/video/streams/nope', { method: 'DELETE' }), 404);
    await expectError(await api('/api/video/recordings/nope'), 404);
    await expectError(await api('/api/video/recordings/nope/playlist.m3u8'), 404);
    await expectError(await api('/api/video/recordings/nope/playback?start=0'), 404);
    await expectError(await api('/api/video/recordings/nope/export?start=0&end=1'), 404);
    for (const bad of ['..', 'a%00b', 'a%0Ab', '.hidden', 'x'.repeat(65), '%2e%2e%2fetc']) {
      for (const path of [`/api/video/streams/${bad}`, `/api/video/recordings/${bad}`, `/api/video/recordings/${bad}/playlist.m3u8`, `/api/video/recordings/${bad}/segments/1.mp4`]) {
        const res = await api(path);
        expect([400, 404]).toContain(res.status); // 404 where the router never matched (e.g. '..' collapsed by the URL parser)
        if (res.status === 400) expect(((await res.json()) as { field: string }).field).toBe('stream_id');
      }
    }
    await expectError(await api('/api/video/streams/a%01b'), 400, 'stream_id');
  });

  test('a config.toml stream cannot be deleted over the API (409)', async () => {
    expect(await expectError(await api('/api/video/streams/cam1', { method: 'DELETE' }), 409)).toMatch(/config\.toml/);
  });
});

describe('recordings', () => {
  test('lists segments and gaps for a range given in ms or ISO 8601', async () => {
    const now = Date.now();
    const iso = (await (await api(`/api/video/recordings/cam1?start=${new Date(now - 60_000).toISOString()}&end=${new Date(now).toISOString()}`)).json()) as { segments: { state: string; url: string | null }[]; gaps: unknown[] };
    expect(iso.segments.length).toBeGreaterThanOrEqual(2);
    expect(iso.gaps).toEqual([]);
    expect(iso.segments.filter((s) => s.state === 'closed').every((s) => s.url?.startsWith('/api/video/recordings/cam1/segments/'))).toBe(true);
    const limited = (await (await api(`/api/video/recordings/cam1?start=0&limit=1`)).json()) as { segments: unknown[]; truncated: boolean; next_start: number };
    expect(limited.segments).toHaveLength(1);
    expect(limited.truncated).toBe(true);
    expect(limited.next_start).toBeGreaterThan(0);
  });

  test('refuses bad times, reversed ranges, oversized playlist ranges and bad limits with 400', async () => {
    await expectError(await api('/api/video/recordings/cam1?start=yesterday'), 400, 'start');
    await expectError(await api('/api/video/recordings/cam1?start=2000&end=1000'), 400, 'end');
    await expectError(await api('/api/video/recordings/cam1?end=99999999999999999'), 400, 'end');
    await expectError(await api('/api/video/recordings/cam1?limit=0'), 400, 'limit');
    await expectError(await api(`/api/video/recordings/cam1/playlist.m3u8?start=0&end=${Date.now()}`), 400, 'end');
  });
});

describe('not yet available', () => {
  test('GB28181 routes answer 503 while GB28181 is off; analyze answers 501', async () => {
    expect(await expectError(await api('/api/video/gb28181/devices'), 503)).toMatch(/GB28181 is not enabled/);
    await expectError(await api('/api/video/gb28181/devices/34020000001320000001/ptz', { method: 'POST', json: { command: 'up', speed: 100 } }), 503);
    await expectError(await api('/api/video/gb28181/devices/34020000001320000001/playback', { method: 'POST', json: {} }), 503);
    await expectError(await api('/api/video/analyze/cam1', { method: 'POST', json: { features: ['fire'] } }), 501);
    await expectError(await api('/api/video/analyze/nope', { method: 'POST', json: {} }), 404);
  });
});

describe('system and metrics', () => {
  test('/api/video/system reports writer, disk, process and workers', async () => {
    const j = (await (await api('/api/video/system')).json()) as Record<string, any>;
    expect(j.writer.kind).toMatch(/^(portable|native)$/);
    expect(typeof j.writer.native_status).toBe('string');
    expect(j.storage.disk_total_bytes).toBeGreaterThan(0);
    expect(j.storage.disk_free_bytes).toBeGreaterThan(0);
    expect(j.storage.recorded_bytes).toBeGreaterThan(0);
    expect(j.process.rss_bytes).toBeGreaterThan(0);
    expect(j.process.gc_requests).toBeGreaterThanOrEqual(0);
    expect(j.workers.length).toBeGreaterThan(0);
    expect(j.workers[0]).toHaveProperty('ring_fill');
    expect(j.streams.live).toBe(2);
  });

  /** Prometheus text -> "name{labels}" -> value. */
  const scrape = async () => {
    const res = await api('/metrics');
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const out = new Map<string, number>();
    for (const line of (await res.text()).split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (m) out.set(m[1]!, Number(m[2]));
    }
    return out;
  };

  test('/metrics exposes per-stream, worker, writer and process metrics, and the counters move', async () => {
    const a = await scrape();
    await sleep(1_500);
    const b = await scrape();
    for (const name of [
      'flux_stream_bytes_total', 'flux_stream_frames_total', 'flux_stream_fps', 'flux_stream_bitrate_bps', 'flux_stream_lost_packets_total',
      'flux_stream_dropped_frames_total', 'flux_stream_ring_drops_total', 'flux_stream_reconnects_total', 'flux_stream_viewers',
    ]) expect(b.has(`${name}{stream="cam1"}`)).toBe(true);
    expect(b.get('flux_stream_bytes_total{stream="cam1"}')!).toBeGreaterThan(a.get('flux_stream_bytes_total{stream="cam1"}')!);
    expect(b.get('flux_stream_fps{stream="cam1"}')!).toBeGreaterThan(15);
    expect(b.get('flux_stream_bitrate_bps{stream="cam1"}')!).toBeGreaterThan(0);
    expect(b.get('flux_worker_ring_fill_ratio{worker="0"}')).toBeGreaterThanOrEqual(0);
    expect(b.get('flux_write_queue_depth')).toBe(0);
    expect([...b.keys()].some((k) => /^flux_writer_info\{kind="(portable|native)"\}$/.test(k))).toBe(true);
    for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds']) expect(b.has(name)).toBe(true);
    expect(b.get('process_cpu_seconds_total')!).toBeGreaterThanOrEqual(a.get('process_cpu_seconds_total')!);
  });
});

describe('restart', () => {
  test('a stream created over the API comes back after a restart and records again; a deleted one does not', async () => {
    const before = (await (await api('/api/video/recordings/cam2?start=0')).json()) as { segments: { start_ms: number }[] };
    expect(before.segments.length).toBeGreaterThan(0);
    expect(await engine.stop('SIGTERM')).toBe(0);
    const restartedAt = Date.now();
    engine = start();
    await engine.waitForLog(/FLUX video ready/);
    base = `http://127.0.0.1:${engine.port}`;
    const s = (await (await api('/api/video/streams/cam2')).json()) as { origin: string; state: string };
    expect(s).toMatchObject({ origin: 'api', state: 'live' });
    await waitFor(async () => {
      const l = (await (await api('/api/video/recordings/cam2?start=0')).json()) as { segments: { start_ms: number; state: string }[] };
      return l.segments.some((x) => x.start_ms >= restartedAt && x.state === 'closed');
    }, 8_000, 'a segment of cam2 recorded after the restart');

    expect((await api('/api/video/streams/cam2', { method: 'DELETE' })).status).toBe(204);
    expect(await engine.stop('SIGTERM')).toBe(0);
    engine = start();
    await engine.waitForLog(/FLUX video ready/);
    base = `http://127.0.0.1:${engine.port}`;
    await expectError(await api('/api/video/streams/cam2'), 404);
    // Its recordings stay until retention removes them.
    expect((await api('/api/video/recordings/cam2?start=0')).status).toBe(200);
  }, 30_000);
});
