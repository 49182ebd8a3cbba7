// The LMDB index of FLUX video (segments, keyframes, streams, devices, events); the main
// thread is its only writer. Writes are lmdb-js async puts (batched per event turn into one
// transaction); reads are synchronous and see committed data, except point reads of segments,
// which also see this process's not-yet-committed writes (read-your-writes overlay).
import { open, type Database, type Key, type RootDatabase } from 'lmdb';

export type SegmentState = 'open' | 'closed' | 'repaired';

export interface SegmentRecord {
  stream_id: string;
  start_ms: number;
  /** For an open segment: its latest known end (start_ms until extended). */
  end_ms: number;
  /** Relative to the storage base_path. */
  path: string;
  backend: 'local';
  bytes: number;
  codecs: string[];
  width: number;
  height: number;
  state: SegmentState;
  /** Packed fragment table, see packFragments(). */
  fragments: Uint8Array;
  segment_number: number;
}

/** Fragment start times (ms since segment start) and their byte offsets, both non-decreasing. */
export interface FragmentTable { times: number[]; offsets: number[] }
type Fragments = Uint8Array | FragmentTable;

export type SegmentOpen = Omit<SegmentRecord, 'state' | 'end_ms' | 'bytes' | 'fragments' | 'backend'> &
  { end_ms?: number; bytes?: number; fragments?: Fragments; backend?: 'local' };
export interface SegmentPatch { end_ms: number; bytes: number; fragments?: Fragments }
export interface SegmentClosePatch extends SegmentPatch { state?: 'closed' | 'repaired' }

export interface StreamStats { count: number; bytes: number; firstStartMs: number | null; lastEndMs: number | null }
export interface KeyframeRecord { path: string; bytes: number }
export interface KeyframeEntry extends KeyframeRecord { stream_id: string; ms: number }
export interface StreamRecord {
  stream_id: string;
  protocol: 'rtsp' | 'rtmp' | 'gb28181' | 'webrtc' | 'file';
  source_url: string;
  record: boolean;
  publish_key?: string;
  origin: 'config' | 'api';
  created_ms: number;
}
export interface EventEntry { ms: number; seq: number; event: Record<string, unknown> }
export interface IndexOptions {
  /** How far before a query's start to keep walking back past the first predecessor. */
  segmentLookbackMs?: number;
  /** Skip fsync (tests, throw-away indexes only). */
  noSync?: boolean;
}

export type IndexErrorCode = 'invalid' | 'not-found' | 'closed' | 'write-failed';
export class IndexError extends Error {
  override name = 'IndexError';
  constructor(readonly code: IndexErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Segments of one stream never overlap (the recorder closes one before opening the next), so the
 *  immediate predecessor of a query's start is always examined whatever its length; further back we
 *  only walk this far, to tolerate overlaps left by crash repair. 12x the longest segment (300 s). */
export const DEFAULT_SEGMENT_LOOKBACK_MS = 3_600_000;
/** Bound on records walked back in one query, whatever the lookback (a corrupt index must not stall). */
const MAX_LOOKBACK_RECORDS = 1_000;
/** Largest result a caller may ask for in one call (keeps a bad request from building huge arrays). */
export const MAX_QUERY_LIMIT = 100_000;
/** Per-frame fragments for 300 s at 60 fps = 18k; x3 for longer segments. */
export const MAX_FRAGMENTS = 65_536;
const MAX_PATH_CHARS = 1_024;
const MAX_FIELD_CHARS = 2_048;
/** Above every valid time, so [id, KEY_MAX] bounds a whole stream's key range. */
const KEY_MAX = 2 ** 53;
const STREAM_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const PROTOCOLS = new Set(['rtsp', 'rtmp', 'gb28181', 'webrtc', 'file']);

const invalid = (msg: string) => new IndexError('invalid', msg);
export function checkId(id: unknown, what = 'stream id'): string {
  if (typeof id !== 'string' || !STREAM_ID_RE.test(id) || id.includes('..')) throw invalid(`bad ${what}: ${JSON.stringify(id)}`);
  return id;
}
function checkMs(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(`${what} must be a non-negative integer, got ${String(v)}`);
  return v;
}
function checkLimit(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_QUERY_LIMIT) throw invalid(`limit must be 1..${MAX_QUERY_LIMIT}, got ${String(v)}`);
  return v;
}
function checkText(v: unknown, what: string, max = MAX_FIELD_CHARS): string {
  if (typeof v !== 'string' || v.length > max || v.includes('\0')) throw invalid(`bad ${what}`);
  return v;
}
/** A relative path with no '..' component; retention checks containment again before unlinking. */
function checkRelPath(p: unknown): string {
  const s = checkText(p, 'path', MAX_PATH_CHARS);
  if (s === '' || s.startsWith('/') || s.startsWith('\\') || s.split(/[\\/]/).includes('..')) throw invalid(`bad relative path: ${JSON.stringify(s)}`);
  return s;
}

/** Packs a fragment table as 8 bytes per fragment: u32 LE time delta (ms) and u32 LE byte-offset
 *  delta from the previous fragment (the first from 0), exact for offsets up to 2^53. */
export function packFragments(t: FragmentTable): Uint8Array {
  const n = t.times.length;
  if (n !== t.offsets.length || n > MAX_FRAGMENTS) throw invalid(`fragment table: ${n} times, ${t.offsets.length} offsets (max ${MAX_FRAGMENTS})`);
  const out = new Uint8Array(n * 8);
  const dv = new DataView(out.buffer);
  let pt = 0, po = 0;
  for (let i = 0; i < n; i++) {
    const ti = t.times[i]!, oi = t.offsets[i]!;
    const dt = ti - pt, dof = oi - po;
    if (!Number.isSafeInteger(ti) || !Number.isSafeInteger(oi) || dt < 0 || dof < 0 || dt > 0xffffffff || dof > 0xffffffff)
      throw invalid(`fragment ${i}: time ${ti}, offset ${oi} not non-decreasing within u32 steps`);
    dv.setUint32(i * 8, dt, true); dv.setUint32(i * 8 + 4, dof, true);
    pt = ti; po = oi;
  }
  return out;
}
export function unpackFragments(b: Uint8Array): FragmentTable {
  const n = b.length >>> 3, times = new Array<number>(n), offsets = new Array<number>(n);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let t = 0, o = 0;
  for (let i = 0; i < n; i++) { t += dv.getUint32(i * 8, true); o += dv.getUint32(i * 8 + 4, true); times[i] = t; offsets[i] = o; }
  return { times, offsets };
}
/** Byte offset of the last fragment starting at or before `msSinceStart` (0 if none). */
export function fragmentOffsetAt(b: Uint8Array, msSinceStart: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let t = 0, o = 0, best = 0;
  for (let i = 0; i + 8 <= b.length; i += 8) {
    t += dv.getUint32(i, true); o += dv.getUint32(i + 4, true);
    if (t > msSinceStart) break;
    best = o;
  }
  return best;
}
function toPacked(f: Fragments | undefined): Uint8Array {
  if (f === undefined) return new Uint8Array(0);
  if (f instanceof Uint8Array) {
    if (f.length % 8 !== 0 || f.length > MAX_FRAGMENTS * 8) throw invalid(`packed fragments length ${f.length}`);
    return f;
  }
  return packFragments(f);
}

type SegKey = [string, number];
type Pending = { rec: SegmentRecord | undefined; gen: number };
type Counts = { count: number; bytes: number };

export class IndexDb {
  private readonly segments: Database<SegmentRecord, SegKey>;
  private readonly stats: Database<Counts, string>;
  /** Keys of segments in state 'open' (secondary index: start-up recovery reads only these). */
  private readonly openSegs: Database<1, SegKey>;
  private readonly keyframes: Database<KeyframeRecord, SegKey>;
  private readonly streams: Database<StreamRecord, string>;
  private readonly devices: Database<Record<string, unknown>, string>;
  /** GB28181 channels keyed [device id, channel id] (engine/gb28181-store.ts). */
  private readonly gbChannels: Database<Record<string, unknown>, [string, string]>;
  private readonly events: Database<Record<string, unknown>, [number, number]>;
  /** Segment writes not yet committed, so point reads and read-modify-write see them. */
  private readonly pending = new Map<string, Pending>();
  private readonly counts = new Map<string, Counts>();
  private readonly lookbackMs: number;
  private gen = 0;
  private eventSeq = 0;
  private writeError: unknown = undefined;
  private closing: Promise<void> | undefined;

  private constructor(private readonly root: RootDatabase, opts: IndexOptions) {
    this.lookbackMs = opts.segmentLookbackMs ?? DEFAULT_SEGMENT_LOOKBACK_MS;
    this.segments = root.openDB({ name: 'segments' });
    this.stats = root.openDB({ name: 'segment-stats' });
    this.openSegs = root.openDB({ name: 'segments-open' });
    this.keyframes = root.openDB({ name: 'keyframes' });
    this.streams = root.openDB({ name: 'streams' });
    this.devices = root.openDB({ name: 'devices' });
    this.gbChannels = root.openDB({ name: 'gb28181-channels' });
    this.events = root.openDB({ name: 'events' });
    for (const k of this.events.getKeys({ reverse: true, limit: 1 })) this.eventSeq = (k[1] ?? 0) + 1;
  }

  static open(path: string, opts: IndexOptions = {}): IndexDb {
    checkText(path, 'index path');
    if (opts.segmentLookbackMs !== undefined) checkMs(opts.segmentLookbackMs, 'segmentLookbackMs');
    return new IndexDb(open({ path, maxDbs: 12, noSync: opts.noSync === true }), opts);
  }

  /** Resolves when every write issued so far is committed and synced; throws the first failed write. */
  async flushed(): Promise<void> {
    this.live();
    await this.root.flushed;
    const e = this.writeError;
    if (e !== undefined) { this.writeError = undefined; throw new IndexError('write-failed', `index write failed: ${String(e)}`, { cause: e }); }
  }

  /** Idempotent; pending writes are committed before the environment closes. */
  close(): Promise<void> {
    this.closing ??= this.root.close().then(() => undefined);
    return this.closing;
  }

  // ---- segments ----

  /** Records a segment the recorder just opened (state 'open'). */
  openSegment(r: SegmentOpen): Promise<boolean> {
    return this.putSegment({ ...r, state: 'open' });
  }

  /** Writes a whole record in any state (replication from other nodes, imports, tests). */
  putSegment(r: SegmentOpen & { state: SegmentState }): Promise<boolean> {
    this.live();
    const sid = checkId(r.stream_id), start = checkMs(r.start_ms, 'start_ms');
    const end = r.end_ms === undefined ? start : checkMs(r.end_ms, 'end_ms');
    if (end < start) throw invalid(`end_ms ${end} < start_ms ${start}`);
    if (r.backend !== undefined && r.backend !== 'local') throw invalid(`backend ${String(r.backend)}`);
    if (r.state !== 'open' && r.state !== 'closed' && r.state !== 'repaired') throw invalid(`state ${String(r.state)}`);
    if (!Array.isArray(r.codecs) || r.codecs.length > 8) throw invalid('codecs must be an array of up to 8 names');
    const rec: SegmentRecord = {
      stream_id: sid, start_ms: start, end_ms: end, path: checkRelPath(r.path), backend: 'local',
      bytes: checkMs(r.bytes ?? 0, 'bytes'), codecs: r.codecs.map((c) => checkText(c, 'codec', 16)),
      width: checkMs(r.width, 'width'), height: checkMs(r.height, 'height'), state: r.state,
      fragments: toPacked(r.fragments), segment_number: checkMs(r.segment_number, 'segment_number'),
    };
    const old = this.getSegment(sid, start);
    this.adjust(sid, old ? 0 : 1, rec.bytes - (old?.bytes ?? 0));
    return this.writeSegment(sid, start, rec);
  }

  /** Updates an open segment's latest known end, size and fragments (it stays open). */
  extendSegment(streamId: string, startMs: number, patch: SegmentPatch): Promise<boolean> {
    return this.patchSegment(streamId, startMs, patch, 'open');
  }

  closeSegment(streamId: string, startMs: number, patch: SegmentClosePatch): Promise<boolean> {
    const state = patch.state ?? 'closed';
    if (state !== 'closed' && state !== 'repaired') throw invalid(`close state ${String(state)}`);
    return this.patchSegment(streamId, startMs, patch, state);
  }

  getSegment(streamId: string, startMs: number): SegmentRecord | undefined {
    this.live();
    const sid = checkId(streamId), start = checkMs(startMs, 'start_ms');
    const p = this.pending.get(sid + '\n' + start);
    return p ? p.rec : this.segments.get([sid, start]);
  }

  deleteSegment(streamId: string, startMs: number): Promise<boolean> {
    const old = this.getSegment(streamId, startMs);
    if (old) this.adjust(streamId, -1, -old.bytes);
    return this.writeSegment(streamId, startMs, undefined);
  }

  /** Segments overlapping [startMs, endMs) (start < endMs && end > startMs), in start order. An open
   *  segment ends at max(end_ms, nowMs) when nowMs is given, else at its latest known end_ms. */
  querySegments(streamId: string, startMs: number, endMs: number, nowMs?: number): SegmentRecord[] {
    this.live();
    const sid = checkId(streamId), a = checkMs(startMs, 'start'), b = checkMs(endMs, 'end');
    const now = nowMs === undefined ? undefined : checkMs(nowMs, 'nowMs');
    if (b <= a) return [];
    const endOf = (s: SegmentRecord) => (s.state === 'open' && now !== undefined && now > s.end_ms ? now : s.end_ms);
    // Walk back from the range start: always the first predecessor, then only within the lookback.
    const before: SegmentRecord[] = [];
    let walked = 0;
    for (const { value } of this.segments.getRange({ start: [sid, a], end: [sid], reverse: true, exclusiveStart: true })) {
      if (walked > 0 && (value.start_ms < a - this.lookbackMs || walked >= MAX_LOOKBACK_RECORDS)) break;
      walked++;
      if (endOf(value) > a) before.push(value);
    }
    const out = before.reverse();
    for (const { value } of this.segments.getRange({ start: [sid, a], end: [sid, b] })) if (endOf(value) > a) out.push(value);
    return out;
  }

  /** Every segment still marked open (crash recovery at start-up), across all streams. */
  listOpenSegments(): SegmentRecord[] {
    this.live();
    const out: SegmentRecord[] = [];
    for (const key of this.openSegs.getKeys({})) {
      const rec = this.segments.get(key);
      if (rec?.state === 'open') out.push(rec);
    }
    return out;
  }

  /** Closed or repaired segments whose end_ms < cutoffMs, oldest first per stream, at most `limit`.
   *  One key range per stream from its start up to the cutoff, so only old records are read. */
  segmentsEndingBefore(cutoffMs: number, limit: number, streamId?: string): SegmentRecord[] {
    this.live();
    const cutoff = checkMs(cutoffMs, 'cutoff'), max = checkLimit(limit);
    const out: SegmentRecord[] = [];
    for (const sid of streamId === undefined ? this.segmentStreamIds() : [checkId(streamId)]) {
      for (const { value } of this.segments.getRange({ start: [sid], end: [sid, cutoff] })) {
        if (value.end_ms >= cutoff) break; // later segments start after this one ends
        if (value.state === 'open') continue; // left for crash repair
        out.push(value);
        if (out.length >= max) return out;
      }
    }
    return out;
  }

  /** Stream ids that have segment records (one seek per stream, not a scan). */
  segmentStreamIds(): string[] { this.live(); return distinctIds(this.segments); }

  /** Count and bytes are kept incrementally (persisted with each write); first/last by one-key ranges. */
  streamStats(streamId: string): StreamStats {
    this.live();
    const sid = checkId(streamId), c = this.loadCounts(sid);
    let firstStartMs: number | null = null, lastEndMs: number | null = null;
    for (const { value } of this.segments.getRange({ start: [sid], end: [sid, KEY_MAX], limit: 1 })) firstStartMs = value.start_ms;
    for (const { value } of this.segments.getRange({ start: [sid, KEY_MAX], end: [sid], reverse: true, limit: 1 })) lastEndMs = value.end_ms;
    return { count: c.count, bytes: c.bytes, firstStartMs, lastEndMs };
  }

  /** Recomputes a stream's count and bytes from its records (repair after a failed write). */
  rebuildStats(streamId: string): Counts {
    this.live();
    const sid = checkId(streamId), c = { count: 0, bytes: 0 };
    for (const { value } of this.segments.getRange({ start: [sid], end: [sid, KEY_MAX] })) { c.count++; c.bytes += value.bytes; }
    this.counts.set(sid, c);
    void this.track(c.count > 0 ? this.stats.put(sid, { ...c }) : this.stats.remove(sid));
    return c;
  }

  /** Holes in recording inside [startMs, endMs): where a segment starts more than toleranceMs after
   *  the previous one ended. With `edges`, uncovered parts at the range's start and end too. */
  gaps(streamId: string, startMs: number, endMs: number, toleranceMs: number, opts: { edges?: boolean; nowMs?: number } = {}): Array<[number, number]> {
    const tol = checkMs(toleranceMs, 'toleranceMs');
    const segs = this.querySegments(streamId, startMs, endMs, opts.nowMs);
    const out: Array<[number, number]> = [];
    let covered = opts.edges ? startMs : -1;
    for (const s of segs) {
      const end = s.state === 'open' && opts.nowMs !== undefined && opts.nowMs > s.end_ms ? opts.nowMs : s.end_ms;
      if (covered >= 0 && s.start_ms - covered > tol) out.push([covered, s.start_ms]);
      if (end > covered) covered = end;
    }
    if (opts.edges && endMs > startMs && endMs - covered > tol) out.push([covered, endMs]);
    return out;
  }

  // ---- keyframes ----

  putKeyframe(streamId: string, ms: number, rec: KeyframeRecord): Promise<boolean> {
    this.live();
    const v: KeyframeRecord = { path: checkRelPath(rec.path), bytes: checkMs(rec.bytes, 'bytes') };
    return this.track(this.keyframes.put([checkId(streamId), checkMs(ms, 'ms')], v));
  }
  /** Keyframes with start <= ms < end, oldest first. */
  queryKeyframes(streamId: string, startMs: number, endMs: number, limit: number): KeyframeEntry[] {
    this.live();
    const sid = checkId(streamId), out: KeyframeEntry[] = [];
    const range = this.keyframes.getRange({ start: [sid, checkMs(startMs, 'start')], end: [sid, checkMs(endMs, 'end')], limit: checkLimit(limit) });
    for (const { key, value } of range) out.push({ stream_id: sid, ms: key[1], path: value.path, bytes: value.bytes });
    return out;
  }
  /** Keyframes with ms < cutoffMs over all streams, oldest first per stream, at most `limit`. */
  keyframesBefore(cutoffMs: number, limit: number): KeyframeEntry[] {
    this.live();
    const cutoff = checkMs(cutoffMs, 'cutoff'), max = checkLimit(limit), out: KeyframeEntry[] = [];
    for (const sid of distinctIds(this.keyframes)) {
      for (const { key, value } of this.keyframes.getRange({ start: [sid], end: [sid, cutoff], limit: max - out.length }))
        out.push({ stream_id: sid, ms: key[1], path: value.path, bytes: value.bytes });
      if (out.length >= max) break;
    }
    return out;
  }
  deleteKeyframe(streamId: string, ms: number): Promise<boolean> {
    this.live();
    return this.track(this.keyframes.remove([checkId(streamId), checkMs(ms, 'ms')]));
  }

  // ---- streams ----

  putStream(r: StreamRecord): Promise<boolean> {
    this.live();
    const sid = checkId(r.stream_id);
    if (!PROTOCOLS.has(r.protocol)) throw invalid(`protocol ${String(r.protocol)}`);
    if (r.origin !== 'config' && r.origin !== 'api') throw invalid(`origin ${String(r.origin)}`);
    if (typeof r.record !== 'boolean') throw invalid('record must be a boolean');
    const rec: StreamRecord = {
      stream_id: sid, protocol: r.protocol, source_url: checkText(r.source_url, 'source_url'), record: r.record,
      origin: r.origin, created_ms: checkMs(r.created_ms, 'created_ms'),
    };
    if (r.publish_key !== undefined) rec.publish_key = checkText(r.publish_key, 'publish_key', 256);
    return this.track(this.streams.put(sid, rec));
  }
  getStream(streamId: string): StreamRecord | undefined { this.live(); return this.streams.get(checkId(streamId)); }
  listStreams(): StreamRecord[] { this.live(); return Array.from(this.streams.getRange({}), (e) => e.value); }
  deleteStream(streamId: string): Promise<boolean> { this.live(); return this.track(this.streams.remove(checkId(streamId))); }

  // ---- GB28181 devices (placeholder: opaque records keyed by device id) ----

  putDevice(deviceId: string, rec: Record<string, unknown>): Promise<boolean> {
    this.live();
    if (typeof rec !== 'object' || rec === null) throw invalid('device record must be an object');
    return this.track(this.devices.put(checkId(deviceId, 'device id'), rec));
  }
  getDevice(deviceId: string): Record<string, unknown> | undefined { this.live(); return this.devices.get(checkId(deviceId, 'device id')); }
  listDevices(): Array<{ id: string; rec: Record<string, unknown> }> {
    this.live();
    return Array.from(this.devices.getRange({}), (e) => ({ id: e.key, rec: e.value }));
  }
  deleteDevice(deviceId: string): Promise<boolean> { this.live(); return this.track(this.devices.remove(checkId(deviceId, 'device id'))); }
  putGbChannel(deviceId: string, channelId: string, rec: Record<string, unknown>): Promise<boolean> {
    this.live();
    return this.track(this.gbChannels.put([checkId(deviceId, 'device id'), checkId(channelId, 'channel id')], rec));
  }
  listGbChannels(deviceId: string): Array<{ id: string; rec: Record<string, unknown> }> {
    this.live();
    const d = checkId(deviceId, 'device id');
    return Array.from(this.gbChannels.getRange({ start: [d], end: [d, '\uffff'] }), (e) => ({ id: e.key[1], rec: e.value }));
  }
  deleteGbChannel(deviceId: string, channelId: string): Promise<boolean> {
    this.live();
    return this.track(this.gbChannels.remove([checkId(deviceId, 'device id'), checkId(channelId, 'channel id')]));
  }

  // ---- events ----

  /** Appends under [ms, seq]; seq is a process-wide counter continued from the last stored event,
   *  so two events in one millisecond (or a clock step back) never share a key. */
  appendEvent(ms: number, event: Record<string, unknown>): Promise<boolean> {
    this.live();
    if (typeof event !== 'object' || event === null || Array.isArray(event)) throw invalid('event must be an object');
    const seq = this.eventSeq;
    this.eventSeq = (seq + 1) % KEY_MAX;
    return this.track(this.events.put([checkMs(ms, 'ms'), seq], event));
  }
  /** Newest first. */
  recentEvents(limit: number): EventEntry[] {
    this.live();
    return Array.from(this.events.getRange({ reverse: true, limit: checkLimit(limit) }), (e) => ({ ms: e.key[0], seq: e.key[1], event: e.value }));
  }

  // ---- internals ----

  private live(): void {
    if (this.closing) throw new IndexError('closed', 'index is closed');
  }

  private patchSegment(streamId: string, startMs: number, patch: SegmentPatch, state: SegmentState): Promise<boolean> {
    const old = this.getSegment(streamId, startMs);
    if (!old) throw new IndexError('not-found', `no segment ${streamId}@${startMs}`);
    const end = checkMs(patch.end_ms, 'end_ms'), bytes = checkMs(patch.bytes, 'bytes');
    if (end < old.start_ms) throw invalid(`end_ms ${end} < start_ms ${old.start_ms}`);
    const rec: SegmentRecord = { ...old, end_ms: end, bytes, state, fragments: patch.fragments === undefined ? old.fragments : toPacked(patch.fragments) };
    this.adjust(old.stream_id, 0, bytes - old.bytes);
    return this.writeSegment(old.stream_id, old.start_ms, rec);
  }

  private writeSegment(sid: string, start: number, rec: SegmentRecord | undefined): Promise<boolean> {
    const k = sid + '\n' + start, gen = ++this.gen;
    this.pending.set(k, { rec, gen });
    const p = rec ? this.segments.put([sid, start], rec) : this.segments.remove([sid, start]);
    void this.track(rec?.state === 'open' ? this.openSegs.put([sid, start], 1) : this.openSegs.remove([sid, start]));
    const settle = () => { if (this.pending.get(k)?.gen === gen) this.pending.delete(k); };
    p.then(settle, settle);
    return this.track(p);
  }

  private loadCounts(sid: string): Counts {
    let c = this.counts.get(sid);
    if (c) return c;
    const stored = this.stats.get(sid);
    if (stored) { c = { count: stored.count, bytes: stored.bytes }; this.counts.set(sid, c); return c; }
    return this.rebuildStats(sid); // an index written before stats existed, or a lost stats write
  }

  /** Same event turn as the segment write, so both land in one LMDB transaction. */
  private adjust(sid: string, dCount: number, dBytes: number): void {
    const c = this.loadCounts(sid);
    c.count += dCount; c.bytes += dBytes;
    void this.track(c.count > 0 ? this.stats.put(sid, { count: c.count, bytes: c.bytes }) : this.stats.remove(sid));
  }

  /** Remembers a failed write for flushed() and keeps the rejection from going unhandled. */
  private track(p: Promise<boolean>): Promise<boolean> {
    p.then(undefined, (e: unknown) => { this.writeError ??= e; });
    return p;
  }
}

/** Distinct first key elements by skip-scan: one single-key range per stream id. */
function distinctIds(db: Database<unknown, SegKey>): string[] {
  const ids: string[] = [];
  let start: Key | undefined = undefined;
  for (;;) {
    let next: string | undefined;
    for (const k of db.getKeys(start === undefined ? { limit: 1 } : { start, limit: 1 })) next = Array.isArray(k) && typeof k[0] === 'string' ? k[0] : undefined;
    if (next === undefined) return ids;
    ids.push(next);
    start = [next, KEY_MAX];
  }
}
