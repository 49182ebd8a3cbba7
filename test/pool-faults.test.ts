// The media pool under faults: a crashed worker is restarted and its streams re-added (their
// interrupted segments repaired); a stream whose pipeline throws is reset alone.
import { afterEach, expect, test } from 'bun:test';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../engine/config.ts';
import { Engine } from '../engine/engine.ts';
import { decodeErrors, makeClip, sleep, tempDir, waitFor } from './helpers.ts';

let engine: Engine | null = null;
afterEach(async () => {
  await engine?.stop();
  engine = null;
});

async function startEngine(dir: string, workers: number): Promise<Engine> {
  const clip = await makeClip(join(dir, 'clips'), { codec: 'h264', fps: 25, seconds: 4, gop: 25 });
  const streams = ['a', 'b']
    .map((id) => `[[video.streams]]\nstream_id = "${id}"\nprotocol = "file"\nsource_url = "file://${clip}"\n`)
    .join('');
  const { config } = parseConfigText(
    `[video.storage]\nbase_path = "${dir}/data"\nsegment_duration = 60\n[video.storage.performance]\nworker_count = ${workers}\n[video.protocols]\nrtmp = false\n[video.demo]\nenabled = false\n${streams}`,
    { file: null, env: {} },
  );
  return Engine.start(config, { allowFaults: true });
}

const segments = (e: Engine, id: string) => e.index.querySegments(id, 0, Date.now() + 60_000, Date.now());

test('a crashed media worker is restarted, its stream records again, and its cut segment is repaired', async () => {
  const dir = tempDir('faults');
  engine = await startEngine(dir, 2);
  const a = engine.streams.get('a')!.handle!;
  const b = engine.streams.get('b')!.handle!;
  expect(a.worker.index).not.toBe(b.worker.index); // least-loaded placement spreads them
  await sleep(2_500);
  await engine.pool.injectFault(a.worker.index, 'crash-worker');
  // The repair closes the interrupted segment; the re-added stream opens a new one.
  const repaired = await waitFor(() => segments(engine!, 'a').find((s) => s.state === 'repaired'), 10_000, 'a repaired segment');
  await waitFor(() => segments(engine!, 'a').some((s) => s.start_ms > repaired.start_ms), 10_000, 'a new segment after the restart');
  expect(await decodeErrors(join(dir, 'data', repaired.path))).toBe('');
  expect(repaired.end_ms - repaired.start_ms).toBeGreaterThanOrEqual(1_000);
  // The other worker's stream never noticed: still one open segment since the start.
  const bs = segments(engine, 'b');
  expect(bs.length).toBe(1);
  expect(bs[0]!.state).toBe('open');
  expect(engine.pool.workerLoads().every((w) => w.alive)).toBe(true);
}, 60_000);

test('a stream whose pipeline fails is reset alone; its neighbour on the same worker records on', async () => {
  const dir = tempDir('faults1');
  engine = await startEngine(dir, 1);
  const a = engine.streams.get('a')!.handle!;
  await sleep(2_000);
  await engine.pool.injectFault(0, 'throw-in-stream', a.slot);
  await waitFor(() => segments(engine!, 'a').length >= 2, 10_000, 'stream a to start a new segment');
  const as = segments(engine, 'a');
  expect(as[0]!.state).toBe('closed');
  expect(await decodeErrors(join(dir, 'data', as[0]!.path))).toBe('');
  expect(engine.streams.get('a')!.error).toContain('pipeline reset');
  const bs = segments(engine, 'b');
  expect(bs.length).toBe(1);
  expect(bs[0]!.state).toBe('open');
  expect(engine.streams.get('b')!.error).toBeNull();
}, 60_000);

test('with worker_count = 0 the pool starts one worker and adds one when the first is full, up to one per core', async () => {
  const dir = tempDir('grow');
  engine = await startEngine(dir, 0);
  const cores = availableParallelism();
  expect(engine.pool.workerCount).toBe(1);
  const spec = (id: string) => ({ streamId: id, input: { kind: 'annexb' as const, codec: 'h264' as const }, record: false, wallBaseMs: Date.now(), firstSegmentNumber: 1, keyframeIntervalMs: 0, bitrateHint: 40_000_000 });
  const g1 = await engine.pool.addStream(spec('g1')); // the file streams' few hundred KB/s plus 40 MB/s: still room
  const g2 = await engine.pool.addStream(spec('g2')); // 80 MB/s would be over 64 MB/s on one
  expect(g1.worker.index).toBe(0);
  expect(engine.pool.workerCount).toBe(Math.min(2, cores));
  if (cores >= 2) expect(g2.worker.index).toBe(1);
  const g3 = await engine.pool.addStream(spec('g3'));
  expect(engine.pool.workerCount).toBe(Math.min(3, cores));
  expect(engine.pool.workerLoads().every((w) => w.alive)).toBe(true);
  for (const h of [g1, g2, g3]) await engine.pool.removeStream(h);
}, 30_000);

test('an engine stopped as soon as it started (before its worker threads ran) stops at once, not after request timeouts', async () => {
  const dir = tempDir('early-stop');
  const { config } = parseConfigText(
    `[video.storage]\nbase_path = "${dir}/data"\n[video.protocols]\nrtmp = false\n[video.demo]\nenabled = false\n`,
    { file: null, env: {} },
  );
  const e = await Engine.start(config);
  // No await between start and stop: the threads start in the next event-loop turn.
  await e.stop(); // would wait REQUEST_TIMEOUT_MS (10 s) for a worker that never ran; the test's 5 s limit catches that
  expect(e.pool.workerLoads().every((w) => !w.alive)).toBe(true);
});
