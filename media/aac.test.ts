import { describe, expect, test } from 'bun:test';
import {
  AAC_SAMPLES_PER_FRAME, type AdtsFrame, adtsToAudioSpecificConfig, audioSpecificConfig, audioTrackInfoAac, newAdtsFrame,
  nextAdtsFrame, parseAudioSpecificConfig, readAdtsHeader, SAMPLING_FREQUENCIES,
} from './aac.ts';
import { ParseError } from './types.ts';
import {
  assertUnchanged, BitWriter, decoderSpecificInfo, ffmpegFixture, findBox, hex, mulberry32, mutate, probePackets,
  probeStream, randInt, randomBytes, remux,
} from './testdata/test-helpers.ts';

const CASES = [
  { rate: 44100, channels: 2 },
  { rate: 8000, channels: 1 },
  { rate: 48000, channels: 6 },
];
const adts = (c: (typeof CASES)[number]) =>
  ffmpegFixture(['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${c.rate}`, '-t', '2', '-ac', String(c.channels), '-c:a', 'aac', '-f', 'adts'], 'aac');

function frames(b: Uint8Array, final = true): { frames: AdtsFrame[]; skipped: number; pos: number } {
  const out: AdtsFrame[] = [];
  let pos = 0;
  let skipped = 0;
  const f = newAdtsFrame();
  while (nextAdtsFrame(b, pos, f, final)) {
    out.push({ ...f });
    skipped += f.skipped;
    pos = f.end;
  }
  return { frames: out, skipped: skipped + f.skipped, pos: pos + f.skipped };
}

describe('ADTS (judged by ffprobe)', () => {
  for (const c of CASES) {
    test(`reads every frame and its header: ${c.rate} Hz, ${c.channels} ch`, () => {
      const f = adts(c);
      const packets = probePackets(f.path, 'a:0');
      const st = probeStream(f.path, 'a:0');
      const { frames: fr, skipped } = assertUnchanged(f.bytes, () => frames(f.bytes));
      expect(skipped).toBe(0);
      expect(fr.map((x) => x.frameLength)).toEqual(packets.map((p) => p.size));
      for (const x of fr) {
        expect([x.sampleRate, x.channelConfiguration === 7 ? 8 : x.channelConfiguration]).toEqual([Number(st.sample_rate), st.channels]);
        expect(x.profile + 1).toBe(2); // AAC-LC
        expect([x.protectionAbsent, x.headerLength, x.crc, x.rawDataBlocks]).toEqual([true, 7, -1, 1]);
        expect(x.payload.buffer).toBe(f.bytes.buffer);
        expect(x.payload.length).toBe(x.frameLength - 7);
      }
    });

    test(`derives the AudioSpecificConfig ffmpeg writes into MP4: ${c.rate} Hz, ${c.channels} ch`, () => {
      const f = adts(c);
      const head = newAdtsFrame();
      expect(readAdtsHeader(f.bytes, 0, head)).toBe(true);
      const asc = adtsToAudioSpecificConfig(head);
      const theirs = decoderSpecificInfo(findBox(remux(f.path, 'm4a').bytes, 'esds')!)!;
      expect(hex(asc)).toBe(hex(theirs));
      const info = audioTrackInfoAac(asc);
      expect(info).toEqual({ kind: 'audio', codec: 'aac', timescale: c.rate, sampleRate: c.rate, channels: c.channels, config: asc, codecString: 'mp4a.40.2' });
    });
  }

  test('reads the CRC of protected frames and points the payload past it', () => {
    const src = frames(adts(CASES[0]!).bytes).frames.slice(0, 5);
    const parts: number[] = [];
    src.forEach((x, i) => {
      const h = [...adts(CASES[0]!).bytes.subarray(x.start, x.start + 7)];
      const len = x.frameLength + 2;
      h[1] = h[1]! & 0xfe; // protection_absent = 0
      h[3] = (h[3]! & 0xfc) | (len >> 11);
      h[4] = (len >> 3) & 0xff;
      h[5] = ((len & 7) << 5) | (h[5]! & 0x1f);
      parts.push(...h, 0xab, i, ...x.payload);
    });
    const { frames: fr } = frames(new Uint8Array(parts));
    expect(fr.map((x) => [x.headerLength, x.crc, x.payload.length])).toEqual(src.map((x, i) => [9, 0xab00 | i, x.payload.length]));
  });

  test('resynchronises after garbage, skipping fake syncwords, and counts skipped bytes', () => {
    const clean = adts(CASES[0]!).bytes;
    const orig = frames(clean).frames;
    const garbage = [0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc, 0x00, 0xff, 0xff, 0x12]; // a plausible header with a bad length
    const parts: number[] = [...garbage];
    for (const [i, x] of orig.entries()) {
      parts.push(...clean.subarray(x.start, x.end));
      if (i % 10 === 3) parts.push(...garbage);
      if (i % 10 === 7) parts.push(0x12, 0x34, 0x00); // garbage without a syncword after a good frame
    }
    const dirty = new Uint8Array(parts);
    const got = frames(dirty);
    expect(got.frames.map((x) => hex(x.payload))).toEqual(orig.map((x) => hex(x.payload)));
    expect(got.skipped).toBe(dirty.length - clean.length);
  });

  test('keeps a partial frame for the next call when streaming', () => {
    const b = adts(CASES[1]!).bytes;
    const total = frames(b).frames.length;
    let buffered = new Uint8Array(0);
    let count = 0;
    const f = newAdtsFrame();
    for (let at = 0; at < b.length; at += 97) {
      const next = new Uint8Array(buffered.length + Math.min(97, b.length - at));
      next.set(buffered);
      next.set(b.subarray(at, at + 97), buffered.length);
      let pos = 0;
      while (nextAdtsFrame(next, pos, f)) {
        count++;
        pos = f.end;
      }
      expect(f.skipped).toBe(0);
      buffered = next.slice(pos);
    }
    expect(count).toBe(total);
    expect(buffered.length).toBe(0);
  });

  test('rejects reserved sampling rates, layer != 0 and short frame lengths', () => {
    const h = newAdtsFrame();
    const ok = [0xff, 0xf1, 0x50, 0x80, 0x02, 0x1f, 0xfc];
    expect(readAdtsHeader(new Uint8Array(ok), 0, h)).toBe(true);
    expect(h.frameLength).toBe(16);
    expect(readAdtsHeader(new Uint8Array([0xff, 0xf1, 0x50 | (13 << 2), 0x80, 0x02, 0x1f, 0xfc]), 0, h)).toBe(false);
    expect(readAdtsHeader(new Uint8Array([0xff, 0xf3, 0x50, 0x80, 0x02, 0x1f, 0xfc]), 0, h)).toBe(false);
    expect(readAdtsHeader(new Uint8Array([0xff, 0xf1, 0x50, 0x80, 0x00, 0xbf, 0xfc]), 0, h)).toBe(false); // length 5
    expect(readAdtsHeader(new Uint8Array(ok.slice(0, 6)), 0, h)).toBe(false);
  });
});

describe('AudioSpecificConfig', () => {
  test('parses LC, explicit HE-AAC, escaped object types and explicit rates', () => {
    expect(parseAudioSpecificConfig(new Uint8Array([0x12, 0x10]))).toEqual({
      audioObjectType: 2, coreObjectType: 2, samplingFrequencyIndex: 4, sampleRate: 44100, channelConfiguration: 2,
      extensionSampleRate: 0, frameLengthFlag: false,
    });
    const he = parseAudioSpecificConfig(new BitWriter().u(5, 5).u(4, 6).u(4, 2).u(4, 3).u(5, 2).u(3, 0).bytes());
    expect([he.audioObjectType, he.coreObjectType, he.sampleRate, he.extensionSampleRate, he.channelConfiguration]).toEqual([5, 2, 24000, 48000, 2]);
    const esc = parseAudioSpecificConfig(new BitWriter().u(5, 31).u(6, 10).u(4, 15).u(24, 12345).u(4, 1).bytes());
    expect([esc.audioObjectType, esc.samplingFrequencyIndex, esc.sampleRate, esc.channelConfiguration]).toEqual([42, 15, 12345, 1]);
    const ld = parseAudioSpecificConfig(new BitWriter().u(5, 2).u(4, 3).u(4, 1).u(1, 1).u(2, 0).bytes());
    expect(ld.frameLengthFlag).toBe(true);
  });

  test('builds 2 bytes for AAC-LC and round-trips every rate, channel layout and escaped type', () => {
    expect(hex(audioSpecificConfig(2, 44100, 2))).toBe('1210');
    expect(hex(audioSpecificConfig(2, 48000, 2))).toBe('1190');
    for (const aot of [1, 2, 3, 4, 6, 17, 23, 32, 42, 95]) {
      for (const rate of [...SAMPLING_FREQUENCIES, 12345, 192000]) {
        for (const ch of [0, 1, 2, 6, 7]) {
          const asc = audioSpecificConfig(aot, rate, ch);
          const c = parseAudioSpecificConfig(asc);
          expect([c.audioObjectType, c.sampleRate, c.channelConfiguration]).toEqual([aot, rate, ch]);
        }
      }
    }
    expect(() => audioSpecificConfig(0, 44100, 2)).toThrow(RangeError);
  });

  test('describes AAC tracks by the signalled object type', () => {
    expect(audioTrackInfoAac(new BitWriter().u(5, 5).u(4, 6).u(4, 2).u(4, 3).u(5, 2).u(3, 0).bytes()).codecString).toBe('mp4a.40.5');
    expect(audioTrackInfoAac(audioSpecificConfig(2, 8000, 1)).timescale).toBe(8000);
    expect(AAC_SAMPLES_PER_FRAME).toBe(1024);
  });

  test('throws ParseError for truncated or reserved configs', () => {
    expect(() => parseAudioSpecificConfig(new Uint8Array([0x12]))).toThrow(ParseError);
    expect(() => parseAudioSpecificConfig(new Uint8Array([0x00, 0x00]))).toThrow(ParseError);
    expect(() => parseAudioSpecificConfig(new BitWriter().u(5, 2).u(4, 13).u(4, 2).u(3, 0).bytes())).toThrow(ParseError);
  });
});

describe('fuzz', () => {
  test('ADTS iteration returns ordered in-bounds frames and accounts for every byte', () => {
    const rnd = mulberry32(2024);
    const seeds = CASES.map((c) => adts(c).bytes.subarray(0, 3000));
    for (let i = 0; i < 1500; i++) {
      const input = i % 6 === 0 ? randomBytes(rnd, randInt(rnd, 500)).map((b) => (b < 40 ? 0xff : b)) : mutate(seeds[i % 3]!, rnd);
      const final = i % 2 === 0;
      const got = assertUnchanged(input, () => frames(input, final));
      let end = 0;
      let used = 0;
      for (const f of got.frames) {
        expect(f.start).toBeGreaterThanOrEqual(end);
        expect(f.end).toBeLessThanOrEqual(input.length);
        expect(f.payload.byteOffset - input.byteOffset).toBe(f.start + f.headerLength);
        expect(f.frameLength).toBeGreaterThanOrEqual(f.headerLength);
        end = f.end;
        used += f.frameLength;
      }
      expect(used + got.skipped).toBeLessThanOrEqual(input.length);
      expect(got.pos).toBeLessThanOrEqual(input.length);
      if (final) expect(got.pos).toBe(input.length);
    }
  });

  test('parseAudioSpecificConfig throws only ParseError', () => {
    const rnd = mulberry32(3);
    const seeds = [audioSpecificConfig(2, 44100, 2), audioSpecificConfig(42, 12345, 1), new Uint8Array([0x2b, 0x92, 0x08, 0x00])];
    for (let i = 0; i < 5000; i++) {
      const input = i % 3 === 0 ? randomBytes(rnd, randInt(rnd, 8)) : mutate(seeds[i % 3]!, rnd);
      try {
        const c = assertUnchanged(input, () => parseAudioSpecificConfig(input));
        expect(c.audioObjectType).toBeGreaterThan(0);
        expect(c.sampleRate).toBeGreaterThan(0);
        expect(c.channelConfiguration).toBeLessThan(16);
      } catch (e) {
        expect(e).toBeInstanceOf(ParseError);
      }
    }
  });
});
