import { describe, expect, test } from 'bun:test';
import { REORDER_DELIVER, REORDER_DUPLICATE, REORDER_HELD, REORDER_LATE, RtpReorderBuffer } from './rtp-reorder.ts';
import { mulberry32, randInt } from './testdata/test-helpers.ts';

const pkt = (seq: number) => new Uint8Array([0x80, 96, seq >> 8, seq & 255, 0, 0, 0, 0, 0, 0, 0, 0, seq & 255]);
const seqOf = (p: Uint8Array) => (p[2]! << 8) | p[3]!;

/** Feeds sequence numbers; returns the order they come out in. */
function run(r: RtpReorderBuffer, seqs: number[], times?: number[]): number[] {
  const out: number[] = [];
  seqs.forEach((s, i) => {
    const p = pkt(s);
    if (r.offer(p, s, times?.[i]) === REORDER_DELIVER) out.push(seqOf(p));
    for (let q = r.next(); q; q = r.next()) out.push(seqOf(q));
  });
  return out;
}

describe('RtpReorderBuffer', () => {
  test('in-order packets are delivered as the very same view, never copied', () => {
    const r = new RtpReorderBuffer(32);
    for (let s = 65530; s < 65540; s++) {
      const p = pkt(s & 0xffff);
      expect(r.offer(p, s & 0xffff)).toBe(REORDER_DELIVER);
      expect(r.next()).toBeNull();
    }
    expect(r.lost + r.reordered + r.duplicates).toBe(0);
  });

  test('releases swapped and delayed packets in order and counts them', () => {
    const r = new RtpReorderBuffer(8);
    expect(run(r, [1, 3, 2, 4, 7, 5, 6, 8])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.reordered).toBe(3); // 2 came after 3; 5 and 6 after 7
    expect(r.lost).toBe(0);
  });

  test('held packets are copies: the caller may reuse its buffer', () => {
    const r = new RtpReorderBuffer(8);
    r.offer(pkt(1), 1);
    const p3 = pkt(3);
    expect(r.offer(p3, 3)).toBe(REORDER_HELD);
    p3.fill(0);
    r.offer(pkt(2), 2);
    expect(seqOf(r.next()!)).toBe(3);
  });

  test('drops duplicates of delivered and of held packets', () => {
    const r = new RtpReorderBuffer(8);
    run(r, [1, 2, 4]);
    expect(r.offer(pkt(4), 4)).toBe(REORDER_DUPLICATE);
    expect(r.offer(pkt(2), 2)).toBe(REORDER_DUPLICATE);
    expect(r.duplicates).toBe(2);
  });

  test('declares a gap lost once a packet arrives a window later, and a late packet is refused', () => {
    const r = new RtpReorderBuffer(4);
    expect(run(r, [1, 3, 4, 5])).toEqual([1]);
    expect(run(r, [6])).toEqual([3, 4, 5, 6]);
    expect(r.lost).toBe(1);
    expect(r.offer(pkt(2), 2)).toBe(REORDER_LATE);
    expect(r.lost).toBe(0); // RFC 3550 counts it as received
    expect(r.late).toBe(1);
  });

  test('a big gap with nothing held is delivered at once', () => {
    const r = new RtpReorderBuffer(4);
    expect(run(r, [1, 100])).toEqual([1, 100]);
    expect(r.lost).toBe(98);
  });

  test('window 0 (TCP) delivers everything immediately and still counts gaps', () => {
    const r = new RtpReorderBuffer(0);
    expect(run(r, [1, 2, 5, 6])).toEqual([1, 2, 5, 6]);
    expect(r.lost).toBe(2);
  });

  test('a gap older than the delay limit is given up on the next packet', () => {
    const r = new RtpReorderBuffer(32, 100);
    expect(run(r, [1, 3, 4], [0, 10, 50])).toEqual([1]);
    expect(run(r, [5], [200])).toEqual([3, 4, 5]);
    expect(r.lost).toBe(1);
  });

  test('flush releases held packets across gaps', () => {
    const r = new RtpReorderBuffer(32);
    expect(run(r, [1, 3, 6])).toEqual([1]);
    r.flush();
    const out: number[] = [];
    for (let q = r.next(); q; q = r.next()) out.push(seqOf(q));
    expect(out).toEqual([3, 6]);
    expect(r.lost).toBe(3);
  });

  test('a sender restart (two sequential packets far behind) resynchronises', () => {
    const r = new RtpReorderBuffer(8);
    run(r, [30000, 30001]);
    expect(run(r, [100, 101, 102])).toEqual([101, 102]);
    expect(r.resyncs).toBe(1);
  });

  test('fuzz: any arrival order yields strictly increasing, unique output; lost + delivered = span', () => {
    const rnd = mulberry32(32);
    for (let round = 0; round < 300; round++) {
      const window = randInt(rnd, 40);
      const r = new RtpReorderBuffer(window, 1000);
      const start = randInt(rnd, 65536);
      const n = 50 + randInt(rnd, 300);
      const seqs: number[] = [];
      for (let i = 0; i < n; i++) if (rnd() > 0.1) seqs.push(i);
      for (let i = 1; i < seqs.length; i++) if (rnd() < 0.2) { const j = Math.min(seqs.length - 1, i + randInt(rnd, 6)); [seqs[i], seqs[j]] = [seqs[j]!, seqs[i]!]; }
      for (let i = 1; i < seqs.length; i++) if (rnd() < 0.05) seqs.splice(i, 0, seqs[i - randInt(rnd, Math.min(i, 5)) ]!);
      const out = run(r, seqs.map((s) => (start + s) & 0xffff), seqs.map((_, i) => i));
      r.flush();
      for (let q = r.next(); q; q = r.next()) out.push(seqOf(q));
      const rel = out.map((s) => (s - start) & 0xffff);
      for (let i = 1; i < rel.length; i++) expect(rel[i]!).toBeGreaterThan(rel[i - 1]!);
      const span = rel.at(-1)! - rel[0]! + 1;
      expect(r.lost + r.late + rel.length).toBe(span); // a late packet is no longer lost, but not delivered either
    }
  });
});
