import { beforeAll, describe, expect, test } from 'bun:test';
import { buildReceiverReport, ntpMiddle, ntpToUnixMs, parseRtcp, type RtcpPacket, type RtcpReportBlock, RtpReceiverStats } from './rtcp.ts';
import { ParseError } from './types.ts';
import { type Capture, ffmpegRtpCapture } from './testdata/rtp-captures.ts';
import { mulberry32, mutate, randInt, randomBytes } from './testdata/test-helpers.ts';

let cap: Capture;
beforeAll(async () => {
  cap = await ffmpegRtpCapture(['-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=8000:duration=1', '-ac', '1', '-c:a', 'pcm_alaw']);
});

const block: RtcpReportBlock = { ssrc: 0xcafebabe, fractionLost: 25, cumulativeLost: -3, extendedHighestSeq: 0x1ffff, jitter: 77, lsr: 0x12345678, dlsr: 65536 };

describe('parseRtcp', () => {
  test('reads FFmpeg\'s sender report (a lone SR: FFmpeg leaves out the SDES CNAME of §6.1)', () => {
    expect(cap.rtcp.length).toBeGreaterThan(0);
    const packets = parseRtcp(cap.rtcp[0]!);
    expect(packets.length).toBe(1);
    const sr = packets[0]!;
    if (sr.type !== 'sr') throw new Error(`got ${sr.type}`);
    const dv = new DataView(cap.packets[0]!.buffer, cap.packets[0]!.byteOffset);
    expect(sr.ssrc).toBe(dv.getUint32(8));
    // FFmpeg derives the SR's RTP time from its wall clock: within a second (8000 ticks) of the first packet's
    expect(Math.abs(((sr.rtpTimestamp - dv.getUint32(4)) | 0))).toBeLessThan(8000);
    expect(Math.abs(sr.wallClockMs - Date.now())).toBeLessThan(30 * 86_400_000); // captured recently (cached for days at most)
    expect(sr.reports).toEqual([]);
  });

  test('reads a compound SR + SDES + BYE with report blocks, items and a reason', () => {
    const rr = buildReceiverReport(9, [block]);
    const sr = new Uint8Array(28 + 24);
    const dv = new DataView(sr.buffer);
    sr[0] = 0x81; sr[1] = 200; dv.setUint16(2, 12);
    dv.setUint32(4, 0xabcdef01); dv.setUint32(8, 2_208_988_800 + 1_000); dv.setUint32(12, 0x40000000);
    dv.setUint32(16, 90000); dv.setUint32(20, 10); dv.setUint32(24, 12345);
    sr.set(rr.subarray(8, 32), 28);
    const sdes = [0x82, 202, 0, 6, 0xab, 0xcd, 0xef, 0x01, 1, 3, 0x61, 0x62, 0x63, 0, 0, 0, 0, 0, 0, 2, 1, 1, 0x7a, 0, 0, 0, 0, 0];
    const bye = [0x81, 203, 0, 2, 0xab, 0xcd, 0xef, 0x01, 3, 0x65, 0x6e, 0x64];
    const all = parseRtcp(new Uint8Array([...sr, ...sdes, ...bye]));
    expect(all).toEqual([
      { type: 'sr', ssrc: 0xabcdef01, ntpSeconds: 2_208_988_800 + 1_000, ntpFraction: 0x40000000, wallClockMs: 1_000_250, rtpTimestamp: 90000, packetCount: 10, octetCount: 12345, reports: [block] },
      { type: 'sdes', chunks: [{ ssrc: 0xabcdef01, cname: 'abc', items: [{ type: 1, value: 'abc' }] }, { ssrc: 2, cname: 'z', items: [{ type: 1, value: 'z' }] }] },
      { type: 'bye', ssrcs: [0xabcdef01], reason: 'end' },
    ]);
  });
});

describe('receiver reports', () => {
  test('buildReceiverReport round-trips through parseRtcp, with the SDES CNAME', () => {
    const b = buildReceiverReport(0x11223344, [block, { ...block, ssrc: 1, cumulativeLost: 0x7fffff }], 'flux@host');
    expect(b.length % 4).toBe(0);
    const [rr, sdes] = parseRtcp(b) as [RtcpPacket, RtcpPacket];
    expect(rr).toEqual({ type: 'rr', ssrc: 0x11223344, reports: [block, { ...block, ssrc: 1, cumulativeLost: 0x7fffff }] });
    expect(sdes).toEqual({ type: 'sdes', chunks: [{ ssrc: 0x11223344, cname: 'flux@host', items: [{ type: 1, value: 'flux@host' }] }] });
  });

  test('NTP time converts to Unix milliseconds and its middle 32 bits', () => {
    expect(ntpToUnixMs(2_208_988_800 + 1_700_000_000, 0x80000000)).toBe(1_700_000_000_500);
    expect(ntpToUnixMs(5, 0)).toBe((2 ** 32 + 5 - 2_208_988_800) * 1000); // era 1, after 2036
    expect(ntpMiddle(0x12345678, 0x9abcdef0)).toBe(0x56789abc);
  });

  test('RtpReceiverStats: loss, fraction, extended sequence across the wrap, LSR/DLSR', () => {
    const s = new RtpReceiverStats(42, 8000);
    let seq = 65500;
    for (let i = 0; i < 100; i++) {
      if (i % 10 !== 3) s.onPacket(seq & 0xffff, i * 160, i * 20); // lose 1 in 10
      seq++;
    }
    s.onSenderReport(0x00010002, 0x00030000, 2000);
    const r = s.reportBlock(2500);
    expect(r.extendedHighestSeq).toBe(65500 + 99);
    expect(r.cumulativeLost).toBe(10);
    expect(r.fractionLost).toBe(Math.floor((10 * 256) / 100));
    expect(r.jitter).toBe(0); // perfectly paced
    expect(r.lsr).toBe(0x00020003);
    expect(r.dlsr).toBe(32768); // 0.5 s
    const next = s.reportBlock(3000);
    expect(next.fractionLost).toBe(0); // nothing new in this interval
  });

  test('jitter converges to the mean deviation of transit times (RFC 3550 A.8)', () => {
    const s = new RtpReceiverStats(1, 90000);
    // packets every 40 ms, arrivals alternately 0 and 10 ms late: |D| = 900 ticks each time
    for (let i = 0; i < 400; i++) s.onPacket(i, i * 3600, i * 40 + (i % 2) * 10);
    expect(Math.abs(s.jitter - 900)).toBeLessThanOrEqual(1);
  });

  test('a sequence jump is a restart only after two sequential packets (A.1)', () => {
    const s = new RtpReceiverStats(1, 8000);
    for (let i = 0; i < 10; i++) s.onPacket(i, i * 160, i * 20);
    s.onPacket(40000, 0, 300);
    expect(s.extendedHighestSeq).toBe(9);
    s.onPacket(40001, 160, 320);
    expect(s.extendedHighestSeq).toBe(40001);
    expect(s.reportBlock(400).cumulativeLost).toBe(0);
  });
});

describe('validation (RFC 3550 §6.4.1, A.2)', () => {
  const rr = () => buildReceiverReport(7, [block], 'x');
  const cases: [string, (b: Uint8Array) => Uint8Array, boolean][] = [
    ['version 1', (b) => { b[0] = (b[0]! & 0x3f) | 0x40; return b; }, false],
    ['a length past the end', (b) => { b[3] = 200; return b; }, false],
    ['a trailing partial packet', (b) => new Uint8Array([...b, 0x80, 201]), false],
    ['padding in the first of two packets', (b) => { b[0]! |= 0x20; return b; }, false],
    ['an SDES first', (b) => b.subarray(32), false],
    ['an RR with more blocks than bytes', (b) => { b[0] = 0x82; return b; }, false],
  ];
  for (const [what, edit, ok] of cases) {
    test(`${ok ? 'accepts' : 'rejects'} ${what}`, () => {
      const b = edit(rr().slice());
      if (ok) expect(() => parseRtcp(b)).not.toThrow();
      else expect(() => parseRtcp(b)).toThrow(ParseError);
    });
  }

  test('fuzz: only ParseError escapes, and views stay inside the input', () => {
    const rnd = mulberry32(6041);
    const seeds = [...cap.rtcp, rr(), buildReceiverReport(1, [])];
    for (let i = 0; i < 20000; i++) {
      const b = rnd() < 0.2 ? randomBytes(rnd, randInt(rnd, 100)) : mutate(seeds[randInt(rnd, seeds.length)]!, rnd);
      try {
        for (const p of parseRtcp(b, rnd() < 0.5)) {
          if (p.type === 'other') expect(p.body.byteOffset + p.body.length).toBeLessThanOrEqual(b.byteOffset + b.length);
          if (p.type === 'sr' || p.type === 'rr') for (const r of p.reports) expect(r.fractionLost).toBeLessThan(256);
        }
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
      }
    }
  });
});
