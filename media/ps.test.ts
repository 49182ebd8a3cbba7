// MPEG-PS demuxer and muxer: round trips through our muxer, PS written by ffmpeg (no PSM,
// 2 KiB packs cut anywhere), ffprobe judging the muxer, loss, and seeded fuzzing.
import { describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { splitAccessUnits } from './annexb-au.ts';
import { PsDemuxer, type PsAudioFrame, type PsSink } from './ps.ts';
import { crc32Mpeg, PsMuxer } from './ps-mux.ts';
import type { AccessUnit } from './types.ts';
import { assertUnchanged, ffmpegFixture, ffprobe, mulberry32, mutate, randInt, randomBytes } from './testdata/test-helpers.ts';

interface Got {
  codecs: string[];
  units: { bytes: number; key: boolean; dts: number; pts: number; nalus: number; data: Uint8Array }[];
  audio: { codec: string; bytes: number; pts: number }[];
}

function collector(): { sink: PsSink; got: Got } {
  const got: Got = { codecs: [], units: [], audio: [] };
  const sink: PsSink = {
    codec: (kind, c) => got.codecs.push(`${kind}:${c}`),
    video(au: AccessUnit) {
      // Invariants every unit must meet, whatever the input.
      expect(au.nalus.length).toBeGreaterThan(0);
      let sum = 0;
      for (const n of au.nalus) {
        expect(n.length).toBeGreaterThan(0);
        sum += n.length;
      }
      expect(au.bytes).toBe(sum);
      expect(Number.isFinite(au.dts) && Number.isFinite(au.pts)).toBe(true);
      const data = new Uint8Array(sum);
      let at = 0;
      for (const n of au.nalus) (data.set(n, at), (at += n.length));
      got.units.push({ bytes: au.bytes, key: au.keyframe, dts: au.dts, pts: au.pts, nalus: au.nalus.length, data });
    },
    audio(f: PsAudioFrame) {
      got.audio.push({ codec: f.codec, bytes: f.data.length, pts: f.pts });
    },
  };
  return { sink, got };
}

/** Feeds `ps` in random cuts of 1..max bytes, as RTP payloads arrive. */
function demux(ps: Uint8Array, seed = 1, max = 1400): { got: Got; d: PsDemuxer } {
  const { sink, got } = collector();
  const d = new PsDemuxer(sink);
  const rnd = mulberry32(seed);
  for (let at = 0; at < ps.length; ) {
    const n = 1 + randInt(rnd, max);
    d.push(ps.subarray(at, at + n));
    at += n;
  }
  d.flush();
  return { got, d };
}

const clip = (codec: 'h264' | 'h265', bf = 0) =>
  ffmpegFixture(
    ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '2', '-pix_fmt', 'yuv420p',
      ...(codec === 'h264'
        ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-bf', `${bf}`, '-g', '25', '-f', 'h264']
        : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `keyint=25:bframes=${bf}:log-level=error`, '-f', 'hevc'])],
    codec === 'h264' ? 'h264' : 'hevc',
  );

/** The clip through our muxer, 25 fps, dts starting near the 33-bit wrap. */
function muxClip(codec: 'h264' | 'h265', startTs = 2 ** 33 - 90_000) {
  const es = clip(codec).bytes;
  const aus = splitAccessUnits(es, codec);
  const mux = new PsMuxer({ codec });
  const parts: Uint8Array[] = [];
  aus.forEach((a, i) => parts.push(mux.video(es.subarray(a.offset, a.offset + a.length), startTs + 3600 * i, startTs + 3600 * i, a.keyframe).slice()));
  return { es, aus, ps: Buffer.concat(parts) as Uint8Array };
}

describe.each(['h264', 'h265'] as const)('%s through our muxer', (codec) => {
  const { es, aus, ps } = muxClip(codec);

  test('every access unit comes back, byte for byte, with its keyframe flag', () => {
    const { got } = assertUnchanged(ps, () => demux(ps, 7));
    expect(got.codecs).toEqual([`video:${codec}`]);
    expect(got.units.length).toBe(aus.length);
    got.units.forEach((u, i) => {
      expect(u.key).toBe(aus[i]!.keyframe);
      const nalus = [...es.subarray(aus[i]!.offset, aus[i]!.offset + aus[i]!.length)].length; // total incl. start codes
      expect(u.bytes).toBeLessThan(nalus);
    });
  });

  test('unwraps PTS across the 33-bit wrap: dts rises by one frame each unit', () => {
    const { got } = demux(ps, 3);
    for (let i = 1; i < got.units.length; i++) expect(got.units[i]!.dts - got.units[i - 1]!.dts).toBe(3600);
    expect(got.units.at(-1)!.dts).toBeGreaterThan(2 ** 33);
  });

  test('ffprobe reads the muxer output as the codec with every frame', () => {
    const path = join(tmpdir(), `flux-psmux-${process.pid}-${codec}.ps`);
    writeFileSync(path, ps);
    const j = ffprobe(path, ['-show_entries', 'stream=codec_name,width,height:format=format_name', '-count_packets', '-show_entries', 'stream=nb_read_packets']);
    expect(j.format.format_name).toBe('mpeg');
    expect(j.streams[0].codec_name).toBe(codec === 'h264' ? 'h264' : 'hevc');
    expect([j.streams[0].width, j.streams[0].height]).toEqual([320, 240]);
    expect(Number(j.streams[0].nb_read_packets)).toBe(aus.length);
  });

  test('a lost chunk drops the partial picture, resyncs at the next pack and waits for a keyframe', () => {
    const { sink, got } = collector();
    const d = new PsDemuxer(sink);
    const cut = Math.floor(ps.length / 3);
    d.push(ps.subarray(0, cut));
    d.lost();
    d.push(ps.subarray(cut + 700));
    d.flush();
    expect(d.counters.resyncs).toBe(1);
    expect(got.units.length).toBeLessThan(aus.length);
    const firstAfter = got.units.findIndex((u, i) => i > 0 && u.dts - got.units[i - 1]!.dts > 3600);
    expect(firstAfter).toBeGreaterThan(0);
    expect(got.units[firstAfter]!.key).toBe(true);
  });
});

test('splits pictures larger than 64 KiB into several PES packets and joins them again', () => {
  const big = new Uint8Array(200_000);
  big.set([0, 0, 0, 1, 0x65, 0x88]); // IDR slice, first_mb_in_slice 0
  for (let i = 6; i < big.length; i++) big[i] = (i * 7) | 0x10; // no start code inside
  const sps = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40];
  const au = new Uint8Array([...sps, ...big]);
  const mux = new PsMuxer({ codec: 'h264' });
  const ps = Buffer.concat([mux.video(au, 1000, 1000, true).slice(), mux.video(au, 4600, 4600, true).slice()]) as Uint8Array;
  let pes = 0;
  for (let i = 0; i + 3 < ps.length; i++) if (ps[i] === 0 && ps[i + 1] === 0 && ps[i + 2] === 1 && ps[i + 3] === 0xe0) pes++;
  expect(pes).toBe(8);
  const { got } = demux(ps, 5, 60_000);
  expect(got.units.map((u) => [u.bytes, u.dts])).toEqual([[au.length - 8, 1000], [au.length - 8, 4600]]);
});

test('a device repeating the PTS on every PES of a split picture, with private 0xBD data, gives the same units', () => {
  const big = new Uint8Array(150_000);
  big.set([0, 0, 0, 1, 0x65, 0x88]);
  for (let i = 6; i < big.length; i++) big[i] = (i * 13) | 0x20;
  const sps = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40];
  const au = new Uint8Array([...sps, ...big]);
  const p = new Uint8Array([0, 0, 0, 1, 0x41, 0x9a, 0x22, 0x33]); // P slice
  const mux = new PsMuxer({ codec: 'h264', stampEveryPes: true, privateData: true });
  const ps = Buffer.concat([mux.video(au, 0, 0, true).slice(), mux.video(p, 3600, 3600, false).slice(), mux.video(au, 7200, 7200, true).slice()]) as Uint8Array;
  const { got, d } = demux(ps, 8, 3000);
  expect(got.units.map((u) => [u.dts, u.key, u.bytes])).toEqual([[0, true, au.length - 8], [3600, false, 4], [7200, true, au.length - 8]]);
  expect(d.counters.ignoredPes).toBe(3); // the private PES, one per picture
  expect(d.counters.resyncs).toBe(0);
});

describe.each(['h264', 'h265'] as const)('%s PS written by ffmpeg (VOB: no PSM, 2 KiB packs)', (codec) => {
  // Encoded straight into the PS so that ffmpeg knows every timestamp (B-frames for H.264).
  const vob = ffmpegFixture(
    ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '2', '-pix_fmt', 'yuv420p',
      ...(codec === 'h264' ? ['-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '2', '-g', '25'] : ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'keyint=25:log-level=error']),
      '-f', 'vob'],
    'vob',
  );
  const probe = ffprobe(vob.path, ['-select_streams', 'v:0', '-show_entries', 'packet=pts,dts,flags', '-show_packets']);
  const ref = (probe.packets as { pts: string; dts: string; flags: string }[]).map((p) => ({ pts: Number(p.pts), dts: Number(p.dts), key: p.flags.startsWith('K') }));

  test('probes the codec and matches ffprobe on every picture: count, keyframes, PTS, DTS', () => {
    const { got, d } = demux(vob.bytes, 11);
    expect(got.codecs).toEqual([`video:${codec}`]);
    expect(d.counters.psms).toBe(0);
    expect(d.counters.resyncs).toBe(0);
    expect(got.units.length).toBe(ref.length);
    expect(ref.filter((r) => !Number.isNaN(r.pts)).length).toBeGreaterThanOrEqual(ref.length / 2);
    // ffmpeg leaves out the PTS of a picture that does not start in its own PES; we take it
    // from the picture order count: every frame is then shown exactly once, 40 ms apart.
    got.units.forEach((u, i) => {
      const r = ref[i]!;
      expect(u.key).toBe(r.key);
      if (!Number.isNaN(r.pts)) expect([u.pts, u.dts]).toEqual([r.pts, r.dts]);
      expect(u.pts).toBeGreaterThanOrEqual(u.dts);
      if (i > 0) expect(u.dts - got.units[i - 1]!.dts).toBe(3600);
    });
    expect(d.counters.resyncs).toBe(0);
    const shown = got.units.map((u) => u.pts).sort((a, b) => a - b);
    shown.forEach((p, i) => expect(p - shown[0]!).toBe(3600 * i));
  });
});

test('an MPEG-1 system stream (ffmpeg -f mpeg: 12-byte packs, MPEG-1 packet headers) demuxes the same', () => {
  const mpg = ffmpegFixture(['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '2', '-pix_fmt', 'yuv420p',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '0', '-g', '25', '-f', 'mpeg'], 'mpg');
  const ref = ffprobe(mpg.path, ['-select_streams', 'v:0', '-show_entries', 'packet=pts,flags', '-show_packets']).packets as { pts: string; flags: string }[];
  const { got, d } = demux(mpg.bytes, 9);
  expect(d.counters.resyncs).toBe(0);
  expect(d.counters.packs).toBeGreaterThan(10);
  expect(got.units.length).toBe(ref.length);
  got.units.forEach((u, i) => {
    expect(u.key).toBe(ref[i]!.flags.startsWith('K'));
    if (ref[i]!.pts !== undefined) expect(u.pts).toBe(Number(ref[i]!.pts));
  });
});

test('G.711A audio PES become frames with their PTS', () => {
  const mux = new PsMuxer({ codec: 'h264', audio: true });
  const frames = [0, 1, 2].map((i) => mux.audio(new Uint8Array(320).fill(0x55 + i), 1000 + 3600 * i).slice());
  const { sink, got } = collector();
  const d = new PsDemuxer(sink);
  for (const f of frames) d.push(f);
  expect(got.codecs).toEqual(['audio:pcma']); // no PSM: a GB camera's default
  expect(got.audio).toEqual([0, 1, 2].map((i) => ({ codec: 'pcma', bytes: 320, pts: 1000 + 3600 * i })));
});

test('AAC in ADTS (ffmpeg) split into frames, probed by its syncword, PTS extrapolated per frame', () => {
  const adts = ffmpegFixture(['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=16000', '-t', '1', '-c:a', 'aac', '-b:a', '32k', '-f', 'adts'], 'aac').bytes;
  const mux = new PsMuxer({ codec: 'h264' });
  // Three PES packets cut at arbitrary bytes, as a muxer may: frames straddle PES packets.
  const cuts = [0, 1000, 2500, adts.length];
  const ps = Buffer.concat(cuts.slice(1).map((end, i) => mux.audio(adts.subarray(cuts[i]!, end), 9000).slice())) as Uint8Array;
  const { got } = demux(ps, 4);
  expect(got.codecs).toEqual(['audio:aac']);
  expect(got.audio.length).toBeGreaterThanOrEqual(15);
  expect(got.audio[0]!.pts).toBe(9000);
  const steps = new Set(got.audio.slice(1).map((a, i) => a.pts - got.audio[i]!.pts));
  expect([...steps].every((s) => s === 5760 || s === 0 || s < 0)).toBe(true); // 1024 samples at 16 kHz; resets at a PES PTS
});

test('the PSM CRC is the MPEG-2 CRC-32 (a PSM with its CRC appended checks to 0)', () => {
  const mux = new PsMuxer({ codec: 'h265', audio: true });
  const ps = mux.video(new Uint8Array([0, 0, 1, 0x26, 1, 0xaf]), 0, 0, true);
  const at = ps.findIndex((_, i) => ps[i] === 0 && ps[i + 1] === 0 && ps[i + 2] === 1 && ps[i + 3] === 0xbc);
  const len = (ps[at + 4]! << 8) | ps[at + 5]!;
  expect(crc32Mpeg(ps.subarray(at, at + 6 + len))).toBe(0);
});

describe('fuzzing (seeded): never throws, every unit well-formed, counters account for damage', () => {
  const seeds = [muxClip('h264', 0).ps, muxClip('h265', 0).ps];
  test('random bytes', () => {
    const rnd = mulberry32(0xbad5);
    for (let k = 0; k < 300; k++) demux(randomBytes(rnd, randInt(rnd, 4000)), k, 300);
  });
  test('random bytes behind a valid pack header', () => {
    const rnd = mulberry32(0x9a1);
    const pack = seeds[0]!.subarray(0, 14);
    for (let k = 0; k < 300; k++) {
      const b = randomBytes(rnd, randInt(rnd, 3000));
      demux(Buffer.concat([pack, b]) as Uint8Array, k, 200);
    }
  });
  test('thousands of tiny pictures in one PES (deep scans stay iterative)', () => {
    const unit = [0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 0x9a, 0x22]; // AUD + P slice, first_mb 0
    const idr = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0, 0, 1, 0x68, 0xce, 0x0f, 0xc8, 0, 0, 1, 0x65, 0x88, 0x84];
    const es = new Uint8Array([...idr, ...Array.from({ length: 5000 }, () => unit).flat()]);
    const { got } = demux(new PsMuxer({ codec: 'h264' }).video(es, 0, 0, true).slice(), 1, 70_000);
    expect(got.units.length).toBe(5001);
    expect(got.units[0]!.key).toBe(true);
  });
  test('mutated streams', () => {
    const rnd = mulberry32(0x5eed);
    for (let k = 0; k < 200; k++) {
      let b = seeds[k % 2]!.subarray(0, 30_000 + randInt(rnd, 30_000));
      for (let m = 0; m < 1 + randInt(rnd, 4); m++) b = mutate(b, rnd);
      const { got, d } = demux(b, k, 2000);
      expect(d.counters.resyncs).toBeGreaterThanOrEqual(0);
      for (let i = 1; i < got.units.length; i++) expect(Number.isFinite(got.units[i]!.dts)).toBe(true);
    }
  });
  test('loss at random places: the first unit after each resync is a keyframe', () => {
    const rnd = mulberry32(0x1055);
    for (let k = 0; k < 40; k++) {
      const ps = seeds[k % 2]!;
      const { sink, got } = collector();
      const d = new PsDemuxer(sink);
      let at = 0;
      let lostAt = -1;
      while (at < ps.length) {
        const n = 1 + randInt(rnd, 1400);
        if (rnd() < 0.01) {
          d.lost();
          lostAt = got.units.length;
        } else d.push(ps.subarray(at, at + n));
        at += n;
        if (lostAt >= 0 && got.units.length > lostAt) {
          expect(got.units[lostAt]!.key).toBe(true);
          lostAt = -1;
        }
      }
    }
  });
});
