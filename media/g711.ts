// G.711 A-law (PCMA) and mu-law (PCMU): track descriptions, sample counts, and the
// ITU-T G.711 expansion tables to 16-bit linear PCM (for level metering).
import type { AudioTrackInfo } from './types.ts';

/** RTP static payload types 0 and 8 are 8000 Hz mono (RFC 3551 §4.5.14). */
export const G711_DEFAULT_RATE = 8000;

const EMPTY = new Uint8Array(0);

function info(codec: 'pcma' | 'pcmu', sampleRate: number, channels: number): AudioTrackInfo {
  if (!Number.isInteger(sampleRate) || sampleRate <= 0 || !Number.isInteger(channels) || channels <= 0) {
    throw new RangeError(`G.711 ${codec}: bad rate ${sampleRate} or channels ${channels}`);
  }
  return {
    kind: 'audio', codec, timescale: sampleRate, sampleRate, channels, config: EMPTY,
    codecString: codec === 'pcma' ? 'alaw' : 'ulaw',
  };
}

export const audioTrackInfoPcma = (sampleRate = G711_DEFAULT_RATE, channels = 1): AudioTrackInfo =>
  info('pcma', sampleRate, channels);

export const audioTrackInfoPcmu = (sampleRate = G711_DEFAULT_RATE, channels = 1): AudioTrackInfo =>
  info('pcmu', sampleRate, channels);

/** One byte per sample per channel: the duration of a buffer in ticks of the sample rate. */
export const g711Samples = (byteCount: number, channels = 1): number => Math.floor(byteCount / channels);

// ITU-T G.711 Table 1a/1b: A-law code -> linear. Even bits are inverted (xor 0x55); a
// 3-bit segment picks the step size, the 4-bit mantissa the step; the result is the
// mid-point of the quantisation interval, scaled from 13 to 16 bits (<< 3).
function alawToLinear(code: number): number {
  const a = code ^ 0x55;
  const seg = (a >> 4) & 7;
  const mant = a & 0x0f;
  const mag = seg === 0 ? (mant << 4) + 8 : ((mant << 4) + 0x108) << (seg - 1);
  return a & 0x80 ? mag : -mag;
}

// ITU-T G.711 Table 2a/2b: mu-law code -> linear. All bits are inverted; the biased
// magnitude ((mantissa << 3) + 0x84) << segment, less the bias 0x84, gives 14-bit
// values scaled to 16 bits.
function ulawToLinear(code: number): number {
  const u = ~code & 0xff;
  const mag = (((u & 0x0f) << 3) + 0x84) << ((u >> 4) & 7);
  return u & 0x80 ? 0x84 - mag : mag - 0x84;
}

function table(decode: (code: number) => number): Int16Array {
  const t = new Int16Array(256);
  for (let i = 0; i < 256; i++) t[i] = decode(i);
  return t;
}

/** A-law byte -> signed 16-bit linear sample. */
export const ALAW_TO_LINEAR: Int16Array = table(alawToLinear);
/** mu-law byte -> signed 16-bit linear sample. */
export const ULAW_TO_LINEAR: Int16Array = table(ulawToLinear);
