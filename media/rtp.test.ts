import { describe, expect, test } from 'bun:test';
import { MAX_RTP_PACKET_BYTES, newRtpView, readRtp, RtpTimestampUnwrapper, seqDelta, seqNewer, seqNext, writeRtpHeader } from './rtp.ts';
import { assertUnchanged, mulberry32, mutate, randInt, randomBytes } from './testdata/test-helpers.ts';

/** Hand-made packets: [name, bytes, expected fields or null when malformed]. */
const CASES: [string, number[], Partial<ReturnType<typeof newRtpView>> | null][] = [
  ['plain header, marker, PT 96', [0x80, 0xe0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 9, 9],
    { marker: true, payloadType: 96, seq: 0x1234, timestamp: 0xdeadbeef, ssrc: 0x01020304, payloadStart: 12, payloadEnd: 14, csrcCount: 0, extensionProfile: -1 }],
  ['two CSRCs', [0x82, 8, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 6, 7], { csrcCount: 2, payloadStart: 20, payloadEnd: 21, payloadType: 8 }],
  ['one-word header extension (RFC 8285 one-byte profile)', [0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 42],
    { extensionProfile: 0xbede, payloadStart: 20, payloadEnd: 21 }],
  ['padding of 3 bytes', [0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5, 6, 0, 0, 3], { payloadStart: 12, payloadEnd: 14 }],
  ['padding that swallows the header', [0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5, 20], null],
  ['padding count 0', [0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5, 0], null],
  ['version 1', [0x40, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1], null],
  ['11 bytes', [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0], null],
  ['CSRC list past the end', [0x8f, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0], null],
  ['extension length past the end', [0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 9, 1], null],
  ['empty payload is valid', [0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1], { payloadStart: 12, payloadEnd: 12 }],
];

describe('readRtp', () => {
  for (const [name, bytes, want] of CASES) {
    test(`${want ? 'reads' : 'refuses'} ${name}`, () => {
      const v = newRtpView();
      const b = new Uint8Array(bytes);
      const ok = assertUnchanged(b, () => readRtp(b, v));
      expect(ok).toBe(want !== null);
      if (want) expect(v).toMatchObject(want);
    });
  }

  test('writeRtpHeader round-trips through readRtp', () => {
    const b = new Uint8Array(20);
    expect(writeRtpHeader(b, 0, true, 111, 65535, 0xfffffffe, 0x89abcdef)).toBe(12);
    const v = newRtpView();
    expect(readRtp(b, v)).toBe(true);
    expect(v).toMatchObject({ marker: true, payloadType: 111, seq: 65535, timestamp: 0xfffffffe, ssrc: 0x89abcdef, payloadStart: 12, payloadEnd: 20 });
  });

  test('fuzz: random and mutated packets never throw and the payload stays inside the packet', () => {
    const rnd = mulberry32(3550);
    const v = newRtpView();
    for (let i = 0; i < 20000; i++) {
      const b = rnd() < 0.3 ? randomBytes(rnd, randInt(rnd, 80)) : mutate(new Uint8Array(CASES[randInt(rnd, CASES.length)]![1]), rnd);
      if (readRtp(b, v)) {
        expect(v.payloadStart).toBeGreaterThanOrEqual(12);
        expect(v.payloadStart).toBeLessThanOrEqual(v.payloadEnd);
        expect(v.payloadEnd).toBeLessThanOrEqual(b.length);
        expect(b[0]! >> 6).toBe(2);
      }
    }
    expect(readRtp(new Uint8Array(MAX_RTP_PACKET_BYTES + 1).fill(0x80), v)).toBe(false);
  });
});

describe('sequence and timestamp helpers', () => {
  test('sequence numbers wrap at 16 bits', () => {
    expect(seqNext(65535)).toBe(0);
    expect(seqNewer(0, 65535)).toBe(true);
    expect(seqNewer(65535, 0)).toBe(false);
    expect(seqNewer(5, 5)).toBe(false);
    expect(seqDelta(2, 65534)).toBe(4);
    expect(seqDelta(65534, 2)).toBe(-4);
  });

  test('the unwrapper counts past 2^32 and steps back for earlier timestamps', () => {
    const u = new RtpTimestampUnwrapper();
    expect(u.unwrap(0xffffff00)).toBe(0xffffff00);
    expect(u.unwrap(0x00000100)).toBe(0x100000100);
    expect(u.unwrap(0xfffffff0)).toBe(0xfffffff0); // a late B-frame from before the wrap
    expect(u.unwrap(0x00000200)).toBe(0x100000200);
    let t = 0;
    for (let i = 0; i < 5; i++) t = u.unwrap((0x200 + (i + 1) * 0x40000000) >>> 0);
    expect(t).toBe(0x100000200 + 5 * 0x40000000);
    u.reset();
    expect(u.unwrap(7)).toBe(7);
  });
});
