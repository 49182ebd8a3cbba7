// Fragment builder: stages access units per track (one copy each) and emits moof + mdat as a
// list of parts, reusing its buffers from one fragment to the next.
import { SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC } from './fmp4-init.ts';
import { BoxWriter, fourcc } from './mp4-box.ts';
import { copyBytes } from './bytes.ts';
import type { AccessUnit, TrackInfo } from './types.ts';

/**
 * Cap on the media bytes of one fragment. A fragment is about a second or one GOP; a 10 s
 * GOP of 4K at 50 Mbit/s is ~62 MB. Keeps mdat within its 32-bit size and bounds the
 * staging memory a misbehaving (never-keyframing) stream can pin.
 */
export const MAX_FRAGMENT_BYTES = 64 << 20;
/**
 * Cap on the samples of one track in one fragment: a 60 s fragment at 240 fps; trun entries
 * are 16 bytes, so one track's moof part stays under 256 KiB.
 */
export const MAX_SAMPLES_PER_FRAGMENT = 16384;
/** Tracks in one movie: video + audio in practice; bounds the per-fragment loops. */
export const MAX_TRACKS = 8;

const MOOF = fourcc('moof'), MFHD = fourcc('mfhd'), TRAF = fourcc('traf'), TFHD = fourcc('tfhd');
const TFDT = fourcc('tfdt'), TRUN = fourcc('trun'), MDAT = fourcc('mdat');

// ISO/IEC 14496-12 §8.8.7 tfhd flags, §8.8.8 trun flags.
const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
const TRUN_DATA_OFFSET = 0x000001;
const TRUN_DURATION = 0x000100;
const TRUN_SIZE = 0x000200;
const TRUN_FLAGS = 0x000400;
const TRUN_CTS = 0x000800;

/** Staging block size: a 4 Mbit/s, 1 s fragment spans ~17; an AAC second fits in one. */
export const STAGE_BLOCK_BYTES = 32 << 10;
/** Idle blocks a pool keeps for the next fragments (4 MiB); more go to the GC. */
const MAX_IDLE_BLOCKS = 128;

/**
 * Staging memory shared by the fragment builders of one thread: fixed-size blocks, taken as
 * a fragment fills and handed back once it has been written. A stream then holds only what
 * its open fragment has filled (half a fragment on average, since streams are at different
 * points of theirs) instead of a buffer sized for its largest fragment ever.
 */
export class StageBlocks {
  #idle: Uint8Array[] = [];
  #out = 0;

  constructor(readonly blockBytes = STAGE_BLOCK_BYTES) {
    if (!(blockBytes >= 16 && blockBytes <= 1 << 24)) throw new RangeError(`block size ${blockBytes}`);
  }

  take(): Uint8Array {
    this.#out++;
    return this.#idle.pop() ?? new Uint8Array(this.blockBytes);
  }

  give(b: Uint8Array): void {
    this.#out--;
    if (this.#idle.length < MAX_IDLE_BLOCKS && b.length === this.blockBytes) this.#idle.push(b);
  }

  /** Blocks held by builders, and idle in the pool. */
  get stats(): { inUse: number; idle: number; blockBytes: number } {
    return { inUse: this.#out, idle: this.#idle.length, blockBytes: this.blockBytes };
  }
}

/** The pool builders use unless given another (one per thread: workers have their own module instance). */
export const sharedStageBlocks = new StageBlocks();

/** Per-track staging: media bytes in pool blocks plus the sample table of the current fragment. */
export class TrackStage {
  /** Blocks holding this fragment's bytes; all full but the last, which holds `tail` bytes. */
  blocks: Uint8Array[] = [];
  tail = 0;
  len = 0;
  count = 0;
  sizes: Uint32Array;
  durations: Uint32Array;
  flags: Uint32Array;
  cts: Int32Array;
  /** Any non-zero composition offset in this fragment (then trun carries them, version 1). */
  anyCts = false;

  constructor(
    readonly video: boolean,
    readonly pool: StageBlocks,
    samples: number,
  ) {
    this.sizes = new Uint32Array(samples);
    this.durations = new Uint32Array(samples);
    this.flags = new Uint32Array(samples);
    this.cts = new Int32Array(samples);
  }

  /** Hands the blocks back to the pool and empties the stage. */
  reset(): void {
    for (let i = 0; i < this.blocks.length; i++) this.pool.give(this.blocks[i]!);
    this.blocks.length = 0;
    this.tail = 0;
    this.len = 0;
    this.count = 0;
    this.anyCts = false;
  }

  /** Copies `src` after the staged bytes, spilling into new blocks. */
  write(src: Uint8Array): void {
    const bs = this.pool.blockBytes;
    let from = 0;
    while (from < src.length) {
      if (this.blocks.length === 0 || this.tail === bs) {
        this.blocks.push(this.pool.take());
        this.tail = 0;
      }
      const n = Math.min(bs - this.tail, src.length - from);
      copyBytes(src, from, from + n, this.blocks[this.blocks.length - 1]!, this.tail);
      this.tail += n;
      from += n;
    }
    this.len += src.length;
  }

  /** Appends a big-endian u32 (a NAL unit's length prefix), across a block boundary if need be. */
  writeU32(v: number): void {
    const bs = this.pool.blockBytes;
    for (let shift = 24; shift >= 0; shift -= 8) {
      if (this.blocks.length === 0 || this.tail === bs) {
        this.blocks.push(this.pool.take());
        this.tail = 0;
      }
      this.blocks[this.blocks.length - 1]![this.tail++] = (v >>> shift) & 0xff;
    }
    this.len += 4;
  }

  /** Views of the staged bytes, in order, pushed onto `parts`. */
  pushParts(parts: Uint8Array[]): void {
    const last = this.blocks.length - 1;
    for (let i = 0; i < last; i++) parts.push(this.blocks[i]!);
    if (last >= 0) parts.push(this.tail === this.pool.blockBytes ? this.blocks[last]! : this.blocks[last]!.subarray(0, this.tail));
  }

  reserveSample(): void {
    if (this.count < this.sizes.length) return;
    const cap = Math.min(this.sizes.length * 2, MAX_SAMPLES_PER_FRAGMENT);
    this.sizes = grow(this.sizes, new Uint32Array(cap));
    this.durations = grow(this.durations, new Uint32Array(cap));
    this.flags = grow(this.flags, new Uint32Array(cap));
    this.cts = grow(this.cts, new Int32Array(cap));
  }
}

function grow<T extends Uint32Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/**
 * Builds one moof+mdat at a time for a fixed set of tracks (track id = index + 1, as in
 * `initSegment`). Usage per fragment: `begin(seq)`, `addSample(...)`, … `finish(bases)`.
 */
export class FragmentBuilder {
  private readonly stages: TrackStage[];
  private readonly head: BoxWriter;
  private readonly parts: Uint8Array[] = [];
  private readonly truns: number[];
  private seq = 0;
  private open = false;
  private total = 0;

  /** `blocks`: where the media bytes are staged (the thread's shared pool unless given). */
  constructor(
    readonly tracks: TrackInfo[],
    blocks: StageBlocks = sharedStageBlocks,
  ) {
    if (tracks.length < 1 || tracks.length > MAX_TRACKS) throw new RangeError(`${tracks.length} tracks, want 1..${MAX_TRACKS}`);
    this.stages = tracks.map((t) => new TrackStage(t.kind === 'video', blocks, 64));
    this.head = new BoxWriter(1024, 1 << 24);
    this.truns = tracks.map(() => 0);
  }

  /** Start a fragment. Invalidates the views returned by the previous `finish()` (its blocks go back to the pool). */
  begin(sequenceNumber: number): void {
    this.seq = sequenceNumber >>> 0;
    for (const s of this.stages) s.reset();
    this.total = 0;
    this.open = true;
  }

  /**
   * Append one access unit to track `trackIndex` with `duration` ticks (0 if not yet known;
   * patch it with `setLastDuration`). Copies the NAL units once (video: 4-byte length
   * prefix each; audio: raw bytes) and never mutates them. Returns false, adding nothing,
   * when the fragment would exceed MAX_FRAGMENT_BYTES or MAX_SAMPLES_PER_FRAGMENT: finish
   * it and add the sample to the next one.
   */
  addSample(trackIndex: number, au: AccessUnit, duration: number): boolean {
    if (!this.open) throw new Error('addSample outside begin()/finish()');
    const s = this.stages[trackIndex];
    if (!s) throw new RangeError(`track index ${trackIndex} of ${this.stages.length}`);
    checkU32(duration, 'duration');
    const cts = au.pts - au.dts;
    if (cts !== (cts | 0)) throw new RangeError(`composition offset ${cts} not a 32-bit integer`);
    const nalus = au.nalus;
    let size = 0;
    for (let i = 0; i < nalus.length; i++) size += nalus[i]!.length + (s.video ? 4 : 0);
    if (this.total + size > MAX_FRAGMENT_BYTES || s.count >= MAX_SAMPLES_PER_FRAGMENT) return false;

    s.reserveSample();
    for (let i = 0; i < nalus.length; i++) {
      const n = nalus[i]!;
      if (s.video) s.writeU32(n.length);
      s.write(n);
    }
    const k = s.count++;
    s.sizes[k] = size;
    s.durations[k] = duration;
    s.flags[k] = !s.video || au.keyframe ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC;
    s.cts[k] = cts;
    if (cts !== 0) s.anyCts = true;
    this.total += size;
    return true;
  }

  /** Set the duration of the last sample added to `trackIndex` (known once the next AU arrives). */
  setLastDuration(trackIndex: number, duration: number): void {
    const s = this.stages[trackIndex];
    if (!s || s.count === 0) throw new RangeError(`no sample on track ${trackIndex} to patch`);
    checkU32(duration, 'duration');
    s.durations[s.count - 1] = duration;
  }

  sampleCount(trackIndex: number): number {
    return this.stages[trackIndex]?.count ?? 0;
  }

  /** Media bytes staged in the current fragment (all tracks). */
  get bytes(): number {
    return this.total;
  }

  /**
   * Close the fragment: `baseMediaDecodeTimes[i]` is the dts (track ticks) of track i's
   * first sample here, any safe integer >= 0 (written as 64-bit tfdt). Returns
   * [moof + mdat header, data of each track that has samples, in track order]; tracks
   * without samples are left out of the moof; a track's data may come as several parts (its
   * staging blocks). The array and its views are reused: valid until the next `begin()` or
   * `release()`.
   */
  finish(baseMediaDecodeTimes: readonly number[]): Uint8Array[] {
    if (!this.open) throw new Error('finish() without begin()');
    for (let t = 0; t < this.stages.length; t++) {
      const base = baseMediaDecodeTimes[t];
      if (this.stages[t]!.count > 0 && (base === undefined || !Number.isSafeInteger(base) || base < 0)) {
        throw new RangeError(`baseMediaDecodeTime ${base} for track ${t}`);
      }
    }
    this.open = false;
    const w = this.head;
    w.reset();
    const moof = w.open(MOOF);
    const mfhd = w.openFull(MFHD, 0, 0);
    w.u32(this.seq);
    w.close(mfhd);
    for (let t = 0; t < this.stages.length; t++) {
      const s = this.stages[t]!;
      if (s.count === 0) continue;
      this.truns[t] = writeTraf(w, s, t, baseMediaDecodeTimes[t]!);
    }
    w.close(moof);
    const moofSize = w.pos;
    w.u32(8 + this.total);
    w.u32(MDAT);

    // Patch each trun's data offset (relative to moof start, default-base-is-moof).
    const parts = this.parts;
    parts.length = 0;
    parts.push(w.result());
    let offset = moofSize + 8;
    for (let t = 0; t < this.stages.length; t++) {
      const s = this.stages[t]!;
      if (s.count === 0) continue;
      w.patchI32(this.truns[t]!, offset);
      offset += s.len;
      s.pushParts(parts);
    }
    return parts;
  }

  /** Hands the staging blocks back to the pool (the views from `finish()` become invalid).
   *  Call when the fragment has been written, or the builder is dropped. */
  release(): void {
    for (const s of this.stages) s.reset();
    this.total = 0;
    this.open = false;
  }
}

/** Bytes of a moof (mfhd included) before any traf. */
export const MOOF_FIXED_BYTES = 8 + 16;
/** Bytes of one traf without its trun entries: traf, tfhd, tfdt (64-bit), trun header with data offset. */
export const TRAF_FIXED_BYTES = 8 + 16 + 20 + 20;

/** Bytes `writeTraf` writes for a stage (the trun carries composition offsets when any is non-zero). */
export function trafBytes(count: number, anyCts: boolean): number {
  return TRAF_FIXED_BYTES + count * (anyCts ? 16 : 12);
}

/**
 * One traf of track index `t` (track id t + 1) for the samples of `s`, base-media-decode-time
 * `base`: tfhd (default-base-is-moof), tfdt v1, trun with duration, size, flags and, when any
 * is non-zero, composition offsets. Returns the position of the trun's data_offset field, to
 * patch once the data's place is known.
 */
export function writeTraf(w: BoxWriter, s: TrackStage, t: number, base: number): number {
  const traf = w.open(TRAF);
  const tfhd = w.openFull(TFHD, 0, TFHD_DEFAULT_BASE_IS_MOOF); // §8.8.7
  w.u32(t + 1);
  w.close(tfhd);
  const tfdt = w.openFull(TFDT, 1, 0); // §8.8.12, version 1: 64-bit
  w.u64(base);
  w.close(tfdt);
  const flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | (s.anyCts ? TRUN_CTS : 0);
  const trun = w.openFull(TRUN, s.anyCts ? 1 : 0, flags); // §8.8.8, version 1: signed offsets
  w.u32(s.count);
  const dataOffsetAt = w.pos;
  w.u32(0); // data_offset, patched by the caller
  w.ensure(s.count * 16);
  for (let i = 0; i < s.count; i++) {
    w.u32(s.durations[i]!);
    w.u32(s.sizes[i]!);
    w.u32(s.flags[i]!);
    if (s.anyCts) w.i32(s.cts[i]!);
  }
  w.close(trun);
  w.close(traf);
  return dataOffsetAt;
}

function checkU32(v: number, what: string): void {
  if (v !== v >>> 0) throw new RangeError(`${what} ${v} not a u32`);
}
