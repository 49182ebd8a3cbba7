// Recorded segments as the serving side sees them: index records resolved to files inside
// base_path, fragment byte ranges, and cached reads of each file's init and keyframe flags.
import { open, type FileHandle } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { unpackFragments, type IndexDb, type SegmentRecord } from '../engine/index-db.ts';
import { MAX_FRAGMENT_BYTES } from '../media/fmp4-fragment.ts';
import { readFragment, readInit, type InitInfo } from '../media/fmp4-read.ts';
import { ParseError } from '../media/types.ts';
import { HttpError } from './errors.ts';

/** Holes shorter than this between segments are timing wobble, not missing recording. */
export const GAP_TOLERANCE_MS = 1000;
/** Our init segments are ~1 KiB; a larger "init" means a corrupt fragment table. */
const MAX_INIT_BYTES = 1 << 20;
/** A moof is ~16 bytes per sample: 4 KiB covers a 1 s fragment at 240 fps; larger ones are read again. */
const MOOF_PROBE_BYTES = 4096;
/** Cached per-segment facts (init bytes, keyframe flags): ~2 KiB each, bounded. */
const CACHE_SEGMENTS = 2048;

export interface PlaySegment {
  rec: SegmentRecord;
  /** Absolute path, checked to lie inside base_path. */
  file: string;
  /** Fragment start times (ms since rec.start_ms) and byte offsets. */
  times: number[];
  offsets: number[];
}

/** Resolves an index path under `basePath`; refuses anything that would leave it. */
export function segmentFile(basePath: string, rel: string): string {
  const base = resolve(basePath);
  const abs = resolve(base, rel);
  if (!abs.startsWith(base + sep)) throw new HttpError(500, 'segment path outside the storage directory; index record refused');
  return abs;
}

/** Segments overlapping [start, end) that can be served: closed or repaired, with fragments. */
export function playableSegments(index: IndexDb, basePath: string, streamId: string, start: number, end: number): PlaySegment[] {
  const out: PlaySegment[] = [];
  for (const rec of index.querySegments(streamId, start, end)) {
    if (rec.state === 'open' || rec.fragments.length === 0) continue;
    const { times, offsets } = unpackFragments(rec.fragments);
    if (offsets[0]! <= 0 || offsets.at(-1)! >= rec.bytes) continue; // no init or no fragment bytes: not servable
    out.push({ rec, file: segmentFile(basePath, rec.path), times, offsets });
  }
  return out;
}

/**
 * Unrecorded stretches of [start, end) (ms pairs), edges included but clipped to the stream's
 * recorded life: before its first segment and after `now` nothing is missing.
 */
export function recordingGaps(index: IndexDb, streamId: string, start: number, end: number, now = Date.now()): Array<[number, number]> {
  const first = index.streamStats(streamId).firstStartMs;
  const a = Math.max(start, first ?? end), b = Math.min(end, now);
  return a < b ? index.gaps(streamId, a, b, GAP_TOLERANCE_MS, { edges: true, nowMs: now }) : [];
}

/** Byte range [from, to) of fragment `i`. */
export function fragmentRange(s: PlaySegment, i: number): [number, number] {
  return [s.offsets[i]!, i + 1 < s.offsets.length ? s.offsets[i + 1]! : s.rec.bytes];
}

/** Wall-clock [start, end) ms of fragment `i`. */
export function fragmentSpan(s: PlaySegment, i: number): [number, number] {
  const st = s.rec.start_ms;
  return [st + s.times[i]!, i + 1 < s.times.length ? st + s.times[i + 1]! : s.rec.end_ms];
}

/** Index of the last fragment starting at or before `ms` (0 if none). */
export function fragmentAt(s: PlaySegment, ms: number): number {
  let best = 0;
  for (let i = 0; i < s.times.length && s.rec.start_ms + s.times[i]! <= ms; i++) best = i;
  return best;
}

export async function readAt(fh: FileHandle, from: number, to: number): Promise<Uint8Array> {
  const n = to - from;
  if (n < 0 || n > MAX_FRAGMENT_BYTES) throw new ParseError(`fragment of ${n} bytes`, from);
  const buf = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, from + got);
    if (bytesRead === 0) throw new ParseError(`file ends ${n - got} bytes early`, from + got);
    got += bytesRead;
  }
  return buf;
}

export interface SegmentInit {
  bytes: Uint8Array;
  info: InitInfo;
}

/** Small LRU keyed by segment identity (path + size: a repaired file gets a new key). */
class Lru<V> {
  #m = new Map<string, V>();
  get(k: string): V | undefined {
    const v = this.#m.get(k);
    if (v !== undefined) { this.#m.delete(k); this.#m.set(k, v); }
    return v;
  }
  set(k: string, v: V): void {
    this.#m.set(k, v);
    if (this.#m.size > CACHE_SEGMENTS) this.#m.delete(this.#m.keys().next().value!);
  }
}

const keyOf = (s: PlaySegment) => `${s.file}\n${s.rec.bytes}`;

/** Reads (and caches) what playlists and streams need from segment files. */
export class RecordingFiles {
  #inits = new Lru<SegmentInit>();
  #keys = new Lru<boolean[]>();

  /** The init segment: bytes [0, first fragment) and its track table. Throws ParseError or an fs error. */
  async init(s: PlaySegment): Promise<SegmentInit> {
    const k = keyOf(s);
    const hit = this.#inits.get(k);
    if (hit) return hit;
    const end = s.offsets[0]!;
    if (end > MAX_INIT_BYTES) throw new ParseError(`init of ${end} bytes`, 0);
    const fh = await open(s.file, 'r');
    try {
      const bytes = await readAt(fh, 0, end);
      const v = { bytes, info: readInit(bytes) };
      this.#inits.set(k, v);
      return v;
    } finally {
      await fh.close();
    }
  }

  /**
   * Per fragment: does it start with a video sync sample? Read from each moof once (not the
   * media data) and cached. A fragment that cannot be parsed counts as not a keyframe.
   */
  async keyframes(s: PlaySegment): Promise<boolean[]> {
    const k = keyOf(s);
    const hit = this.#keys.get(k);
    if (hit) return hit;
    const { info } = await this.init(s);
    const video = info.tracks.findIndex((t) => t.video);
    const flags: boolean[] = [];
    const fh = await open(s.file, 'r');
    try {
      for (let i = 0; i < s.offsets.length; i++) {
        const [from, to] = fragmentRange(s, i);
        flags.push(await this.#startsWithSync(fh, info, video, from, to));
      }
    } finally {
      await fh.close();
    }
    this.#keys.set(k, flags);
    return flags;
  }

  async #startsWithSync(fh: FileHandle, info: InitInfo, video: number, from: number, to: number): Promise<boolean> {
    try {
      let head = await readAt(fh, from, Math.min(to, from + MOOF_PROBE_BYTES));
      const moofSize = head.length >= 4 ? new DataView(head.buffer).getUint32(0) : 0;
      if (moofSize + 8 > head.length && moofSize + 8 <= to - from) head = await readAt(fh, from, from + moofSize + 8);
      const f = readFragment(head, info, from, true);
      const run = f.runs.find((r) => r.track === video);
      return run !== undefined && run.samples[0]!.sync;
    } catch (e) {
      if (e instanceof ParseError) return false;
      throw e;
    }
  }
}
