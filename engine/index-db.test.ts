// Tests of the LMDB index against a real LMDB environment in a temp dir.
import { afterEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_SEGMENT_LOOKBACK_MS, IndexDb, IndexError, fragmentOffsetAt, packFragments, unpackFragments,
  type IndexOptions, type SegmentRecord, type SegmentState,
} from './index-db.ts';

const MIN = 60_000, HOUR = 3_600_000;
const T0 = 1_700_000_000_000; // 2023-11-14, an integer Unix ms
const dirs: string[] = [];
const dbs: IndexDb[] = [];

function fresh(opts: IndexOptions = {}): { db: IndexDb; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'flux-index-'));
  dirs.push(dir);
  const path = join(dir, 'index');
  const db = IndexDb.open(path, { noSync: true, ...opts });
  dbs.push(db);
  return { db, path };
}
afterEach(async () => {
  for (const db of dbs.splice(0)) await db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function put(db: IndexDb, sid: string, start: number, end: number, state: SegmentState = 'closed', bytes = 1000) {
  return db.putSegment({
    stream_id: sid, start_ms: start, end_ms: end, path: `${sid}/2023-11-14/22/${Math.floor(start / 1000)}.mp4`,
    bytes, codecs: ['h264', 'aac'], width: 1920, height: 1080, state, segment_number: 0,
  });
}
const starts = (segs: SegmentRecord[]) => segs.map((s) => s.start_ms - T0);

describe('querySegments', () => {
  test('returns the segments overlapping [start, end), in start order', async () => {
    const { db } = fresh();
    for (const [a, b] of [[0, 1], [1, 2], [2, 3], [5, 6]] as const) put(db, 'cam1', T0 + a * MIN, T0 + b * MIN);
    await db.flushed();
    const q = (a: number, b: number) => starts(db.querySegments('cam1', T0 + a, T0 + b));
    expect(q(10_000, 20_000)).toEqual([0]); // inside one segment
    expect(q(30_000, 150_000)).toEqual([0, MIN, 2 * MIN]); // spanning several
    expect(q(MIN, 2 * MIN)).toEqual([MIN]); // exactly one segment: neighbours only touch
    expect(q(3 * MIN, 5 * MIN)).toEqual([]); // the hole, up to the next start (excluded)
    expect(q(3 * MIN - 1, 5 * MIN + 1)).toEqual([2 * MIN, 5 * MIN]); // one ms into each neighbour
    expect(q(MIN, MIN)).toEqual([]); // empty range
    expect(q(10 * MIN, 20 * MIN)).toEqual([]);
  });

  test('finds a long segment that started long before the range (the immediate predecessor)', async () => {
    const { db } = fresh();
    put(db, 'cam1', T0, T0 + 10 * HOUR); // 10 h, far beyond the 1 h lookback
    put(db, 'cam1', T0 + 10 * HOUR, T0 + 10 * HOUR + MIN);
    await db.flushed();
    expect(starts(db.querySegments('cam1', T0 + 5 * HOUR, T0 + 6 * HOUR))).toEqual([0]);
    expect(starts(db.querySegments('cam1', T0 + 9 * HOUR, T0 + 10 * HOUR + 1))).toEqual([0, 10 * HOUR]);
  });

  test('misses a long segment hidden behind an overlapping later one beyond the lookback (documented)', async () => {
    // Segments of one stream do not overlap in normal operation; if crash repair ever leaves an
    // overlap, only predecessors within segmentLookbackMs of the range start are examined.
    const slow = fresh();
    const wide = fresh({ segmentLookbackMs: 12 * HOUR });
    for (const { db } of [slow, wide]) {
      put(db, 'cam1', T0, T0 + 10 * HOUR);
      put(db, 'cam1', T0 + HOUR, T0 + HOUR + MIN);
      await db.flushed();
    }
    expect(DEFAULT_SEGMENT_LOOKBACK_MS).toBe(HOUR);
    expect(starts(slow.db.querySegments('cam1', T0 + 5 * HOUR, T0 + 6 * HOUR))).toEqual([]);
    expect(starts(wide.db.querySegments('cam1', T0 + 5 * HOUR, T0 + 6 * HOUR))).toEqual([0]);
  });

  test('an open segment extends to nowMs when given, else to its latest known end', async () => {
    const { db } = fresh();
    db.openSegment({ stream_id: 'cam1', start_ms: T0, path: 'cam1/a.mp4', codecs: ['h264'], width: 640, height: 480, segment_number: 7 });
    await db.flushed();
    expect(db.querySegments('cam1', T0 + 5000, T0 + 6000)).toEqual([]);
    expect(starts(db.querySegments('cam1', T0 + 5000, T0 + 6000, T0 + 7000))).toEqual([0]);
    db.extendSegment('cam1', T0, { end_ms: T0 + 5500, bytes: 4096 });
    await db.flushed();
    expect(starts(db.querySegments('cam1', T0 + 5000, T0 + 6000))).toEqual([0]);
    expect(db.getSegment('cam1', T0)?.state).toBe('open');
  });

  test('keeps streams whose ids share a prefix apart', async () => {
    const { db } = fresh();
    for (const sid of ['cam', 'cam1', 'cam1.x', 'cam10']) put(db, sid, T0, T0 + MIN);
    await db.flushed();
    for (const sid of ['cam', 'cam1', 'cam1.x', 'cam10']) expect(db.querySegments(sid, 0, T0 * 2).map((s) => s.stream_id)).toEqual([sid]);
    expect(db.segmentStreamIds()).toEqual(['cam', 'cam1', 'cam1.x', 'cam10']);
  });
});

describe('segment lifecycle', () => {
  test('opens, lists as open, closes with fragments and leaves the open list', async () => {
    const { db } = fresh();
    db.openSegment({ stream_id: 'a', start_ms: T0, path: 'a/x.mp4', codecs: ['h264'], width: 1, height: 1, segment_number: 1 });
    db.openSegment({ stream_id: 'b', start_ms: T0 + 5, path: 'b/x.mp4', codecs: ['h265'], width: 1, height: 1, segment_number: 1 });
    await db.flushed();
    expect(db.listOpenSegments().map((s) => s.stream_id)).toEqual(['a', 'b']);
    const frags = { times: [0, 1000, 2000, 3000], offsets: [1200, 90_000, 181_000, 270_500] };
    db.closeSegment('a', T0, { end_ms: T0 + 3900, bytes: 360_000, fragments: frags });
    db.closeSegment('b', T0 + 5, { end_ms: T0 + 900, bytes: 10, state: 'repaired' });
    await db.flushed();
    expect(db.listOpenSegments()).toEqual([]);
    const a = db.getSegment('a', T0)!;
    expect([a.state, a.end_ms, a.bytes, a.fragments.length]).toEqual(['closed', T0 + 3900, 360_000, 32]);
    expect(unpackFragments(a.fragments)).toEqual(frags);
    expect(fragmentOffsetAt(a.fragments, 2500)).toBe(181_000);
    expect(db.getSegment('b', T0 + 5)?.state).toBe('repaired');
  });

  test('reads its own uncommitted writes by key (open then close in one turn)', async () => {
    const { db } = fresh();
    db.openSegment({ stream_id: 'a', start_ms: T0, path: 'a/x.mp4', codecs: [], width: 0, height: 0, segment_number: 0 });
    expect(db.getSegment('a', T0)?.state).toBe('open');
    db.closeSegment('a', T0, { end_ms: T0 + 10, bytes: 5 });
    db.deleteSegment('a', T0);
    expect(db.getSegment('a', T0)).toBeUndefined();
    await db.flushed();
    expect(db.getSegment('a', T0)).toBeUndefined();
    expect(db.streamStats('a')).toEqual({ count: 0, bytes: 0, firstStartMs: null, lastEndMs: null });
  });

  test('rejects a close of an unknown segment and bad input with IndexError', () => {
    const { db } = fresh();
    const code = (f: () => unknown) => { try { f(); return 'none'; } catch (e) { expect(e).toBeInstanceOf(IndexError); return (e as IndexError).code; } };
    expect(code(() => db.closeSegment('a', T0, { end_ms: T0, bytes: 0 }))).toBe('not-found');
    for (const sid of ['', '..', 'a..b', '/etc', '.hidden', 'a/b', 'x'.repeat(65), 7]) expect(code(() => db.querySegments(sid as string, 0, 1))).toBe('invalid');
    for (const t of [-1, 1.5, NaN, 2 ** 53, '5']) expect(code(() => db.querySegments('a', t as number, T0))).toBe('invalid');
    for (const path of ['../x.mp4', '/abs.mp4', 'a/../../x', '', 'a\0b']) expect(code(() => db.putSegment({ stream_id: 'a', start_ms: T0, path, codecs: [], width: 0, height: 0, state: 'closed', segment_number: 0 }))).toBe('invalid');
    expect(code(() => packFragments({ times: [5, 4], offsets: [0, 1] }))).toBe('invalid');
    expect(code(() => db.queryKeyframes('a', 0, 1, 0))).toBe('invalid');
  });

  test('keeps count and bytes incrementally, equal to a recount, across reopen', async () => {
    const { db, path } = fresh();
    for (let i = 0; i < 50; i++) put(db, 'cam1', T0 + i * MIN, T0 + (i + 1) * MIN, 'closed', 100 + i);
    db.deleteSegment('cam1', T0);
    db.closeSegment('cam1', T0 + MIN, { end_ms: T0 + 2 * MIN, bytes: 1 });
    await db.flushed();
    const s = db.streamStats('cam1');
    expect(s).toEqual({ count: 49, bytes: 1 + (102 + 149) * 48 / 2, firstStartMs: T0 + MIN, lastEndMs: T0 + 50 * MIN });
    await db.close();
    const again = IndexDb.open(path);
    dbs.push(again);
    expect(again.streamStats('cam1')).toEqual(s);
    expect(again.rebuildStats('cam1')).toEqual({ count: s.count, bytes: s.bytes });
  });

  test('segmentsEndingBefore reads per stream up to the cutoff, skipping open ones, within the limit', async () => {
    const { db } = fresh();
    for (const sid of ['a', 'b']) for (let i = 0; i < 10; i++) put(db, sid, T0 + i * MIN, T0 + (i + 1) * MIN, sid === 'a' && i === 1 ? 'open' : 'closed');
    await db.flushed();
    const old = db.segmentsEndingBefore(T0 + 3 * MIN + 1, 100);
    expect(old.map((s) => `${s.stream_id}${(s.start_ms - T0) / MIN}`)).toEqual(['a0', 'a2', 'b0', 'b1', 'b2']);
    expect(db.segmentsEndingBefore(T0 + 3 * MIN + 1, 2).length).toBe(2);
    expect(db.segmentsEndingBefore(T0 + 3 * MIN + 1, 100, 'b').length).toBe(3);
  });
});

test('gaps lists holes longer than the tolerance, with the range edges only when asked', async () => {
  const { db } = fresh();
  // [0,60) [60.5,120) jitter of 500 ms; hole [120,300); [300,360)
  for (const [a, b] of [[0, 60_000], [60_500, 120_000], [300_000, 360_000]] as const) put(db, 'g', T0 + a, T0 + b);
  await db.flushed();
  const g = (a: number, b: number, edges?: boolean) => db.gaps('g', T0 + a, T0 + b, 1000, { edges }).map(([x, y]) => [x - T0, y - T0]);
  expect(g(0, 400_000)).toEqual([[120_000, 300_000]]);
  expect(g(30_000, 400_000, true)).toEqual([[120_000, 300_000], [360_000, 400_000]]);
  expect(g(0, 10_000, true)).toEqual([]);
  expect(db.gaps('g', T0 - 50_000, T0 + 10_000, 1000, { edges: true }).map(([x, y]) => [x - T0, y - T0])).toEqual([[-50_000, 0]]);
  expect(g(500_000, 600_000, true)).toEqual([[500_000, 600_000]]);
  expect(db.gaps('g', T0, T0 + 400_000, 200_000)).toEqual([]);
});

test('keyframes: put, query by range with a limit, list before a cutoff, delete', async () => {
  const { db } = fresh();
  for (let i = 0; i < 10; i++) { db.putKeyframe('a', T0 + i * 1000, { path: `a/keyframes/d/${i}.jpg`, bytes: i }); db.putKeyframe('b', T0 + i * 1000, { path: `b/k/${i}.jpg`, bytes: i }); }
  await db.flushed();
  expect(db.queryKeyframes('a', T0 + 2000, T0 + 5000, 100).map((k) => k.ms - T0)).toEqual([2000, 3000, 4000]);
  expect(db.queryKeyframes('a', T0, T0 + 10_000, 2)).toEqual([
    { stream_id: 'a', ms: T0, path: 'a/keyframes/d/0.jpg', bytes: 0 }, { stream_id: 'a', ms: T0 + 1000, path: 'a/keyframes/d/1.jpg', bytes: 1 },
  ]);
  expect(db.keyframesBefore(T0 + 2000, 100).map((k) => `${k.stream_id}${k.ms - T0}`)).toEqual(['a0', 'a1000', 'b0', 'b1000']);
  expect(db.keyframesBefore(T0 + 2000, 3).length).toBe(3);
  db.deleteKeyframe('a', T0);
  await db.flushed();
  expect(db.queryKeyframes('a', 0, T0 + 1, 10)).toEqual([]);
});

test('streams and devices: put, get, list, delete', async () => {
  const { db } = fresh();
  const s = { stream_id: 'door', protocol: 'rtsp', source_url: 'rtsp://10.0.0.2/1', record: true, origin: 'api', created_ms: T0 } as const;
  db.putStream(s);
  db.putStream({ ...s, stream_id: 'yard', protocol: 'rtmp', publish_key: 'k', origin: 'config' });
  db.putDevice('34020000001320000001', { name: 'NVR', online: true });
  await db.flushed();
  expect(db.getStream('door')).toEqual(s);
  expect(db.listStreams().map((r) => r.stream_id)).toEqual(['door', 'yard']);
  expect(db.getDevice('34020000001320000001')).toEqual({ name: 'NVR', online: true });
  expect(db.listDevices().length).toBe(1);
  expect(() => db.putStream({ ...s, protocol: 'ftp' as 'rtsp' })).toThrow(IndexError);
  db.deleteStream('door'); db.deleteDevice('34020000001320000001');
  await db.flushed();
  expect(db.getStream('door')).toBeUndefined();
  expect(db.listDevices()).toEqual([]);
});

test('events: same-millisecond events keep distinct keys; recent first; seq continues after reopen', async () => {
  const { db, path } = fresh();
  db.appendEvent(T0, { kind: 'a' }); db.appendEvent(T0, { kind: 'b' }); db.appendEvent(T0 + 1, { kind: 'c' });
  await db.close();
  const again = IndexDb.open(path);
  dbs.push(again);
  again.appendEvent(T0 + 1, { kind: 'd' });
  await again.flushed();
  const ev = again.recentEvents(10);
  expect(ev.map((e) => e.event['kind'])).toEqual(['d', 'c', 'b', 'a']);
  expect(new Set(ev.map((e) => `${e.ms}/${e.seq}`)).size).toBe(4);
  expect(again.recentEvents(1).length).toBe(1);
});

test('survives a process restart: a child process writes, exits, the index reopens intact', async () => {
  const { db, path } = fresh();
  await db.close();
  const mod = join(import.meta.dir, 'index-db.ts');
  const script = `
    const { IndexDb } = await import(${JSON.stringify(mod)});
    const db = IndexDb.open(${JSON.stringify(path)});
    db.openSegment({ stream_id: 'cam1', start_ms: ${T0}, path: 'cam1/a.mp4', codecs: ['h264'], width: 2, height: 2, segment_number: 1 });
    db.putSegment({ stream_id: 'cam1', start_ms: ${T0 - MIN}, end_ms: ${T0}, path: 'cam1/b.mp4', codecs: ['h264'], width: 2, height: 2, segment_number: 0, state: 'closed', bytes: 77 });
    db.putKeyframe('cam1', ${T0}, { path: 'cam1/keyframes/x.jpg', bytes: 3 });
    db.putStream({ stream_id: 'cam1', protocol: 'rtsp', source_url: 'rtsp://x', record: true, origin: 'api', created_ms: 1 });
    await db.flushed();
    process.exit(0); // no close(): a process that ends after its writes are flushed`;
  const child = Bun.spawnSync([process.execPath, '-e', script], { stderr: 'pipe' });
  expect(child.stderr.toString()).toBe('');
  expect(child.exitCode).toBe(0);
  const again = IndexDb.open(path);
  dbs.push(again);
  expect(again.listOpenSegments().map((s) => s.start_ms)).toEqual([T0]);
  expect(starts(again.querySegments('cam1', T0 - 1, T0 + 1))).toEqual([-MIN, 0]);
  expect(again.streamStats('cam1')).toMatchObject({ count: 2, bytes: 77 });
  expect(again.queryKeyframes('cam1', 0, T0 + 1, 5).length).toBe(1);
  expect(again.getStream('cam1')?.source_url).toBe('rtsp://x');
});

test('close is idempotent and later calls throw IndexError closed', async () => {
  const { db } = fresh();
  await Promise.all([db.close(), db.close()]);
  await db.close();
  expect(() => db.getSegment('a', 0)).toThrow(IndexError);
});

test('scale: 200k segments of 100 streams; a time-range query returns exactly the expected set', async () => {
  const { db } = fresh();
  const STREAMS = 100, PER = 2040, SEG = MIN, BATCH = 20_000;
  // Stream s: 60 s segments from T0 + s*1000, every 50th missing (a hole): 2000 per stream.
  const has = (i: number) => i % 50 !== 49;
  let n = 0;
  const t0 = performance.now();
  for (let i = 0; i < PER; i++) {
    for (let s = 0; s < STREAMS; s++) {
      if (!has(i)) continue;
      put(db, `cam${s}`, T0 + s * 1000 + i * SEG, T0 + s * 1000 + (i + 1) * SEG, 'closed', 1);
      if (++n % BATCH === 0) await db.flushed();
    }
  }
  await db.flushed();
  expect(n).toBe(200_000);
  console.log(`scale: inserted ${n} segment records in ${(performance.now() - t0).toFixed(0)} ms`);
  const expected = (s: number, a: number, b: number) => {
    const out: number[] = [];
    for (let i = 0; i < PER; i++) {
      const st = T0 + s * 1000 + i * SEG;
      if (has(i) && st < b && st + SEG > a) out.push(st);
    }
    return out;
  };
  const lat: number[] = [];
  for (const [s, a, b] of [[0, T0 + 30_000, T0 + 30_000 + HOUR], [57, T0 + 1000 * MIN + 123, T0 + 1000 * MIN + 3 * HOUR], [99, T0 + 49 * MIN, T0 + 50 * MIN + 99_001], [42, T0 - HOUR, T0 + 10 * MIN]] as const) {
    const q0 = performance.now();
    const got = db.querySegments(`cam${s}`, a, b);
    lat.push(performance.now() - q0);
    expect(got.map((r) => r.start_ms)).toEqual(expected(s, a, b));
  }
  expect(db.streamStats('cam7').count).toBe(2000);
  const q1 = performance.now();
  for (let k = 0; k < 1000; k++) db.querySegments(`cam${k % STREAMS}`, T0 + (k % 1900) * SEG, T0 + (k % 1900) * SEG + HOUR);
  console.log(`scale: query latency first ${lat.map((x) => x.toFixed(2)).join('/')} ms; 1000 one-hour queries avg ${((performance.now() - q1) / 1000).toFixed(3)} ms`);
}, 30_000);
