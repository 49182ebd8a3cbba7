import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { AnnexBAuAssembler } from './annexb-au.ts';
import { splitAnnexB } from './annexb.ts';
import { H265Depacketizer } from './rtp-h265.ts';
import { createDepacketizer } from './rtp-depacketizer.ts';
import { parseSdp } from './sdp.ts';
import type { AccessUnit } from './types.ts';
import { tempDir } from './testdata/fmp4-clips.ts';
import { type Capture, ffmpegRtpCapture, loadCapture, sameBytes } from './testdata/rtp-captures.ts';
import { depacketizeAll, impair, remuxAndDecode, tsOf } from './testdata/rtp-test-kit.ts';
import { ffmpegFixture, ffprobe, mulberry32, mutate, randInt, randomBytes, remux } from './testdata/test-helpers.ts';

const SRC = ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '2', '-c:v', 'libx265', '-x265-params',
  'log-level=error:keyint=25:bframes=3', '-tag:v', 'hvc1', '-pix_fmt', 'yuv420p'];
const typeOf = (n: Uint8Array) => (n[0]! >> 1) & 0x3f;
/**
 * Parameter sets travel out of band, AUDs are dropped, and FFmpeg's HEVC packetizer does
 * not send x265's SEI: compare the rest.
 */
const media = (au: AccessUnit) => au.nalus.filter((n) => ![32, 33, 34, 35, 39, 40].includes(typeOf(n)));
const sameAu = (a: AccessUnit, b: AccessUnit) => {
  const x = media(a), y = media(b);
  return x.length === y.length && x.every((n, i) => sameBytes(n, y[i]!));
};

let cap: Capture;
let reference: AccessUnit[];
let clean: AccessUnit[];
const tmp = tempDir();
const newDepacketizer = () => createDepacketizer(parseSdp(cap.sdp).media[0]!) as H265Depacketizer;

beforeAll(async () => {
  const mp4 = ffmpegFixture(SRC, 'mp4');
  cap = await ffmpegRtpCapture(['-i', mp4.path, '-c', 'copy', '-an'], 400); // small packets: most pictures fragmented
  const asm = new AnnexBAuAssembler('h265');
  const nalus: Uint8Array[] = [];
  splitAnnexB(remux(mp4.path, 'hevc').bytes, nalus, 1 << 20);
  reference = [];
  const take = () => reference.push({ ...asm.au, nalus: asm.au.nalus.slice() });
  for (const n of nalus) if (asm.push(n)) take();
  if (asm.flush()) take();
  clean = depacketizeAll(newDepacketizer(), cap.packets);
});
afterAll(() => tmp.cleanup());

describe('H.265 over RTP from ffmpeg (FU, B-frames, sprop-vps/sps/pps)', () => {
  test('yields exactly the access units of the Annex-B stream with their IRAP flags', () => {
    expect(clean.length).toBe(reference.length);
    clean.forEach((au, i) => {
      expect(sameAu(au, reference[i]!)).toBe(true);
      expect(au.keyframe).toBe(reference[i]!.keyframe);
    });
    expect(cap.packets.some((p) => typeOf(p.subarray(12)) === 49)).toBe(true);
  });

  test('track info from the sprop parameter sets equals the in-stream one', () => {
    const asm = new AnnexBAuAssembler('h265');
    for (const n of reference[0]!.nalus) asm.push(n);
    asm.flush();
    expect(newDepacketizer().trackInfo()).toEqual(asm.videoTrackInfo()!);
  });

  test('reordering and duplicates within the window change nothing', () => {
    const { out } = impair(cap.packets, 11, { duplicate: 0.05, swap: 0.1, delay: 0.05 });
    const d = newDepacketizer();
    const aus = depacketizeAll(d, out);
    expect(aus.length).toBe(clean.length);
    aus.forEach((a, i) => expect(sameAu(a, clean[i]!)).toBe(true));
    expect(d.counters.lost).toBe(0);
  });

  test('a lost fragment of a sub-layer non-reference picture drops only that picture', () => {
    // pictures as packet runs; find a multi-packet one whose NAL type is even and < 16 (e.g. TRAIL_N)
    const runs: { ts: number; from: number; to: number }[] = [];
    cap.packets.forEach((p, i) => {
      const last = runs.at(-1);
      if (last && last.ts === tsOf(p)) last.to = i + 1;
      else runs.push({ ts: tsOf(p), from: i, to: i + 1 });
    });
    const nalTypeOfPacket = (p: Uint8Array) => (typeOf(p.subarray(12)) === 49 ? p[14]! & 0x3f : typeOf(p.subarray(12)));
    const victim = runs.find((r) => r.to - r.from >= 2 && nalTypeOfPacket(cap.packets[r.from]!) < 16 && nalTypeOfPacket(cap.packets[r.from]!) % 2 === 0);
    expect(victim).toBeDefined();
    const d = newDepacketizer();
    const aus = depacketizeAll(d, cap.packets.filter((_, i) => i !== victim!.to - 1));
    expect(d.counters.droppedFrames).toBe(1);
    expect(d.counters.skippedFrames).toBe(0);
    expect(aus.length).toBe(clean.length - 1);
  });

  test('under random loss every emitted picture is exact and the first one is a keyframe', () => {
    const ref = new Map(clean.map((a) => [a.pts, a]));
    for (const seed of [5, 6, 7]) {
      const { out } = impair(cap.packets, seed, { drop: 0.04, swap: 0.05, duplicate: 0.02 });
      const aus = depacketizeAll(newDepacketizer(), out);
      aus.forEach((a, k) => {
        expect(sameAu(a, ref.get(a.pts)!)).toBe(true);
        if (k === 0) expect(a.keyframe).toBe(true);
      });
    }
  });
});

/** Rewrites an RFC 7798 packet as if sprop-max-don-diff > 0: DONL in single NAL/AP/FU-start, DOND in APs. */
function withDonl(p: Uint8Array, don: number): Uint8Array {
  const h = p.subarray(0, 12), pay = p.subarray(12);
  const t = typeOf(pay);
  const bytes: number[] = [...h];
  if (t === 48) {
    bytes.push(pay[0]!, pay[1]!, don >> 8, don & 0xff);
    for (let o = 2, first = true; o + 2 <= pay.length; first = false) {
      const n = (pay[o]! << 8) | pay[o + 1]!;
      if (!first) bytes.push(1);
      bytes.push(...pay.subarray(o, o + 2 + n));
      o += 2 + n;
    }
  } else if (t === 49) {
    bytes.push(pay[0]!, pay[1]!, pay[2]!);
    if (pay[2]! & 0x80) bytes.push(don >> 8, don & 0xff);
    bytes.push(...pay.subarray(3));
  } else {
    bytes.push(pay[0]!, pay[1]!, don >> 8, don & 0xff, ...pay.subarray(2));
  }
  return new Uint8Array(bytes);
}

describe('GStreamer capture (AP with VPS/SPS/PPS, FU)', () => {
  const gst = () => loadCapture('h265-ap-fu-gst');

  test('depacketizes 25 pictures and the fMP4 re-mux decodes cleanly', () => {
    const c = gst();
    const types = new Set(c.packets.map((p) => typeOf(p.subarray(12))));
    expect(types.has(48) && types.has(49)).toBe(true);
    const d = createDepacketizer(parseSdp(c.sdp).media[0]!)!;
    const aus = depacketizeAll(d, c.packets);
    expect(aus.length).toBe(25);
    expect(aus[0]!.keyframe).toBe(true);
    const { errors, path } = remuxAndDecode(tmp.dir, 'gst-h265', [{ track: d.trackInfo()!, aus, fallback: 3600 }]);
    expect(errors).toBe('');
    const s = ffprobe(path, ['-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames,codec_name', '-show_streams']).streams[0];
    expect(s.codec_name).toBe('hevc');
    expect(Number(s.nb_read_frames)).toBe(25);
  });

  test('DONL and DOND fields (sprop-max-don-diff > 0) are skipped', () => {
    const c = gst();
    const plain = depacketizeAll(createDepacketizer(parseSdp(c.sdp).media[0]!)!, c.packets);
    const m = parseSdp(c.sdp).media[0]!;
    m.fmtp.get(96)!.set('sprop-max-don-diff', '2');
    const d = createDepacketizer(m)!;
    const aus = depacketizeAll(d, c.packets.map((p, i) => withDonl(p, i)));
    expect(aus.length).toBe(plain.length);
    aus.forEach((a, i) => expect(sameAu(a, plain[i]!)).toBe(true));
    expect(d.counters.malformed).toBe(0);
  });

  test('PACI packets are counted as unsupported', () => {
    const d = new H265Depacketizer(96);
    d.push(new Uint8Array([0x80, 0xe0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 50 << 1, 1, 0, 0, 0]));
    expect(d.counters.unsupported).toBe(1);
  });
});

describe('fuzz', () => {
  test('mutated and random packets never throw, and every unit stays well-formed', () => {
    const rnd = mulberry32(0x265);
    const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    const seeds = [...cap.packets.slice(0, 60), ...loadCapture('h265-ap-fu-gst').packets];
    for (let round = 0; round < 40; round++) {
      const fmtp = new Map(parseSdp(cap.sdp).media[0]!.fmtp.get(96));
      if (round % 2) fmtp.set('sprop-max-don-diff', '1');
      const d = new H265Depacketizer(96, fmtp, { reorderWindow: randInt(rnd, 3) * 16 });
      for (let i = 0; i < 150; i++) {
        let p = rnd() < 0.1 ? randomBytes(rnd, randInt(rnd, 64)) : mutate(seeds[randInt(rnd, seeds.length)]!, rnd);
        if (p.length > 12 && rnd() < 0.5) { p = p.slice(); p[0] = 0x80; p[1] = (p[1]! & 0x80) | 96; }
        d.push(p, i);
        while (d.pop(au)) {
          expect(au.nalus.length).toBeGreaterThan(0);
          expect(au.bytes).toBe(au.nalus.reduce((s, n) => s + n.length, 0));
        }
        if (i % 50 === 0) d.trackInfo();
      }
      d.flush();
      while (d.pop(au));
    }
  });
});
