// The GB28181 input adapter: RTP/PS packets to tracks and units on the stream's timeline;
// UDP reordering, loss, and a codec change that sets the tracks up again.
import { expect, test } from 'bun:test';
import type { AccessUnit, TrackInfo } from '../media/types.ts';
import { PsRtpInput } from './input-ps.ts';
import { psRtpPackets } from '../media/testdata/ps-rtp-fixture.ts';
import { KIND_RTP } from './ring-format.ts';


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
  const a = psRtpPackets('h264', 100, 90_000);
  const b = psRtpPackets('h265', 100 + a.length, 90_000 + 50 * 3600);
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
  const pk = psRtpPackets('h264', 65_500, 0); // the sequence number wraps too
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
