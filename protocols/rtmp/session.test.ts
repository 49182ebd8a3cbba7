import { describe, expect, test } from 'bun:test';
import { mulberry32, mutate, randInt, randomBytes } from '../../media/testdata/test-helpers.ts';
import { type AmfValue, amfObject, decodeAmf0, encodeAmf0 } from './amf0.ts';
import { ChunkReader, MAX_ASSEMBLY_BYTES, writeMessage } from './chunk.ts';
import { HANDSHAKE_BYTES } from './handshake.ts';
import {
  type AuthorizeResult, HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS, PUBLISH_TIMEOUT_MS, RtmpServerSession, type RtmpSessionOptions,
} from './session.ts';
import { HANDSHAKE_LEN, loadCapture, type Msg, readMessages } from './testdata/rtmp-capture.ts';

const allow = (_app: string, name: string): AuthorizeResult => ({ ok: true, streamId: `id-${name}` });

/** A session whose every callback is recorded as one line, and whose output is parsed back into messages. */
function harness(opts: Partial<RtmpSessionOptions> = {}) {
  const { authorize, ...o } = opts;
  const events: string[] = [];
  const out: Uint8Array[] = [];
  const media: { kind: string; ts: number; body: Uint8Array }[] = [];
  let queries: URLSearchParams[] = [];
  const s = new RtmpServerSession({
    nowMs: 0,
    fillRandom: (b) => b.fill(1),
    authorize: (app, name, q) => {
      queries.push(q);
      events.push(`authorize ${app} ${name} ${q}`);
      return (authorize ?? allow)(app, name, q);
    },
    send: (b) => out.push(b),
    publish: (app, key, id) => events.push(`publish ${app} ${key} ${id}`),
    media: (kind, ts, body) => {
      if (s.closed) throw new Error('media after close');
      media.push({ kind, ts, body: body.slice() });
    },
    unpublish: () => events.push('unpublish'),
    error: (fatal, m) => events.push(`${fatal ? 'fatal' : 'error'} ${m}`),
    close: () => events.push('close'),
    ...o,
  });
  /** Server output after the handshake reply, as messages, with commands decoded. */
  const replies = (): { msg: Msg; amf: AmfValue[] | null }[] => {
    const all = concat(out);
    return readMessages([all.subarray(1 + 2 * HANDSHAKE_BYTES)], new ChunkReader()).map((msg) => ({
      msg, amf: msg.typeId === 20 ? decodeAmf0(msg.payload) : null,
    }));
  };
  return { s, events, out, media, replies, queries: () => queries, reset: () => (queries = []) };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return all;
}

/** A scripted client: handshake bytes and AMF0 commands chunked at 128 bytes. */
const client = {
  handshake: () => concat([new Uint8Array([3]), new Uint8Array(HANDSHAKE_BYTES), new Uint8Array(HANDSHAKE_BYTES)]),
  command: (values: AmfValue[], streamId = 0, csid = 3) => writeMessage(128, csid, 20, streamId, 0, encodeAmf0(values)),
  connect: (app: string, tcUrl: string) => client.command(['connect', 1, amfObject({ app, tcUrl, flashVer: 'FMLE/3.0' })]),
  publishUpTo: (app: string, tcUrl: string, name: string) => concat([
    client.handshake(), client.connect(app, tcUrl), client.command(['createStream', 2, null]),
    client.command(['publish', 3, null, name, 'live'], 1, 8),
  ]),
  media: (type: number, ts: number, body: number[]) => writeMessage(128, type === 8 ? 4 : 6, type, 1, ts, new Uint8Array(body)),
};

describe('RtmpServerSession with the ffmpeg capture', () => {
  const capture = loadCapture();

  test('answers connect, releaseStream, FCPublish, createStream and publish the way ffmpeg expects', () => {
    const h = harness();
    h.s.receive(capture, 0);
    expect(h.out[0]!.length).toBe(1 + 2 * HANDSHAKE_BYTES);
    const r = h.replies().map(({ msg, amf }) => (amf ? `${msg.streamId} ${JSON.stringify(amf)}` : `${msg.typeId} ${Buffer.from(msg.payload).toString('hex')}`));
    expect(r).toEqual([
      '5 002625a0', // Window Acknowledgement Size 2,500,000
      '6 002625a002', // Set Peer Bandwidth, dynamic
      '1 00001000', // Set Chunk Size 4096
      '0 ["_result",1,{"fmsVer":"FMS/3,0,1,123","capabilities":31},{"level":"status","code":"NetConnection.Connect.Success","description":"Connection succeeded.","objectEncoding":0}]',
      '0 ["_result",2,null,null]', // null, undefined (AMF 0x06) as JSON
      '0 ["_result",3,null,null]',
      '0 ["_result",4,null,1]',
      '4 000000000001', // User Control StreamBegin 1
      '1 ["onStatus",0,null,{"level":"status","code":"NetStream.Publish.Start","description":"pub1 is now published."}]',
    ]);
    expect(h.events).toEqual(['authorize live pub1 key=SECRET', 'publish live pub1 id-pub1', 'unpublish']);
    expect(h.s.publishing).toBe(false);
    expect(h.s.closed).toBe(false);
  });

  test('hands over FLV tag bodies: metadata without @setDataFrame, 17 video and the audio tags in order', () => {
    const h = harness();
    h.s.receive(capture, 0);
    const kinds = h.media.map((m) => m.kind);
    expect(kinds[0]).toBe('data');
    expect(Buffer.from(h.media[0]!.body.subarray(0, 13)).toString('latin1')).toBe('\x02\x00\x0aonMetaData');
    expect(kinds.filter((k) => k === 'video').length).toBe(17);
    expect(kinds.filter((k) => k === 'audio').length).toBe(readMessages([capture.subarray(HANDSHAKE_LEN)]).filter((m) => m.typeId === 8).length);
    const video = h.media.filter((m) => m.kind === 'video');
    expect(video[0]!.body[0]).toBe(0x17); // AVC key frame, sequence header
    expect(video.map((m) => m.ts)).toEqual([...video.map((m) => m.ts)].sort((a, b) => a - b));
  });

  test('gives the same events whatever way the bytes are split', () => {
    const whole = harness();
    whole.s.receive(capture, 0);
    const expected = whole.media.map((m) => `${m.kind} ${m.ts} ${Buffer.from(m.body).toString('hex')}`);
    for (let cut = 1; cut < capture.length; cut += 37) {
      const h = harness();
      h.s.receive(capture.subarray(0, cut), 0);
      h.s.receive(capture.subarray(cut), 0);
      expect(h.events).toEqual(whole.events);
      expect(h.media.length).toBe(expected.length);
    }
    const h = harness();
    const rnd = mulberry32(3);
    for (let p = 0; p < capture.length; ) {
      const n = 1 + randInt(rnd, 500);
      h.s.receive(capture.subarray(p, p + n), 0);
      p += n;
    }
    expect(h.media.map((m) => `${m.kind} ${m.ts} ${Buffer.from(m.body).toString('hex')}`)).toEqual(expected);
  });
});

describe('RtmpServerSession refusals and queries', () => {
  test('refuses a publish with an onStatus error, then asks to close; no media is delivered', () => {
    const h = harness({ authorize: () => ({ ok: false, code: 'NetStream.Publish.Unauthorized', description: 'wrong key' }) });
    h.s.receive(concat([client.publishUpTo('live', 'rtmp://h/live', 'pub1?key=nope'), client.media(9, 0, [0x17, 0, 0, 0, 0])]), 0);
    const last = h.replies().at(-1)!;
    expect(last.msg.streamId).toBe(1);
    expect(last.amf).toEqual(['onStatus', 0, null, amfObject({ level: 'error', code: 'NetStream.Publish.Unauthorized', description: 'wrong key' })]);
    expect(h.events.slice(1)).toEqual(['fatal publish refused: NetStream.Publish.Unauthorized: wrong key', 'close']);
    expect(h.media.length).toBe(0);
    expect(h.s.closed).toBe(true);
  });

  test('merges the query of tcUrl, of the app and of the publish name (the name wins)', () => {
    const h = harness();
    h.s.receive(client.publishUpTo('live?token=t&key=fromapp', 'rtmp://h:1935/live?key=fromurl&x=1', 'cam7?key=fromname'), 0);
    expect(h.events[0]).toBe('authorize live cam7 key=fromname&x=1&token=t');
    const h2 = harness();
    h2.s.receive(client.publishUpTo('live/', 'rtmp://h/live?key=fromurl', 'cam7'), 0);
    expect(h2.events[0]).toBe('authorize live cam7 key=fromurl');
  });

  test('refuses an empty stream name and a second publish on the same connection', () => {
    const h = harness();
    h.s.receive(client.publishUpTo('live', '', ''), 0);
    expect(h.replies().at(-1)!.amf![3]).toMatchObject({ level: 'error', code: 'NetStream.Publish.BadName' });
    const h2 = harness();
    h2.s.receive(concat([client.publishUpTo('live', '', 'a'), client.command(['publish', 4, null, 'b', 'live'], 1, 8)]), 0);
    expect(h2.events).toEqual(['authorize live a ', 'publish live a id-a', 'fatal publish refused: NetStream.Publish.BadName: already publishing on this connection', 'unpublish', 'close']);
  });

  test('drops media sent before publish and commands out of order close the session', () => {
    const h = harness();
    h.s.receive(concat([client.handshake(), client.connect('live', ''), client.media(9, 0, [0x17, 1])]), 0);
    expect(h.media.length).toBe(0);
    expect(h.s.stats.dropped).toBe(1);
    const h2 = harness();
    h2.s.receive(concat([client.handshake(), client.command(['publish', 2, null, 'x'], 1, 8)]), 0);
    expect(h2.events).toEqual(['fatal publish before connect', 'close']);
  });
});

describe('RtmpServerSession control messages', () => {
  test('answers a PingRequest with a PingResponse carrying the same timestamp', () => {
    const h = harness();
    h.s.receive(concat([client.handshake(), client.connect('live', ''), writeMessage(128, 2, 4, 0, 0, new Uint8Array([0, 6, 0, 1, 2, 3]))]), 0);
    expect(h.replies().at(-1)!.msg).toMatchObject({ typeId: 4, payload: new Uint8Array([0, 7, 0, 1, 2, 3]) });
  });

  test('acknowledges every window of bytes the peer asked for', () => {
    const h = harness();
    h.s.receive(concat([client.publishUpTo('live', '', 'a'), writeMessage(128, 2, 5, 0, 0, new Uint8Array([0, 0, 0x04, 0]))]), 0);
    const before = h.s.stats.acksSent;
    for (let i = 0; i < 10; i++) h.s.receive(client.media(8, i * 20, new Array(300).fill(0xaf)), 0);
    expect(h.s.stats.acksSent - before).toBe(2); // 10 messages of 314 bytes: one ack per 4 messages
    const acks = h.replies().filter((r) => r.msg.typeId === 3).map((r) => new DataView(r.msg.payload.buffer).getUint32(0));
    for (let i = 1; i < acks.length; i++) expect(acks[i]! - acks[i - 1]!).toBeGreaterThanOrEqual(1024);
    expect(acks.at(-1)).toBeLessThanOrEqual(h.s.stats.bytesIn);
  });

  test('unwraps 32-bit timestamps past 2^32 ms', () => {
    const h = harness();
    h.s.receive(concat([client.publishUpTo('live', '', 'a'), client.media(8, 0xffffffd0, [0xaf, 1]), client.media(8, 0x10, [0xaf, 1])]), 0);
    expect(h.media.map((m) => m.ts)).toEqual([0xffffffd0, 0x100000010]);
  });

  test('splits an aggregate message into its FLV tags, timed relative to the message', () => {
    const tag = (type: number, ts: number, body: number[]) => [type, 0, 0, body.length, (ts >> 16) & 0xff, (ts >> 8) & 0xff, ts & 0xff, 0, 0, 0, 0, ...body, 0, 0, 0, 11 + body.length];
    const agg = new Uint8Array([...tag(9, 5000, [0x27, 1, 0, 0, 0]), ...tag(8, 5020, [0xaf, 1, 9]), ...tag(9, 5040, [0x27, 1, 0, 0, 0])]);
    const h = harness();
    h.s.receive(concat([client.publishUpTo('live', '', 'a'), writeMessage(128, 6, 22, 1, 100, agg)]), 0);
    expect(h.media.map((m) => `${m.kind} ${m.ts} ${m.body.length}`)).toEqual(['video 100 5', 'audio 120 3', 'video 140 5']);
  });

  test('close() ends a publish once and is idempotent', () => {
    const h = harness();
    h.s.receive(client.publishUpTo('live', '', 'a'), 0);
    h.s.close();
    h.s.close();
    h.s.receive(client.media(8, 0, [0xaf, 1]), 0);
    expect(h.events.filter((e) => e === 'unpublish').length).toBe(1);
    expect(h.events).not.toContain('close');
  });
});

describe('RtmpServerSession timeouts and garbage', () => {
  test('closes a client that stalls mid-handshake after HANDSHAKE_TIMEOUT_MS', () => {
    const h = harness();
    h.s.receive(client.handshake().subarray(0, 1000), 100);
    h.s.tick(HANDSHAKE_TIMEOUT_MS - 1);
    expect(h.events).toEqual([]);
    h.s.tick(HANDSHAKE_TIMEOUT_MS);
    expect(h.events).toEqual([`fatal handshake not complete after ${HANDSHAKE_TIMEOUT_MS} ms`, 'close']);
  });

  test('closes a connection that never publishes after PUBLISH_TIMEOUT_MS', () => {
    const h = harness();
    h.s.receive(concat([client.handshake(), client.connect('live', '')]), 10);
    for (let t = 1000; t < PUBLISH_TIMEOUT_MS; t += 1000) {
      h.s.receive(new Uint8Array(0), t); // keeps the idle timer quiet
      h.s.tick(t);
    }
    expect(h.events).toEqual([]);
    h.s.tick(PUBLISH_TIMEOUT_MS);
    expect(h.events[0]).toContain('no publish');
  });

  test('closes a publisher that goes silent after IDLE_TIMEOUT_MS, ending the publish', () => {
    const h = harness();
    h.s.receive(client.publishUpTo('live', '', 'a'), 500);
    h.s.tick(500 + IDLE_TIMEOUT_MS - 1);
    expect(h.s.closed).toBe(false);
    h.s.tick(500 + IDLE_TIMEOUT_MS);
    expect(h.events.slice(-3)).toEqual([`fatal nothing received for ${IDLE_TIMEOUT_MS} ms`, 'unpublish', 'close']);
  });

  test('closes at once on an HTTP request or an RTMPE handshake', () => {
    for (const first of ['GET / HTTP/1.1\r\n\r\n', '\x06abc']) {
      const h = harness();
      h.s.receive(new TextEncoder().encode(first), 0);
      expect(h.events.at(-1)).toBe('close');
      expect(h.out.length).toBe(0);
    }
  });

  test('fuzz: mutated captures and random bytes never throw; errors are reported once and then silence', () => {
    const capture = loadCapture();
    const rnd = mulberry32(0x5e55);
    let fatal = 0;
    let published = 0;
    for (let i = 0; i < 400; i++) {
      let input: Uint8Array;
      if (i % 8 === 0) input = concat([client.handshake(), randomBytes(rnd, randInt(rnd, 3000))]);
      else if (i % 8 === 1) input = randomBytes(rnd, randInt(rnd, 5000));
      else input = concat([capture.subarray(0, HANDSHAKE_LEN), mutate(capture.subarray(HANDSHAKE_LEN), rnd)]);
      const h = harness();
      let closes = 0;
      const origEvents = h.events;
      for (let p = 0; p < input.length; ) {
        const n = 1 + randInt(rnd, 4000);
        h.s.receive(input.subarray(p, p + n), p);
        p += n;
        expect(h.s.bufferedBytes).toBeLessThanOrEqual(MAX_ASSEMBLY_BYTES);
      }
      h.s.tick(60_000);
      closes = origEvents.filter((e) => e === 'close').length;
      expect(closes).toBe(1); // by an error, or by the tick timeout
      expect(origEvents.filter((e) => e.startsWith('fatal')).length).toBe(1);
      expect(origEvents.filter((e) => e === 'unpublish').length).toBeLessThanOrEqual(origEvents.filter((e) => e.startsWith('publish')).length);
      if (origEvents.some((e) => e.startsWith('publish'))) published++;
      if (!origEvents.some((e) => e.includes('after'))) fatal++;
    }
    expect(fatal).toBeGreaterThan(50);
    expect(published).toBeGreaterThan(50);
  });
});
