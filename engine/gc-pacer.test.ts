import { describe, expect, test } from 'bun:test';
import { GC_BUDGET_BYTES, GcPacer } from './gc-pacer.ts';

describe('GcPacer', () => {
  test('asks for a collection once per budget of ingest, whatever the rate', () => {
    let rate = 50e6; // 100 cameras of 4 Mbit/s
    let collections = 0;
    const p = new GcPacer({ rate: () => rate, collect: () => collections++, budgetBytes: 4e6, checkMs: 100 });
    for (let i = 0; i < 10; i++) p.tick(100); // 1 s at 50 MB/s: 50 MB
    expect(collections).toBe(10); // 5 MB a tick, budget 4 MB: every tick
    collections = 0;
    rate = 1e6; // two cameras: 0.1 MB a tick
    for (let i = 0; i < 100; i++) p.tick(100); // 10 MB in 10 s
    expect(collections).toBe(2);
    expect(p.requests).toBe(12);
  });

  test('an idle engine asks for nothing', () => {
    let collections = 0;
    const p = new GcPacer({ rate: () => 0, collect: () => collections++ });
    for (let i = 0; i < 1000; i++) p.tick(100);
    expect(collections).toBe(0);
  });

  test('a bad rate or elapsed time counts as nothing', () => {
    let collections = 0;
    const rates = [Number.NaN, -5, Infinity];
    for (const r of rates) {
      const p = new GcPacer({ rate: () => r, collect: () => collections++, budgetBytes: 1 });
      p.tick(100);
      p.tick(Number.NaN);
    }
    const q = new GcPacer({ rate: () => 1e9, collect: () => collections++, budgetBytes: 1 });
    q.tick(-1);
    q.tick(0);
    expect(collections).toBe(1); // only Infinity x 100 ms crossed a budget
  });

  test('start() runs it on a timer that stop() ends; the default is Bun.gc and a 4 MB budget', async () => {
    expect(GC_BUDGET_BYTES).toBe(4 << 20);
    let collections = 0;
    const p = new GcPacer({ rate: () => 1e9, collect: () => collections++, checkMs: 5 }).start();
    await Bun.sleep(60);
    p.stop();
    const seen = collections;
    expect(seen).toBeGreaterThan(0);
    await Bun.sleep(30);
    expect(collections).toBe(seen);
    const real = new GcPacer({ rate: () => 1e9, budgetBytes: 1 });
    expect(real.tick(100)).toBe(true); // Bun.gc(false) really called, no throw
  });
});
