// Crash safety: after `kill -9` mid-recording and a restart, the interrupted segment is cut
// back to its last complete fragment, its index record closed, and the file plays; every
// segment closed before the crash is untouched.
import { afterAll, expect, test } from 'bun:test';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { IndexDb, type SegmentRecord } from '../engine/index-db.ts';
import { scanFragments } from '../media/fmp4-scan.ts';
import { decodeErrors, makeClip, probe, sleep, startEngine, tempDir, waitFor, type EngineProcess } from './helpers.ts';

const dir = tempDir('crash');
const procs: EngineProcess[] = [];
afterAll(async () => {
  for (const p of procs) await p.stop('SIGKILL');
});

function readIndex(): Promise<SegmentRecord[]> {
  const index = IndexDb.open(join(dir, 'data/index'));
  const segs = index.querySegments('cam', 0, Date.now() + 3_600_000, Date.now());
  return index.close().then(() => segs);
}

test('kill -9 loses at most the last fragment of the open segment and nothing else', async () => {
  // 1 s GOP, 3 s segments, 1 s fragments: after ~8 s, two closed segments and one open.
  const clip = await makeClip(join(dir, 'clips'), { codec: 'h264', fps: 25, seconds: 6, gop: 25 });
  const toml = `[video.storage]
base_path = "${dir}/data"
segment_duration = 3
fragment_duration_ms = 1000
[video.demo]
enabled = false
[[video.streams]]
stream_id = "cam"
protocol = "file"
source_url = "file://${clip}"
`;
  const first = startEngine(dir, toml);
  procs.push(first);
  await first.waitForLog(/FLUX video ready/);
  await sleep(8_000);
  first.proc.kill('SIGKILL');
  await first.proc.exited;

  const before = await readIndex();
  const closed = before.filter((s) => s.state === 'closed');
  const open = before.filter((s) => s.state === 'open');
  expect(closed.length).toBeGreaterThanOrEqual(2);
  expect(open.length).toBe(1);
  const closedBytes = closed.map((s) => readFileSync(join(dir, 'data', s.path)));
  const victim = join(dir, 'data', open[0]!.path);
  // What the kill left: complete fragments, maybe a partial one (the native writer submits
  // within its batch interval). Recovery must keep exactly the complete ones.
  const goodSize = scanFragments(new Uint8Array(readFileSync(victim))).validEnd;
  expect(goodSize).toBeGreaterThan(0);
  // A crash inside a write leaves a torn fragment: a moof header promising more than is there.
  appendFileSync(victim, new Uint8Array([0, 0, 0x10, 0, 0x6d, 0x6f, 0x6f, 0x66, 1, 2, 3, 4, 5]));

  const second = startEngine(dir, toml);
  procs.push(second);
  await second.waitForLog(/recovered .*cut \d+ bytes of an incomplete fragment/);
  await second.waitForLog(/FLUX video ready/);
  await sleep(1_500);
  expect(await second.stop('SIGTERM')).toBe(0);

  const after = await readIndex();
  const repaired = after.find((s) => s.start_ms === open[0]!.start_ms)!;
  expect(repaired.state).toBe('repaired');
  expect(statSync(victim).size).toBe(goodSize);
  expect(repaired.bytes).toBe(goodSize);
  expect(await decodeErrors(victim)).toBe('');
  const p = await probe(victim);
  expect(p.frames).toBeGreaterThan(0);
  expect(Math.abs(p.duration * 1000 - (repaired.end_ms - repaired.start_ms))).toBeLessThanOrEqual(40);
  // Segments closed before the crash: byte for byte the same, still indexed as closed.
  closed.forEach((s, i) => {
    const now = after.find((x) => x.start_ms === s.start_ms)!;
    expect(now.state).toBe('closed');
    expect(readFileSync(join(dir, 'data', s.path)).equals(closedBytes[i]!)).toBe(true);
  });
  // The restarted engine recorded on: new segments after the repaired one.
  expect(after.filter((s) => s.start_ms > repaired.start_ms).length).toBeGreaterThanOrEqual(1);
}, 60_000);
