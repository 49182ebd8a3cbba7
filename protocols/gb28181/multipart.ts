// Assembly of multi-part list answers (Catalog, RecordInfo: GB/T 28181-2016 §A.2.6): items of
// one (device, command, SN) arrive over several MESSAGEs, each announcing SumNum; complete when
// SumNum items are in, given up after a timeout (time passed in), capped in items and collections.

/** Channels of the largest NVRs (a few thousand); beyond this a device is broken or hostile. */
export const MAX_LIST_ITEMS = 10_000;
/** Collections in progress at once: one Catalog + a few RecordInfo per device being queried. */
export const MAX_COLLECTIONS = 4096;

export type Collected<T> =
  | { kind: 'more'; got: number; sumNum: number }
  | { kind: 'complete'; items: T[]; sumNum: number }
  /** The device announced more than MAX_LIST_ITEMS: we keep the first ones and stop. */
  | { kind: 'capped'; items: T[]; sumNum: number }
  | { kind: 'unexpected' };

interface Collection<T> { items: T[]; sumNum: number; deadlineMs: number; seen: Set<string> }

export class MultiPartCollector<T> {
  readonly #c = new Map<string, Collection<T>>();
  constructor(private readonly itemKey: (t: T) => string) {}

  /** Starts waiting for a list (the query was sent); false when too many are in progress. */
  expect(key: string, nowMs: number, timeoutMs: number): boolean {
    if (this.#c.size >= MAX_COLLECTIONS && !this.#c.has(key)) return false;
    this.#c.set(key, { items: [], sumNum: -1, deadlineMs: nowMs + timeoutMs, seen: new Set() });
    return true;
  }

  /** Adds one part's items; duplicates (a resent part) are dropped by itemKey. */
  add(key: string, sumNum: number, part: T[]): Collected<T> {
    const c = this.#c.get(key);
    if (c === undefined) return { kind: 'unexpected' };
    c.sumNum = Math.max(c.sumNum, sumNum);
    for (const it of part) {
      const k = this.itemKey(it);
      if (c.seen.has(k)) continue;
      if (c.items.length >= MAX_LIST_ITEMS) break;
      c.seen.add(k);
      c.items.push(it);
    }
    if (c.items.length >= MAX_LIST_ITEMS && c.sumNum > MAX_LIST_ITEMS) {
      this.#c.delete(key);
      return { kind: 'capped', items: c.items, sumNum: c.sumNum };
    }
    if (c.items.length >= c.sumNum) {
      this.#c.delete(key);
      return { kind: 'complete', items: c.items, sumNum: c.sumNum };
    }
    return { kind: 'more', got: c.items.length, sumNum: c.sumNum };
  }

  /** Collections past their deadline, removed, with what arrived (a partial list). */
  expire(nowMs: number): { key: string; items: T[]; sumNum: number }[] {
    const out: { key: string; items: T[]; sumNum: number }[] = [];
    for (const [k, c] of this.#c) {
      if (nowMs < c.deadlineMs) continue;
      this.#c.delete(k);
      out.push({ key: k, items: c.items, sumNum: c.sumNum });
    }
    return out;
  }

  cancel(key: string): void { this.#c.delete(key); }
  get size(): number { return this.#c.size; }
}
