// The socket poller on real loopback TCP sockets: a paused Bun socket's bytes are read by the
// poller's recv, in order and whole; the peer's close and a reset are reported once; sockets
// taken back go to Bun's event loop again.
import { afterEach, describe, expect, test } from 'bun:test';
import type { Socket, TCPSocketListener } from 'bun';
import { pollerUnavailable, SocketPoller, type PolledSocket } from './socket-poller.ts';

interface Pair {
  client: Socket<undefined>;
  server: Socket<undefined>;
  /** What Bun's own data callback delivered to the client. */
  bunBytes: number[];
}

const listeners: TCPSocketListener<undefined>[] = [];
const pollers: SocketPoller[] = [];
afterEach(() => {
  for (const p of pollers.splice(0)) p.stop();
  for (const l of listeners.splice(0)) l.stop(true);
});

async function pair(): Promise<Pair> {
  let server: Socket<undefined> | null = null;
  const l = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { open: (s) => void (server = s), data: () => {} } });
  listeners.push(l);
  const bunBytes: number[] = [];
  const client = await Bun.connect({ hostname: '127.0.0.1', port: l.port, socket: { data: (_s, d) => void bunBytes.push(...d) } });
  for (let i = 0; i < 200 && server === null; i++) await Bun.sleep(5);
  if (server === null) throw new Error('no server side');
  return { client, server, bunBytes };
}

function polled(p: Pair): PolledSocket & { got: number[]; ends: (string | null)[] } {
  const got: number[] = [];
  const ends: (string | null)[] = [];
  return { fd: (p.client as unknown as { fd: number }).fd, got, ends, onData: (v) => void got.push(...v), onEnd: (e) => void ends.push(e) };
}

/** A poller stopped after the test. */
function newPoller(intervalMs: number): SocketPoller {
  const p = new SocketPoller(intervalMs);
  pollers.push(p);
  return p;
}

/** The pair's client paused on Bun's side and handed to `poller`. */
function handOver(poller: SocketPoller, p: Pair): ReturnType<typeof polled> {
  const s = polled(p);
  p.client.pause();
  expect(poller.add(s)).toBe(true);
  return s;
}

async function until(fn: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

describe('socket poller (loopback TCP)', () => {
  test('libc is there on this Linux', () => {
    expect(pollerUnavailable()).toBeNull();
  });

  test("a paused socket's bytes come through the poller, in order and whole (more than one read's room)", async () => {
    const p = await pair();
    const poller = newPoller(20);
    const s = handOver(poller, p);
    const data = new Uint8Array(700_000).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
    p.server.write(data);
    await until(() => s.got.length === data.length, 'all bytes through the poller');
    expect(Buffer.from(s.got).equals(Buffer.from(data))).toBe(true);
    expect(p.bunBytes.length).toBe(0); // Bun's loop read none of them
    expect(poller.bytes).toBe(data.length);
    expect(s.ends).toEqual([]);
  });

  test('the turns are spread: with many sockets each one is read within its interval', async () => {
    const ps = await Promise.all(Array.from({ length: 12 }, () => pair()));
    const poller = newPoller(60);
    const ss = ps.map((p) => handOver(poller, p));
    for (let round = 1; round <= 3; round++) {
      for (const p of ps) p.server.write(new Uint8Array(1000).fill(round));
      await until(() => ss.every((s) => s.got.length === round * 1000), `round ${round} on every socket`);
    }
    expect(poller.size).toBe(12);
  });

  test('a socket taken back goes to Bun again; the peer closing is reported once and the socket leaves', async () => {
    const p = await pair();
    const poller = newPoller(20);
    const s = handOver(poller, p);
    p.server.write(new Uint8Array(10).fill(1));
    await until(() => s.got.length === 10, 'polled bytes');
    poller.delete(s);
    p.client.resume();
    p.server.write(new Uint8Array(5).fill(2));
    await until(() => p.bunBytes.length === 5, "Bun's read after the socket was taken back");
    expect(s.got.length).toBe(10);
    p.client.pause();
    poller.add(s);
    p.server.write(new Uint8Array(3).fill(3));
    p.server.end();
    await until(() => s.ends.length === 1, 'the end reported');
    expect(s.got.slice(10)).toEqual([3, 3, 3]); // the bytes before the close are read first
    expect(s.ends).toEqual([null]);
    expect(poller.size).toBe(0);
    await Bun.sleep(60);
    expect(s.ends.length).toBe(1);
  });

  test('a descriptor that is not a socket is reported as an error, not a crash', async () => {
    const poller = newPoller(20);
    const ends: (string | null)[] = [];
    poller.add({ fd: 1 << 20, onData: () => {}, onEnd: (e) => void ends.push(e) });
    await until(() => ends.length === 1, 'the error');
    expect(ends[0]).toMatch(/recv failed \(errno 9\)/); // EBADF
    expect(poller.size).toBe(0);
  });
});
