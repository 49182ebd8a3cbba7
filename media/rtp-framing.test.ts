// RFC 4571 deframing: packets come back whole and in order however the TCP stream is cut.
import { expect, test } from 'bun:test';
import { Rfc4571Deframer, writeRfc4571Length } from './rtp-framing.ts';
import { mulberry32, randInt, randomBytes } from './testdata/test-helpers.ts';

function frame(packets: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(packets.reduce((n, p) => n + 2 + p.length, 0));
  let at = 0;
  for (const p of packets) {
    writeRfc4571Length(out, at, p.length);
    out.set(p, at + 2);
    at += 2 + p.length;
  }
  return out;
}

test('returns every packet byte for byte for any cut of the stream, including 1-byte cuts and empty frames', () => {
  const rnd = mulberry32(4571);
  for (let round = 0; round < 50; round++) {
    const packets = Array.from({ length: 1 + randInt(rnd, 30) }, () => randomBytes(rnd, randInt(rnd, round % 10 === 0 ? 65_535 : 1500)));
    const stream = frame(packets);
    const got: Uint8Array[] = [];
    const d = new Rfc4571Deframer({ packet: (p) => got.push(p.slice()) });
    const maxCut = round % 3 === 0 ? 1 : 1 + randInt(rnd, 4000);
    for (let at = 0; at < stream.length; ) {
      const n = 1 + randInt(rnd, maxCut);
      d.push(stream.subarray(at, at + n));
      at += n;
    }
    const nonEmpty = packets.filter((p) => p.length > 0);
    expect(got.length).toBe(nonEmpty.length);
    got.forEach((p, i) => expect(Buffer.compare(Buffer.from(p), Buffer.from(nonEmpty[i]!))).toBe(0));
    expect(d.empty).toBe(packets.length - nonEmpty.length);
  }
});

test('refuses to frame a packet longer than 65535 bytes', () => {
  expect(() => writeRfc4571Length(new Uint8Array(2), 0, 65_536)).toThrow(RangeError);
});
