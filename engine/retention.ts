// The scheduled retention job: deletes expired segment and keyframe files found through the
// index (never by walking directories), then their records, then the hour/day directories
// those files emptied.
import { rmdir, unlink } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import type { IndexDb } from './index-db.ts';

export interface RetentionOptions {
  index: IndexDb;
  basePath: string;
  nowMs: number;
  retentionMs: number;
  keyframeRetentionMs: number;
  /** Per stream id, replaces retentionMs for that stream's segments. */
  perStreamRetentionMs?: Map<string, number>;
  /** Most segment records and most keyframe records handled in one run (each). */
  budget?: number;
}

export interface RetentionFailure {
  kind: 'segment' | 'keyframe';
  stream_id: string;
  ms: number;
  path: string;
  reason: string;
}

export interface RetentionResult {
  /** Records removed, including those whose file was already missing. */
  segmentsDeleted: number;
  bytesFreed: number;
  keyframesDeleted: number;
  /** Records removed whose file was already gone. */
  missingFiles: number;
  /** Records kept because their file could not be removed (or their path escapes basePath). */
  errors: number;
  /** The first MAX_REPORTED_FAILURES of those. */
  failures: RetentionFailure[];
  dirsRemoved: number;
  /** True when the budget ran out: more expired records are waiting for the next run. */
  budgetExhausted: boolean;
}

/** A day of 60 s segments for 100 cameras is 144k records: 10k per run every few minutes
 *  catches up without holding the main thread (index reads are synchronous) for long. */
export const DEFAULT_RETENTION_BUDGET = 10_000;
/** Unlinks in flight at once; each occupies a libuv pool thread, which ingest also needs. */
const UNLINK_CONCURRENCY = 8;
const MAX_REPORTED_FAILURES = 100;

type Removal = { kind: 'segment' | 'keyframe'; stream_id: string; ms: number; path: string; bytes: number };
type Outcome = 'deleted' | 'missing' | { reason: string };

export async function runRetention(o: RetentionOptions): Promise<RetentionResult> {
  const budget = o.budget ?? DEFAULT_RETENTION_BUDGET;
  for (const [name, v] of [['nowMs', o.nowMs], ['retentionMs', o.retentionMs], ['keyframeRetentionMs', o.keyframeRetentionMs], ['budget', budget]] as const)
    if (!Number.isSafeInteger(v) || v < (name === 'budget' ? 1 : 0)) throw new RangeError(`${name} must be a ${name === 'budget' ? 'positive' : 'non-negative'} integer, got ${v}`);
  const res: RetentionResult = {
    segmentsDeleted: 0, bytesFreed: 0, keyframesDeleted: 0, missingFiles: 0, errors: 0, failures: [], dirsRemoved: 0, budgetExhausted: false,
  };
  const root = resolve(o.basePath);
  const dirs = new Set<string>();

  // Segments: per stream, its own cutoff.
  const segs: Removal[] = [];
  for (const sid of o.index.segmentStreamIds()) {
    const keep = o.perStreamRetentionMs?.get(sid) ?? o.retentionMs;
    const cutoff = o.nowMs - keep;
    if (cutoff <= 0 || segs.length >= budget) continue;
    for (const s of o.index.segmentsEndingBefore(cutoff, budget - segs.length, sid))
      segs.push({ kind: 'segment', stream_id: s.stream_id, ms: s.start_ms, path: s.path, bytes: s.bytes });
  }
  if (segs.length >= budget) res.budgetExhausted = true;

  const kfCutoff = o.nowMs - o.keyframeRetentionMs;
  const kfs: Removal[] = kfCutoff <= 0 ? [] : o.index.keyframesBefore(kfCutoff, budget)
    .map((k) => ({ kind: 'keyframe' as const, stream_id: k.stream_id, ms: k.ms, path: k.path, bytes: k.bytes }));
  if (kfs.length >= budget) res.budgetExhausted = true;

  const all = segs.concat(kfs);
  for (let i = 0; i < all.length; i += UNLINK_CONCURRENCY) {
    const batch = all.slice(i, i + UNLINK_CONCURRENCY);
    const outcomes = await Promise.all(batch.map((r) => removeFile(root, r.path)));
    for (let j = 0; j < batch.length; j++) record(o.index, res, dirs, root, batch[j]!, outcomes[j]!);
  }
  res.dirsRemoved = await removeEmptiedDirs(dirs);
  await o.index.flushed();
  return res;
}

/** Unlinks the file before its record goes: a crash in between leaves a record whose file is
 *  missing, which the next run removes; the reverse order would leak files nothing points to. */
function record(index: IndexDb, res: RetentionResult, dirs: Set<string>, root: string, r: Removal, out: Outcome): void {
  if (typeof out === 'object') {
    res.errors++;
    if (res.failures.length < MAX_REPORTED_FAILURES) res.failures.push({ kind: r.kind, stream_id: r.stream_id, ms: r.ms, path: r.path, reason: out.reason });
    return;
  }
  if (out === 'missing') res.missingFiles++;
  else res.bytesFreed += r.bytes;
  if (r.kind === 'segment') { res.segmentsDeleted++; void index.deleteSegment(r.stream_id, r.ms); }
  else { res.keyframesDeleted++; void index.deleteKeyframe(r.stream_id, r.ms); }
  // Layout: <sid>/<day>/<hour>/<file> and <sid>/keyframes/<day>/<file>: hour and day, or day.
  const dir = dirname(resolve(root, r.path));
  addDirIfInside(dirs, root, dir);
  if (r.kind === 'segment') addDirIfInside(dirs, root, dirname(dir));
}

/** Joins under root; refuses any path that leaves it after normalisation. */
export function containedPath(root: string, rel: string): string | undefined {
  const base = resolve(root);
  const abs = resolve(base, rel);
  const prefix = base.endsWith(sep) ? base : base + sep;
  return abs.startsWith(prefix) ? abs : undefined;
}

async function removeFile(root: string, rel: string): Promise<Outcome> {
  const abs = containedPath(root, rel);
  if (abs === undefined) return { reason: 'path escapes basePath' };
  try {
    await unlink(abs);
    return 'deleted';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    return { reason: `unlink failed: ${code ?? String(e)}` };
  }
}

/** Only directories at least two levels below root (never root nor a stream's own directory). */
function addDirIfInside(dirs: Set<string>, root: string, dir: string): void {
  const abs = containedPath(root, dir);
  if (abs === undefined) return;
  if (relative(root, abs).split(sep).length >= 2) dirs.add(abs);
}

/** rmdir fails on a non-empty directory, so only directories emptied by this run go. Deepest first. */
async function removeEmptiedDirs(dirs: Set<string>): Promise<number> {
  let removed = 0;
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    try { await rmdir(d); removed++; } catch { /* not empty, already gone, or busy: leave it */ }
  }
  return removed;
}

export interface RetentionSchedule extends Omit<RetentionOptions, 'nowMs'> {
  intervalMs: number;
  /** Clock for each run; Date.now by default. */
  now?: () => number;
  onResult?: (r: RetentionResult) => void;
  onError?: (e: unknown) => void;
}

export interface RetentionHandle {
  /** Runs now, or returns the run already in progress (runs never overlap). */
  runNow(): Promise<RetentionResult>;
  /** Idempotent; resolves when a run in progress has finished. */
  stop(): Promise<void>;
}

export function startRetention(o: RetentionSchedule): RetentionHandle {
  if (!Number.isInteger(o.intervalMs) || o.intervalMs < 1) throw new RangeError(`intervalMs must be a positive integer, got ${o.intervalMs}`);
  const now = o.now ?? Date.now;
  let running: Promise<RetentionResult> | undefined;
  let stopped = false;
  const runNow = (): Promise<RetentionResult> => {
    if (running) return running;
    if (stopped) return Promise.reject(new Error('retention stopped'));
    const p = runRetention({ ...o, nowMs: now() });
    running = p;
    const done = () => { if (running === p) running = undefined; };
    p.then(done, done);
    return p;
  };
  const timer = setInterval(() => {
    if (running) return;
    runNow().then((r) => o.onResult?.(r), (e: unknown) => (o.onError ?? ((x) => console.error('retention run failed:', x)))(e));
  }, o.intervalMs);
  timer.unref();
  return {
    runNow,
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (running) await running.then(() => undefined, () => undefined);
    },
  };
}
