// Fewer, larger socket reads for TCP ingest nobody watches live.
//
// A camera's TCP stream reaches us in small pieces: at 100 cameras of 4 Mbit/s the main thread
// woke ~9,000 times a second for ~5 KB each, and every wake-up costs an epoll round, a read, a
// fresh buffer from Bun, a JavaScript callback and, downstream, a worker wake-up. SO_RCVLOWAT
// makes the kernel hold a socket's bytes until a given amount is queued, so one read takes what
// eight took. The price is latency: bytes wait in the kernel until the mark fills. Recording
// does not mind a fraction of a second (fragments are a second long); a live viewer does, so a
// watched stream reads as soon as anything arrives.
//
// The mark follows the stream's measured rate, so that at the rate seen over the last window
// it fills within `maxDelayMs`, capped at `maxBytes`. A stream whose rate falls (a VBR camera
// at night) fills it late: a window with no read at all drops the mark to the default at once,
// so bytes never wait much more than a window. Timestamps are not affected: the first
// packets, which anchor a stream's timeline, arrive before the first window ends.

/** How long a rate is measured before the mark follows it. */
export const COALESCE_WINDOW_MS = 1000;
/** Below this a mark saves little; the socket keeps the kernel default (1 byte). */
export const MIN_LOW_WATER = 8 << 10;
/** Marks move in these steps. */
const STEP = 4 << 10;

export interface ReadCoalesceOptions {
  /** Longest a recording-only stream's bytes may wait in the kernel at its measured rate; 0 = off. */
  maxDelayMs: number;
  /** The largest mark. */
  maxBytes: number;
  /** Applies a mark to the socket (1 = the default); false when it could not. */
  set: (bytes: number) => boolean;
}

export class ReadCoalescer {
  #o: ReadCoalesceOptions;
  #bytes = 0;
  #since: number;
  #mark = 0;
  #live = false;
  #failed = false;

  constructor(o: ReadCoalesceOptions, now: number) {
    this.#o = o;
    this.#since = now;
  }

  /** The mark in force (0: the kernel default, every byte is read at once). */
  get lowWater(): number {
    return this.#mark;
  }

  /** Counts one read's bytes (hot path: an addition). */
  add(n: number): void {
    this.#bytes += n;
  }

  /** Someone watches the stream live (reads at once) or nobody does (marks allowed again). */
  setLive(on: boolean): void {
    this.#live = on;
    if (on && this.#mark !== 0) this.#apply(0);
  }

  /** Looks at the rate once a window has passed, and moves the mark when it is off by more than a quarter. */
  tick(now: number): void {
    const dt = now - this.#since;
    if (dt < COALESCE_WINDOW_MS) return;
    const rate = (this.#bytes * 1000) / dt;
    this.#bytes = 0;
    this.#since = now;
    if (this.#failed) return;
    let want = 0;
    if (!this.#live && this.#o.maxDelayMs > 0) {
      want = Math.min(this.#o.maxBytes, Math.floor((rate * this.#o.maxDelayMs) / 1000 / STEP) * STEP);
      if (want < MIN_LOW_WATER) want = 0;
    }
    const m = this.#mark;
    if (want === m) return;
    if (want !== 0 && m !== 0 && Math.abs(want - m) * 4 <= m) return; // the rate's read-to-read jitter
    this.#apply(want);
  }

  #apply(mark: number): void {
    if (this.#o.set(mark === 0 ? 1 : mark)) this.#mark = mark;
    else {
      this.#failed = true; // no libc, or the socket is gone: stay on the default
      this.#mark = 0;
    }
  }
}
