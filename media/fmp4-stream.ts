// Streamed fMP4 fragments: the recorder's fragment writer. The clock track's samples go
// straight into aligned blocks that are handed to the disk as they fill, so a stream holds
// one partly filled block instead of its whole open fragment; the moof, which needs every
// sample of the fragment, is written last into room reserved in front of the data.
//
// One fragment on disk (file offsets; `align` is the write alignment, e.g. 4096):
//
//   X (aligned)                     X + R (aligned)                        end (aligned)
//   +--------+------+------+-------+------------------------+-------+-----+
//   | prefix | moof | mdat | slack | track 0 samples        | other | pad |
//   | (init) |      | hdr  | zeros | (streamed block by     | track |     |
//   |        |      |      |       |  block while it runs)  | data  |     |
//   +--------+------+------+-------+------------------------+-------+-----+
//   \______ header region, R bytes, written last ______/ \___ data blocks, written first _/
//
// Every top-level box is still ftyp, moov (the prefix, first fragment of a file only), moof,
// mdat, so any reader takes the file as it is; the slack and the pad are unreferenced bytes
// inside the mdat (ISO/IEC 14496-12 §8.1.1: samples are found by the offsets in the trun).
// Every fragment starts and ends on the alignment, so every write is whole aligned blocks
// (O_DIRECT needs nothing else) and no byte is written twice. The header is handed over
// with the fragment's end as its commit point: the sink writes it only after every earlier
// write of the file has landed, so a crash leaves whole fragments and, after them, a header
// region of zeros (which readers and the recovery scan take as the end).
//
// Other tracks (audio: ~16 KB a second) are held in small staging blocks and follow the clock
// track's samples when the fragment ends, so each track keeps one contiguous run (one trun).
import { MOOF_FIXED_BYTES, StageBlocks, TrackStage, MAX_FRAGMENT_BYTES, MAX_SAMPLES_PER_FRAGMENT, MAX_TRACKS, trafBytes, writeTraf } from './fmp4-fragment.ts';
import { SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC } from './fmp4-init.ts';
import { BoxWriter, fourcc } from './mp4-box.ts';
import { copyBytes } from './bytes.ts';
import type { AccessUnit, TrackInfo } from './types.ts';

const MOOF = fourcc('moof'), MFHD = fourcc('mfhd'), MDAT = fourcc('mdat');
const MDAT_HEADER_BYTES = 8;
/** The smallest moof room reserved: a 1 s fragment of 25 fps video and 48 kHz AAC needs ~1.1 KB. */
const MIN_MOOF_ROOM = 1024;
/** Room for the next fragment's moof: the last one's size times this, so it rarely fills. */
const MOOF_ROOM_GROWTH = 1.5;
/** Held (non-clock) tracks stage in blocks of this size: an AAC second at 128 kbit/s is 16 KB. */
export const HELD_BLOCK_BYTES = 8 << 10;

/**
 * Where the streamer's blocks come from and go. Blocks are `blockBytes` long (a multiple of
 * `align`); offsets and lengths handed to `put` are multiples of `align`.
 */
export interface BlockSink {
  readonly blockBytes: number;
  readonly align: number;
  /** A free block to fill, or null when none is free (the disk is behind). */
  take(): Uint8Array | null;
  /**
   * The first `len` bytes of `block` belong at file offset `offset`; the block is the sink's
   * from now on, even when this throws (a write error of the file). `commitEnd` > 0 marks a
   * fragment header: write it after every earlier write of the file has completed; the file
   * holds whole fragments up to `commitEnd` once it has.
   */
  put(block: Uint8Array, offset: number, len: number, commitEnd: number): void;
  /** Gives back a block that will not be written. */
  drop(block: Uint8Array): void;
}

/** addSample results. */
export const ADDED = 0;
/** The fragment has no room for the sample (moof room, byte or sample caps): finish it first. */
export const FRAGMENT_FULL = 1;
/** The sink had no free block: the fragment cannot go on (abort it). */
export const NO_BLOCK = 2;
export type AddResult = typeof ADDED | typeof FRAGMENT_FULL | typeof NO_BLOCK;

export interface FinishedFragment {
  /** File offset of the fragment (where its header region, and the moof or prefix, starts). */
  offset: number;
  /** File offset of the moof (after the prefix). */
  moofOffset: number;
  /** File offset just past the fragment (aligned): where the next one starts. */
  end: number;
}

/** Streams one segment file's fragments into a BlockSink. See the layout above. */
export class FragmentStreamer {
  readonly tracks: TrackInfo[];
  readonly #sink: BlockSink;
  readonly #stages: TrackStage[];
  readonly #head = new BoxWriter(4096, 1 << 24);
  readonly #truns: number[];
  /** File offset where the next fragment starts (the file's committed size once finished). */
  #offset = 0;
  /** Bytes put in front of the next fragment's moof (the init segment), or null. */
  #prefix: Uint8Array | null = null;
  #open = false;
  #seq = 0;
  /** Header region of the open fragment, and the moof bytes it leaves room for. */
  #room = 0;
  #moofRoom = 0;
  /** moof bytes the samples so far need. */
  #moofBytes = MOOF_FIXED_BYTES;
  #lastMoofBytes = 0;
  /** The data block being filled, its file offset, and how much of it is filled. */
  #block: Uint8Array | null = null;
  #blockAt = 0;
  #fill = 0;
  /** Data bytes of the fragment (all tracks), and of track 0 (streamed: its stage holds no bytes). */
  #total = 0;
  #streamed = 0;
  #lastSampleAt = -1;

  constructor(tracks: TrackInfo[], sink: BlockSink, held: StageBlocks = new StageBlocks(HELD_BLOCK_BYTES)) {
    if (tracks.length < 1 || tracks.length > MAX_TRACKS) throw new RangeError(`${tracks.length} tracks, want 1..${MAX_TRACKS}`);
    if (!(sink.align >= 8 && sink.blockBytes >= sink.align && sink.blockBytes % sink.align === 0)) {
      throw new RangeError(`block ${sink.blockBytes} bytes, alignment ${sink.align}`);
    }
    this.tracks = tracks;
    this.#sink = sink;
    this.#stages = tracks.map((t) => new TrackStage(t.kind === 'video', held, 64));
    this.#truns = tracks.map(() => 0);
  }

  /** File offset where the next fragment starts: the size of what has been finished. */
  get offset(): number {
    return this.#offset;
  }

  get fragmentOpen(): boolean {
    return this.#open;
  }

  /** Data bytes staged in the open fragment. */
  get bytes(): number {
    return this.#total;
  }

  /** A new file: the next fragment starts at offset 0 with `prefix` (the init segment) in front of its moof. */
  startFile(prefix: Uint8Array): void {
    if (this.#open) throw new Error('startFile with a fragment open');
    this.#offset = 0;
    this.#prefix = prefix;
  }

  /**
   * Opens a fragment at `offset`: reserves its header region and takes the first data block.
   * False, opening nothing, when the sink has no block.
   */
  begin(sequenceNumber: number): boolean {
    if (this.#open) throw new Error('begin() with a fragment open');
    const a = this.#sink.align;
    const prefix = this.#prefix?.length ?? 0;
    const want = Math.max(MIN_MOOF_ROOM, Math.ceil(this.#lastMoofBytes * MOOF_ROOM_GROWTH));
    // The header region is written from one block: at most a block, however long the fragment.
    this.#room = Math.min(Math.ceil((prefix + want + MDAT_HEADER_BYTES) / a) * a, this.#sink.blockBytes);
    this.#moofRoom = this.#room - prefix - MDAT_HEADER_BYTES;
    if (this.#moofRoom < MOOF_FIXED_BYTES + trafBytes(1, true)) {
      throw new RangeError(`a ${prefix}-byte init leaves no room for a moof in a ${this.#sink.blockBytes}-byte block`);
    }
    const b = this.#sink.take();
    if (b === null) return false;
    this.#block = b;
    this.#blockAt = this.#offset + this.#room;
    this.#fill = 0;
    this.#seq = sequenceNumber >>> 0;
    this.#moofBytes = MOOF_FIXED_BYTES;
    this.#total = 0;
    this.#streamed = 0;
    for (const s of this.#stages) s.reset();
    this.#open = true;
    return true;
  }

  /**
   * Adds one access unit to track `t` with `duration` ticks (patch later with
   * setLastDuration). Track 0's bytes go to the data blocks now (a full block is handed to
   * the sink, which may throw a write error: then abort() the fragment); other tracks' are
   * held until finish(). The NAL units are copied, never changed (video: each with a 4-byte
   * length prefix). NO_BLOCK leaves the fragment unusable: abort() it.
   */
  addSample(t: number, au: AccessUnit, duration: number): AddResult {
    if (!this.#open) throw new Error('addSample outside begin()/finish()');
    const s = this.#stages[t];
    if (s === undefined) throw new RangeError(`track index ${t} of ${this.#stages.length}`);
    if (duration !== duration >>> 0) throw new RangeError(`duration ${duration} not a u32`);
    const cts = au.pts - au.dts;
    if (cts !== (cts | 0)) throw new RangeError(`composition offset ${cts} not a 32-bit integer`);
    const nalus = au.nalus;
    let size = 0;
    for (let i = 0; i < nalus.length; i++) size += nalus[i]!.length + (s.video ? 4 : 0);
    const anyCts = s.anyCts || cts !== 0;
    const moof = this.#moofBytes - (s.count > 0 ? trafBytes(s.count, s.anyCts) : 0) + trafBytes(s.count + 1, anyCts);
    if (moof > this.#moofRoom || this.#total + size > MAX_FRAGMENT_BYTES || s.count >= MAX_SAMPLES_PER_FRAGMENT) {
      return FRAGMENT_FULL;
    }
    if (t === 0) {
      this.#lastSampleAt = this.#blockAt + this.#fill;
      for (let i = 0; i < nalus.length; i++) {
        const n = nalus[i]!;
        if (s.video && !this.#writeU32(n.length)) return NO_BLOCK;
        if (!this.#write(n, n.length)) return NO_BLOCK;
      }
    } else {
      for (let i = 0; i < nalus.length; i++) {
        const n = nalus[i]!;
        if (s.video) s.writeU32(n.length);
        s.write(n);
      }
    }
    s.reserveSample();
    const k = s.count++;
    s.sizes[k] = size;
    s.durations[k] = duration;
    s.flags[k] = !s.video || au.keyframe ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC;
    s.cts[k] = cts;
    s.anyCts = anyCts;
    this.#moofBytes = moof;
    this.#total += size;
    if (t === 0) this.#streamed += size;
    return ADDED;
  }

  /** Sets the duration of the last sample of track `t` (known once the next one arrives). */
  setLastDuration(t: number, duration: number): void {
    const s = this.#stages[t];
    if (s === undefined || s.count === 0) throw new RangeError(`no sample on track ${t} to patch`);
    if (duration !== duration >>> 0) throw new RangeError(`duration ${duration} not a u32`);
    s.durations[s.count - 1] = duration;
  }

  sampleCount(t: number): number {
    return this.#stages[t]?.count ?? 0;
  }

  /**
   * File offset of the bytes of the last track-0 sample added (its first length prefix), -1
   * before any: where a reader finds the picture once its fragment has been written.
   */
  get lastSampleOffset(): number {
    return this.#lastSampleAt;
  }

  /**
   * Ends the fragment: the held tracks' bytes, the padding, then the header (prefix, moof,
   * mdat header) with the fragment's end as commit point. `bases[i]` is the decode time of
   * track i's first sample here. Returns where it lies. The sink's write error (or having no
   * block) throws, after which the fragment is gone (abort() is implied) and the next one
   * starts again at the same offset.
   */
  finish(bases: readonly number[]): FinishedFragment {
    if (!this.#open) throw new Error('finish() without begin()');
    for (let t = 0; t < this.#stages.length; t++) {
      const base = bases[t];
      if (this.#stages[t]!.count > 0 && (base === undefined || !Number.isSafeInteger(base) || base < 0)) {
        throw new RangeError(`baseMediaDecodeTime ${base} for track ${t}`);
      }
    }
    try {
      for (let t = 1; t < this.#stages.length; t++) {
        const s = this.#stages[t]!;
        for (let i = 0; i < s.blocks.length; i++) {
          const b = s.blocks[i]!;
          if (!this.#write(b, i === s.blocks.length - 1 ? s.tail : b.length)) throw new NoBlockError();
        }
      }
      const a = this.#sink.align;
      const dataEnd = this.#blockAt + this.#fill;
      const end = Math.ceil(dataEnd / a) * a;
      const last = this.#block!;
      this.#block = null;
      if (this.#fill === 0) this.#sink.drop(last);
      else {
        last.fill(0, this.#fill, end - this.#blockAt); // the pad: never another stream's old bytes
        this.#sink.put(last, this.#blockAt, end - this.#blockAt, 0);
      }
      const head = this.#header(bases, end);
      const at = this.#offset;
      const prefix = this.#prefix?.length ?? 0;
      this.#sink.put(head, at, this.#room, end);
      this.#lastMoofBytes = this.#moofBytes;
      this.#prefix = null;
      this.#offset = end;
      this.#close();
      return { offset: at, moofOffset: at + prefix, end };
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Drops the open fragment (its data blocks already handed over are overwritten by the next). */
  abort(): void {
    if (this.#block !== null) this.#sink.drop(this.#block);
    this.#block = null;
    this.#close();
  }

  #close(): void {
    for (const s of this.#stages) s.reset();
    this.#open = false;
    this.#total = 0;
    this.#streamed = 0;
  }

  /** The header region in a block of its own: prefix, moof, mdat header, zeroed slack. */
  #header(bases: readonly number[], end: number): Uint8Array {
    const w = this.#head;
    w.reset();
    const prefix = this.#prefix;
    if (prefix !== null) {
      w.ensure(prefix.length);
      w.buf.set(prefix, 0);
      w.pos = prefix.length;
    }
    const moofAt = w.pos;
    const moof = w.open(MOOF);
    const mfhd = w.openFull(MFHD, 0, 0);
    w.u32(this.#seq);
    w.close(mfhd);
    for (let t = 0; t < this.#stages.length; t++) {
      const s = this.#stages[t]!;
      if (s.count > 0) this.#truns[t] = writeTraf(w, s, t, bases[t]!);
    }
    w.close(moof);
    if (w.pos - moofAt !== this.#moofBytes) throw new Error(`moof is ${w.pos - moofAt} bytes, counted ${this.#moofBytes}`);
    // Data offsets are relative to the moof (default-base-is-moof): track 0 at the region's end.
    let dataAt = this.#room - moofAt;
    for (let t = 0; t < this.#stages.length; t++) {
      const s = this.#stages[t]!;
      if (s.count === 0) continue;
      w.patchI32(this.#truns[t]!, dataAt);
      dataAt += t === 0 ? this.#streamed : s.len;
    }
    w.u32(end - (this.#offset + w.pos)); // mdat: from here to the fragment's end
    w.u32(MDAT);
    const head = this.#sink.take();
    if (head === null) throw new NoBlockError();
    if (head.length < this.#room) {
      this.#sink.drop(head);
      throw new RangeError(`header region of ${this.#room} bytes does not fit a ${head.length}-byte block`);
    }
    head.set(w.buf.subarray(0, w.pos), 0);
    head.fill(0, w.pos, this.#room);
    return head;
  }

  /** Copies `src[0, len)` into the data blocks, handing full ones to the sink. False: no block. */
  #write(src: Uint8Array, len: number): boolean {
    const bs = this.#sink.blockBytes;
    let from = 0;
    while (from < len) {
      if (this.#fill === bs && !this.#nextBlock()) return false;
      const n = Math.min(bs - this.#fill, len - from);
      copyBytes(src, from, from + n, this.#block!, this.#fill);
      this.#fill += n;
      from += n;
    }
    return true;
  }

  #writeU32(v: number): boolean {
    for (let shift = 24; shift >= 0; shift -= 8) {
      if (this.#fill === this.#sink.blockBytes && !this.#nextBlock()) return false;
      this.#block![this.#fill++] = (v >>> shift) & 0xff;
    }
    return true;
  }

  /** The current block is full: hand it over and take the next. */
  #nextBlock(): boolean {
    const full = this.#block!;
    this.#block = null;
    this.#sink.put(full, this.#blockAt, full.length, 0);
    this.#blockAt += full.length;
    this.#fill = 0;
    const b = this.#sink.take();
    if (b === null) return false;
    this.#block = b;
    return true;
  }
}

/** The sink had no free block while a fragment was being finished. */
export class NoBlockError extends Error {
  override name = 'NoBlockError';
  readonly code = 'ENOBUFS';
  constructor() {
    super('no free write block: the disk is behind');
  }
}
