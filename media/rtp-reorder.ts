// A small RTP reordering buffer: holds copies of up to N out-of-order packets (pooled
// buffers, no allocation once warm) and releases them in sequence order, declaring a
// gap lost when it is not filled within the window or within a time limit.

/** Packets held by default: ~90 ms of a 4 Mbit/s stream, enough for UDP path reordering. */
export const DEFAULT_REORDER_WINDOW = 32;
/**
 * Most packets a window may hold. 256 packets of ~1.4 kB is ~360 kB per track, and at
 * 4 Mbit/s (~360 packets/s) it already delays a gap by 0.7 s; more only adds latency.
 */
export const MAX_REORDER_WINDOW = 256;
/** RFC 3550 A.1 MAX_DROPOUT: a jump this far ahead is a restart, not thousands of losses. */
export const MAX_DROPOUT = 3000;
/** RFC 3550 A.1 MAX_MISORDER: a packet this far behind is a stray duplicate or a restart. */
export const MAX_MISORDER = 100;
/** A held gap older than this is declared lost on the next packet (when times are given). */
export const DEFAULT_REORDER_DELAY_MS = 200;

/** offer(): process `packet` now (it is the next in order), then drain next(). */
export const REORDER_DELIVER = 0;
/** offer(): a copy was kept; drain next() (it may release held packets). */
export const REORDER_HELD = 1;
/** offer(): a packet already delivered or held; dropped. */
export const REORDER_DUPLICATE = 2;
/** offer(): arrived after its gap was declared lost; dropped (the frame is gone). */
export const REORDER_LATE = 3;

const EMPTY = -1;
/** Sequence numbers declared lost that are remembered, to tell a late packet from a duplicate. */
const LOST_HISTORY = 512;
/** Pooled buffers start at an Ethernet-MTU-sized packet and grow to the largest seen. */
const MIN_SLOT_BYTES = 2048;

/**
 * Use: `st = offer(pkt, seq, nowMs)`; if st is REORDER_DELIVER handle `pkt`; then call
 * `next()` until it returns null and handle each packet it returns, in that order.
 * Packets from next() are views into pooled buffers, valid until the next offer().
 * With window 0 (RTSP over TCP: never reordered) every packet is delivered as is, no copy.
 */
export class RtpReorderBuffer {
  /** Sequence numbers never received (declared lost); decremented by late arrivals. */
  lost = 0;
  /** Packets that arrived after a higher-numbered one (filled a gap, or came late). */
  reordered = 0;
  duplicates = 0;
  /** Packets that came after their gap was declared lost (also counted in reordered). */
  late = 0;
  /** Sequence jumps treated as a sender restart (RFC 3550 A.1). */
  resyncs = 0;

  readonly window: number;
  private readonly mask: number;
  private readonly slotBuf: (Uint8Array | null)[];
  private readonly slotLen: Int32Array;
  private readonly slotSeq: Int32Array;
  private readonly lostSeq: Int32Array;
  private readonly free: Uint8Array[] = [];
  private held = 0;
  private expected = EMPTY;
  /** While >= 0, next() declares missing packets lost up to this sequence number. */
  private skipTo = EMPTY;
  private spill: Uint8Array | null = null;
  private spillLen = 0;
  private spillSeq = EMPTY;
  /** Skip the current gap up to the next held packet (time limit reached). */
  private skipGap = false;
  private flushing = false;
  private gapSinceMs = 0;
  /** Far-behind sequence that, if followed by its successor, means a restart (A.1 bad_seq). */
  private badSeq = EMPTY;

  constructor(
    window = DEFAULT_REORDER_WINDOW,
    readonly maxDelayMs = DEFAULT_REORDER_DELAY_MS,
  ) {
    this.window = Math.max(0, Math.min(MAX_REORDER_WINDOW, Math.floor(window)));
    let size = 1;
    while (size < this.window) size <<= 1;
    this.mask = size - 1;
    this.slotBuf = new Array<Uint8Array | null>(size).fill(null);
    this.slotLen = new Int32Array(size);
    this.slotSeq = new Int32Array(size).fill(EMPTY);
    this.lostSeq = new Int32Array(LOST_HISTORY).fill(EMPTY);
  }

  /** Packets currently held. */
  get size(): number {
    return this.held + (this.spillSeq >= 0 ? 1 : 0);
  }

  offer(packet: Uint8Array, seq: number, arrivalMs = Number.NaN): number {
    if (this.expected === EMPTY) {
      this.expected = (seq + 1) & 0xffff;
      return REORDER_DELIVER;
    }
    const d = (seq - this.expected) & 0xffff;
    if (d === 0) {
      if (this.held > 0) this.reordered++;
      this.expected = (seq + 1) & 0xffff;
      this.badSeq = EMPTY;
      return REORDER_DELIVER;
    }
    if (d >= 0x8000) return this.behind(seq, 0x10000 - d);
    this.badSeq = EMPTY;
    if (d >= MAX_DROPOUT) {
      this.restart(seq);
      return REORDER_DELIVER;
    }
    if (d < this.window) {
      const i = seq & this.mask;
      if (this.slotSeq[i] === seq) {
        this.duplicates++;
        return REORDER_DUPLICATE;
      }
      this.slotBuf[i] = this.copy(packet, this.slotBuf[i] ?? null);
      this.slotLen[i] = packet.length;
      this.slotSeq[i] = seq;
      if (this.held++ === 0) this.gapSinceMs = arrivalMs;
      else if (arrivalMs - this.gapSinceMs > this.maxDelayMs) this.skipGap = true;
      return REORDER_HELD;
    }
    // At least `window` packets past the gap: the gap is lost.
    if (this.held === 0) {
      for (let k = Math.max(0, d - LOST_HISTORY); k < d; k++) this.markLost((this.expected + k) & 0xffff);
      this.lost += d;
      this.expected = (seq + 1) & 0xffff;
      return REORDER_DELIVER;
    }
    this.spill = this.copy(packet, this.spill);
    this.spillLen = packet.length;
    this.spillSeq = seq;
    this.skipTo = (seq - this.window + 1) & 0xffff;
    this.gapSinceMs = arrivalMs;
    return REORDER_HELD;
  }

  /** The next in-order packet that is ready, or null. */
  next(): Uint8Array | null {
    for (;;) {
      const e = this.expected;
      if (e === EMPTY) return null;
      if (this.skipTo === e) {
        // The window has moved far enough for the spilled packet: its slot is free
        // (the seq it shares the slot with is at least `window` older, so already gone).
        const j = this.spillSeq & this.mask;
        this.slotBuf[j] = this.spill;
        this.slotLen[j] = this.spillLen;
        this.slotSeq[j] = this.spillSeq;
        this.held++;
        this.spill = null;
        this.spillSeq = EMPTY;
        this.skipTo = EMPTY;
      }
      const i = e & this.mask;
      if (this.slotSeq[i] === e) {
        const buf = this.slotBuf[i]!;
        this.free.push(buf);
        this.slotBuf[i] = null;
        this.slotSeq[i] = EMPTY;
        this.held--;
        this.expected = (e + 1) & 0xffff;
        this.skipGap = false;
        return buf.subarray(0, this.slotLen[i]!);
      }
      if (this.skipTo >= 0 || (this.held > 0 && (this.skipGap || this.flushing))) {
        this.skipOne();
        continue;
      }
      this.flushing = false;
      return null;
    }
  }

  /** Releases every held packet through next(), declaring the gaps between them lost. */
  flush(): void {
    if (this.held > 0 || this.spillSeq >= 0) this.flushing = true;
  }

  /** Forgets all state (a new SSRC, a new session). Counters are kept. */
  reset(): void {
    for (let i = 0; i <= this.mask; i++) {
      const b = this.slotBuf[i];
      if (b) this.free.push(b);
      this.slotBuf[i] = null;
      this.slotSeq[i] = EMPTY;
    }
    this.lostSeq.fill(EMPTY);
    if (this.spill) this.free.push(this.spill);
    this.spill = null;
    this.spillSeq = EMPTY;
    this.held = 0;
    this.expected = EMPTY;
    this.skipTo = EMPTY;
    this.skipGap = false;
    this.flushing = false;
    this.badSeq = EMPTY;
  }

  private behind(seq: number, back: number): number {
    if (back <= LOST_HISTORY && this.lostSeq[seq % LOST_HISTORY] === seq) {
      this.lostSeq[seq % LOST_HISTORY] = EMPTY;
      this.late++;
      this.reordered++;
      this.lost--;
      return REORDER_LATE;
    }
    if (back <= MAX_MISORDER) {
      this.duplicates++;
      return REORDER_DUPLICATE;
    }
    // RFC 3550 A.1: far behind; two sequential packets there mean the sender restarted.
    if (this.badSeq === seq) {
      this.restart(seq);
      return REORDER_DELIVER;
    }
    this.badSeq = (seq + 1) & 0xffff;
    this.duplicates++;
    return REORDER_DUPLICATE;
  }

  private restart(seq: number): void {
    this.resyncs++;
    const counts = [this.lost, this.reordered, this.duplicates, this.late, this.resyncs] as const;
    this.reset();
    [this.lost, this.reordered, this.duplicates, this.late, this.resyncs] = counts;
    this.expected = (seq + 1) & 0xffff;
  }

  private skipOne(): void {
    this.markLost(this.expected);
    this.lost++;
    this.expected = (this.expected + 1) & 0xffff;
  }

  private markLost(seq: number): void {
    this.lostSeq[seq % LOST_HISTORY] = seq;
  }

  private copy(packet: Uint8Array, into: Uint8Array | null): Uint8Array {
    let b = into ?? this.free.pop() ?? null;
    // A too-small pooled buffer is replaced (and left to the GC), so the pool converges
    // on buffers that fit the stream's packets.
    if (!b || b.length < packet.length) b = new Uint8Array(Math.max(MIN_SLOT_BYTES, packet.length));
    b.set(packet);
    return b;
  }
}
