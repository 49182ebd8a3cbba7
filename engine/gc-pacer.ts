// Collection pacing for the main thread's ingest garbage.
//
// Bun gives every socket read to JavaScript as a fresh buffer: at 100 cameras of 4 Mbit/s that
// is ~50 MB/s of short-lived buffers on the main thread, whose bytes live outside the JS heap.
// JavaScriptCore's own heuristics let them pile up between collections, so the process holds
// ~15 MB more than it needs, and the allocator hands the freed pages back to the kernel and
// faults them in again (~3,000 page faults a second on the main thread). Asking for an
// asynchronous collection once every few MB of ingest keeps the buffers' memory hot and small:
// at 100 cameras RSS went from 148-153 to 133-137 MB over alternating runs, with a quarter fewer
// page faults and the main thread's CPU within the runs' noise (README, Performance). The call
// itself is cheap (an async collection request plus mimalloc's collect: ~0.2 % of a core here).
// `[video.storage.performance] gc_budget_mb` sets the budget; 0 leaves it all to the runtime.
//
// Paced by bytes rather than by time: an idle engine asks for nothing, one camera rarely.

/** Ingest bytes between two collection requests. */
export const GC_BUDGET_BYTES = 4 << 20;
/** How often the ingest rate is looked at. */
export const GC_CHECK_MS = 100;

export interface GcPacerOptions {
  /** Ingest bytes a second now (the media pool's measured rate). */
  rate: () => number;
  /** Requests a collection; Bun.gc(false) (asynchronous) by default. */
  collect?: () => void;
  budgetBytes?: number;
  checkMs?: number;
}

export class GcPacer {
  #requests = 0;
  #due = 0;
  #timer: ReturnType<typeof setInterval> | null = null;
  readonly #rate: () => number;
  readonly #collect: () => void;
  readonly #budget: number;
  readonly #checkMs: number;

  constructor(o: GcPacerOptions) {
    this.#rate = o.rate;
    this.#collect = o.collect ?? (() => Bun.gc(false));
    this.#budget = o.budgetBytes ?? GC_BUDGET_BYTES;
    this.#checkMs = o.checkMs ?? GC_CHECK_MS;
  }

  /** Collections requested so far. */
  get requests(): number {
    return this.#requests;
  }

  /** Checks every `checkMs` from now on (the timer does not keep the process alive). */
  start(): this {
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.tick(this.#checkMs), this.#checkMs);
      this.#timer.unref?.();
    }
    return this;
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Accounts for `elapsedMs` of ingest at the current rate; true when it asked for a collection. */
  tick(elapsedMs: number): boolean {
    const rate = this.#rate();
    if (!(rate > 0) || !(elapsedMs > 0)) return false;
    this.#due += (rate * elapsedMs) / 1000;
    if (this.#due < this.#budget) return false;
    this.#due = 0;
    this.#requests++;
    this.#collect();
    return true;
  }
}
