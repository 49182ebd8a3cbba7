// WebSocket live preview against the running engine: init then fragments within a second,
// decodable output, and a viewer that stops reading is cut back without harming others or
// growing the engine's memory.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { decodeErrors, makeClip, probe, sleep, startEngine, tempDir, type EngineProcess } from './helpers.ts';

const dir = tempDir('live');
let engine: EngineProcess;

beforeAll(async () => {
  const small = await makeClip(join(dir, 'clips'), { codec: 'h264', fps: 25, seconds: 4 });
  const big = await makeClip(join(dir, 'clips'), { codec: 'h264', width: 1920, height: 1080, fps: 25, seconds: 4 });
  engine = startEngine(
    dir,
    `[video.storage]\nbase_path = "${dir}/data"\n[video.demo]\nenabled = false\n` +
      `[[video.streams]]\nstream_id = "cam"\nprotocol = "file"\nsource_url = "file://${small}"\n` +
      `[[video.streams]]\nstream_id = "big"\nprotocol = "file"\nsource_url = "file://${big}"\n`,
  );
  await engine.waitForLog(/FLUX video ready/);
  await sleep(2_500); // past the first keyframe, so there is one to show at once
}, 60_000);
afterAll(async () => {
  await engine?.stop('SIGKILL');
});

interface Received { hello: { codecs: string[]; mime: string } | null; init: Uint8Array | null; fragments: Uint8Array[]; times: number[] }

function watch(id: string, ms: number): Promise<Received & { openedAt: number }> {
  return new Promise((resolve, reject) => {
    const r: Received & { openedAt: number } = { hello: null, init: null, fragments: [], times: [], openedAt: 0 };
    const ws = new WebSocket(`ws://127.0.0.1:${engine.port}/api/video/streams/${id}/live`);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      r.openedAt = performance.now();
      setTimeout(() => ws.close(), ms);
    };
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') r.hello = JSON.parse(e.data);
      else {
        const b = new Uint8Array(e.data as ArrayBuffer);
        if (r.init === null) r.init = b;
        else r.fragments.push(b);
        r.times.push(performance.now() - r.openedAt);
      }
    };
    ws.onerror = () => reject(new Error('websocket error'));
    ws.onclose = () => resolve(r);
  });
}

const boxType = (b: Uint8Array) => String.fromCharCode(b[4]!, b[5]!, b[6]!, b[7]!);

test('a viewer gets the codec, the init segment and fragments within a second, then one fragment per frame', async () => {
  const r = await watch('cam', 3_000);
  expect(r.hello?.codecs[0]).toMatch(/^avc1\.[0-9a-f]{6}$/);
  expect(r.hello?.mime).toContain('video/mp4; codecs="avc1.');
  expect(boxType(r.init!)).toBe('ftyp');
  expect(r.times[0]!).toBeLessThan(1000); // init
  expect(r.times[1]!).toBeLessThan(1000); // first fragment: the retained keyframe
  expect(r.fragments.every((f) => boxType(f) === 'moof')).toBe(true);
  // 3 s at 25 fps; the frames between the retained keyframe and the next are not sent.
  expect(r.fragments.length).toBeGreaterThan(25);
  expect(r.fragments.length).toBeLessThanOrEqual(76);
  const file = join(dir, 'live.mp4');
  writeFileSync(file, Buffer.concat([r.init!, ...r.fragments]));
  expect(await decodeErrors(file)).toBe('');
  const p = await probe(file);
  expect([p.codec, p.width, p.height]).toEqual(['h264', 640, 360]);
  expect(p.keyframeTimes.length).toBeGreaterThanOrEqual(2);
}, 20_000);

test('unknown streams are 404 and plain GETs are told to upgrade', async () => {
  expect((await fetch(`http://127.0.0.1:${engine.port}/api/video/streams/nope/live`)).status).toBe(404);
  expect((await fetch(`http://127.0.0.1:${engine.port}/api/video/streams/cam/live`)).status).toBe(426);
});

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

test('a viewer that stops reading is cut back to keyframes; others keep real time and memory stays bounded', async () => {
  // A raw WebSocket handshake, then the socket is paused: the kernel buffers fill and the
  // engine's queue for this viewer grows until the hub starts skipping.
  const stalled: Socket = connect(engine.port, '127.0.0.1');
  await new Promise<void>((res) => stalled.once('connect', () => res()));
  stalled.write(
    'GET /api/video/streams/big/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await new Promise<void>((res) => stalled.once('data', () => res()));
  stalled.pause();
  const before = rssKb(engine.proc.pid);
  const healthy = await watch('big', 8_000);
  const after = rssKb(engine.proc.pid);
  stalled.destroy();
  // The stalled viewer was skipped forward: far fewer fragments sent than were made.
  await engine.waitForLog(/live viewer of big left: \d+ fragments sent, \d+ skipped.*\n(.|\n)*live viewer of big left/, 5_000);
  const skips = [...engine.output().matchAll(/live viewer of big left: (\d+) fragments sent, (\d+) skipped/g)].map((m) => Number(m[2]));
  expect(Math.max(...skips)).toBeGreaterThan(50);
  // The healthy viewer of the same stream kept getting frames at the source's pace.
  expect(healthy.fragments.length).toBeGreaterThan(8 * 25 * 0.75);
  const lastGap = Math.max(...healthy.times.slice(1).map((t, i) => t - healthy.times[i]!));
  expect(lastGap).toBeLessThan(1_000);
  // Memory: bounded by the per-viewer cap, not by how long the viewer stalls.
  expect(after - before).toBeLessThan(64 * 1024);
  const metrics = await (await fetch(`http://127.0.0.1:${engine.port}/api/video/streams`)).json() as { streams: { stream_id: string }[] };
  expect(metrics.streams.some((s) => s.stream_id === 'big')).toBe(true);
}, 30_000);
