// What every RTP depacketizer shares: the Depacketizer contract, its counters, the
// access-unit arena that reassembles payloads with one copy, and the base class that
// validates headers, reorders, detects sequence gaps and unwraps timestamps.
import { copyBytes } from './bytes.ts';
import { MAX_NALUS_PER_AU } from './annexb.ts';
import { MAX_AU_BYTES } from './annexb-au.ts';
import { newRtpView, readRtp, RtpTimestampUnwrapper, type RtpView } from './rtp.ts';
import { DEFAULT_REORDER_DELAY_MS, DEFAULT_REORDER_WINDOW, REORDER_DELIVER, RtpReorderBuffer } from './rtp-reorder.ts';
import type { AccessUnit, TrackInfo } from './types.ts';

export interface RtpCounters {
  /** Valid packets of our payload type (before reordering). */
  packets: number;
  bytes: number;
  /** Sequence numbers never received. */
  lost: number;
  reordered: number;
  duplicates: number;
  /** Packets that failed header validation or whose payload is inconsistent. */
  malformed: number;
  /** Packets of another payload type (e.g. RTCP or a second stream on the port). */
  wrongPayloadType: number;
  /** Packets of a payload format we do not handle (STAP-B, MTAP, FU-B, PACI, AAC interleaving). */
  unsupported: number;
  /** Frames dropped because part of them was missing. */
  droppedFrames: number;
  /** Complete frames skipped while waiting for a keyframe. */
  skippedFrames: number;
  /** FU fragments without their start fragment (and no loss before them). */
  fuWithoutStart: number;
  /** Units not popped before the next push (a caller bug: pop until false). */
  discardedUnits: number;
  ssrcChanges: number;
  /** Video output is paused until the next IDR/IRAP picture. */
  waitingForKeyframe: boolean;
}

export const newRtpCounters = (): RtpCounters => ({
  packets: 0, bytes: 0, lost: 0, reordered: 0, duplicates: 0, malformed: 0, wrongPayloadType: 0,
  unsupported: 0, droppedFrames: 0, skippedFrames: 0, fuWithoutStart: 0, discardedUnits: 0,
  ssrcChanges: 0, waitingForKeyframe: false,
});

/**
 * RTP packets in, access units out. `push` takes one whole RTP packet, a view valid only
 * during the call. `pop` fills `out` with the next complete unit; call it until it returns
 * false after every push (units left over are discarded and counted at the next push).
 * Popped `nalus` are views into the depacketizer's buffers, valid until the next push or
 * flush. Neither method throws for any input.
 */
export interface Depacketizer {
  push(packet: Uint8Array, arrivalMs?: number): boolean;
  pop(out: AccessUnit): boolean;
  /** End of stream: releases held packets and completes what can be completed. */
  flush(): void;
  readonly counters: RtpCounters;
  trackInfo(): TrackInfo | null;
  /** Increments when the track description changes (re-initialise the muxer). */
  readonly paramsVersion: number;
}

export interface DepacketizerOptions {
  /** Reordering window in packets; 0 over TCP interleaved (never reordered). */
  reorderWindow?: number;
  /** A gap held longer than this (by arrival times given to push) is declared lost. */
  reorderDelayMs?: number;
}

/** Most units queued between two pushes: one packet can carry at most this many AAC AUs. */
const MAX_QUEUED_UNITS = 1024;
/** The arena holds the units of one push plus the one in progress. */
const MAX_ARENA_BYTES = 2 * MAX_AU_BYTES;

/** Smallest arena buffer: an audio frame or a small picture. */
const ARENA_MIN_BYTES = 4 << 10;
/** Idle arena buffers kept per size for the next unit that needs one; more go to the GC. */
const MAX_IDLE_ARENAS = 16;

/**
 * Arena buffers (powers of two) shared by the arenas of this thread. A camera's keyframe
 * needs ~128 KiB once per GOP and its other pictures a fraction of that; an arena takes a
 * large buffer while it assembles a large unit and hands it back after, so 100 cameras hold
 * a few large buffers between them (the keyframes being assembled at that moment) instead
 * of one each (12.8 MB at 1080p).
 */
const idleArenas = new Map<number, Uint8Array[]>();

function takeArena(bytes: number): Uint8Array {
  return idleArenas.get(bytes)?.pop() ?? new Uint8Array(bytes);
}

function giveArena(b: Uint8Array): void {
  let idle = idleArenas.get(b.length);
  if (idle === undefined) idleArenas.set(b.length, (idle = []));
  if (idle.length < MAX_IDLE_ARENAS) idle.push(b);
}

/** The arena size for `bytes`: a power of two, at least ARENA_MIN_BYTES. */
function arenaSize(bytes: number): number {
  let size = ARENA_MIN_BYTES;
  while (size < bytes) size *= 2;
  return size;
}

/**
 * The depacketizer's own buffer: completed units (queued for pop) followed by the unit in
 * progress. Payload bytes are copied once, into place; a NAL is either added whole or
 * opened, appended to (fragments) and closed.
 */
export class AuArena {
  /**
   * Grows (doubling) to hold the unit in progress, and shrinks back once a large unit has
   * been popped (buffers from the thread's shared pool, see idleArenas).
   */
  private buf = takeArena(ARENA_MIN_BYTES);
  /** Bytes of the last unit committed (the size the next one is likely to have). */
  private lastUnitBytes = 0;
  private tail = 0;
  private nalStart = new Int32Array(256);
  private nalEnd = new Int32Array(256);
  private nals = 0;
  private curNal0 = 0;
  private curByte0 = 0;
  private openAt = -1;
  /** The queue grows (doubling, up to MAX_QUEUED_UNITS) only where packets carry many units. */
  private qNal0 = new Int32Array(8);
  private qNals = new Int32Array(8);
  private qBytes = new Int32Array(8);
  private qTime = new Float64Array(8);
  private qKey = new Uint8Array(8);
  private qHead = 0;
  private qLen = 0;

  /** Starts a push: drops units not popped (returns how many) and moves the unit in progress to the front. */
  begin(): number {
    const left = this.qLen - this.qHead;
    this.qHead = 0;
    this.qLen = 0;
    if (this.curByte0 > 0 || this.curNal0 > 0) {
      const shift = this.curByte0;
      this.buf.copyWithin(0, shift, this.tail);
      for (let i = this.curNal0; i < this.nals; i++) {
        this.nalStart[i - this.curNal0] = this.nalStart[i]! - shift;
        this.nalEnd[i - this.curNal0] = this.nalEnd[i]! - shift;
      }
      this.nals -= this.curNal0;
      this.tail -= shift;
      if (this.openAt >= 0) this.openAt -= shift;
      this.curNal0 = 0;
      this.curByte0 = 0;
    }
    // A large unit has been popped: go back to a buffer the size of the usual ones (with
    // room to spare: shrink only to a quarter, so sizes do not bounce between two powers).
    const want = arenaSize(Math.max(2 * this.lastUnitBytes, 2 * this.tail));
    if (want * 4 <= this.buf.length) this.swapBuffer(want);
    return left;
  }

  /** Moves the bytes in the arena to a pooled buffer of `size` and pools the old one. */
  private swapBuffer(size: number): void {
    const next = takeArena(size);
    next.set(this.buf.subarray(0, this.tail));
    giveArena(this.buf);
    this.buf = next;
  }

  get currentBytes(): number {
    return this.tail - this.curByte0;
  }

  /** Bytes of the buffer the arena holds now. */
  get capacity(): number {
    return this.buf.length;
  }

  get currentNalCount(): number {
    return this.nals - this.curNal0;
  }

  /** True while a fragmented NAL is open. */
  get isOpen(): boolean {
    return this.openAt >= 0;
  }

  /** Copies `src[from, to)` as one NAL; false (nothing added) when a cap is reached. */
  addNal(src: Uint8Array, from: number, to: number): boolean {
    if (this.openAt >= 0 || !this.reserve(to - from) || !this.reserveNal()) return false;
    copyBytes(src, from, to, this.buf, this.tail);
    this.nalStart[this.nals] = this.tail;
    this.tail += to - from;
    this.nalEnd[this.nals++] = this.tail;
    return true;
  }

  openNal(): boolean {
    if (this.openAt >= 0 || !this.reserveNal()) return false;
    this.openAt = this.tail;
    return true;
  }

  appendByte(v: number): boolean {
    if (this.openAt < 0 || !this.reserve(1)) return false;
    this.buf[this.tail++] = v;
    return true;
  }

  append(src: Uint8Array, from: number, to: number): boolean {
    if (this.openAt < 0 || !this.reserve(to - from)) return false;
    copyBytes(src, from, to, this.buf, this.tail);
    this.tail += to - from;
    return true;
  }

  /** Closes the open NAL; false when it is empty (then nothing is added). */
  closeNal(): boolean {
    const at = this.openAt;
    this.openAt = -1;
    if (at < 0 || this.tail === at) {
      if (at >= 0) this.tail = at;
      return false;
    }
    this.nalStart[this.nals] = at;
    this.nalEnd[this.nals++] = this.tail;
    return true;
  }

  /** Discards the open NAL's bytes. */
  abortNal(): void {
    if (this.openAt >= 0) this.tail = this.openAt;
    this.openAt = -1;
  }

  /** A view of the NAL added last (valid until the arena grows or begins again). */
  lastNal(): Uint8Array {
    const i = this.nals - 1;
    return this.buf.subarray(this.nalStart[i]!, this.nalEnd[i]!);
  }

  /** Bytes of the current unit's NAL `k` (0-based), for inspection. */
  nal(k: number): Uint8Array {
    const i = this.curNal0 + k;
    return this.buf.subarray(this.nalStart[i]!, this.nalEnd[i]!);
  }

  dropCurrent(): void {
    this.tail = this.curByte0;
    this.nals = this.curNal0;
    this.openAt = -1;
  }

  /** Queues the current unit; false (unit dropped) when the queue is full or it is empty. */
  commit(time: number, keyframe: boolean): boolean {
    const n = this.nals - this.curNal0;
    if (this.openAt >= 0) this.abortNal();
    if (n === 0 || this.qLen >= MAX_QUEUED_UNITS) {
      this.dropCurrent();
      return false;
    }
    if (this.qLen === this.qKey.length) this.growQueue();
    const k = this.qLen++;
    this.qNal0[k] = this.curNal0;
    this.qNals[k] = n;
    this.qBytes[k] = this.tail - this.curByte0;
    this.qTime[k] = time;
    this.qKey[k] = keyframe ? 1 : 0;
    this.lastUnitBytes = this.tail - this.curByte0;
    this.curNal0 = this.nals;
    this.curByte0 = this.tail;
    return true;
  }

  pop(out: AccessUnit): boolean {
    if (this.qHead >= this.qLen) return false;
    const k = this.qHead++;
    const n = this.qNals[k]!;
    const first = this.qNal0[k]!;
    const nalus = out.nalus;
    nalus.length = n;
    for (let i = 0; i < n; i++) nalus[i] = this.buf.subarray(this.nalStart[first + i]!, this.nalEnd[first + i]!);
    out.bytes = this.qBytes[k]!;
    out.keyframe = this.qKey[k] === 1;
    out.dts = this.qTime[k]!;
    out.pts = out.dts;
    return true;
  }

  private growQueue(): void {
    const n = Math.min(MAX_QUEUED_UNITS, this.qKey.length * 2);
    const grow = <T extends Int32Array | Float64Array | Uint8Array>(a: T, b: T): T => (b.set(a), b);
    this.qNal0 = grow(this.qNal0, new Int32Array(n));
    this.qNals = grow(this.qNals, new Int32Array(n));
    this.qBytes = grow(this.qBytes, new Int32Array(n));
    this.qTime = grow(this.qTime, new Float64Array(n));
    this.qKey = grow(this.qKey, new Uint8Array(n));
  }

  private reserve(n: number): boolean {
    const need = this.tail + n;
    if (this.tail - this.curByte0 + n > MAX_AU_BYTES || need > MAX_ARENA_BYTES) return false;
    if (need > this.buf.length) this.swapBuffer(Math.min(arenaSize(need), MAX_ARENA_BYTES));
    return true;
  }

  private reserveNal(): boolean {
    if (this.nals - this.curNal0 >= MAX_NALUS_PER_AU) return false;
    if (this.nals >= this.nalStart.length) {
      const s = new Int32Array(this.nalStart.length * 2);
      const e = new Int32Array(this.nalEnd.length * 2);
      s.set(this.nalStart);
      e.set(this.nalEnd);
      this.nalStart = s;
      this.nalEnd = e;
    }
    return true;
  }
}

/**
 * Header validation, payload-type filter, reordering, gap detection and timestamp
 * unwrapping; subclasses see each packet once, in sequence order, through `payload()`.
 */
export abstract class RtpDepacketizerBase implements Depacketizer {
  readonly counters: RtpCounters = newRtpCounters();
  protected readonly arena = new AuArena();
  private readonly view: RtpView = newRtpView();
  private readonly reorder: RtpReorderBuffer;
  private readonly clock = new RtpTimestampUnwrapper();
  private lastSeq = -1;
  private ssrc = -1;
  private restarted = false;

  constructor(
    readonly payloadType: number,
    options: DepacketizerOptions = {},
  ) {
    this.reorder = new RtpReorderBuffer(options.reorderWindow ?? DEFAULT_REORDER_WINDOW, options.reorderDelayMs ?? DEFAULT_REORDER_DELAY_MS);
  }

  abstract trackInfo(): TrackInfo | null;
  abstract get paramsVersion(): number;

  /**
   * One packet in sequence order. `missing`: how many packets were lost right before
   * this one (0: none). `time`: the unwrapped RTP timestamp.
   */
  protected abstract payload(b: Uint8Array, start: number, end: number, time: number, marker: boolean, missing: number): void;

  /** End of stream for the subclass (complete or drop what is in progress). */
  protected abstract end(): void;

  push(packet: Uint8Array, arrivalMs = Number.NaN): boolean {
    this.counters.discardedUnits += this.arena.begin();
    const v = this.view;
    if (!readRtp(packet, v)) {
      this.counters.malformed++;
      return false;
    }
    if (v.payloadType !== this.payloadType) {
      this.counters.wrongPayloadType++;
      return false;
    }
    this.counters.packets++;
    this.counters.bytes += packet.length;
    if (v.ssrc !== this.ssrc) {
      if (this.ssrc >= 0) {
        this.counters.ssrcChanges++;
        this.reorder.reset(); // a new sender: its sequence numbers start anew
        this.lastSeq = -1;
        this.restarted = true; // whatever was in progress is incomplete
      }
      this.ssrc = v.ssrc;
    }
    if (this.reorder.offer(packet, v.seq, arrivalMs) === REORDER_DELIVER) this.handle(packet);
    this.drain();
    return true;
  }

  pop(out: AccessUnit): boolean {
    return this.arena.pop(out);
  }

  flush(): void {
    this.counters.discardedUnits += this.arena.begin();
    this.reorder.flush();
    this.drain();
    this.end();
  }

  private drain(): void {
    let p: Uint8Array | null;
    while ((p = this.reorder.next()) !== null) {
      readRtp(p, this.view); // valid: it passed readRtp before it was held
      this.handle(p);
    }
    const c = this.counters;
    const r = this.reorder;
    c.lost = r.lost;
    c.reordered = r.reordered;
    c.duplicates = r.duplicates;
  }

  private handle(b: Uint8Array): void {
    const v = this.view;
    let missing = this.lastSeq >= 0 ? (v.seq - this.lastSeq - 1) & 0xffff : 0;
    if (this.restarted) {
      this.restarted = false;
      missing = 2; // unknown: more than the one packet the video loss rule can attribute
    }
    this.lastSeq = v.seq;
    this.payload(b, v.payloadStart, v.payloadEnd, this.clock.unwrap(v.timestamp), v.marker, missing);
  }
}
