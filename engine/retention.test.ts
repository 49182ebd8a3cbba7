// Tests of the retention job with a real LMDB index and real files in a temp base dir.
import { afterEach, expect, test } from 'bun:test';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { open } from 'lmdb';
import { IndexDb } from './index-db.ts';
import { containedPath, runRetention, startRetention, type RetentionOptions } from './retention.ts';

const MIN = 60_000, HOUR = 3_600_000, DAY = 86_400_000;
const T0 = 1_700_000_000_000; // 2023-11-14T22:13:20Z
const NOW = T0 + 10 * DAY;
const cleanup: Array<() => unknown> = [];
afterEach(async () => { for (const f of cleanup.splice(0).reverse()) await f(); });

function setup(): { db: IndexDb; base: string; dir: string; dbPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'flux-retention-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const base = join(dir, 'base'), dbPath = join(dir, 'index');
  mkdirSync(base);
  const db = IndexDb.open(dbPath, { noSync: true });
  cleanup.push(() => db.close());
  return { db, base, dir, dbPath };
}

/** base/<sid>/<YYYY-MM-DD>/<HH>/<start_unix>.mp4 (UTC), per SPEC.md local layout. */
function segPath(sid: string, startMs: number): string {
  const iso = new Date(startMs).toISOString();
  return `${sid}/${iso.slice(0, 10)}/${iso.slice(11, 13)}/${Math.floor(startMs / 1000)}.mp4`;
}
function addSegment(db: IndexDb, base: string, sid: string, startMs: number, bytes: number, opts: { file?: boolean; path?: string } = {}): string {
  const rel = opts.path ?? segPath(sid, startMs);
  if (opts.file !== false) { mkdirSync(dirname(join(base, rel)), { recursive: true }); writeFileSync(join(base, rel), new Uint8Array(bytes)); }
  db.putSegment({ stream_id: sid, start_ms: startMs, end_ms: startMs + MIN, path: rel, bytes, codecs: ['h264'], width: 2, height: 2, state: 'closed', segment_number: 0 });
  return rel;
}
const opts = (db: IndexDb, base: string, more: Partial<RetentionOptions> = {}): RetentionOptions =>
  ({ index: db, basePath: base, nowMs: NOW, retentionMs: 7 * DAY, keyframeRetentionMs: 90 * DAY, ...more });

test('deletes expired segments with their emptied hour and day directories and keeps young ones', async () => {
  const { db, base } = setup();
  const old = [T0, T0 + MIN, T0 + DAY].map((t, i) => addSegment(db, base, 'cam1', t, 100 * (i + 1)));
  const young = addSegment(db, base, 'cam1', NOW - HOUR, 50);
  await db.flushed();
  const r = await runRetention(opts(db, base));
  expect(r).toMatchObject({ segmentsDeleted: 3, bytesFreed: 600, missingFiles: 0, errors: 0, dirsRemoved: 4, budgetExhausted: false });
  for (const rel of old) {
    expect(existsSync(join(base, rel))).toBe(false);
    expect(existsSync(dirname(join(base, rel)))).toBe(false); // hour
    expect(existsSync(dirname(dirname(join(base, rel))))).toBe(false); // day
  }
  expect(existsSync(join(base, young))).toBe(true);
  expect(existsSync(join(base, 'cam1'))).toBe(true);
  expect(db.querySegments('cam1', 0, NOW).map((s) => s.path)).toEqual([young]);
  expect(db.streamStats('cam1')).toMatchObject({ count: 1, bytes: 50 });
});

test('finds work only through the index: an unindexed file and its directory stay', async () => {
  const { db, base } = setup();
  const rel = addSegment(db, base, 'cam1', T0, 10);
  const orphan = join(base, dirname(rel), 'orphan.mp4');
  writeFileSync(orphan, 'x');
  await db.flushed();
  const r = await runRetention(opts(db, base));
  expect(r).toMatchObject({ segmentsDeleted: 1, dirsRemoved: 0 });
  expect(existsSync(orphan)).toBe(true);
});

test('a missing file still deletes its record and is counted', async () => {
  const { db, base } = setup();
  addSegment(db, base, 'cam1', T0, 10, { file: false });
  await db.flushed();
  const r = await runRetention(opts(db, base));
  expect(r).toMatchObject({ segmentsDeleted: 1, missingFiles: 1, bytesFreed: 0, errors: 0 });
  expect(db.getSegment('cam1', T0)).toBeUndefined();
});

test('refuses a record whose path escapes the base dir: the outside file and the record stay', async () => {
  const { db, base, dir, dbPath } = setup();
  await db.close();
  // The index API rejects such paths, so write them the way a corrupt or foreign index would.
  const raw = open({ path: dbPath, maxDbs: 12 });
  const segs = raw.openDB({ name: 'segments' });
  for (const [i, path] of ['../outside.mp4', 'cam1/../../outside.mp4', `${dir}/outside.mp4`].entries())
    segs.put(['cam1', T0 + i * MIN], { stream_id: 'cam1', start_ms: T0 + i * MIN, end_ms: T0 + (i + 1) * MIN, path, backend: 'local', bytes: 1, codecs: [], width: 0, height: 0, state: 'closed', fragments: new Uint8Array(0), segment_number: 0 });
  await raw.close();
  writeFileSync(join(dir, 'outside.mp4'), 'precious');
  const db2 = IndexDb.open(dbPath, { noSync: true });
  cleanup.push(() => db2.close());
  const r = await runRetention(opts(db2, base));
  expect(r).toMatchObject({ segmentsDeleted: 0, errors: 3 });
  expect(r.failures.map((f) => f.reason)).toEqual(Array(3).fill('path escapes basePath'));
  expect(existsSync(join(dir, 'outside.mp4'))).toBe(true);
  expect(db2.querySegments('cam1', 0, NOW).length).toBe(3);
});

test('a failing unlink keeps the record and reports it', async () => {
  const { db, base } = setup();
  const rel = segPath('cam1', T0);
  mkdirSync(join(base, rel), { recursive: true }); // a directory where the file should be: EISDIR
  addSegment(db, base, 'cam1', T0, 10, { file: false });
  let lockedDir: string | undefined;
  if (process.getuid?.() !== 0) { // root ignores permissions, so EACCES only as a normal user
    const locked = addSegment(db, base, 'cam2', T0, 10);
    lockedDir = dirname(join(base, locked));
    chmodSync(lockedDir, 0o555);
    cleanup.push(() => chmodSync(lockedDir!, 0o755));
  }
  await db.flushed();
  const r = await runRetention(opts(db, base));
  const expected = lockedDir ? 2 : 1;
  expect(r).toMatchObject({ segmentsDeleted: 0, errors: expected });
  expect(r.failures[0]).toMatchObject({ kind: 'segment', stream_id: 'cam1', ms: T0, path: rel });
  expect(r.failures.map((f) => f.reason.split(': ')[1])).toEqual(lockedDir ? ['EISDIR', 'EACCES'] : ['EISDIR']);
  expect(db.getSegment('cam1', T0)).toBeDefined();
});

test('deletes keyframes older than their own retention and their emptied day directory', async () => {
  const { db, base } = setup();
  const kf = (ms: number) => {
    const rel = `cam1/keyframes/${new Date(ms).toISOString().slice(0, 10)}/${ms}.jpg`;
    mkdirSync(dirname(join(base, rel)), { recursive: true });
    writeFileSync(join(base, rel), new Uint8Array(7));
    db.putKeyframe('cam1', ms, { path: rel, bytes: 7 });
    return rel;
  };
  const old = kf(T0), young = kf(NOW - DAY);
  await db.flushed();
  const r = await runRetention(opts(db, base, { keyframeRetentionMs: 5 * DAY }));
  expect(r).toMatchObject({ keyframesDeleted: 1, bytesFreed: 7, dirsRemoved: 1 });
  expect(existsSync(dirname(join(base, old)))).toBe(false);
  expect(existsSync(join(base, young))).toBe(true);
  expect(existsSync(join(base, 'cam1/keyframes'))).toBe(true);
  expect(db.queryKeyframes('cam1', 0, NOW, 10).map((k) => k.path)).toEqual([young]);
});

test('a per-stream retention override replaces the default for that stream only', async () => {
  const { db, base } = setup();
  for (const sid of ['short', 'long', 'plain']) addSegment(db, base, sid, NOW - 3 * DAY, 1);
  await db.flushed();
  const per = new Map([['short', 1 * DAY], ['long', 30 * DAY]]);
  const r = await runRetention(opts(db, base, { retentionMs: 2 * DAY, perStreamRetentionMs: per }));
  expect(r.segmentsDeleted).toBe(2);
  expect(db.segmentStreamIds()).toEqual(['long']);
});

test('stops at the budget and resumes on the next run', async () => {
  const { db, base } = setup();
  for (let i = 0; i < 5; i++) addSegment(db, base, 'cam1', T0 + i * MIN, 1);
  await db.flushed();
  const first = await runRetention(opts(db, base, { budget: 2 }));
  expect(first).toMatchObject({ segmentsDeleted: 2, budgetExhausted: true });
  expect(db.querySegments('cam1', 0, NOW).map((s) => (s.start_ms - T0) / MIN)).toEqual([2, 3, 4]);
  const rest = await runRetention(opts(db, base, { budget: 10 }));
  expect(rest).toMatchObject({ segmentsDeleted: 3, budgetExhausted: false, dirsRemoved: 2 });
});

test('the scheduler runs on its interval, never overlaps runs, and stops', async () => {
  const { db, base } = setup();
  addSegment(db, base, 'cam1', T0, 1);
  await db.flushed();
  const results: number[] = [];
  const h = startRetention({ ...opts(db, base), intervalMs: 5, now: () => NOW, onResult: (r) => results.push(r.segmentsDeleted) });
  const a = h.runNow(), b = h.runNow();
  expect(a).toBe(b);
  expect((await a).segmentsDeleted).toBe(1);
  for (let i = 0; i < 100 && results.length < 2; i++) await Bun.sleep(5);
  expect(results.slice(0, 2)).toEqual([0, 0]);
  await h.stop();
  await h.stop();
  await expect(h.runNow()).rejects.toThrow('stopped');
});

test('containedPath refuses paths that leave the base after normalisation', () => {
  expect(containedPath('/srv/rec', 'cam1/2023-11-14/22/1.mp4')).toBe('/srv/rec/cam1/2023-11-14/22/1.mp4');
  expect(containedPath('/srv/rec/', 'a/./b/../c.mp4')).toBe('/srv/rec/a/c.mp4');
  for (const p of ['..', '../rec2/x', 'a/../../x', '/etc/passwd', '', '.']) expect(containedPath('/srv/rec', p)).toBeUndefined();
  expect(containedPath('/srv/rec', '../record/x')).toBeUndefined(); // sibling with a longer name
});
