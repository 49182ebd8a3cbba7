import { describe, expect, test } from 'bun:test';
import { lengthPrefixedSize, splitAnnexB, writeLengthPrefixed } from './annexb.ts';
import { splitAccessUnits as splitAus } from './annexb-au.ts';
import { FLV_END, FLV_ERROR, FLV_FRAME, FLV_SKIP, FLV_TRACK, FlvAudioDemuxer, FlvVideoDemuxer } from './flv.ts';
import {
  assertUnchanged, ffmpegFixture, ffprobe, findBox, H265_CASES, mulberry32, mutate, probePackets, probeStream, randInt,
  randomBytes, videoFixture, videoMp4,
} from './testdata/test-helpers.ts';


/** An FLV file's tags (FLV spec E.2-E.3): 9-byte header, then [PreviousTagSize u32][tag] ... */
function flvTags(file: Uint8Array): { type: number; ts: number; body: Uint8Array }[] {
  const tags: { type: number; ts: number; body: Uint8Array }[] = [];
  let p = (file[5]! << 24) | (file[6]! << 16) | (file[7]! << 8) | file[8]!; // DataOffset
  for (p += 4; p + 11 <= file.length; ) {
    const size = (file[p + 1]! << 16) | (file[p + 2]! << 8) | file[p + 3]!;
    const ts = ((file[p + 7]! << 24) | (file[p + 4]! << 16) | (file[p + 5]! << 8) | file[p + 6]!) >>> 0;
    tags.push({ type: file[p]! & 0x1f, ts, body: file.subarray(p + 11, p + 11 + size) });
    p += 11 + size + 4;
  }
  return tags;
}

const avSource = ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine=sample_rate=44100', '-t', '2'];
const h264Flv = () => ffmpegFixture([...avSource, '-c:v', 'libx264', '-bf', '2', '-g', '25', '-c:a', 'aac', '-f', 'flv'], 'flv');

describe('FlvVideoDemuxer on an ffmpeg FLV (H.264 with B-frames)', () => {
  const { path, bytes } = h264Flv();
  const tags = flvTags(bytes);
  const video = tags.filter((t) => t.type === 9);

  test('learns the track from the AVC sequence header and matches ffprobe packet by packet', () => {
    const d = new FlvVideoDemuxer();
    const results = video.map((t) => d.push(t.body, t.ts));
    expect(results[0]).toBe(FLV_TRACK);
    expect(d.track!.codec).toBe('h264');
    expect([d.track!.width, d.track!.height]).toEqual([320, 240]);
    expect(d.track!.codecString).toMatch(/^avc1\.64/);
    const probed = ffprobe(path, ['-select_streams', 'v:0', '-show_entries', 'packet=pts,dts,size,flags', '-show_packets']).packets as
      { pts: string; dts: string; size: string; flags: string }[];
    const d2 = new FlvVideoDemuxer();
    const got: string[] = [];
    for (const t of video) {
      if (d2.push(t.body, t.ts) !== FLV_FRAME) continue;
      const au = d2.au;
      got.push(`${au.dts / 90} ${au.pts / 90} ${au.bytes + 4 * au.nalus.length} ${au.keyframe}`);
    }
    expect(got).toEqual(probed.map((p) => `${p.dts} ${p.pts} ${p.size} ${p.flags.startsWith('K')}`));
    expect(got.filter((g) => g.endsWith('true')).length).toBe(2);
    expect(d2.keyframeMismatches).toBe(0);
    expect(results.at(-1)).toBe(FLV_END);
  });

  test('returns NAL views into the tag body without modifying it', () => {
    const d = new FlvVideoDemuxer();
    d.push(video[0]!.body, 0);
    const body = video[1]!.body;
    expect(assertUnchanged(body, () => d.push(body, 40))).toBe(FLV_FRAME);
    for (const n of d.au.nalus) {
      expect(n.buffer).toBe(body.buffer);
      expect(n.byteOffset).toBeGreaterThanOrEqual(body.byteOffset);
      expect(n.byteOffset + n.length).toBeLessThanOrEqual(body.byteOffset + body.length);
    }
  });

  test('skips frames before the sequence header and repeated sequence headers', () => {
    const d = new FlvVideoDemuxer();
    expect(d.push(video[1]!.body, 0)).toBe(FLV_SKIP);
    expect(d.skipReason).toContain('before the sequence header');
    expect(d.push(video[0]!.body, 0)).toBe(FLV_TRACK);
    const track = d.track;
    expect(d.push(video[0]!.body.slice(), 0)).toBe(FLV_SKIP);
    expect(d.track).toBe(track);
  });

  test('trusts the NAL types over the FLV frame type and counts the disagreement', () => {
    const d = new FlvVideoDemuxer();
    d.push(video[0]!.body, 0);
    const idr = video[1]!.body.slice();
    idr[0] = 0x27; // inter frame, AVC
    expect(d.push(idr, 0)).toBe(FLV_FRAME);
    expect(d.au.keyframe).toBe(true);
    expect(d.keyframeMismatches).toBe(1);
  });

  test('accepts Annex-B start codes where lengths belong (as some cameras send)', () => {
    const d = new FlvVideoDemuxer();
    d.push(video[0]!.body, 0);
    d.push(video[1]!.body, 0);
    const nalus = d.au.nalus.map((n) => n.slice());
    const annexB = new Uint8Array([0x17, 1, 0, 0, 0, ...nalus.flatMap((n) => [0, 0, 0, 1, ...n])]);
    expect(d.push(annexB, 0)).toBe(FLV_FRAME);
    expect(d.au.nalus.map((n) => n.length)).toEqual(nalus.map((n) => n.length));
  });
});

describe('FlvVideoDemuxer with H.265 (Enhanced RTMP hvc1 and legacy codec id 12)', () => {
  const c = H265_CASES[0]!; // 642x362, keyint 20
  const es = videoFixture(c).bytes;
  const hvcC = findBox(videoMp4(c).bytes, 'hvcC')!; // written by ffmpeg, not by us
  const keys = probePackets(videoMp4(c).path).map((p) => p.key);
  const frames = splitAus(es, 'h265').map((r) => {
    const nalus: Uint8Array[] = [];
    splitAnnexB(es.subarray(r.offset, r.offset + r.length), nalus);
    const lp = new Uint8Array(lengthPrefixedSize(nalus));
    writeLengthPrefixed(nalus, nalus.length, lp, 0);
    return lp;
  });
  const ex = (frameType: number, packetType: number, rest: number[] | Uint8Array) =>
    new Uint8Array([0x80 | (frameType << 4) | packetType, 0x68, 0x76, 0x63, 0x31, ...rest]);

  const run = (tagOf: (i: number, key: boolean) => Uint8Array, seq: Uint8Array) => {
    const d = new FlvVideoDemuxer();
    expect(d.push(seq, 0)).toBe(FLV_TRACK);
    const out: string[] = [];
    frames.forEach((f, i) => {
      expect(d.push(tagOf(i, keys[i]!), i * 40)).toBe(FLV_FRAME);
      out.push(`${d.au.dts} ${d.au.pts} ${d.au.bytes} ${d.au.keyframe}`);
    });
    return { d, out };
  };

  test('Enhanced RTMP SequenceStart, CodedFrames and CodedFramesX give the same access units as legacy codec id 12', () => {
    expect(frames.length).toBe(keys.length);
    const seqEx = ex(1, 0, hvcC);
    const enhanced = run((i, key) => (i % 2 ? ex(key ? 1 : 2, 3, frames[i]!) : ex(key ? 1 : 2, 1, [0, 0, 0, ...frames[i]!])), seqEx);
    expect(enhanced.d.track!.codec).toBe('h265');
    expect([enhanced.d.track!.width, enhanced.d.track!.height]).toEqual([642, 362]);
    expect(enhanced.d.track!.codecString).toMatch(/^hvc1\.1\./);
    expect(enhanced.d.keyframeMismatches).toBe(0);
    expect(enhanced.out.map((s) => s.endsWith('true'))).toEqual(keys);
    const legacy = run((i, key) => new Uint8Array([(key ? 0x10 : 0x20) | 12, 1, 0, 0, 0, ...frames[i]!]), new Uint8Array([0x1c, 0, 0, 0, 0, ...hvcC]));
    expect(legacy.out).toEqual(enhanced.out);
    expect(legacy.d.track!.config).toEqual(enhanced.d.track!.config);
  });

  test('reads the signed 24-bit composition time of CodedFrames', () => {
    const d = new FlvVideoDemuxer();
    d.push(ex(1, 0, hvcC), 0);
    expect(d.push(ex(1, 1, [0xff, 0xff, 0xd8, ...frames[0]!]), 1000)).toBe(FLV_FRAME); // -40 ms
    expect([d.au.dts, d.au.pts]).toEqual([90_000, 86_400]);
  });

  test('ends on SequenceEnd and skips FourCCs it does not carry (av01, vp09)', () => {
    const d = new FlvVideoDemuxer();
    d.push(ex(1, 0, hvcC), 0);
    expect(d.push(ex(1, 2, []), 0)).toBe(FLV_END);
    expect(d.push(new Uint8Array([0x90, 0x61, 0x76, 0x30, 0x31, 1, 2]), 0)).toBe(FLV_SKIP);
    expect(d.skipReason).toContain('FourCC');
  });
});

describe('FlvAudioDemuxer', () => {
  test('AAC: track from the sequence header, frames with exact 1024-sample steps matching ffprobe', () => {
    const { path, bytes } = h264Flv();
    const audio = flvTags(bytes).filter((t) => t.type === 8);
    const d = new FlvAudioDemuxer();
    expect(d.push(audio[0]!.body, audio[0]!.ts)).toBe(FLV_TRACK);
    expect(d.track).toMatchObject({ codec: 'aac', sampleRate: 44100, channels: 1, codecString: 'mp4a.40.2' });
    const dts: number[] = [];
    const sizes: number[] = [];
    for (const t of audio.slice(1)) {
      expect(d.push(t.body, t.ts)).toBe(FLV_FRAME);
      dts.push(d.au.dts);
      sizes.push(d.au.bytes);
      expect(Math.abs(d.au.dts / 44.1 - t.ts)).toBeLessThanOrEqual(2);
    }
    for (let i = 1; i < dts.length; i++) expect(dts[i]! - dts[i - 1]!).toBe(1024);
    expect(sizes).toEqual(probePackets(path, 'a:0').map((p) => p.size));
  });

  for (const [codec, name, format] of [['pcm_alaw', 'pcma', 7], ['pcm_mulaw', 'pcmu', 8]] as const) {
    test(`G.711 ${name}: an 8 kHz track from the first tag, samples counted from bytes`, () => {
      const { path, bytes } = ffmpegFixture(['-f', 'lavfi', '-i', 'sine=sample_rate=8000', '-t', '1', '-c:a', codec, '-ar', '8000', '-f', 'flv'], 'flv');
      const audio = flvTags(bytes).filter((t) => t.type === 8);
      expect(audio[0]!.body[0]! >> 4).toBe(format);
      const d = new FlvAudioDemuxer();
      expect(d.push(audio[0]!.body, audio[0]!.ts)).toBe(FLV_TRACK | FLV_FRAME);
      expect(d.track).toMatchObject({ codec: name, sampleRate: 8000, channels: 1 });
      let samples = d.au.bytes;
      for (const t of audio.slice(1)) {
        expect(d.push(t.body, t.ts)).toBe(FLV_FRAME);
        expect(d.au.dts).toBe(samples);
        samples += d.au.bytes;
      }
      expect(samples).toBe(8000); // 1 s
      expect(probeStream(path, 'a:0').sample_rate).toBe('8000');
    });
  }

  test('skips unsupported sound formats and AAC frames before the sequence header', () => {
    const d = new FlvAudioDemuxer();
    expect(d.push(new Uint8Array([0x2f, 1, 2, 3]), 0)).toBe(FLV_SKIP); // MP3
    expect(d.push(new Uint8Array([0xaf, 1, 2, 3]), 0)).toBe(FLV_SKIP);
    expect(d.push(new Uint8Array([0xaf, 0]), 0)).toBe(FLV_ERROR); // empty AudioSpecificConfig
  });
});

describe('FLV demuxer fuzz', () => {
  test('mutated real tags and random bodies never throw; frames stay inside their tag', () => {
    const tags = flvTags(h264Flv().bytes);
    const hevc = findBox(videoMp4(H265_CASES[0]!).bytes, 'hvcC')!;
    const seeds = [...tags.slice(0, 60).map((t) => ({ type: t.type, body: t.body })), { type: 9, body: new Uint8Array([0x90, 0x68, 0x76, 0x63, 0x31, ...hevc]) }];
    const rnd = mulberry32(0xf1f1);
    const v = new FlvVideoDemuxer();
    const a = new FlvAudioDemuxer();
    v.push(tags.find((t) => t.type === 9)!.body, 0);
    a.push(tags.find((t) => t.type === 8)!.body, 0);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20_000; i++) {
      const seed = seeds[randInt(rnd, seeds.length)]!;
      const body = i % 10 === 0 ? randomBytes(rnd, randInt(rnd, 40)) : mutate(seed.body, rnd);
      const d = seed.type === 9 ? v : a;
      const r = d.push(body, randInt(rnd, 1 << 20));
      expect(r === FLV_SKIP || r === FLV_ERROR || (r & ~(FLV_TRACK | FLV_FRAME | FLV_END)) === 0).toBe(true);
      counts[r === FLV_ERROR ? 2 : r & FLV_FRAME ? 1 : 0]!++;
      if (r & FLV_FRAME) {
        let sum = 0;
        for (const n of d.au.nalus) {
          expect(n.buffer).toBe(body.buffer);
          expect(n.byteOffset + n.length).toBeLessThanOrEqual(body.byteOffset + body.length);
          sum += n.length;
        }
        expect(d.au.bytes).toBe(sum);
      }
    }
    expect(counts[1]).toBeGreaterThan(1000);
    expect(counts[2]).toBeGreaterThan(100);
  });
});
