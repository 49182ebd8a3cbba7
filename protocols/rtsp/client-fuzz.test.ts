import { describe, expect, test } from 'bun:test';
import { mulberry32, mutate, randInt, randomBytes } from '../../media/testdata/test-helpers.ts';
import { RtspClient, type RtspClientOptions, type RtspEvent } from './client.ts';
import { concat, frame, playToEnd, response, ScriptedCamera, SDP_CAMERA, SDP_H264_AAC } from './testdata/rtsp-script.ts';

const KINDS = new Set(['send', 'described', 'playing', 'redirect', 'error', 'closed']);

/** Real camera byte streams from scripted sessions: the seeds the fuzz loop mutates. */
function transcripts(): { opts: Partial<RtspClientOptions>; bytes: Uint8Array }[] {
  const out: { opts: Partial<RtspClientOptions>; bytes: Uint8Array }[] = [];
  const digest = { username: 'u', password: 'p', cnonce: () => 'c' };
  const a = new ScriptedCamera(digest).start();
  a.reply(401, [['WWW-Authenticate', 'Digest realm="r", nonce="n", qop="auth"'], ['WWW-Authenticate', 'Basic realm="r"']]);
  playToEnd(a, { timeout: '20' });
  a.send(concat(frame(0, [0x80, 96, 0, 1]), frame(1, [0x81, 200]), frame(2, [0x80, 97]), frame(3, [])));
  a.tick(20_000).reply(200);
  a.send(new TextEncoder().encode('OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n'));
  out.push({ opts: digest, bytes: concat(...a.transcript) });
  const udp = { transport: 'udp' as const, udpPorts: (i: number) => ({ rtp: 4000 + 2 * i, rtcp: 4001 + 2 * i }) };
  const b = new ScriptedCamera(udp).start();
  playToEnd(b, { sdp: SDP_CAMERA, base: 'rtsp://cam.local/live' });
  out.push({ opts: udp, bytes: concat(...b.transcript) });
  const c = new ScriptedCamera().start();
  c.reply(200).reply(302, [['Location', 'rtsp://x:1/y']]);
  out.push({ opts: {}, bytes: concat(...c.transcript, response(200, 3, [], SDP_H264_AAC)) });
  return out;
}

/** Feeds `bytes` to a fresh client in random chunks with random ticks; checks the invariants. */
function run(opts: Partial<RtspClientOptions>, bytes: Uint8Array, rnd: () => number, maxStepMs = 3000): RtspEvent[] {
  let tracksSeen = 0;
  const client = new RtspClient({
    url: 'rtsp://cam.local/live', transport: 'tcp', ...opts,
    onInterleaved: (track, _rtcp, data) => {
      expect(track).toBeLessThan(client.tracks.length);
      expect(data.length).toBeLessThanOrEqual(bytes.length);
      tracksSeen++;
    },
  });
  const events: RtspEvent[] = [];
  const take = () => {
    for (const e of client.drain()) {
      expect(KINDS.has(e.kind)).toBe(true);
      events.push(e);
    }
  };
  let now = 1000;
  client.start(now);
  take();
  let off = 0;
  while (off < bytes.length) {
    const n = 1 + randInt(rnd, 300);
    client.receive(bytes.subarray(off, off + n), now);
    off += n;
    now += randInt(rnd, maxStepMs);
    if (rnd() < 0.3) client.tick(now);
    if (rnd() < 0.02 && client.state === 'redirect') client.start(now);
    take();
  }
  client.tick(now + 100_000);
  client.stop(now + 100_001);
  take();
  const fatal = events.findIndex((e) => e.kind === 'error' && e.fatal);
  expect(events.filter((e) => e.kind === 'error' && e.fatal).length).toBeLessThanOrEqual(1);
  if (fatal >= 0) expect(events.slice(fatal + 1).every((e) => e.kind === 'closed')).toBe(true); // inert after a fatal error
  expect(events.at(-1)).toEqual({ kind: 'closed' });
  expect(events.length).toBeLessThanOrEqual(bytes.length + 64);
  expect(tracksSeen).toBeLessThanOrEqual(bytes.length / 4);
  for (const e of events) if (e.kind === 'error') expect(e.message.length).toBeLessThan(2000);
  return events;
}

describe('RtspClient fuzz', () => {
  const seeds = transcripts();

  // (the keepalive reply in the first transcript arrives unasked here: a non-fatal error, filtered out)
  test('the unmutated transcripts play cleanly', () => {
    const kinds = seeds.map((s) => run(s.opts, s.bytes, mulberry32(1), 10).filter((e) => e.kind !== 'send' && !(e.kind === 'error' && !e.fatal)).map((e) => e.kind));
    expect(kinds).toEqual([['described', 'playing', 'closed'], ['described', 'playing', 'closed'], ['redirect', 'closed']]);
  });

  test('never throws on mutated camera streams; only error events, then inert', () => {
    const rnd = mulberry32(0xc0ffee);
    for (let k = 0; k < 1500; k++) {
      const s = seeds[k % seeds.length]!;
      let b = mutate(s.bytes, rnd);
      if (k % 7 === 0) b = mutate(b, rnd); // two rounds sometimes
      run(s.opts, b, rnd);
    }
  });

  test('never throws on random bytes, nor on responses cut and shuffled', () => {
    const rnd = mulberry32(99);
    for (let k = 0; k < 500; k++) run({}, randomBytes(rnd, randInt(rnd, 1500)), rnd);
    for (let k = 0; k < 300; k++) {
      const s = seeds[k % seeds.length]!;
      const cuts = Array.from({ length: 6 }, () => randInt(rnd, s.bytes.length)).sort((x, y) => x - y);
      const parts = [0, ...cuts, s.bytes.length].slice(1).map((end, i, all) => s.bytes.subarray(i === 0 ? 0 : all[i - 1]!, end));
      parts.sort(() => rnd() - 0.5);
      run(s.opts, concat(...parts), rnd);
    }
  });
});
