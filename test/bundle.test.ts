// The start-up bundle (scripts/bundle.mjs, run by engine/launch.ts as `npm start` does): the
// whole engine from one bytecode file. Paths the bundler inlines must still reach this checkout:
// the media worker and thumbnail worker entry points, the native addons (lmdb, ours), the UI
// directory, lazily imported modules (GB28181 with the XML and GB 2312 packages it loads, which
// the bundle leaves in node_modules; prom-client for /metrics).
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { join } from 'node:path';
import { buildBundle } from '../scripts/bundle.mjs';
import { decodeErrors, freeUdpTcpPort, makeClip, ROOT, startEngine, tempDir, waitFor, type EngineProcess } from './helpers.ts';

const dir = tempDir('bundle');
let engine: EngineProcess;
let base = '';

beforeAll(async () => {
  const b = buildBundle(ROOT, process.execPath); // current after `npm test`'s set-up: no rebuild
  expect(b.file).not.toBeNull();
  const clip = await makeClip(join(dir, 'clips'), { codec: 'h264', fps: 25, seconds: 4, gop: 25 });
  engine = startEngine(
    dir,
    `[video.storage]\nbase_path = "${dir}/data"\nsegment_duration = 2\n[video.demo]\nenabled = false\n` +
      `[video.gb28181]\nenabled = true\nlocal_ip = "127.0.0.1"\nlocal_port = ${await freeUdpTcpPort()}\n` +
      `[[video.streams]]\nstream_id = "cam"\nprotocol = "file"\nsource_url = "file://${clip}"\n`,
    {},
    'engine/launch.ts',
  );
  const ready = await engine.waitForLog(/FLUX video ready.*\n/);
  expect(ready).toContain('from the start-up bundle');
  base = `http://127.0.0.1:${engine.port}`;
}, 60_000);
afterAll(async () => {
  await engine?.stop();
});

test('the bundled engine records: a closed segment that ffmpeg decodes cleanly', async () => {
  const seg = await waitFor(
    async () => {
      const r = (await (await fetch(`${base}/api/video/recordings/cam`)).json()) as { segments: { url: string | null }[] };
      return r.segments.find((s) => s.url !== null);
    },
    15_000,
    'a closed segment',
  );
  const file = join(dir, 'seg.mp4');
  await Bun.write(file, await (await fetch(`${base}${seg.url}`)).arrayBuffer());
  expect(await decodeErrors(file)).toBe('');
}, 30_000);

test('the bundled engine serves snapshots (thumbnail worker), /metrics (lazy import), GB28181 and the UI', async () => {
  const snap = await fetch(`${base}/api/video/streams/cam/snapshot`);
  expect(snap.status).toBe(200);
  expect(snap.headers.get('content-type')).toBe('image/jpeg');
  const metrics = await fetch(`${base}/metrics`);
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toContain('flux_stream_');
  const gb = await fetch(`${base}/api/video/gb28181/devices`);
  expect(gb.status).toBe(200);
  const ui = await fetch(`${base}/`);
  expect(ui.status).toBe(200);
  expect(await ui.text()).toContain('<html');
}, 30_000);

test('SIGTERM stops the bundled engine cleanly', async () => {
  expect(await engine.stop('SIGTERM')).toBe(0);
});

test('FLUX_NO_BUNDLE=1 makes the launcher run the sources', async () => {
  const d = tempDir('bundle-off');
  const e = startEngine(d, `[video.storage]\nbase_path = "${d}/data"\n[video.demo]\nenabled = false\n`, { FLUX_NO_BUNDLE: '1' }, 'engine/launch.ts');
  try {
    const ready = await e.waitForLog(/FLUX video ready.*\n/);
    expect(ready).not.toContain('start-up bundle');
  } finally {
    expect(await e.stop()).toBe(0);
  }
}, 30_000);
