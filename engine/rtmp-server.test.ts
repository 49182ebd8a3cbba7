// RtmpServer alone, with real ffmpeg publishers and misbehaving raw clients; the engine is
// replaced by callbacks that collect the tags into arrays.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { FLV_FRAME, FLV_TRACK, FlvVideoDemuxer } from '../media/flv.ts';
import { publishArgs, runFfmpeg } from '../protocols/rtmp/testdata/rtmp-test-server.ts';
import { decidePublish, isKeyPicture, MAX_QUEUE_BYTES, type RtmpPublishTarget, RtmpServer } from './rtmp-server.ts';

interface Tag { type: number; ts: number; keyframe: boolean; header: Uint8Array; body: Uint8Array }

/** What the fake engine saw of one stream id. */
interface Seen { publishes: number; unpublishes: string[]; tags: Tag[]; info: { remote: string; app: string } | null }

const seen = new Map<string, Seen>();
const of = (id: string): Seen => {
  let s = seen.get(id);
  if (s === undefined) seen.set(id, (s = { publishes: 0, unpublishes: [], tags: [], info: null }));
  return s;
};
/** Stream ids whose onPublish waits this long, or rejects. */
const slowStart = new Map<string, number>();
const failStart = new Set<string>();

function collector(s: Seen): RtmpPublishTarget {
  return {
    writeTag(header, body, keyframe) {
      const ts = ((header[7]! << 24) | (header[4]! << 16) | (header[5]! << 8) | header[6]!) >>> 0;
      s.tags.push({ type: header[0]!, ts, keyframe, header: header.slice(), body: body.slice() });
      return true;
    },
  };
}

let srv: RtmpServer;
beforeAll(() => {
  srv = RtmpServer.start({
    host: '127.0.0.1',
    port: 0,
    authorize: (id, q) =>
      decidePublish(id, q, { publishKey: 'GLOBAL', allowAny: id.startsWith('any') }, id.startsWith('pub') ? { protocol: 'rtmp', publish_key: 'SECRET' } : undefined),
    async onPublish(id, info) {
      const s = of(id);
      s.publishes++;
      s.info = info;
      const wait = slowStart.get(id);
      if (wait !== undefined) await Bun.sleep(wait);
      if (failStart.has(id)) throw new Error('no media worker free');
      return collector(s);
    },
    onUnpublish: (id, reason) => void of(id).unpublishes.push(reason),
    // idle > x264's lookahead (1.6 s at 25 fps): ffmpeg publishes before its first packet exists
    handshakeTimeoutMs: 500,
    idleTimeoutMs: 3000,
    tickMs: 100,
  });
});
afterAll(() => srv.stop());

const url = (path: string) => `rtmp://127.0.0.1:${srv.port}/live/${path}`;

/** A raw TCP client; resolves with the ms until the server closed it. */
function rawClient(first: Uint8Array): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    void Bun.connect({
      hostname: '127.0.0.1', port: srv.port,
      socket: { open(s) { s.write(first); }, data() {}, close() { resolve(Date.now() - t0); }, error() { resolve(Date.now() - t0); } },
    });
  });
}

const videoTags = (s: Seen) => s.tags.filter((t) => t.type === 9);
/** Video frames in the tags, as media/flv.ts demuxes them (no sequence header or end tags). */
const videoFrames = (s: Seen) => {
  const d = new FlvVideoDemuxer();
  return videoTags(s).filter((t) => d.push(t.body, t.ts) & FLV_FRAME).length;
};
const audioTags = (s: Seen) => s.tags.filter((t) => t.type === 8);

describe('one ffmpeg publisher (H.264 + AAC, 3 s)', () => {
  let code = -1;
  let stderr = '';
  let cut: { stall: number; garbage: number; noise: number };

  beforeAll(async () => {
    const stall = rawClient(new Uint8Array([3, ...new Array(700).fill(7)])); // C0 + half a C1, then silence
    const garbage = rawClient(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const noise = rawClient(new Uint8Array([3, ...Array.from({ length: 4000 }, (_, i) => (i * 7919) & 0xff)]));
    ({ code, stderr } = await runFfmpeg(publishArgs(url('pub1?key=SECRET'), 3)));
    cut = { stall: await stall, garbage: await garbage, noise: await noise };
    await Bun.sleep(100);
  }, 20_000);

  test('ffmpeg publishes without an error while garbage and stalling clients are cut off', () => {
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(cut.garbage).toBeLessThan(300); // not an RTMP version byte: the handshake fails at once
    expect(cut.stall).toBeLessThan(1500); // handshake timeout 500 ms + a tick
    expect(cut.noise).toBeLessThan(4000); // a chunk error, or the handshake/publish timeouts
    expect(srv.counters.sessionErrors).toBeGreaterThanOrEqual(3);
    expect(of('pub1').info).toEqual({ remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/), app: 'live' });
  });

  test('delivers 75 video and all audio tags, headers matching their bodies', () => {
    const s = of('pub1');
    const v = videoTags(s);
    expect(videoFrames(s)).toBe(75);
    expect(audioTags(s).length).toBeGreaterThan(130); // 3 s at 48 kHz / 1024, plus the AAC config
    expect(s.tags.some((t) => t.type === 18)).toBe(false); // onMetaData is not recorded
    for (const t of s.tags) {
      expect(t.header.length).toBe(11);
      expect((t.header[1]! << 16) | (t.header[2]! << 8) | t.header[3]!).toBe(t.body.length);
      expect([t.header[8], t.header[9], t.header[10]]).toEqual([0, 0, 0]);
    }
    for (let i = 1; i < v.length; i++) expect(v[i]!.ts).toBeGreaterThanOrEqual(v[i - 1]!.ts);
    expect(v.at(-2)!.ts - v[1]!.ts).toBe(74 * 40); // the last tag is the AVC end of sequence
  });

  test('flags exactly the tags whose access unit is a keyframe: one every 50 frames', () => {
    const d = new FlvVideoDemuxer();
    const flagged: number[] = [];
    const keys: number[] = [];
    let frame = 0;
    for (const t of videoTags(of('pub1'))) {
      const r = d.push(t.body, t.ts);
      expect(r & FLV_TRACK ? !t.keyframe : true).toBe(true); // a sequence header is not a picture
      if (!(r & FLV_FRAME)) continue;
      if (t.keyframe) flagged.push(frame);
      if (d.au.keyframe) keys.push(frame);
      frame++;
    }
    expect(keys).toEqual([0, 50]);
    expect(flagged).toEqual(keys);
  });

  test('calls onUnpublish once, after the publisher left', () => {
    expect(of('pub1').publishes).toBe(1);
    expect(of('pub1').unpublishes.length).toBe(1);
    expect(srv.stats('pub1')).toBeNull();
  });
});

describe.concurrent('refusals ffmpeg sees as a failed publish', () => {
  test('a wrong key', async () => {
    const r = await runFfmpeg(publishArgs(url('pub2?key=WRONG'), 1));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Server error: wrong or missing key for stream pub2');
    expect(seen.has('pub2')).toBe(false);
  }, 20_000);

  test('an unknown stream id', async () => {
    const r = await runFfmpeg(publishArgs(url('cam9'), 1));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Server error: unknown stream cam9');
  }, 20_000);

  test('an id that is unsafe as a path component, even with allow_any', async () => {
    const r = await runFfmpeg(publishArgs(`rtmp://127.0.0.1:${srv.port}/live/.any`, 1));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('invalid stream id ".any"');
  }, 20_000);

  test('a second publisher to a live id, while the first carries on to the end', async () => {
    const first = runFfmpeg(publishArgs(url('pub3?key=SECRET'), 4));
    for (let i = 0; i < 100 && srv.stats('pub3')?.state !== 'live'; i++) await Bun.sleep(50);
    expect(srv.stats('pub3')).toMatchObject({ state: 'live', app: 'live' });
    const second = await runFfmpeg(publishArgs(url('pub3?key=SECRET'), 1));
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(/Server error: stream pub3 is already being published \(from 127\.0\.0\.1:\d+\)/);
    const r = await first;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(videoFrames(of('pub3'))).toBe(100); // 4 s at 25 fps
    expect(of('pub3').publishes).toBe(1);
    expect(of('pub3').unpublishes.length).toBe(1);
  }, 20_000);

  test('the engine failing to start the stream: ffmpeg gets an error status; unpublish still comes once', async () => {
    failStart.add('anyfail');
    slowStart.set('anyfail', 300);
    const r = await runFfmpeg(publishArgs(url('anyfail?key=GLOBAL'), 3));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Server error: could not start stream anyfail: no media worker free');
    await Bun.sleep(100);
    expect(of('anyfail').publishes).toBe(1);
    expect(of('anyfail').unpublishes).toEqual(['could not start stream anyfail: no media worker free']);
  }, 20_000);
});

describe.concurrent('publish lifecycle', () => {
  test('tags before onPublish resolves are kept and replayed after the sequence headers: nothing is lost', async () => {
    slowStart.set('anyslow', 2500); // longer than x264's lookahead, so real frames arrive meanwhile
    const p = runFfmpeg(publishArgs(url('anyslow?key=GLOBAL'), 4));
    let early = 0;
    for (let i = 0; i < 100; i++) {
      await Bun.sleep(50);
      const st = srv.stats('anyslow');
      if (st?.state === 'live') break;
      early = st?.tags ?? 0;
    }
    expect(early).toBe(0); // nothing reached the target before it existed
    expect((await p).code).toBe(0);
    const s = of('anyslow');
    expect(srv.stats('anyslow')?.droppedBeforeTarget ?? 0).toBe(0);
    expect(videoFrames(s)).toBe(100); // 4 s at 25 fps: the frames sent while pending are all there
    // The configuration goes first, stamped like the first kept tag; then the kept tags in order.
    const [v, a, next] = s.tags;
    expect([v!.type, v!.body[0], v!.body[1]]).toEqual([9, 0x17, 0]); // AVC sequence header
    expect([a!.type, a!.body[0]! >> 4, a!.body[1]]).toEqual([8, 10, 0]); // AAC AudioSpecificConfig
    expect(v!.ts).toBe(next!.ts);
    expect(a!.ts).toBe(next!.ts);
    expect(next!.ts).toBeLessThan(400); // the start of the publish, not what came after the wait
    for (let i = 3; i < s.tags.length; i++) if (s.tags[i]!.type === 9 && s.tags[i - 1]!.type === 9) expect(s.tags[i]!.ts).toBeGreaterThanOrEqual(s.tags[i - 1]!.ts);
    expect(s.unpublishes.length).toBe(1);
  }, 20_000);

  test('a publisher killed mid-stream ends its publish once, and the id can be published again', async () => {
    const proc = Bun.spawn(['ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'error', ...publishArgs(url('anykill?key=GLOBAL'), 30)], { stderr: 'ignore' });
    for (let i = 0; i < 100 && (srv.stats('anykill')?.tags ?? 0) < 20; i++) await Bun.sleep(50);
    expect(srv.stats('anykill')!.tags).toBeGreaterThanOrEqual(20);
    proc.kill('SIGKILL');
    await proc.exited;
    for (let i = 0; i < 40 && of('anykill').unpublishes.length === 0; i++) await Bun.sleep(25);
    expect(of('anykill').unpublishes).toEqual(['connection closed by the peer']);
    const again = await runFfmpeg(publishArgs(url('anykill?key=GLOBAL'), 1));
    expect(again.code).toBe(0);
    expect(of('anykill').publishes).toBe(2);
    expect(of('anykill').unpublishes.length).toBe(2);
  }, 20_000);
});

const waitFor = async (ok: () => boolean, ms: number) => {
  for (const end = Date.now() + ms; !ok() && Date.now() < end; ) await Bun.sleep(20);
  return ok();
};

test('a client that never reads our replies is cut, within the idle timeout at worst', async () => {
  // Python, so the socket is really never read: handshake, then pings (each gets a reply).
  // Either our reply queue passes MAX_QUEUE_BYTES (cut at once), or Bun stops reading a socket
  // whose writes are stuck and the idle timeout (3 s here) cuts it; both happen, by timing.
  const script = `
import socket, time
s = socket.create_connection(('127.0.0.1', ${srv.port}))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(20)
s.sendall(b'\\x03' + bytes(1536))
got = b''
while len(got) < 3073:
    d = s.recv(4096)
    if not d: raise SystemExit(4)
    got += d
s.sendall(got[1:1537])
# fmt 0, csid 2, ts 0, length 6, type 4 (user control), stream 0; event 6 (PingRequest)
ping = bytes([2, 0,0,0, 0,0,6, 4, 0,0,0,0, 0,6, 0,0,0,1])
try:
    for i in range(200): s.sendall(ping * 20000); time.sleep(0.005)
except OSError:
    raise SystemExit(3)
time.sleep(20)`;
  expect(await waitFor(() => srv.connectionCount === 0, 5000)).toBe(true);
  const before = srv.counters.slowClients + srv.counters.sessionErrors;
  const py = Bun.spawn(['python3', '-c', script], { stdout: 'ignore', stderr: 'ignore' });
  try {
    expect(await waitFor(() => srv.connectionCount === 1, 5000)).toBe(true);
    const t0 = Date.now();
    expect(await waitFor(() => srv.connectionCount === 0, 8000)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3000 + 2 * 100 + 2000); // idle timeout + ticks + END_GRACE_MS
    expect(srv.counters.slowClients + srv.counters.sessionErrors).toBe(before + 1);
    expect(MAX_QUEUE_BYTES).toBe(256 << 10);
  } finally {
    py.kill();
  }
}, 20_000);

test('30 concurrent publishers for 3 s all deliver every frame', async () => {
  const ids = Array.from({ length: 30 }, (_, i) => `anyc${i}`);
  const t0 = Date.now();
  const runs = await Promise.all(
    ids.map((id) => runFfmpeg(publishArgs(url(`${id}?key=GLOBAL`), 3, '160x120', ['-preset', 'ultrafast']), 60_000)),
  );
  const ms = Date.now() - t0;
  for (const r of runs) expect(r.code).toBe(0);
  for (const id of ids) {
    const s = of(id);
    expect(videoFrames(s)).toBe(75);
    expect(audioTags(s).length).toBeGreaterThan(130);
    expect(s.unpublishes.length).toBe(1);
  }
  console.log(`30 publishers x 3 s: ${ms} ms wall`);
}, 90_000);

test('isKeyPicture reads legacy and Enhanced RTMP video headers', () => {
  expect(isKeyPicture(new Uint8Array([0x17, 1, 0, 0, 0]))).toBe(true); // AVC key, NALUs
  expect(isKeyPicture(new Uint8Array([0x17, 0]))).toBe(false); // AVC sequence header
  expect(isKeyPicture(new Uint8Array([0x27, 1]))).toBe(false); // inter frame
  expect(isKeyPicture(new Uint8Array([0x1c, 1]))).toBe(true); // legacy HEVC (codec id 12)
  expect(isKeyPicture(new Uint8Array([0x91, 0x68, 0x76, 0x63, 0x31]))).toBe(true); // ex: key, CodedFrames, hvc1
  expect(isKeyPicture(new Uint8Array([0x93, 0x68]))).toBe(true); // ex: key, CodedFramesX
  expect(isKeyPicture(new Uint8Array([0x90, 0x68]))).toBe(false); // ex: key, SequenceStart
  expect(isKeyPicture(new Uint8Array([0xa1, 0x68]))).toBe(false); // ex: inter, CodedFrames
  expect(isKeyPicture(new Uint8Array([0x17]))).toBe(false);
});

test('decidePublish: the stream key wins over the global one; unknown ids need allow_any', () => {
  const q = (s: string) => new URLSearchParams(s);
  const g = { publishKey: 'G', allowAny: false };
  const rtmp = (k?: string) => (k === undefined ? { protocol: 'rtmp' } : { protocol: 'rtmp', publish_key: k });
  expect(decidePublish('a', q('key=S'), g, rtmp('S'))).toEqual({ ok: true });
  expect(decidePublish('a', q('key=G'), g, rtmp('S')).ok).toBe(false);
  expect(decidePublish('a', q(''), g, rtmp(''))).toEqual({ ok: true }); // the stream says: no key
  expect(decidePublish('a', q('key=G'), g, rtmp())).toEqual({ ok: true });
  expect(decidePublish('a', q('key=G2'), g, rtmp())).toMatchObject({ ok: false, code: 'NetStream.Publish.Unauthorized' });
  expect(decidePublish('a', q('key=G'), g, undefined)).toMatchObject({ ok: false, code: 'NetStream.Publish.BadName' });
  expect(decidePublish('a', q('key=G'), { ...g, allowAny: true }, undefined)).toEqual({ ok: true });
  expect(decidePublish('a', q(''), { publishKey: '', allowAny: true }, undefined)).toEqual({ ok: true });
  expect(decidePublish('a', q('key=S'), g, { protocol: 'rtsp', publish_key: 'S' })).toMatchObject({ ok: false, code: 'NetStream.Publish.BadName' });
});
