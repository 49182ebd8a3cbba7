import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { newAdtsFrame, nextAdtsFrame } from './aac.ts';
import { AacDepacketizer } from './rtp-aac.ts';
import { createDepacketizer } from './rtp-depacketizer.ts';
import { G711Depacketizer } from './rtp-g711.ts';
import { parseSdp } from './sdp.ts';
import type { AccessUnit } from './types.ts';
import { tempDir } from './testdata/fmp4-clips.ts';
import { type Capture, concatBytes, ffmpegRtpCapture, loadCapture, sameBytes } from './testdata/rtp-captures.ts';
import { depacketizeAll, impair, remuxAndDecode, seqOf, tsOf, withTs } from './testdata/rtp-test-kit.ts';
import { ffmpegFixture, ffprobe, mulberry32, mutate, randInt, randomBytes, remux } from './testdata/test-helpers.ts';

const SINE = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=2', '-ac', '2'];
const tmp = tempDir();
let frames: Uint8Array[]; // raw AAC frames (ADTS payloads) of the source
let big: Capture; // several AUs per packet
let small: Capture; // AUs fragmented across packets

beforeAll(async () => {
  const m4a = ffmpegFixture([...SINE, '-c:a', 'aac', '-b:a', '128k'], 'm4a');
  const adts = remux(m4a.path, 'aac', ['-f', 'adts']).bytes;
  frames = [];
  const f = newAdtsFrame();
  for (let p = 0; nextAdtsFrame(adts, p, f, true); p = f.end) frames.push(f.payload);
  big = await ffmpegRtpCapture(['-i', m4a.path, '-c', 'copy'], 1400);
  small = await ffmpegRtpCapture(['-i', m4a.path, '-c', 'copy'], 200);
});
afterAll(() => tmp.cleanup());

describe('AAC (RFC 3640 mpeg4-generic, AAC-hbr) from ffmpeg', () => {
  test('several AUs per packet: every frame equals the ADTS frame payload, 1024 ticks apart', () => {
    const sdp = parseSdp(big.sdp).media[0]!;
    expect(sdp.fmtp.get(97)!.get('mode')).toBe('AAC-hbr');
    const d = createDepacketizer(sdp)!;
    const aus = depacketizeAll(d, big.packets);
    expect(big.packets.length).toBeLessThan(aus.length); // really aggregated
    // FFmpeg's AAC packetizer never sends the frames still buffered at the end of input:
    // count what was sent from the AU-headers-length fields (16 bits per AAC-hbr header).
    const sent = big.packets.reduce((n, p) => n + ((p[12]! << 8) | p[13]!) / 16, 0);
    expect(sent).toBeGreaterThanOrEqual(frames.length - 1);
    expect(aus.length).toBe(sent);
    aus.forEach((a, i) => {
      expect(sameBytes(a.nalus[0]!, frames[i]!)).toBe(true);
      expect(a.keyframe).toBe(true);
      expect(a.dts - aus[0]!.dts).toBe(i * 1024);
    });
    const info = d.trackInfo()!;
    expect(info).toMatchObject({ kind: 'audio', codec: 'aac', sampleRate: 48000, channels: 2, codecString: 'mp4a.40.2' });
  });

  test('AUs larger than a packet are reassembled from their fragments', () => {
    const d = createDepacketizer(parseSdp(small.sdp).media[0]!)!;
    const aus = depacketizeAll(d, small.packets);
    expect(small.packets.length).toBeGreaterThan(frames.length * 1.5);
    expect(aus.length).toBe(frames.length);
    aus.forEach((a, i) => expect(sameBytes(a.nalus[0]!, frames[i]!)).toBe(true));
  });

  test('a lost fragment drops just that frame; a lost packet of whole AUs just its frames', () => {
    const d = createDepacketizer(parseSdp(small.sdp).media[0]!)!;
    const victim = small.packets.findIndex((p, i) => i > 10 && !(p[1]! & 0x80)); // a first fragment
    const aus = depacketizeAll(d, small.packets.filter((_, i) => i !== victim));
    expect(aus.length).toBe(frames.length - 1);
    expect(d.counters.lost).toBe(1);
    const byTs = new Map(depacketizeAll(createDepacketizer(parseSdp(small.sdp).media[0]!)!, small.packets).map((a) => [a.dts, a]));
    for (const a of aus) expect(sameBytes(a.nalus[0]!, byTs.get(a.dts)!.nalus[0]!)).toBe(true);

    const d2 = createDepacketizer(parseSdp(big.sdp).media[0]!)!;
    const perPacket = depacketizeAll(createDepacketizer(parseSdp(big.sdp).media[0]!)!, [big.packets[3]!]).length;
    const all = depacketizeAll(createDepacketizer(parseSdp(big.sdp).media[0]!)!, big.packets).length;
    expect(depacketizeAll(d2, big.packets.filter((_, i) => i !== 3)).length).toBe(all - perPacket);
  });

  test('reordering within the window and timestamps across the 32-bit wrap keep every frame', () => {
    const first = tsOf(small.packets[0]!);
    const wrapped = small.packets.map((p) => withTs(p, (tsOf(p) - first + 2 ** 32 - 48000) >>> 0));
    const { out } = impair(wrapped, 3, { swap: 0.2, duplicate: 0.05 });
    const d = createDepacketizer(parseSdp(small.sdp).media[0]!)!;
    const aus = depacketizeAll(d, out);
    expect(aus.length).toBe(frames.length);
    aus.forEach((a, i) => expect(a.dts - aus[0]!.dts).toBe(i * 1024));
    expect(aus.at(-1)!.dts).toBeGreaterThan(2 ** 32);
  });

  test('the fMP4 re-mux of the frames decodes cleanly', () => {
    const d = createDepacketizer(parseSdp(big.sdp).media[0]!)!;
    const aus = depacketizeAll(d, big.packets);
    const { errors, path } = remuxAndDecode(tmp.dir, 'aac', [{ track: d.trackInfo()!, aus, fallback: 1024 }]);
    expect(errors).toBe('');
    expect(ffprobe(path, ['-show_streams']).streams[0].codec_name).toBe('aac');
  });
});

describe('AAC from GStreamer rtpmp4gpay (16 kHz mono)', () => {
  test('one AU per packet with the config from fmtp', () => {
    const c = loadCapture('aac-hbr-16k-mono-gst');
    const d = createDepacketizer(parseSdp(c.sdp).media[0]!)!;
    const aus = depacketizeAll(d, c.packets);
    expect(aus.length).toBe(c.packets.length);
    expect(d.trackInfo()).toMatchObject({ sampleRate: 16000, channels: 1 });
    const { errors } = remuxAndDecode(tmp.dir, 'aac-gst', [{ track: d.trackInfo()!, aus, fallback: 1024 }]);
    expect(errors).toBe('');
  });
});

/** Packs AUs with AU headers of `size`/`index` bits (index deltas 0) into one packet. */
function pack(seq: number, ts: number, aus: Uint8Array[], sizeBits: number, indexBits: number): Uint8Array {
  const bits: number[] = [];
  const put = (v: number, n: number) => { for (let i = n - 1; i >= 0; i--) bits.push((v >> i) & 1); };
  for (const a of aus) { put(a.length, sizeBits); put(0, indexBits); }
  const headerBits = bits.length;
  while (bits.length % 8) bits.push(0);
  const hdr = new Uint8Array(bits.length / 8);
  bits.forEach((b, i) => { if (b) hdr[i >> 3]! |= 0x80 >> (i & 7); });
  const rtp = new Uint8Array([0x80, 0x80 | 97, seq >> 8, seq & 255, ts >>> 24, (ts >>> 16) & 255, (ts >>> 8) & 255, ts & 255, 0, 0, 0, 1]);
  return concatBytes([rtp, new Uint8Array([headerBits >> 8, headerBits & 255]), hdr, ...aus]);
}

describe('AAC-lbr and header layouts', () => {
  test('AAC-lbr (6/2/2) packets with several small AUs', () => {
    const rnd = mulberry32(9);
    const fmtp = new Map([['mode', 'AAC-lbr'], ['config', '1588']]);
    const d = new AacDepacketizer(97, fmtp);
    const sent: Uint8Array[] = [];
    const packets: Uint8Array[] = [];
    for (let k = 0; k < 10; k++) {
      const aus = Array.from({ length: 1 + randInt(rnd, 4) }, () => randomBytes(rnd, 1 + randInt(rnd, 63)));
      sent.push(...aus);
      packets.push(pack(k, 1000 + 1024 * (sent.length - aus.length), aus, 6, 2));
    }
    const got = depacketizeAll(d, packets);
    expect(got.length).toBe(sent.length);
    got.forEach((a, i) => {
      expect(sameBytes(a.nalus[0]!, sent[i]!)).toBe(true);
      expect(a.dts).toBe(1000 + 1024 * i);
    });
    expect(d.trackInfo()).toMatchObject({ sampleRate: 8000, channels: 1 });
  });

  test('AU-Index-delta != 0 (interleaving) is counted as unsupported', () => {
    const d = new AacDepacketizer(97, new Map([['mode', 'AAC-hbr']]));
    // two 13/3 headers: size 1 index 0, size 1 index-delta 1
    const p = concatBytes([new Uint8Array([0x80, 0x80 | 97, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 32, 0, 8, 0, 9]), new Uint8Array([1, 2])]);
    d.push(p);
    expect(d.counters.unsupported).toBe(1);
  });
});

describe('G.711', () => {
  for (const [codec, enc, pt] of [['pcma', 'pcm_alaw', 8], ['pcmu', 'pcm_mulaw', 0]] as const) {
    test(`${codec}: payloads concatenate to ffmpeg's raw ${enc} stream and re-mux cleanly`, async () => {
      const src = ['-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=8000:duration=1', '-ac', '1', '-c:a', enc];
      const raw = ffmpegFixture([...src, '-f', codec === 'pcma' ? 'alaw' : 'mulaw'], 'raw').bytes;
      const cap = await ffmpegRtpCapture(src);
      const m = parseSdp(cap.sdp).media[0]!;
      expect(m.formats).toEqual([String(pt)]);
      const d = createDepacketizer(m)!;
      expect(d).toBeInstanceOf(G711Depacketizer);
      const aus = depacketizeAll(d, cap.packets);
      expect(aus.length).toBe(cap.packets.length);
      expect(sameBytes(concatBytes(aus.map((a) => a.nalus[0]!)), raw)).toBe(true);
      let t = aus[0]!.dts;
      for (const a of aus) { expect(a.dts).toBe(t); t += a.bytes; }
      expect(d.trackInfo()).toMatchObject({ codec, sampleRate: 8000, channels: 1 });
      const { errors } = remuxAndDecode(tmp.dir, codec, [{ track: d.trackInfo()!, aus, fallback: 160 }]);
      expect(errors).toBe('');
    });
  }
});

describe('fuzz', () => {
  test('mutated and random packets never throw and units stay within their packets', () => {
    const rnd = mulberry32(0x3640);
    const au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
    const seeds = [...big.packets.slice(0, 20), ...small.packets.slice(0, 40)];
    const layouts = [parseSdp(big.sdp).media[0]!.fmtp.get(97)!, new Map([['mode', 'AAC-lbr']]),
      new Map([['sizelength', '13'], ['ctsdeltalength', '4'], ['dtsdeltalength', '3'], ['randomaccessindication', '1'], ['streamstateindication', '2'], ['auxiliarydatasizelength', '8']]),
      new Map([['constantsize', '7']]), new Map([['randomaccessindication', '1']])];
    for (let round = 0; round < 50; round++) {
      const d = new AacDepacketizer(97, layouts[round % layouts.length]!, { reorderWindow: randInt(rnd, 2) * 8 });
      for (let i = 0; i < 100; i++) {
        let p = rnd() < 0.1 ? randomBytes(rnd, randInt(rnd, 64)) : mutate(seeds[randInt(rnd, seeds.length)]!, rnd);
        if (p.length > 12 && rnd() < 0.6) { p = p.slice(); p[0] = 0x80; p[1] = (p[1]! & 0x80) | 97; }
        d.push(p);
        while (d.pop(au)) {
          expect(au.nalus.length).toBe(1);
          expect(au.bytes).toBe(au.nalus[0]!.length);
          expect(au.bytes).toBeGreaterThan(0);
          expect(au.bytes).toBeLessThanOrEqual(16 * 768);
        }
      }
      d.flush();
      while (d.pop(au));
    }
    void seqOf;
  });
});
