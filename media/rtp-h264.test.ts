import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { AnnexBAuAssembler } from './annexb-au.ts';
import { splitAnnexB } from './annexb.ts';
import { H264Depacketizer } from './rtp-h264.ts';
import { createDepacketizer } from './rtp-depacketizer.ts';
import { parseSdp } from './sdp.ts';
import type { AccessUnit } from './types.ts';
import { tempDir } from './testdata/fmp4-clips.ts';
import { type Capture, ffmpegRtpCapture, gstAvailable, loadCapture, regenerateGstFixtures, sameBytes } from './testdata/rtp-captures.ts';
import { depacketizeAll, impair, remuxAndDecode, seqOf, tsOf, withSeq, withTs } from './testdata/rtp-test-kit.ts';
import { ffmpegFixture, ffprobe, mulberry32, mutate, randInt, randomBytes, remux } from './testdata/test-helpers.ts';

if (process.env.FLUX_REGEN_FIXTURES === '1' && gstAvailable()) regenerateGstFixtures();

const SRC = ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '2', '-c:v', 'libx264', '-profile:v', 'main', '-bf', '2', '-g', '25', '-pix_fmt', 'yuv420p'];
/** Parameter sets and AUDs travel out of band or are dropped: compare the rest. */
const media = (au: AccessUnit) => au.nalus.filter((n) => ![7, 8, 9].includes(n[0]! & 0x1f));
const sameAu = (a: AccessUnit, b: AccessUnit) => {
  const x = media(a), y = media(b);
  return x.length === y.length && x.every((n, i) => sameBytes(n, y[i]!));
};

let cap: Capture;
let reference: AccessUnit[]; // from the Annex-B stream of the same mp4
let ptsTicks: number[]; // the mp4's pts in 90 kHz ticks, decode order
let clean: AccessUnit[];
const tmp = tempDir();

const newDepacketizer = (window = 32) => createDepacketizer(parseSdp(cap.sdp).media[0]!, undefined, { reorderWindow: window }) as H264Depacketizer;

beforeAll(async () => {
  const mp4 = ffmpegFixture(SRC, 'mp4');
  cap = await ffmpegRtpCapture(['-i', mp4.path, '-c', 'copy', '-an']);
  const es = remux(mp4.path, 'h264').bytes;
  const asm = new AnnexBAuAssembler('h264');
  const nalus: Uint8Array[] = [];
  splitAnnexB(es, nalus, 1 << 20);
  reference = [];
  const take = () => reference.push({ ...asm.au, nalus: asm.au.nalus.slice() });
  for (const n of nalus) if (asm.push(n)) take();
  if (asm.flush()) take();
  const j = ffprobe(mp4.path, ['-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-show_packets']);
  ptsTicks = j.packets.map((p: { pts_time: string }) => Math.round(Number(p.pts_time) * 90000));
  clean = depacketizeAll(newDepacketizer(), cap.packets);
});
afterAll(() => tmp.cleanup());

describe('H.264 over RTP from ffmpeg (FU-A, B-frames, sprop-parameter-sets only)', () => {
  test('yields exactly the access units of the Annex-B stream, in decode order', () => {
    expect(clean.length).toBe(reference.length);
    clean.forEach((au, i) => {
      expect(sameAu(au, reference[i]!)).toBe(true);
      expect(au.keyframe).toBe(reference[i]!.keyframe);
      expect(au.bytes).toBe(au.nalus.reduce((s, n) => s + n.length, 0));
    });
    expect(cap.packets.some((p) => (p[12]! & 0x1f) === 28)).toBe(true); // FU-A present
  });

  test('timestamps are the pts of each picture, continuous, and dts equals pts', () => {
    const t0 = clean[0]!.pts - ptsTicks[0]!;
    clean.forEach((au, i) => {
      expect(au.dts).toBe(au.pts);
      expect(Math.abs(au.pts - t0 - ptsTicks[i]!)).toBeLessThanOrEqual(1);
    });
  });

  test('track info comes from sprop-parameter-sets and matches the stream\'s own parameter sets', () => {
    const d = newDepacketizer();
    const info = d.trackInfo();
    const asm = new AnnexBAuAssembler('h264');
    for (const n of reference[0]!.nalus) asm.push(n);
    asm.flush();
    expect(info).toEqual(asm.videoTrackInfo()!);
    expect(info!.width).toBe(320);
    expect(d.paramsVersion).toBe(2);
    expect(parseSdp(cap.sdp).media[0]!.fmtp.get(96)!.has('sprop-parameter-sets')).toBe(true);
  });

  test('never keeps the packet view: results do not change when the caller reuses its buffer', () => {
    // depacketizeAll overwrites its scratch buffer after each push; a kept view would show 0xa5 bytes.
    expect(clean.every((au, i) => sameAu(au, reference[i]!))).toBe(true);
  });
});

describe('loss and reordering', () => {
  const byTs = () => new Map(clean.map((a) => [a.pts, a]));
  const pictures = () => {
    // packet index ranges per picture (timestamp runs)
    const runs: { ts: number; from: number; to: number }[] = [];
    cap.packets.forEach((p, i) => {
      const last = runs.at(-1);
      if (last && last.ts === tsOf(p)) last.to = i + 1;
      else runs.push({ ts: tsOf(p), from: i, to: i + 1 });
    });
    return runs;
  };

  test('swapped, duplicated and delayed packets within the window change nothing', () => {
    const { out } = impair(cap.packets, 7, { duplicate: 0.05, swap: 0.1, delay: 0.05, delayBy: 6 });
    const d = newDepacketizer();
    const aus = depacketizeAll(d, out);
    expect(aus.length).toBe(clean.length);
    aus.forEach((a, i) => expect(sameAu(a, clean[i]!)).toBe(true));
    expect(d.counters.lost).toBe(0);
    expect(d.counters.reordered).toBeGreaterThan(0);
    expect(d.counters.duplicates).toBeGreaterThan(0);
    expect(d.counters.droppedFrames).toBe(0);
  });

  test('a lost fragment of a reference picture drops it and resumes at the next IDR', () => {
    const runs = pictures();
    // a multi-packet reference picture (nal_ref_idc != 0) before the second IDR
    const victim = runs.findIndex((r, k) => k > 2 && r.to - r.from >= 2 && (cap.packets[r.from]![12]! & 0x60) !== 0 && !clean.find((a) => a.pts === r.ts)!.keyframe);
    const r = runs[victim]!;
    const packets = cap.packets.filter((_, i) => i !== r.from + 1);
    const d = newDepacketizer();
    const aus = depacketizeAll(d, packets);
    expect(d.counters.lost).toBe(1);
    expect(d.counters.droppedFrames).toBe(1);
    const ref = byTs();
    for (const a of aus) expect(sameAu(a, ref.get(a.pts)!)).toBe(true);
    const cleanIdx = clean.findIndex((a) => a.pts === r.ts);
    const nextKey = clean.findIndex((a, i) => i > cleanIdx && a.keyframe);
    expect(aus.length).toBe(cleanIdx + (clean.length - nextKey));
    expect(aus[cleanIdx]!.keyframe).toBe(true);
    expect(d.counters.skippedFrames).toBe(nextKey - cleanIdx - 1);
  });

  test('losing a whole non-reference picture does not wait for a keyframe', () => {
    const runs = pictures();
    const victim = runs.find((r, k) => k > 2 && r.to - r.from === 1 && (cap.packets[r.from]![12]! & 0x60) === 0);
    expect(victim).toBeDefined();
    const packets = cap.packets.filter((_, i) => i !== victim!.from);
    const d = newDepacketizer();
    const aus = depacketizeAll(d, packets);
    expect(aus.length).toBe(clean.length - 1);
    expect(d.counters.skippedFrames).toBe(0);
    expect(d.counters.waitingForKeyframe).toBe(false);
  });

  test('under random loss, duplication and reordering every emitted picture is complete and output restarts at keyframes', () => {
    const ref = byTs();
    const order = new Map(clean.map((a, i) => [a.pts, i]));
    for (const seed of [1, 2, 3, 4]) {
      const { out, dropped } = impair(cap.packets, seed, { drop: 0.03, duplicate: 0.03, swap: 0.05, delay: 0.03 });
      const d = newDepacketizer();
      const aus = depacketizeAll(d, out);
      expect(d.counters.lost).toBe(dropped.size);
      let prev = -1;
      aus.forEach((a, k) => {
        expect(sameAu(a, ref.get(a.pts)!)).toBe(true);
        const i = order.get(a.pts)!;
        expect(i).toBeGreaterThan(prev);
        if (k === 0) expect(a.keyframe).toBe(true);
        prev = i;
      });
    }
  });

  test('timestamps stay continuous across the 32-bit wrap', () => {
    const first = tsOf(cap.packets[0]!);
    const base = 2 ** 32 - 90000; // wraps after one second
    const packets = cap.packets.map((p) => withTs(p, (tsOf(p) - first + base) >>> 0));
    const aus = depacketizeAll(newDepacketizer(), packets);
    expect(aus.length).toBe(clean.length);
    aus.forEach((a, i) => expect(a.pts - aus[0]!.pts).toBe(clean[i]!.pts - clean[0]!.pts));
    expect(aus.at(-1)!.pts).toBeGreaterThan(2 ** 32);
  });

  test('sequence numbers wrapping past 65535 are not a loss', () => {
    const packets = cap.packets.map((p, i) => withSeq(p, 65530 + i));
    const d = newDepacketizer();
    expect(depacketizeAll(d, packets).length).toBe(clean.length);
    expect(d.counters.lost).toBe(0);
  });
});

/** A hand-made RTP packet around `payload`. */
function rtp(seq: number, ts: number, payload: number[] | Uint8Array, marker = true, pt = 96): Uint8Array {
  const b = new Uint8Array(12 + payload.length);
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | pt;
  new DataView(b.buffer).setUint16(2, seq);
  new DataView(b.buffer).setUint32(4, ts);
  b.set(payload, 12);
  return b;
}

describe('payload structures', () => {
  const idr = () => reference[0]!.nalus.find((n) => (n[0]! & 0x1f) === 5)!;
  const sps = () => reference[0]!.nalus.find((n) => (n[0]! & 0x1f) === 7)!;
  const pps = () => reference[0]!.nalus.find((n) => (n[0]! & 0x1f) === 8)!;

  test('an FU-A with both start and end bits carries a whole NAL unit', () => {
    const d = new H264Depacketizer(96);
    const nal = idr();
    const stap = [24, sps().length >> 8, sps().length & 0xff, ...sps(), 0, pps().length, ...pps()];
    d.push(rtp(1, 1000, stap, false));
    d.push(rtp(2, 1000, [(nal[0]! & 0xe0) | 28, 0xc0 | (nal[0]! & 0x1f), ...nal.subarray(1)]));
    const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    expect(d.pop(au)).toBe(true);
    expect(au.keyframe).toBe(true);
    expect(au.nalus.length).toBe(3);
    expect(sameBytes(au.nalus[2]!, nal)).toBe(true);
    expect(d.trackInfo()!.height).toBe(240);
  });

  test('an FU-A without its start fragment (no sequence gap) is counted and its picture dropped', () => {
    const d = new H264Depacketizer(96);
    const nal = idr();
    const half = nal.length >> 1;
    d.push(rtp(1, 1000, [(nal[0]! & 0xe0) | 28, nal[0]! & 0x1f, ...nal.subarray(1, half)], false));
    d.push(rtp(2, 1000, [(nal[0]! & 0xe0) | 28, 0x40 | (nal[0]! & 0x1f), ...nal.subarray(half)]));
    d.push(rtp(3, 4000, [(nal[0]! & 0xe0) | 28, 0x40 | (nal[0]! & 0x1f), ...nal.subarray(half)]));
    const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    expect(d.pop(au)).toBe(false);
    expect(d.counters.fuWithoutStart).toBe(3); // every fragment after a missing start, without a sequence gap
    expect(d.counters.droppedFrames).toBe(2);
    expect(d.counters.waitingForKeyframe).toBe(true);
  });

  test('STAP-B, MTAP and FU-B are counted as unsupported; reserved types are ignored', () => {
    const d = new H264Depacketizer(96);
    [25, 26, 27, 29].forEach((t, i) => d.push(rtp(i, t * 3000, [t, 0, 0, 0, 0, 0])));
    expect(d.counters.unsupported).toBe(4);
    d.push(rtp(4, 200_000, [30, 1, 2]));
    expect(d.counters.unsupported).toBe(5);
    expect(d.counters.droppedFrames).toBe(4);
  });

  test('a wrong payload type and a malformed header are refused and counted', () => {
    const d = new H264Depacketizer(96);
    expect(d.push(rtp(1, 0, [5, 1], true, 97))).toBe(false);
    expect(d.push(new Uint8Array([0x40, 0, 0, 1]))).toBe(false);
    expect(d.counters.wrongPayloadType).toBe(1);
    expect(d.counters.malformed).toBe(1);
    expect(d.counters.packets).toBe(0);
  });

  test('an in-band SPS with a new resolution bumps paramsVersion and updates the track info', () => {
    const d = new H264Depacketizer(96);
    const other = remux(ffmpegFixture(['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-t', '0.2', '-c:v', 'libx264', '-g', '25'], 'mp4').path, 'h264').bytes;
    const nalus: Uint8Array[] = [];
    splitAnnexB(other, nalus, 1 << 16);
    const sps2 = nalus.find((n) => (n[0]! & 0x1f) === 7)!;
    const pps2 = nalus.find((n) => (n[0]! & 0x1f) === 8)!;
    d.push(rtp(1, 0, sps()));
    d.push(rtp(2, 0, pps()));
    expect(d.trackInfo()!.width).toBe(320);
    const v = d.paramsVersion;
    d.push(rtp(3, 3000, sps2));
    d.push(rtp(4, 3000, pps2));
    expect(d.paramsVersion).toBe(v + 2);
    expect(d.trackInfo()!.width).toBe(640);
  });
});

describe('GStreamer capture (STAP-A with SPS/PPS/IDR, multi-slice pictures, FU-A)', () => {
  const gst = () => loadCapture('h264-stap-a-fu-a-gst');

  test('depacketizes 25 pictures with keyframes every 10 and fMP4 from them decodes cleanly', () => {
    const c = gst();
    const types = new Set(c.packets.map((p) => p[12]! & 0x1f));
    expect(types.has(24) && types.has(28)).toBe(true);
    const d = createDepacketizer(parseSdp(c.sdp).media[0]!)!;
    const aus = depacketizeAll(d, c.packets);
    expect(aus.length).toBe(25);
    expect(aus.map((a, i) => (a.keyframe ? i : -1)).filter((i) => i >= 0)).toEqual([0, 10, 20]);
    expect(aus.every((a, i) => i === 0 || a.dts - aus[i - 1]!.dts === 3600)).toBe(true);
    const { errors, path } = remuxAndDecode(tmp.dir, 'gst-h264', [{ track: d.trackInfo()!, aus, fallback: 3600 }]);
    expect(errors).toBe('');
    const frames = ffprobe(path, ['-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames,width,height', '-show_streams']);
    expect(Number(frames.streams[0].nb_read_frames)).toBe(25);
    expect(frames.streams[0].width).toBe(320);
  });

  test('after a lost reference picture the remuxed output still decodes without errors', () => {
    const c = gst();
    const packets = c.packets.filter((_, i) => i !== 7); // picture 3: a P picture in one STAP-A
    const d = createDepacketizer(parseSdp(c.sdp).media[0]!)!;
    const aus = depacketizeAll(d, packets);
    expect(d.counters.lost).toBe(1);
    expect(d.counters.skippedFrames).toBe(6); // pictures 4..9, up to the IDR at picture 10
    expect(aus.length).toBe(25 - 7);
    const { errors } = remuxAndDecode(tmp.dir, 'gst-h264-loss', [{ track: d.trackInfo()!, aus, fallback: 3600 }]);
    expect(errors).toBe('');
  });
});

describe('fuzz', () => {
  test('mutated and random packets never throw, and every unit stays well-formed', () => {
    const rnd = mulberry32(0x264);
    const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    const seeds = [...cap.packets.slice(0, 60), ...loadCapture('h264-stap-a-fu-a-gst').packets];
    const t0 = performance.now();
    for (let round = 0; round < 40; round++) {
      const d = new H264Depacketizer(96, parseSdp(cap.sdp).media[0]!.fmtp.get(96), { reorderWindow: randInt(rnd, 3) * 16 });
      for (let i = 0; i < 150; i++) {
        const src = seeds[randInt(rnd, seeds.length)]!;
        let p = rnd() < 0.1 ? randomBytes(rnd, randInt(rnd, 64)) : mutate(src, rnd);
        if (p.length > 12 && rnd() < 0.5) { p = p.slice(); p[0] = 0x80; p[1] = (p[1]! & 0x80) | 96; } // keep the header valid
        d.push(p, i);
        while (d.pop(au)) {
          expect(au.nalus.length).toBeGreaterThan(0);
          expect(au.bytes).toBe(au.nalus.reduce((s, n) => s + n.length, 0));
          for (const n of au.nalus) expect(n.length).toBeGreaterThan(0);
        }
        if (i % 50 === 0) d.trackInfo();
      }
      d.flush();
      while (d.pop(au));
    }
    expect(performance.now() - t0).toBeLessThan(5000);
    void seqOf;
  });
});
