// Single-producer single-consumer record rings over a SharedArrayBuffer, one per direction
// between the main thread and a media worker; the byte layout lives in ring-format.ts.
//
// Protocol (see ring-format.ts for the words):
// - The producer writes payload and header into free space with plain stores, then
//   publishes by moving HEAD with one sequentially consistent atomic (compare-exchange, so
//   a concurrent close() is seen instead of overwritten). It never waits: no room is a
//   counted drop. It reads TAIL only when its cached copy says the record does not fit.
// - The consumer reads HEAD atomically, hands each record to the handler as a view, then
//   moves TAIL with Atomics.store, so the producer cannot reuse those bytes while the
//   handler runs.
// - Wake-ups: the consumer stores SLEEPING = 1, re-reads HEAD, and only then waits on HEAD
//   with Atomics.waitAsync(expected = the HEAD it saw). The producer stores HEAD, then reads
//   SLEEPING and notifies only when it is 1. Both orders are sequentially consistent, so
//   either the producer sees SLEEPING or the consumer sees the new HEAD: no lost wake-up.
//   close() flips bit 31 of HEAD itself, so a closing ring always changes the awaited word.
import {
  CTRL_BYTES, CTRL_CAPACITY, CTRL_CLOSED_BIT, CTRL_DROPPED, CTRL_DROPPED_BYTES, CTRL_HEAD,
  CTRL_INDEX_MASK, CTRL_MAGIC, CTRL_MAX_PAYLOAD, CTRL_OVERSIZE, CTRL_SLEEPING, CTRL_TAIL,
  CTRL_VERSION, CTRL_WRITTEN, KIND_WRAP, MAX_RECORD_BYTES, MAX_RING_BYTES, REC_ALIGN,
  REC_HEADER_BYTES, RING_MAGIC, RING_VERSION, minRingBytes, recordSpan,
} from './ring-format.ts';

// Header fields are read and written through Uint32Array views (the fastest correct way in
// Bun/JSC), which use the platform byte order; the contract says little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('ring.ts assumes a little-endian platform');
}

/** A ring buffer that is not one, or a record that breaks the layout: always a bug. */
export class RingError extends Error {
  override name = 'RingError';
}

/** Handler for one record; `payload` is a view into the ring, valid only during the call. */
export type RecordHandler = (slot: number, kind: number, flags: number, ts: number, payload: Uint8Array) => void;

/**
 * Allocates a ring: a SharedArrayBuffer holding the control region and `dataBytes` (rounded
 * up to REC_ALIGN) of record space. Post it to the worker and wrap it there with the other side.
 */
export function createRing(dataBytes: number, maxPayloadBytes: number = MAX_RECORD_BYTES): SharedArrayBuffer {
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 0) {
    throw new RangeError(`ring max payload ${maxPayloadBytes} is not a byte count`);
  }
  const capacity = Math.ceil(dataBytes / REC_ALIGN) * REC_ALIGN;
  const min = minRingBytes(maxPayloadBytes);
  if (!(capacity >= min && capacity <= MAX_RING_BYTES)) {
    throw new RangeError(`ring of ${dataBytes} bytes: need ${min}..${MAX_RING_BYTES} for max payload ${maxPayloadBytes}`);
  }
  // Growable (though never grown) for how JSC allocates it: a plain SharedArrayBuffer of
  // megabytes is often taken from recycled memory and zeroed there and then, which pages in
  // the whole ring at once (in the engine: 7-10 ms of the main thread for the 8 MiB input
  // ring, 3-5 ms for the 4 MiB one back, and 12 MiB resident from the start); a growable one
  // is reserved and its pages are zero when first touched, so only what HEAD reaches is
  // resident (see REWIND_DIVISOR). Views and atomics work the same on both.
  const sab = new SharedArrayBuffer(CTRL_BYTES + capacity, { maxByteLength: CTRL_BYTES + capacity });
  const ctrl = new Int32Array(sab, 0, CTRL_BYTES >> 2);
  ctrl[CTRL_MAGIC] = RING_MAGIC;
  ctrl[CTRL_VERSION] = RING_VERSION;
  ctrl[CTRL_CAPACITY] = capacity;
  ctrl[CTRL_MAX_PAYLOAD] = maxPayloadBytes;
  return sab;
}

const RESOLVED: Promise<void> = Promise.resolve();
/**
 * Default bound on one waitReadable() park. Under Bun 1.4.5, with a worker producing into a
 * ring that fills while the consumer is parked, about 1.5 parks in 1000 were never resolved
 * by the notify although the producer had seen SLEEPING = 1, cleared it and called
 * Atomics.notify (the wait later reported timed-out with HEAD moved). We found no hole in
 * the protocol and a minimal two-word program did not reproduce it; cause unknown, so a
 * bounded park turns such a hang into a 25 ms hiccup, counted in `lateWakes` (printed by
 * bench/ring-throughput.ts). An idle ring costs 40 timer wake-ups a second. Pass Infinity
 * to wait without the net.
 */
export const WAKE_SAFETY_MS = 25;
/**
 * Where a drained ring starts over, as a fraction of its capacity: a producer whose HEAD is
 * past `capacity / REWIND_DIVISOR` and finds the ring empty continues at offset 0. Rings are
 * sized for bursts (a start-up of hundreds of cameras, a long GC pause), but in the steady
 * state the consumer drains every few milliseconds: 100 cameras of 4 Mbit/s put ~50 KB into
 * a worker's ring between two reads. Without the rewind HEAD still sweeps the whole ring, so
 * every page of it becomes resident (8 MiB per worker) and the bytes are cold in cache by the
 * time HEAD comes round again. The price: right after a rewind, until the consumer has read
 * the wrap marker, only the offsets below the old HEAD are free, so a rewind never happens
 * before a quarter of the ring, nor before the lap from 0 to HEAD has taken REWIND_RESERVE_MS
 * (so that what is free after it holds that long a stall at the current rate). The second
 * condition matters for a busy ring: a worker taking 100 MB/s (400 cameras on two) had
 * 20 ms of room after a rewind at a quarter, and dropped 16,000 frames in 45 s; a lap that
 * fast now just goes on to the end, the whole ring is in use, and none are dropped.
 */
export const REWIND_DIVISOR = 4;
/** The least time the space below HEAD must have taken to fill before a rewind (see above). */
export const REWIND_RESERVE_MS = 100;
/** Records per read() in consume() before it yields to the event loop (timers, sockets). */
const CONSUME_BATCH = 4096;
const nextMacrotask = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** What both ends share: the views, the geometry, close() and the statistics. */
abstract class RingEnd {
  protected readonly ctrl: Int32Array;
  protected readonly data8: Uint8Array;
  protected readonly data32: Uint32Array;
  /** Data region size in bytes. */
  readonly capacity: number;
  /** Largest payload a record may carry. */
  readonly maxPayload: number;

  constructor(sab: SharedArrayBuffer) {
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < CTRL_BYTES) {
      throw new RingError('not a ring: expected a SharedArrayBuffer from createRing()');
    }
    const ctrl = new Int32Array(sab, 0, CTRL_BYTES >> 2);
    const capacity = ctrl[CTRL_CAPACITY]!;
    if (ctrl[CTRL_MAGIC] !== RING_MAGIC || ctrl[CTRL_VERSION] !== RING_VERSION || CTRL_BYTES + capacity !== sab.byteLength) {
      throw new RingError(`not a ring of version ${RING_VERSION} (magic ${ctrl[CTRL_MAGIC]}, version ${ctrl[CTRL_VERSION]}, capacity ${capacity}, ${sab.byteLength} bytes)`);
    }
    this.ctrl = ctrl;
    this.data8 = new Uint8Array(sab, CTRL_BYTES, capacity);
    this.data32 = new Uint32Array(sab, CTRL_BYTES, capacity >> 2);
    this.capacity = capacity;
    this.maxPayload = ctrl[CTRL_MAX_PAYLOAD]!;
  }

  /** Marks the ring closed (idempotent, either side): the producer refuses from now on and a
   *  waiting consumer wakes; records already published stay readable. */
  close(): void {
    Atomics.or(this.ctrl, CTRL_HEAD, CTRL_CLOSED_BIT);
    Atomics.notify(this.ctrl, CTRL_HEAD);
  }

  get closed(): boolean {
    return (Atomics.load(this.ctrl, CTRL_HEAD) & CTRL_CLOSED_BIT) !== 0;
  }

  /** Bytes between TAIL and HEAD (records, padding and a pending wrap gap) / capacity. */
  get fillRatio(): number {
    const used = (Atomics.load(this.ctrl, CTRL_HEAD) & CTRL_INDEX_MASK) - Atomics.load(this.ctrl, CTRL_TAIL);
    return (used < 0 ? used + this.capacity : used) / this.capacity;
  }

  /** Records published (u32, wraps). */
  get written(): number {
    return Atomics.load(this.ctrl, CTRL_WRITTEN) >>> 0;
  }

  /** Records refused for lack of room (u32, wraps). */
  get dropped(): number {
    return Atomics.load(this.ctrl, CTRL_DROPPED) >>> 0;
  }

  /** Payload bytes of the records counted in `dropped` (u32, wraps: take differences). */
  get droppedBytes(): number {
    return Atomics.load(this.ctrl, CTRL_DROPPED_BYTES) >>> 0;
  }

  /** Records refused because the payload exceeded `maxPayload` (u32, wraps). */
  get oversize(): number {
    return Atomics.load(this.ctrl, CTRL_OVERSIZE) >>> 0;
  }
}

/** The writing end. Never blocks and never allocates per record (except `reserve()`'s view). */
export class RingProducer extends RingEnd {
  /** The whole data region; `reserveOffset()` returns offsets into it. */
  readonly bytes: Uint8Array;
  private head: number;
  /** TAIL as last read; the real one is only ever further along, so a fit against it is safe. */
  private tailSeen: number;
  private isClosed: boolean;
  private nWritten: number;
  private nDropped: number;
  private nDroppedBytes: number;
  private nOversize: number;
  /** Record offset of the open reservation, or -1. */
  private resAt = -1;
  /** Head offset from which a drained ring starts over at 0 (see place()). */
  private readonly rewindAt: number;
  private resLen = 0;

  /** When HEAD last started at 0 (the clock's ms), for REWIND_RESERVE_MS. */
  private lapStart: number;
  private readonly now: () => number;

  /**
   * `rewindBytes`: where a drained ring starts over (see REWIND_DIVISOR; Infinity: only at
   * the end); `now`: the clock in ms (tests pass their own).
   */
  constructor(sab: SharedArrayBuffer, rewindBytes?: number, now: () => number = () => performance.now()) {
    super(sab);
    this.now = now;
    this.lapStart = now();
    const h = Atomics.load(this.ctrl, CTRL_HEAD);
    this.head = h & CTRL_INDEX_MASK;
    this.isClosed = (h & CTRL_CLOSED_BIT) !== 0;
    this.tailSeen = Atomics.load(this.ctrl, CTRL_TAIL);
    this.nWritten = this.ctrl[CTRL_WRITTEN]!;
    this.nDropped = this.ctrl[CTRL_DROPPED]!;
    this.nDroppedBytes = this.ctrl[CTRL_DROPPED_BYTES]!;
    this.nOversize = this.ctrl[CTRL_OVERSIZE]!;
    this.bytes = this.data8;
    this.rewindAt = rewindBytes ?? Math.floor(this.capacity / REWIND_DIVISOR);
  }

  /** Copies `payload` into one record. False when closed, too big, or no room (counted). */
  tryWrite(slot: number, kind: number, flags: number, ts: number, payload: Uint8Array): boolean {
    const len = payload.length;
    const at = this.place(len, kind);
    if (at < 0) return false;
    this.data8.set(payload, at + REC_HEADER_BYTES);
    return this.publish(at, slot, kind, flags, ts, len);
  }

  /** One record whose payload is `parts[0..count)` back to back (e.g. RTP header + body). */
  tryWriteParts(slot: number, kind: number, flags: number, ts: number, parts: readonly Uint8Array[], count: number = parts.length): boolean {
    let len = 0;
    for (let i = 0; i < count; i++) len += parts[i]!.length;
    const at = this.place(len, kind);
    if (at < 0) return false;
    let p = at + REC_HEADER_BYTES;
    for (let i = 0; i < count; i++) {
      const part = parts[i]!;
      this.data8.set(part, p);
      p += part.length;
    }
    return this.publish(at, slot, kind, flags, ts, len);
  }

  /**
   * Reserves room for a payload of up to `len` bytes and returns where it starts in `bytes`,
   * or -1 (closed, too big, or no room; counted as a drop like tryWrite). Write the payload
   * there, then commit(). A new reservation or write replaces an uncommitted one.
   */
  reserveOffset(len: number): number {
    const at = this.place(len, -1);
    this.resAt = at;
    this.resLen = len;
    return at < 0 ? -1 : at + REC_HEADER_BYTES;
  }

  /** reserveOffset() as a view of exactly `len` bytes (one small allocation), or null. */
  reserve(len: number): Uint8Array | null {
    const p = this.reserveOffset(len);
    return p < 0 ? null : this.data8.subarray(p, p + len);
  }

  /** Publishes the reservation with a payload of `len` (<= the reserved length) bytes.
   *  False when the ring was closed meanwhile. Committing without a reservation is a bug. */
  commit(slot: number, kind: number, flags: number, ts: number, len: number): boolean {
    const at = this.resAt;
    if (at < 0 || !(len >= 0 && len <= this.resLen)) {
      throw new RingError(`commit of ${len} bytes without a reservation of at least that size (reserved ${at < 0 ? 'none' : this.resLen})`);
    }
    checkKind(kind);
    this.resAt = -1;
    return this.publish(at, slot, kind, flags, ts, len);
  }

  /**
   * Finds room for a record of `len` payload bytes; returns its offset, or -1 after counting
   * why. Writes a wrap marker at HEAD when the record must start at 0 (harmless if never
   * published: it lies in free space). `kind` -1 skips the kind check (reserve).
   */
  private place(len: number, kind: number): number {
    if (kind !== -1) checkKind(kind);
    this.resAt = -1;
    if (this.isClosed) return -1;
    if (len > this.maxPayload) {
      this.ctrl[CTRL_OVERSIZE] = ++this.nOversize;
      return -1;
    }
    const span = recordSpan(len);
    let at = fit(this.head, this.tailSeen, span, this.capacity);
    if (at === this.head && this.head >= this.rewindAt && span < this.head) {
      // Past the hot region: if the consumer has caught up, start over at 0 (wrap marker
      // here, as at the end). A consumer that keeps up then only ever touches the first
      // part of the ring (see REWIND_DIVISOR), and the rest is never paged in.
      this.tailSeen = Atomics.load(this.ctrl, CTRL_TAIL);
      if (this.tailSeen === this.head && this.now() - this.lapStart >= REWIND_RESERVE_MS) at = 0;
    }
    if (at < 0) {
      this.tailSeen = Atomics.load(this.ctrl, CTRL_TAIL);
      at = fit(this.head, this.tailSeen, span, this.capacity);
      if (at < 0) {
        this.ctrl[CTRL_DROPPED] = ++this.nDropped;
        this.ctrl[CTRL_DROPPED_BYTES] = this.nDroppedBytes = (this.nDroppedBytes + len) | 0;
        return -1;
      }
    }
    if (at !== this.head) {
      this.lapStart = this.now();
      const w = this.head >> 2; // wrap marker: len 0, slot 0, kind KIND_WRAP, flags 0
      this.data32[w] = 0;
      this.data32[w + 1] = KIND_WRAP << 16;
    }
    return at;
  }

  /** Writes the header at `at` and moves HEAD past the record (the release point). */
  private publish(at: number, slot: number, kind: number, flags: number, ts: number, len: number): boolean {
    const w = at >> 2;
    const d = this.data32;
    d[w] = len;
    d[w + 1] = (slot & 0xffff) | ((kind & 0xff) << 16) | ((flags & 0xff) << 24);
    d[w + 2] = ts;
    let next = at + recordSpan(len);
    if (next === this.capacity) next = 0;
    const ctrl = this.ctrl;
    if (Atomics.compareExchange(ctrl, CTRL_HEAD, this.head, next) !== this.head) {
      this.isClosed = true; // the only other writer of HEAD is close()
      return false;
    }
    this.head = next;
    ctrl[CTRL_WRITTEN] = ++this.nWritten;
    if (Atomics.load(ctrl, CTRL_SLEEPING) !== 0) {
      Atomics.store(ctrl, CTRL_SLEEPING, 0);
      Atomics.notify(ctrl, CTRL_HEAD, 1);
    }
    return true;
  }

  override close(): void {
    this.isClosed = true;
    super.close();
  }
}

/** Where a record of `span` bytes goes given HEAD `h` and TAIL `t`, or -1. HEAD must never
 *  land on TAIL (that would read as empty), hence the strict comparisons. */
function fit(h: number, t: number, span: number, cap: number): number {
  if (h >= t) {
    const end = h + span;
    if (end < cap || (end === cap && t !== 0)) return h;
    return span < t ? 0 : -1; // wrap: marker at h, record at 0
  }
  return span < t - h ? h : -1;
}

function checkKind(kind: number): void {
  if (!(kind > KIND_WRAP && kind <= 0xff)) throw new RingError(`record kind ${kind} is not 1..255`);
}

/** The reading end. `read()` allocates one view per record; nothing else per record. */
export class RingConsumer extends RingEnd {
  private tail: number;
  private nLateWakes = 0;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.tail = Atomics.load(this.ctrl, CTRL_TAIL);
  }

  /** True when no published record is waiting. */
  get empty(): boolean {
    return (Atomics.load(this.ctrl, CTRL_HEAD) & CTRL_INDEX_MASK) === this.tail;
  }

  /**
   * Delivers up to `max` records in order and returns how many. Each record's bytes are
   * released (TAIL moves) when its handler returns; a handler that throws still consumes its
   * record, and the error propagates. Records published before close() are still delivered.
   */
  read(handler: RecordHandler, max: number = 0x7fffffff): number {
    const ctrl = this.ctrl, d32 = this.data32, cap = this.capacity;
    let head = Atomics.load(ctrl, CTRL_HEAD) & CTRL_INDEX_MASK;
    let t = this.tail;
    let n = 0;
    while (n < max) {
      if (t === head) {
        head = Atomics.load(ctrl, CTRL_HEAD) & CTRL_INDEX_MASK;
        if (t === head) break;
      }
      const w = t >> 2;
      const meta = d32[w + 1]!;
      const kind = (meta >>> 16) & 0xff;
      if (kind === KIND_WRAP) {
        t = 0; // the producer published the next record at 0 together with this marker
        continue;
      }
      const len = d32[w]!;
      const end = t + recordSpan(len);
      if (len > this.maxPayload || end > cap) {
        this.tail = t;
        throw new RingError(`corrupt record at ${t}: len ${len}, capacity ${cap}`);
      }
      const p = t + REC_HEADER_BYTES;
      t = end === cap ? 0 : end;
      try {
        handler(meta & 0xffff, kind, meta >>> 24, d32[w + 2]!, this.data8.subarray(p, p + len));
      } finally {
        this.tail = t;
        Atomics.store(ctrl, CTRL_TAIL, t);
      }
      n++;
    }
    this.tail = t;
    return n;
  }

  /** Parks that ended by timeout although a record was waiting: wake-ups the runtime lost
   *  (see WAKE_SAFETY_MS) or, rarely, a publish racing the timeout. Local to this consumer. */
  get lateWakes(): number {
    return this.nLateWakes;
  }

  /**
   * Resolves when a record is readable or the ring is closed (immediately if so now), or
   * after `timeoutMs` (the caller re-checks either way). Parks with Atomics.waitAsync on HEAD
   * behind the SLEEPING flag.
   */
  waitReadable(timeoutMs: number = WAKE_SAFETY_MS): Promise<void> {
    const ctrl = this.ctrl;
    const h = Atomics.load(ctrl, CTRL_HEAD);
    if ((h & CTRL_INDEX_MASK) !== this.tail || (h & CTRL_CLOSED_BIT) !== 0) return RESOLVED;
    Atomics.store(ctrl, CTRL_SLEEPING, 1);
    // Re-check after announcing: a producer that stored HEAD before seeing SLEEPING is caught here.
    if (Atomics.load(ctrl, CTRL_HEAD) !== h) return this.awake('ok');
    const res = Atomics.waitAsync(ctrl, CTRL_HEAD, h, timeoutMs);
    if (!res.async) return this.awake(res.value);
    return res.value.then(this.onWake);
  }

  private readonly onWake = (how: string): Promise<void> => this.awake(how);

  private awake(how: string): Promise<void> {
    Atomics.store(this.ctrl, CTRL_SLEEPING, 0);
    if (how === 'timed-out' && !this.empty) this.nLateWakes++;
    return RESOLVED;
  }

  /**
   * Runs `handler` over every record until the ring is closed and drained, or `signal`
   * aborts; returns the number of records delivered. Yields to the event loop after each
   * full batch so a busy ring cannot starve sockets and timers on this thread.
   */
  async consume(handler: RecordHandler, signal?: AbortSignal): Promise<number> {
    const wake = () => void Atomics.notify(this.ctrl, CTRL_HEAD);
    signal?.addEventListener('abort', wake, { once: true });
    let total = 0;
    try {
      while (signal === undefined || !signal.aborted) {
        const n = this.read(handler, CONSUME_BATCH);
        total += n;
        if (n === CONSUME_BATCH) {
          await nextMacrotask();
          continue;
        }
        if (this.closed) {
          total += this.read(handler); // whatever was published up to the close
          break;
        }
        await this.waitReadable();
      }
    } finally {
      signal?.removeEventListener('abort', wake);
    }
    return total;
  }
}
