import { describe, expect, test } from 'bun:test';
import { mulberry32, mutate, randInt } from '../../media/testdata/test-helpers.ts';
import { SipStreamFramer } from './framer.ts';
import { buildRequest } from './build.ts';
import { getHeader, MAX_SIP_BODY_BYTES, MAX_SIP_HEADER_BYTES, serializeSipMessage } from './message.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const msg = (i: number, body = '') =>
  serializeSipMessage(buildRequest({
    method: 'MESSAGE', uri: 'sip:1@d', via: { transport: 'TCP', host: '127.0.0.1', port: 5060 }, from: { uri: 'sip:a@d', tag: 't' },
    to: { uri: 'sip:1@d' }, callId: `call-${i}`, cseq: i, contentType: 'Application/MANSCDP+xml', body: enc(body),
  }));
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};

describe('SIP stream framer', () => {
  test('splits back-to-back messages with bodies, whatever the chunking', () => {
    const stream = concat([msg(1, '<a/>'), enc('\r\n\r\n'), msg(2), msg(3, 'x'.repeat(3000))]);
    const rnd = mulberry32(7);
    for (let round = 0; round < 50; round++) {
      const f = new SipStreamFramer();
      const ids: string[] = [];
      for (let i = 0; i < stream.length;) {
        const n = 1 + randInt(rnd, 400);
        for (const r of f.push(stream.subarray(i, i + n))) {
          if (!r.ok) throw new Error(r.reason);
          ids.push(getHeader(r.msg, 'call-id')!);
        }
        i += n;
      }
      expect(ids).toEqual(['call-1', 'call-2', 'call-3']);
      expect(f.buffered).toBe(0);
    }
  });

  test('a bad message with a sound Content-Length is reported and the stream goes on', () => {
    const bad = enc('MESSAGE sip:1@d SIP/2.0\r\nContent-Length: 3\r\n\r\nabc');
    const f = new SipStreamFramer();
    const r = f.push(concat([bad, msg(9)]));
    expect(r.map((x) => x.ok)).toEqual([false, true]);
    expect(f.broken).toBe(false);
  });

  test('a bad Content-Length breaks the stream (no resync on a guess)', () => {
    const f = new SipStreamFramer();
    const r = f.push(enc('MESSAGE sip:1@d SIP/2.0\r\nl: ten\r\n\r\n'));
    expect(r[0]!.ok).toBe(false);
    expect(f.broken).toBe(true);
    expect(f.push(msg(1))).toEqual([]);
  });

  test('caps the header block and the body', () => {
    const f = new SipStreamFramer();
    const r = f.push(enc(`MESSAGE sip:1@d SIP/2.0\r\nX: ${'a'.repeat(MAX_SIP_HEADER_BYTES + 10)}`));
    expect(!r[0]!.ok && r[0]!.reason).toMatch(/no end of headers/);
    const g = new SipStreamFramer();
    const s = g.push(enc(`MESSAGE sip:1@d SIP/2.0\r\nContent-Length: ${MAX_SIP_BODY_BYTES + 1}\r\n\r\n`));
    expect(s[0]!.ok).toBe(false);
    expect(g.broken).toBe(true);
  });

  test('fuzz: mutated streams never throw and never hold more than the cap', () => {
    const rnd = mulberry32(0xf4a);
    const seed = concat([msg(1, '<x/>'), msg(2), msg(3, 'body')]);
    for (let i = 0; i < 2000; i++) {
      const f = new SipStreamFramer();
      const input = mutate(seed, rnd);
      for (let p = 0; p < input.length;) {
        const n = 1 + randInt(rnd, 200);
        const out = f.push(input.subarray(p, p + n));
        for (const r of out) if (!r.ok) expect(r.reason.length).toBeGreaterThan(0);
        p += n;
      }
      expect(f.buffered).toBeLessThanOrEqual(input.length);
    }
  });
});
