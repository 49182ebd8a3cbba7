// The GB28181 input adapter: RTP/PS packets to tracks and units on the stream's timeline;
// UDP reordering, loss, and a codec change that sets the tracks up again.
import { expect, test } from 'bun:test';
import { splitAccessUnits } from '../media/annexb-au.ts';
import { PsMuxer } from '../media/ps-mux.ts';
import { writeRtpHeader } from '../media/rtp.ts';
import { ffmpegFixture } from '../media/testdata/test-helpers.ts';
import type { AccessUnit, TrackInfo } from '../media/types.ts';
import { PsRtpInput } from './input-ps.ts';
import { KIND_RTP } from './ring-format.ts';

const clip = (codec: 'h264' | 'h265') =>
  ffmpegFixture(
    ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '2', '-pix_fmt', 'yuv420p',
      ...(codec === 'h264' ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '0', '-g', '25', '-f', 'h264'] : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'keyint=25:bframes=0:log-level=error', '-f', 'hevc'])],
    codec === 'h264' ? 'h264' : 'hevc',
  ).bytes;

/** RTP packets of a clip muxed as a GB device does, continuing `seq` and the 90 kHz clock from `t0`. */
function rtpPackets(codec: 'h264' | 'h265', seq0: number, t0: number): Uint8Array[] {
  const es = clip(codec);
  const mux = new PsMuxer({ codec, audio: true });
  const out: Uint8Array[] = [];
  splitAccessUnits(es, codec).forEach((a, i) => {
    const ps = mux.video(es.subarray(a.offset, a.offset + a.length), t0 + 3600 * i, t0 + 3600 * i, a.keyframe).slice(); // views die at the next call
    const audio = mux.audio(new Uint8Array(320).fill(0xd5), t0 + 3600 * i);
    for (const chunk of [ps, audio]) {
      for (let at = 0; at < chunk.length; at += 1388) {
        const n = Math.min(1388, chunk.length - at);
        const p = new Uint8Array(12 + n);
        writeRtpHeader(p, 0, at + n >= chunk.length, 96, (seq0 + out.length) & 0xffff, t0 + 3600 * i, 7);
        p.set(chunk.subarray(at, at + n), 12);
        out.push(p);
      }
    }
  });
  return out;
}

function sink() {
  const got = { tracks: [] as TrackInfo[][], units: [] as { t: number; dts: number; key: boolean }[], dropped: 0 };
  return {
    got,
    setTracks: (t: TrackInfo[]) => void got.tracks.push(t),
    unit: (t: number, au: AccessUnit) => void got.units.push({ t, dts: au.dts, key: au.keyframe }),
    dropped: (n: number) => void (got.dropped += n),
  };
}

test('a codec change (new PSM) sets the tracks up again: H.264 + G.711A, then H.265 + G.711A', () => {
  const s = sink();
  const input = new PsRtpInput({ kind: 'ps-rtp', transport: 'tcp' }, s);
  const a = rtpPackets('h264', 100, 90_000);
  const b = rtpPackets('h265', 100 + a.length, 90_000 + 50 * 3600);
  [...a, ...b].forEach((p, i) => input.push(KIND_RTP, 0, 1000 + Math.floor(i / 8), p));
  expect(s.got.tracks.map((t) => t.map((x) => `${x.kind}:${x.codec}`))).toEqual([['video:h264', 'audio:pcma'], ['video:h265', 'audio:pcma']]);
  const video = s.got.units.filter((u) => u.t === 0);
  expect(video.length).toBe(50 + 49); // the last H.265 picture waits for a successor
  for (let i = 1; i < video.length; i++) expect(video[i]!.dts - video[i - 1]!.dts).toBe(3600);
  expect(s.got.units.filter((u) => u.t === 1).length).toBeGreaterThan(90);
  expect(input.lostPackets).toBe(0);
});

test('UDP: swapped neighbours are put back in order; a missing packet is counted, then video resumes at a keyframe', () => {
  const s = sink();
  const input = new PsRtpInput({ kind: 'ps-rtp', transport: 'udp' }, s);
  const pk = rtpPackets('h264', 65_500, 0); // the sequence number wraps too
  for (let i = 5; i + 1 < pk.length; i += 7) [pk[i], pk[i + 1]] = [pk[i + 1]!, pk[i]!]; // (the very first packet defines the start)
  const lost = Math.floor(pk.length / 3);
  pk.forEach((p, i) => i !== lost && input.push(KIND_RTP, 0, i, p));
  expect(input.lostPackets).toBe(1);
  expect(input.resyncs).toBe(1);
  const video = s.got.units.filter((u) => u.t === 0);
  const gap = video.findIndex((u, i) => i > 0 && u.dts - video[i - 1]!.dts > 3600);
  expect(gap).toBeGreaterThan(0);
  expect(video[gap]!.key).toBe(true);
  expect(video.length).toBeGreaterThan(25);
  expect(s.got.dropped).toBeGreaterThan(0);
});
