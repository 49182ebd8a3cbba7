import { describe, expect, test } from 'bun:test';
import { mulberry32, mutate, randInt, randomBytes } from '../../media/testdata/test-helpers.ts';
import { ParseError } from '../../media/types.ts';
import {
  Amf0Reader, type AmfValue, amfObject, decodeAmf0, encodeAmf0, isEcmaArray, MAX_AMF_DEPTH, MAX_AMF_VALUES,
} from './amf0.ts';
import { HANDSHAKE_LEN, loadCapture, readMessages } from './testdata/rtmp-capture.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** One table drives decode, encode and the fuzz seeds. `bytes` (hex) when the encoding is known. */
const CASES: { name: string; value: AmfValue; bytes?: string }[] = [
  { name: 'number', value: 1, bytes: '00 3ff0000000000000' },
  { name: 'negative fraction', value: -2.5, bytes: '00 c004000000000000' },
  { name: 'boolean true', value: true, bytes: '01 01' },
  { name: 'boolean false', value: false, bytes: '01 00' },
  { name: 'string', value: 'connect', bytes: '02 0007 636f6e6e656374' },
  { name: 'empty string', value: '', bytes: '02 0000' },
  { name: 'utf-8 string', value: 'caméra ✓', bytes: '02 000b 63616dc3a9726120e29c93' },
  { name: 'null', value: null, bytes: '05' },
  { name: 'undefined', value: undefined, bytes: '06' },
  { name: 'object', value: amfObject({ app: 'live', n: 3 }), bytes: '03 0003 617070 02 0004 6c697665 0001 6e 00 4008000000000000 0000 09' },
  { name: 'empty object', value: amfObject(), bytes: '03 0000 09' },
  { name: 'ECMA array', value: amfObject({ width: 320 }, true), bytes: '08 00000001 0005 7769647468 00 4074000000000000 0000 09' },
  { name: 'strict array', value: [1, 'a', null], bytes: '0a 00000003 00 3ff0000000000000 02 0001 61 05' },
  { name: 'date', value: new Date(1_700_000_000_000), bytes: '0b 4278bcfe56800000 0000' },
  { name: 'nested containers', value: amfObject({ a: [amfObject({ b: amfObject({ c: [true] }, true) })] }) },
  { name: 'long string', value: 'x'.repeat(70_000) },
  { name: 'key named __proto__ stays data', value: amfObject({ ['__proto__']: 'p', constructor: 1 }) },
];

describe('AMF0 table of cases', () => {
  for (const c of CASES) {
    test(`${c.name}: encodes${c.bytes ? ' to the known bytes' : ''} and decodes back`, () => {
      const enc = encodeAmf0([c.value]);
      if (c.bytes) expect(hex(enc)).toBe(hex(unhex(c.bytes)));
      const dec = decodeAmf0(enc);
      expect(dec.length).toBe(1);
      expect(dec[0]).toEqual(c.value);
      if (c.value && typeof c.value === 'object' && !Array.isArray(c.value) && !(c.value instanceof Date)) {
        expect(isEcmaArray(dec[0] as never)).toBe(isEcmaArray(c.value));
        expect(Object.getPrototypeOf(dec[0])).toBe(null);
      }
    });
  }

  test('decodes a sequence of values back to back', () => {
    const values: AmfValue[] = ['_result', 1, null, amfObject({ code: 'NetConnection.Connect.Success' })];
    expect(decodeAmf0(encodeAmf0(values))).toEqual(values);
  });
});

describe('AMF0 from the wild', () => {
  test('re-encodes every command and data message of the ffmpeg capture byte for byte', () => {
    const msgs = readMessages([loadCapture().subarray(HANDSHAKE_LEN)]).filter((m) => m.typeId === 20 || m.typeId === 18);
    expect(msgs.length).toBeGreaterThanOrEqual(8);
    for (const m of msgs) expect(hex(encodeAmf0(decodeAmf0(m.payload)))).toBe(hex(m.payload));
    const meta = decodeAmf0(msgs.find((m) => m.typeId === 18)!.payload);
    expect(meta[0]).toBe('@setDataFrame');
    expect(isEcmaArray(meta[2] as never)).toBe(true);
    expect((meta[2] as Record<string, AmfValue>).width).toBe(192);
  });

  test('ends an ECMA array at the end of the message when the end marker is missing', () => {
    const full = encodeAmf0(['onMetaData', amfObject({ a: 1 }, true)]);
    const cut = full.subarray(0, full.length - 3);
    expect(decodeAmf0(cut)).toEqual(['onMetaData', amfObject({ a: 1 }, true)]);
  });

  test('reads a typed object as a plain object and XML as a string', () => {
    expect(decodeAmf0(unhex('10 0003 466f6f 0001 78 05 0000 09'))).toEqual([amfObject({ x: null })]);
    expect(decodeAmf0(unhex('0f 00000002 3c61'))).toEqual(['<a']);
  });
});

describe('AMF0 caps and malformed input', () => {
  const expectParseError = (b: Uint8Array) => expect(() => decodeAmf0(b)).toThrow(ParseError);

  test(`refuses nesting deeper than MAX_AMF_DEPTH (${MAX_AMF_DEPTH})`, () => {
    let v: AmfValue = 1;
    for (let i = 0; i < MAX_AMF_DEPTH; i++) v = [v];
    expect(decodeAmf0(encodeAmf0([v]))).toEqual([v]);
    const deeper = new Uint8Array([...new Array(MAX_AMF_DEPTH + 1).fill(0).flatMap(() => [0x0a, 0, 0, 0, 1]), 0x05]);
    expectParseError(deeper);
  });

  test('refuses a strict array count larger than the bytes left, without allocating it', () => {
    expectParseError(unhex('0a ffffffff 05'));
  });

  test(`stops after MAX_AMF_VALUES (${MAX_AMF_VALUES}) values`, () => {
    expectParseError(new Uint8Array(MAX_AMF_VALUES + 1).fill(0x05));
    expect(decodeAmf0(new Uint8Array(MAX_AMF_VALUES).fill(0x05)).length).toBe(MAX_AMF_VALUES);
  });

  test('refuses references, AVM+ switches, unknown markers and truncation', () => {
    for (const h of ['07 0001', '11 00', '04', '12', '00 3ff0', '02 0005 6162', '03 0001 61', '0b 00']) expectParseError(unhex(h));
  });

  test('fuzz: mutated cases and random bytes only ever raise ParseError, within bounds', () => {
    const rnd = mulberry32(0xa3f0);
    const seeds = CASES.filter((c) => c.name !== 'long string').map((c) => encodeAmf0(['cmd', 1, c.value]));
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      const input = i % 4 === 0 ? randomBytes(rnd, randInt(rnd, 64)) : mutate(seeds[randInt(rnd, seeds.length)]!, rnd);
      const r = new Amf0Reader(input);
      try {
        let n = 0;
        while (!r.done) {
          r.value();
          n++;
        }
        expect(n).toBeLessThanOrEqual(MAX_AMF_VALUES);
        decoded++;
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
      }
      expect(r.pos).toBeLessThanOrEqual(input.length);
    }
    expect(decoded).toBeGreaterThan(1000); // the mutations leave many inputs valid
  });
});
