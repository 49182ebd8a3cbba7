import { describe, expect, test } from 'bun:test';
import { AacDepacketizer } from './rtp-aac.ts';
import { createDepacketizer, rtpCodecOf } from './rtp-depacketizer.ts';
import { AuArena } from './rtp-depacketizer-core.ts';
import { G711Depacketizer } from './rtp-g711.ts';
import { H264Depacketizer } from './rtp-h264.ts';
import { H265Depacketizer } from './rtp-h265.ts';
import { parseSdp } from './sdp.ts';
import type { AccessUnit } from './types.ts';

const SDP = `v=0
s=x
m=video 0 RTP/AVP 96 98 33
a=rtpmap:96 h264/90000
a=rtpmap:98 HEVC/90000
a=rtpmap:33 MP2T/90000
m=audio 0 RTP/AVP 97 0 8 101
a=rtpmap:97 mpeg4-generic/44100/2
a=fmtp:97 mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210
a=rtpmap:101 PCMA/16000
m=audio 0 RTP/AVP 100
a=rtpmap:100 MPEG4-GENERIC/48000
a=fmtp:100 mode=CELP-cbr
m=application 0 RTP/AVP 107
a=rtpmap:107 vnd.onvif.metadata/90000
`;

describe('createDepacketizer', () => {
  const [video, audio, celp, meta] = parseSdp(SDP).media as [any, any, any, any];

  test('picks the handler once from rtpmap (case-insensitive) or the static payload type', () => {
    expect(createDepacketizer(video)).toBeInstanceOf(H264Depacketizer);
    expect(createDepacketizer(video, 98)).toBeInstanceOf(H265Depacketizer);
    expect(createDepacketizer(audio)).toBeInstanceOf(AacDepacketizer);
    const pcmu = createDepacketizer(audio, 0) as G711Depacketizer;
    expect(pcmu.codec).toBe('pcmu');
    expect(pcmu.trackInfo()).toMatchObject({ sampleRate: 8000, channels: 1 });
    const pcma = createDepacketizer(audio, 101) as G711Depacketizer;
    expect(pcma.trackInfo()).toMatchObject({ codec: 'pcma', sampleRate: 16000 });
    expect(createDepacketizer(audio)!.trackInfo()).toMatchObject({ codec: 'aac', sampleRate: 44100, channels: 2 });
  });

  test('returns null for payload formats it does not handle', () => {
    expect(rtpCodecOf(video, 33)).toBeNull();
    expect(createDepacketizer(video, 33)).toBeNull();
    expect(createDepacketizer(celp)).toBeNull();
    expect(createDepacketizer(meta)).toBeNull();
    expect(createDepacketizer(video, 200)).toBeNull();
  });

  test('units not popped before the next push are discarded and counted', () => {
    const d = createDepacketizer(audio, 8)!;
    const pkt = (seq: number) => new Uint8Array([0x80, 8, 0, seq, 0, 0, 0, seq * 100, 0, 0, 0, 1, 1, 2, 3]);
    d.push(pkt(1));
    d.push(pkt(2));
    expect(d.counters.discardedUnits).toBe(1);
    const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    expect(d.pop(au)).toBe(true);
    expect(au.dts).toBe(200);
    expect(d.pop(au)).toBe(false);
  });

  test('window 0 (TCP interleaved) never holds a packet back', () => {
    const d = createDepacketizer(audio, 8, { reorderWindow: 0 })!;
    const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    for (const seq of [1, 3, 2]) {
      d.push(new Uint8Array([0x80, 8, 0, seq, 0, 0, 0, seq, 0, 0, 0, 1, seq]));
      if (seq !== 2) expect(d.pop(au)).toBe(true);
    }
    // 2 came after 3 had been delivered: too late, dropped; RFC 3550 then no longer counts it lost
    expect(d.counters.lost).toBe(0);
    expect(d.counters.reordered).toBe(1);
    expect(d.counters.packets).toBe(3);
  });

  test('a new SSRC restarts sequence tracking without counting a loss', () => {
    const d = createDepacketizer(audio, 8)!;
    const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    d.push(new Uint8Array([0x80, 8, 0, 10, 0, 0, 0, 0, 0, 0, 0, 1, 5]));
    d.push(new Uint8Array([0x80, 8, 0x90, 0, 0, 0, 0, 160, 0, 0, 0, 2, 6]));
    expect(d.counters.ssrcChanges).toBe(1);
    expect(d.counters.lost).toBe(0);
    let n = 0;
    while (d.pop(au)) n++;
    expect(n).toBe(1);
  });
});

describe('AuArena', () => {
  const unit = (a: AuArena, bytes: number, fill: number) => {
    a.begin();
    const nal = new Uint8Array(bytes).fill(fill);
    expect(a.addNal(nal, 0, bytes)).toBe(true);
    expect(a.commit(0, false)).toBe(true);
    const out: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    expect(a.pop(out)).toBe(true);
    expect(out.bytes).toBe(bytes);
    expect(out.nalus[0]!.every((b) => b === fill)).toBe(true);
  };

  test('grows for a large unit and goes back to a small buffer once the usual units follow, bytes intact throughout', () => {
    const a = new AuArena();
    unit(a, 3000, 1);
    expect(a.capacity).toBe(4096);
    unit(a, 120_000, 2); // a keyframe
    expect(a.capacity).toBe(131072);
    unit(a, 15_000, 3); // the next picture: still in the large buffer
    unit(a, 15_000, 4); // shrunk at this push
    expect(a.capacity).toBe(32768);
    unit(a, 40_000, 5); // grows a little: a P-frame can be larger
    expect(a.capacity).toBe(65536);
    unit(a, 15_000, 6);
    unit(a, 15_000, 7);
    expect(a.capacity).toBe(65536); // not a quarter of it: kept (no bouncing between sizes)
  });

  test('a unit in progress across the shrink keeps its bytes', () => {
    const a = new AuArena();
    unit(a, 120_000, 9);
    unit(a, 1000, 8);
    a.begin();
    expect(a.openNal()).toBe(true);
    expect(a.append(new Uint8Array(500).fill(7), 0, 500)).toBe(true);
    a.begin(); // shrinks while a fragmented NAL is open
    expect(a.capacity).toBe(4096);
    expect(a.append(new Uint8Array(500).fill(6), 0, 500)).toBe(true);
    expect(a.closeNal()).toBe(true);
    expect(a.commit(1, true)).toBe(true);
    const out: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    expect(a.pop(out)).toBe(true);
    expect([...out.nalus[0]!.subarray(495, 505)]).toEqual([7, 7, 7, 7, 7, 6, 6, 6, 6, 6]);
  });
});
