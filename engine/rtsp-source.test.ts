// The RTSP source's UDP sockets survive ICMP errors from the camera side.
import { expect, test } from 'bun:test';
import { bindUdpPair, RtspSource } from './rtsp-source.ts';

test('a receiver report to a closed RTCP port (ICMP port unreachable) does not end the process', async () => {
  const got: number[] = [];
  const pair = await bindUdpPair({ min: 41000, max: 41999 }, (rtcp, d) => got.push(rtcp ? -d.length : d.length));
  try {
    // Port 9 (discard) on loopback is closed here: each send draws an ICMP error that Bun
    // reports on the socket; without an error handler it is an uncaught error.
    for (let i = 0; i < 3; i++) {
      pair.rtcp.send(new Uint8Array(32), 9, '127.0.0.1');
      await Bun.sleep(30);
    }
    // The pair still receives afterwards.
    const probe = await Bun.udpSocket({ hostname: '127.0.0.1', port: 0 });
    probe.send(new Uint8Array(12), pair.rtp.port, '127.0.0.1');
    probe.close();
    for (let i = 0; i < 50 && got.length === 0; i++) await Bun.sleep(10);
    expect(got).toEqual([12]);
  } finally {
    pair.rtp.close();
    pair.rtcp.close();
  }
});

test('startDelayMs: the first connection waits that long; stop() before it means none at all', async () => {
  const opened: number[] = [];
  const server = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { open: (s) => { opened.push(performance.now()); s.end(); }, data: () => {} } });
  const opts = (startDelayMs: number) => ({
    streamId: 'late', url: `rtsp://127.0.0.1:${server.port}/cam`, record: false, pool: null as never, keyframeIntervalMs: 0,
    nextSegmentNumber: () => 1, udpPorts: { min: 42000, max: 42999 }, onState: () => {}, onHandle: () => {}, startDelayMs,
  });
  try {
    const t0 = performance.now();
    const a = new RtspSource(opts(300));
    for (let i = 0; i < 100 && opened.length === 0; i++) await Bun.sleep(10);
    expect(opened.length).toBeGreaterThan(0);
    expect(opened[0]! - t0).toBeGreaterThanOrEqual(290);
    await a.stop();
    opened.length = 0;
    const b = new RtspSource(opts(200));
    await b.stop();
    await Bun.sleep(300);
    expect(opened.length).toBe(0);
  } finally {
    server.stop(true);
  }
});
