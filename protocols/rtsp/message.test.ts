import { describe, expect, test } from 'bun:test';
import { mulberry32, mutate, randInt, randomBytes } from '../../media/testdata/test-helpers.ts';
import {
  encodeInterleaved, getHeader, getHeaders, MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HEADER_COUNT, RtspReader, serializeRequest,
  type ReadError, type RtspMessage,
} from './message.ts';
import { concat, frame, response } from './testdata/rtsp-script.ts';

const enc = new TextEncoder();
const text = (s: string) => enc.encode(s);

type Item = { frame: [number, number[]] } | { msg: { kind: string; status: number; method: string; headers: [string, string][]; body: string } };

function collect(chunks: Uint8Array[]): { items: Item[]; error: ReadError | null; viewsOfChunk: number } {
  const items: Item[] = [];
  let viewsOfChunk = 0;
  let current: Uint8Array | null = null;
  const r = new RtspReader({
    onInterleaved: (ch, d) => {
      if (d.buffer === current!.buffer) viewsOfChunk++;
      items.push({ frame: [ch, [...d]] });
    },
    onMessage: (m: RtspMessage) => items.push({ msg: { kind: m.kind, status: m.status, method: m.method, headers: m.headers, body: new TextDecoder().decode(m.body) } }),
  });
  for (const c of chunks) {
    current = c;
    r.push(c);
  }
  return { items, error: r.error, viewsOfChunk };
}

const SDP = 'v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\n';
/** A stream as cameras send it: responses, interleaved RTP/RTCP (including empty and '$'-bearing), a server request, stray CRLF. */
const STREAM = concat(
  response(200, 1, [['Public', 'OPTIONS, DESCRIBE']]),
  frame(0, [0x80, 0x60, 0x24, 0x24, 0x0d, 0x0a]),
  frame(1, []),
  response(200, 2, [['Content-Type', 'application/sdp'], ['Content-Base', 'rtsp://h/x/']], SDP),
  frame(2, Array.from({ length: 300 }, (_, i) => i & 0xff)),
  text('\r\n'),
  text('GET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 9\r\n\r\n'),
  frame(3, [1]),
  text('RTSP/1.0 401 Unauthorized\nCSeq: 3\nWWW-Authenticate: Digest realm="a",\n  nonce="b"\nWWW-Authenticate: Basic realm="a"\n\n'),
);

describe('RtspReader', () => {
  const whole = collect([STREAM]);

  test('reads responses, bodies, requests and interleaved frames from one stream', () => {
    expect(whole.error).toBeNull();
    expect(whole.items.map((i) => ('frame' in i ? `$${i.frame[0]}:${i.frame[1].length}` : `${i.msg.kind}:${i.msg.status || i.msg.method}`))).toEqual([
      'response:200', '$0:6', '$1:0', 'response:200', '$2:300', 'request:GET_PARAMETER', '$3:1', 'response:401',
    ]);
    const describe = whole.items[3]!;
    expect('msg' in describe && describe.msg.body).toBe(SDP);
    const auth = whole.items[7]!;
    expect('msg' in auth && auth.msg.headers).toEqual([
      ['cseq', '3'], ['www-authenticate', 'Digest realm="a", nonce="b"'], ['www-authenticate', 'Basic realm="a"'],
    ]);
    expect(whole.viewsOfChunk).toBe(4); // every frame was a view of the pushed chunk: no copy
  });

  test('gives the same items at every split point, and byte by byte', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      const r = collect([STREAM.subarray(0, i), STREAM.subarray(i)]);
      expect(r.items).toEqual(whole.items);
      expect(r.error).toBeNull();
    }
    const bytes = Array.from(STREAM, (_, i) => STREAM.subarray(i, i + 1));
    expect(collect(bytes).items).toEqual(whole.items);
  });

  test('gives the same items over random three-way splits', () => {
    const rnd = mulberry32(7);
    for (let k = 0; k < 300; k++) {
      const a = randInt(rnd, STREAM.length + 1);
      const b = a + randInt(rnd, STREAM.length - a + 1);
      expect(collect([STREAM.subarray(0, a), STREAM.subarray(a, b), STREAM.subarray(b)]).items).toEqual(whole.items);
    }
  });

  test('reads a 64 KiB frame that spans many chunks', () => {
    const big = frame(5, new Uint8Array(0xffff).fill(7));
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < big.length; i += 1500) chunks.push(big.subarray(i, i + 1500));
    const r = collect(chunks);
    expect(r.items).toHaveLength(1);
    expect('frame' in r.items[0]! && r.items[0].frame[1].length).toBe(0xffff);
  });

  const refusals: [string, Uint8Array, ReadError][] = [
    ['headers without an end beyond the cap', text(`RTSP/1.0 200 OK\r\nX: ${'a'.repeat(MAX_HEADER_BYTES)}`), 'header-too-large'],
    ['more header lines than the cap', text(`RTSP/1.0 200 OK\r\n${'X: 1\r\n'.repeat(MAX_HEADER_COUNT + 1)}\r\n`), 'too-many-headers'],
    ['a body beyond the cap', text(`RTSP/1.0 200 OK\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`), 'body-too-large'],
    ['a malformed Content-Length', text('RTSP/1.0 200 OK\r\nContent-Length: -5\r\n\r\n'), 'bad-content-length'],
    ['a start line that is neither', text('HTTP/1.1 200 OK\r\n\r\n'), 'bad-start-line'],
    ['a header line without a colon', text('RTSP/1.0 200 OK\r\nnonsense\r\n\r\n'), 'bad-header-line'],
  ];
  for (const [name, bytes, reason] of refusals) {
    test(`refuses ${name} and then ignores the stream`, () => {
      const r = new RtspReader({ onInterleaved: () => {}, onMessage: () => {} });
      const pieces = [bytes.subarray(0, 100), bytes.subarray(100)];
      let ok = true;
      for (const p of pieces) ok = r.push(p) && ok;
      expect(ok).toBe(false);
      expect(r.error).toBe(reason);
      expect(r.errorDetail.length).toBeGreaterThan(0);
      expect(r.push(frame(0, [1]))).toBe(false);
      expect(r.buffered).toBe(0);
    });
  }
});

describe('serializeRequest and encodeInterleaved', () => {
  test('writes a request the reader reads back', () => {
    const b = serializeRequest({ method: 'SETUP', uri: 'rtsp://h/x/stream=0', cseq: 4, headers: [['Transport', 'RTP/AVP/TCP;unicast;interleaved=0-1'], ['Session', 'abc']], body: text('hi') });
    expect(new TextDecoder().decode(b)).toBe('SETUP rtsp://h/x/stream=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: abc\r\nContent-Length: 2\r\n\r\nhi');
    let m: RtspMessage | null = null;
    new RtspReader({ onInterleaved: () => {}, onMessage: (x) => (m = x) }).push(b);
    expect(m!).toMatchObject({ kind: 'request', method: 'SETUP', uri: 'rtsp://h/x/stream=0' });
    expect([getHeader(m!, 'CSEQ'), getHeaders(m!, 'session'), new TextDecoder().decode(m!.body)]).toEqual(['4', ['abc'], 'hi']);
  });

  test('refuses CR/LF in any field (header injection)', () => {
    expect(() => serializeRequest({ method: 'OPTIONS', uri: 'rtsp://h/\r\nX: 1', cseq: 1, headers: [] })).toThrow(TypeError);
    expect(() => serializeRequest({ method: 'OPTIONS', uri: 'rtsp://h/', cseq: 1, headers: [['A', 'b\r\nEvil: 1']] })).toThrow(TypeError);
  });

  test('frames data as $ channel length', () => {
    expect([...encodeInterleaved(3, new Uint8Array([9, 8]))]).toEqual([0x24, 3, 0, 2, 9, 8]);
    expect(() => encodeInterleaved(256, new Uint8Array(1))).toThrow(RangeError);
  });
});

describe('RtspReader fuzz', () => {
  test('never throws on mutated or random streams; frames stay within input, items bounded', () => {
    const rnd = mulberry32(0x5eed);
    for (let k = 0; k < 3000; k++) {
      const input = k % 5 === 4 ? randomBytes(rnd, randInt(rnd, 2000)) : mutate(k % 2 ? STREAM : concat(STREAM, STREAM), rnd);
      let frameBytes = 0;
      let items = 0;
      const r = new RtspReader({
        onInterleaved: (ch, d) => {
          expect(ch).toBeLessThan(256);
          frameBytes += d.length + 4;
          items++;
        },
        onMessage: (m) => {
          expect(m.headers.length).toBeLessThanOrEqual(MAX_HEADER_COUNT);
          expect(m.body.length).toBeLessThanOrEqual(MAX_BODY_BYTES);
          items++;
        },
      });
      let off = 0;
      while (off < input.length) {
        const n = 1 + randInt(rnd, 400);
        const ok = r.push(input.subarray(off, off + n));
        off += n;
        if (!ok) {
          expect(r.error).not.toBeNull();
          break;
        }
      }
      expect(frameBytes).toBeLessThanOrEqual(input.length);
      expect(items).toBeLessThanOrEqual(input.length);
      expect(r.buffered).toBeLessThanOrEqual(input.length);
    }
  });
});
