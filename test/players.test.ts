/// <reference lib="dom" />
// Independent players accept what the engine records: VLC demuxes every frame of a segment,
// and Chromium's Media Source Extensions buffer consecutive segments as one continuous range
// and play them.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { loadClip } from '../engine/file-source.ts';
import { IndexDb, type SegmentRecord } from '../engine/index-db.ts';
import { makeClip, run, sleep, startEngine, tempDir } from './helpers.ts';

const dir = tempDir('players');
chmodSync(dir, 0o755); // VLC runs as nobody (it refuses root) and must read the files...
const vlcOut = join(dir, 'vlc');
mkdirSync(vlcOut, { mode: 0o777 });
chmodSync(vlcOut, 0o777); // ...and write its output somewhere
const segs: Record<string, SegmentRecord[]> = {};
const codecString: Record<string, string> = {};

beforeAll(async () => {
  const clips = {
    avc: await makeClip(join(dir, 'clips'), { codec: 'h264', width: 480, height: 270, fps: 25, seconds: 2, bframes: 2 }),
    hevc: await makeClip(join(dir, 'clips'), { codec: 'h265', width: 480, height: 270, fps: 25, seconds: 2 }),
  };
  const streams = Object.entries(clips)
    .map(([id, f]) => `[[video.streams]]\nstream_id = "${id}"\nprotocol = "file"\nsource_url = "file://${f}"\n`)
    .join('');
  for (const [id, f] of Object.entries(clips)) codecString[id] = loadClip(`file://${f}`).track.codecString;
  const engine = startEngine(dir, `[video.storage]\nbase_path = "${dir}/data"\nsegment_duration = 2\n[video.demo]\nenabled = false\n${streams}`);
  await engine.waitForLog(/FLUX video ready/);
  await sleep(4_800);
  expect(await engine.stop()).toBe(0);
  const index = IndexDb.open(join(dir, 'data/index'));
  for (const id of Object.keys(clips)) segs[id] = index.querySegments(id, 0, Date.now() + 60_000);
  await index.close();
}, 60_000);

describe('VLC', () => {
  test.each(['avc', 'hevc'])('%s: VLC demuxes every frame of every segment', async (id) => {
    for (const s of segs[id]!) {
      const file = join(dir, 'data', s.path);
      const out = join(vlcOut, `${id}-${s.start_ms}.mkv`);
      // VLC remuxes what it demuxed into Matroska (its TS muxer drops the tail on close,
      // its PS muxer has no HEVC); every frame must survive.
      await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'env', `HOME=${dir}`,
        'cvlc', '-I', 'dummy', '--play-and-exit', '--sout', `#std{access=file,mux=mkv,dst=${out}}`, file], { cwd: vlcOut });
      expect(existsSync(out)).toBe(true);
      const count = async (f: string) =>
        Number((await run(['ffprobe', '-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', f])).trim());
      expect(await count(out)).toBe(await count(file));
    }
  }, 60_000);
});

describe('Chromium MSE', () => {
  let browser: Browser;
  let server: ReturnType<typeof Bun.serve>;
  beforeAll(async () => {
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        if (url.pathname === '/') return new Response('<!doctype html><body></body>', { headers: { 'content-type': 'text/html' } });
        const [, id, i] = url.pathname.split('/');
        const s = segs[id!]?.[Number(i)];
        return s ? new Response(readFileSync(join(dir, 'data', s.path))) : new Response('no', { status: 404 });
      },
    });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
    });
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
    server?.stop(true);
  });

  test('H.264 segments append as one continuous buffered range and play', async () => {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.port}/`);
    const mime = `video/mp4; codecs="${codecString.avc}"`;
    const files = segs.avc!.slice(0, 2).map((_, i) => `/avc/${i}`);
    expect(files.length).toBe(2);
    const r = await page.evaluate(
      async ([files, mime]) => {
        if (!MediaSource.isTypeSupported(mime)) return { unsupported: mime };
        const v = document.createElement('video');
        v.muted = true;
        document.body.append(v);
        const ms = new MediaSource();
        v.src = URL.createObjectURL(ms);
        await new Promise((r) => ms.addEventListener('sourceopen', r, { once: true }));
        const sb = ms.addSourceBuffer(mime);
        for (const f of files) {
          const b = await (await fetch(f)).arrayBuffer();
          await new Promise<void>((res, rej) => {
            sb.onupdateend = () => res();
            sb.onerror = () => rej(new Error(`append of ${f} failed`));
            sb.appendBuffer(b);
          });
        }
        const ranges: number[][] = [];
        for (let i = 0; i < sb.buffered.length; i++) ranges.push([sb.buffered.start(i), sb.buffered.end(i)]);
        v.currentTime = ranges[0]![0]!;
        await v.play();
        const t0 = v.currentTime;
        await new Promise((r) => setTimeout(r, 1500));
        return { ranges, advanced: v.currentTime - t0, error: v.error?.message ?? null, frames: v.getVideoPlaybackQuality().totalVideoFrames };
      },
      [files, mime] as const,
    );
    expect(r).not.toHaveProperty('unsupported');
    const ok = r as { ranges: number[][]; advanced: number; error: string | null; frames: number };
    expect(ok.error).toBeNull();
    expect(ok.ranges.length).toBe(1); // two files, no hole between them
    const [a, b] = segs.avc!;
    expect(ok.ranges[0]![1]! - ok.ranges[0]![0]!).toBeCloseTo((b!.end_ms - a!.start_ms) / 1000, 0);
    expect(ok.advanced).toBeGreaterThan(0.8);
    expect(ok.frames).toBeGreaterThan(10);
  }, 30_000);

  test('H.265: Chromium reports whether this build can decode it; when it can, the segments buffer', async () => {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.port}/`);
    const mime = `video/mp4; codecs="${codecString.hevc}"`;
    const supported = await page.evaluate((m) => MediaSource.isTypeSupported(m), mime);
    if (!supported) {
      // Chromium on Linux decodes HEVC only through platform (GPU) decoders; headless here has none.
      console.log(`chromium: ${mime} not supported by this build (no platform HEVC decoder); VLC and ffmpeg judge H.265`);
      return;
    }
    const ok = await page.evaluate(async ([f, m]) => {
      const ms = new MediaSource();
      const v = document.createElement('video');
      v.src = URL.createObjectURL(ms);
      await new Promise((r) => ms.addEventListener('sourceopen', r, { once: true }));
      const sb = ms.addSourceBuffer(m);
      const b = await (await fetch(f)).arrayBuffer();
      await new Promise<void>((res, rej) => ((sb.onupdateend = () => res()), (sb.onerror = () => rej(new Error('append failed'))), sb.appendBuffer(b)));
      return sb.buffered.length;
    }, ['/hevc/0', mime] as const);
    expect(ok).toBe(1);
  }, 30_000);
});
