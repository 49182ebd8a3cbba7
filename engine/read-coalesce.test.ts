import { describe, expect, test } from 'bun:test';
import { COALESCE_WINDOW_MS, MIN_LOW_WATER, ReadCoalescer } from './read-coalesce.ts';
import { setRecvLowWater } from './sockopt.ts';

/** A coalescer whose socket is a list of the marks it was given. */
function make(maxDelayMs = 200, maxBytes = 64 << 10, ok = true) {
  const set: number[] = [];
  const c = new ReadCoalescer({ maxDelayMs, maxBytes, set: (b) => (set.push(b), ok) }, 0);
  let now = 0;
  /** One window at `bytesPerSec`, in reads of `read` bytes. */
  const window = (bytesPerSec: number, read = 5000) => {
    for (let left = (bytesPerSec * COALESCE_WINDOW_MS) / 1000; left > 0; left -= read) c.add(Math.min(read, left));
    now += COALESCE_WINDOW_MS;
    c.tick(now);
  };
  return { c, set, window, tick: (ms: number) => c.tick((now += ms)) };
}

describe('read coalescing: the low-water mark follows the rate', () => {
  test('nothing before a whole window; then the mark fills within the delay at the measured rate', () => {
    const { c, set, tick, window } = make(200);
    c.add(100_000);
    tick(COALESCE_WINDOW_MS - 1);
    expect(set).toEqual([]);
    expect(c.lowWater).toBe(0);
    tick(1); // 800 kbit/s: 200 ms of it is 20,000 bytes, in 4 KiB steps
    expect(c.lowWater).toBe(16 << 10);
    window(200_000); // 1.6 Mbit/s: 40,000 bytes
    expect(c.lowWater).toBe(36 << 10);
    expect(set).toEqual([16 << 10, 36 << 10]);
  });

  test('capped at maxBytes; a 4 Mbit/s camera reads 64 KiB at a time', () => {
    const { c, window } = make(200, 64 << 10);
    window(500_000);
    expect(c.lowWater).toBe(64 << 10);
  });

  test('a slow stream keeps the default (below the smallest useful mark)', () => {
    const { c, set, window } = make(200);
    window(30_000); // 240 kbit/s: 6,000 bytes in 200 ms
    expect(c.lowWater).toBe(0);
    expect(set).toEqual([]);
  });

  test('small swings of the rate leave the mark alone; a large one moves it', () => {
    const { c, set, window } = make(200, 1 << 20);
    window(500_000);
    expect(c.lowWater).toBe(96 << 10);
    window(560_000); // +12 %: the reads' quantization, not a new rate
    expect(set.length).toBe(1);
    window(250_000); // halved
    expect(c.lowWater).toBe(48 << 10);
    expect(set.length).toBe(2);
  });

  test('a window without a read drops the mark at once (a VBR camera gone quiet), and the next finds the rate again', () => {
    const { c, set, window } = make(200);
    window(500_000);
    expect(c.lowWater).toBe(64 << 10);
    window(0);
    expect(c.lowWater).toBe(0);
    expect(set.at(-1)).toBe(1); // the kernel's default
    window(100_000);
    expect(c.lowWater).toBe(16 << 10);
  });

  test('a live viewer reads every byte at once, at once; when it leaves the mark comes back with the next window', () => {
    const { c, set, window } = make(200);
    window(500_000);
    c.setLive(true);
    expect(c.lowWater).toBe(0);
    expect(set).toEqual([64 << 10, 1]);
    window(500_000);
    expect(c.lowWater).toBe(0);
    c.setLive(false);
    expect(c.lowWater).toBe(0);
    window(500_000);
    expect(c.lowWater).toBe(64 << 10);
  });

  test('off (0 ms) never touches the socket; a socket that refuses the option is left alone from then on', () => {
    const off = make(0);
    off.window(500_000);
    expect(off.set).toEqual([]);
    const refused = make(200, 64 << 10, false);
    refused.window(500_000);
    refused.window(500_000);
    expect(refused.set).toEqual([64 << 10]);
    expect(refused.c.lowWater).toBe(0);
    expect(MIN_LOW_WATER).toBeGreaterThan(0);
  });
});

describe('SO_RCVLOWAT on a real socket (loopback)', () => {
  test('a read waits for the mark: 1,000 bytes are held, 70,000 more arrive in one read', async () => {
    const reads: number[] = [];
    let server: import('bun').Socket<undefined> | null = null;
    const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { open: (s) => void (server = s), data: () => {} } });
    let wake: (() => void) | null = null;
    const client = await Bun.connect({
      hostname: '127.0.0.1',
      port: listener.port,
      socket: { data: (_s, d) => (reads.push(d.length), wake?.()) },
    });
    try {
      for (let i = 0; i < 100 && server === null; i++) await Bun.sleep(10);
      expect(server).not.toBeNull();
      expect(setRecvLowWater((client as unknown as { fd: number }).fd, 64 << 10)).toBe(true);
      server!.write(new Uint8Array(1000));
      await Bun.sleep(300); // bounded: the bytes are held, nothing to wait for
      expect(reads).toEqual([]);
      const got = new Promise<void>((r) => (wake = r));
      server!.write(new Uint8Array(70_000));
      await Promise.race([got, Bun.sleep(5000)]);
      expect(reads.length).toBeGreaterThanOrEqual(1);
      expect(reads[0]).toBeGreaterThanOrEqual(64 << 10);
      expect(reads.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(71_000);
      // Back to the default: the next few bytes come at once.
      expect(setRecvLowWater((client as unknown as { fd: number }).fd, 1)).toBe(true);
      const before = reads.length;
      const again = new Promise<void>((r) => (wake = r));
      server!.write(new Uint8Array(10));
      await Promise.race([again, Bun.sleep(5000)]);
      expect(reads.length).toBe(before + 1);
    } finally {
      client.end();
      listener.stop(true);
    }
  });

  test('a bad descriptor is refused, not a crash', () => {
    expect(setRecvLowWater(-1, 65536)).toBe(false);
    expect(setRecvLowWater(1e9, 65536)).toBe(false);
  });
});
