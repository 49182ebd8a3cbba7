// Retention in the running engine: segments older than retention_days disappear (file and
// index record) while recording goes on; younger ones stay.
import { expect, test } from 'bun:test';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { IndexDb } from '../engine/index-db.ts';
import { makeClip, sleep, startEngine, tempDir } from './helpers.ts';

test('the scheduled retention job deletes expired segments and their index records', async () => {
  const dir = tempDir('retain');
  const clip = await makeClip(join(dir, 'clips'), { codec: 'h264', fps: 25, seconds: 2, gop: 25 });
  // 4 s retention (fractional days are allowed), 1 s segments: the job runs every second.
  const engine = startEngine(
    dir,
    `[video.storage]
base_path = "${dir}/data"
segment_duration = 1
retention_days = ${4 / 86_400}
[video.demo]
enabled = false
[[video.streams]]
stream_id = "cam"
protocol = "file"
source_url = "file://${clip}"
`,
  );
  await engine.waitForLog(/FLUX video ready/);
  const firstPath = await (async () => {
    for (let i = 0; i < 50; i++) {
      const m = /cam\/\d{4}-\d\d-\d\d\/\d\d\/\d+\.mp4/.exec(findFirst(dir));
      if (m) return m[0];
      await sleep(200);
    }
    throw new Error('no segment appeared');
  })();
  await engine.waitForLog(/retention: deleted [1-9]\d* segments/, 20_000);
  await sleep(1_000);
  expect(await engine.stop()).toBe(0);
  expect(existsSync(join(dir, 'data', firstPath))).toBe(false);
  const index = IndexDb.open(join(dir, 'data/index'));
  const now = Date.now();
  const left = index.querySegments('cam', 0, now + 60_000, now);
  await index.close();
  expect(left.length).toBeGreaterThan(0);
  for (const s of left) {
    expect(now - s.end_ms).toBeLessThan(4_000 + 3_000); // nothing older than retention (+ one run interval, + stop)
    expect(existsSync(join(dir, 'data', s.path))).toBe(true);
  }
  expect(left.some((s) => s.path === firstPath)).toBe(false);
}, 40_000);

function findFirst(dir: string): string {
  const root = join(dir, 'data', 'cam');
  if (!existsSync(root)) return '';
  const files = readdirSync(root, { recursive: true }).map(String).filter((f) => f.endsWith('.mp4')).sort();
  return files[0] ? `cam/${files[0]}` : '';
}
