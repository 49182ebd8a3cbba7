import { describe, expect, test } from 'bun:test';
import { AacDepacketizer } from './rtp-aac.ts';
import { createDepacketizer, rtpCodecOf } from './rtp-depacketizer.ts';
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
