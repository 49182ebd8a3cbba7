// AAC framing: ADTS headers and frame iteration with resync, the AudioSpecificConfig
// (parse and build), and the AudioTrackInfo of an AAC track.
import { BitReader } from './bits.ts';
import { type AudioTrackInfo, ParseError } from './types.ts';

/** Samples per AAC frame (raw_data_block) with frameLengthFlag 0; 960 otherwise. */
export const AAC_SAMPLES_PER_FRAME = 1024;

/** ISO/IEC 14496-3 §1.6.3.4 Table 1.18 samplingFrequencyIndex -> Hz (13, 14 reserved; 15 = explicit). */
export const SAMPLING_FREQUENCIES: readonly number[] = Object.freeze([
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
]);

/** Fixed + variable ADTS header without CRC. */
export const ADTS_HEADER_BYTES = 7;

/** The fields of one ADTS frame, filled in place by readAdtsHeader/nextAdtsFrame. */
export interface AdtsFrame {
  /** Offset of the syncword in the buffer. */
  start: number;
  /** Offset just past the frame (start + frameLength). */
  end: number;
  /** 0 = MPEG-4, 1 = MPEG-2 (the ID bit). */
  id: number;
  protectionAbsent: boolean;
  /** profile_ObjectType: audioObjectType - 1 (1 = AAC-LC). */
  profile: number;
  samplingFrequencyIndex: number;
  sampleRate: number;
  channelConfiguration: number;
  /** aac_frame_length: header, CRC and raw data. */
  frameLength: number;
  /** 7, or 9 when a CRC follows the header. */
  headerLength: number;
  /** The 16-bit CRC when protection_absent is 0, else -1. */
  crc: number;
  bufferFullness: number;
  /** number_of_raw_data_blocks_in_frame + 1. */
  rawDataBlocks: number;
  /** View of the frame after its header (and CRC). */
  payload: Uint8Array;
  /** Bytes skipped before this frame (nextAdtsFrame) while resynchronising. */
  skipped: number;
}

export const newAdtsFrame = (): AdtsFrame => ({
  start: 0, end: 0, id: 0, protectionAbsent: true, profile: 0, samplingFrequencyIndex: 0,
  sampleRate: 0, channelConfiguration: 0, frameLength: 0, headerLength: 7, crc: -1,
  bufferFullness: 0, rawDataBlocks: 1, payload: new Uint8Array(0), skipped: 0,
});

/**
 * ISO/IEC 13818-7 §6.2 / 14496-3 §1.A.2.2 adts_fixed_header + adts_variable_header at
 * `at`. Fills `out` (payload is not set) and returns true when the header is well-formed:
 * sync, layer 0, a defined sampling frequency, and a frame length that covers the header.
 * The frame may extend past the buffer; the caller checks `out.end`.
 */
export function readAdtsHeader(b: Uint8Array, at: number, out: AdtsFrame): boolean {
  if (at < 0 || b.length - at < ADTS_HEADER_BYTES) return false;
  const b1 = b[at + 1]!;
  if (b[at] !== 0xff || (b1 & 0xf0) !== 0xf0 || (b1 & 0x06) !== 0) return false; // syncword, layer
  const b2 = b[at + 2]!;
  const b3 = b[at + 3]!;
  const sfi = (b2 >> 2) & 0x0f;
  if (sfi >= SAMPLING_FREQUENCIES.length) return false;
  const protectionAbsent = (b1 & 1) === 1;
  const headerLength = protectionAbsent ? 7 : 9;
  const frameLength = ((b3 & 0x03) << 11) | (b[at + 4]! << 3) | (b[at + 5]! >> 5);
  if (frameLength < headerLength) return false;
  out.start = at;
  out.end = at + frameLength;
  out.id = (b1 >> 3) & 1;
  out.protectionAbsent = protectionAbsent;
  out.profile = b2 >> 6;
  out.samplingFrequencyIndex = sfi;
  out.sampleRate = SAMPLING_FREQUENCIES[sfi]!;
  out.channelConfiguration = ((b2 & 1) << 2) | (b3 >> 6);
  out.frameLength = frameLength;
  out.headerLength = headerLength;
  out.bufferFullness = ((b[at + 5]! & 0x1f) << 6) | (b[at + 6]! >> 2);
  out.rawDataBlocks = (b[at + 6]! & 3) + 1;
  out.crc = !protectionAbsent && b.length - at >= 9 ? (b[at + 7]! << 8) | b[at + 8]! : -1;
  return true;
}

/** True when `p` is the end of the buffer or looks like the start of another ADTS header. */
function syncFollows(b: Uint8Array, p: number): boolean {
  if (p >= b.length) return true;
  if (b[p] !== 0xff) return false;
  return p + 1 >= b.length || (b[p + 1]! & 0xf6) === 0xf0;
}

/**
 * Finds the next complete ADTS frame at or after `pos`. A candidate is consistent when
 * its header is well-formed and the frame ends at the buffer end or at another syncword.
 * A well-formed frame right at `pos` (in sync) that is followed by garbage is still taken
 * unless a consistent frame starts inside it (then it was garbage itself). Stray 0xFFF
 * patterns in garbage are skipped. Returns true with `out` filled (`out.skipped` =
 * garbage bytes before it). Returns false when no complete frame remains; `out.skipped`
 * then counts the bytes from `pos` that can be discarded (a partial frame at the end is
 * kept for when more data arrives). With `final` (the whole stream is in `b`) a frame
 * that overruns the end is treated as garbage instead.
 */
export function nextAdtsFrame(b: Uint8Array, pos: number, out: AdtsFrame, final = false): boolean {
  let pending = -1; // first candidate that overran the buffer end
  let fallbackEnd = -1; // end of the in-sync frame that garbage follows
  let p = pos;
  for (; p + 1 < b.length; p++) {
    if (fallbackEnd >= 0 && p >= fallbackEnd) break;
    if (b[p] !== 0xff || (b[p + 1]! & 0xf0) !== 0xf0) continue;
    if (!readAdtsHeader(b, p, out)) {
      if (b.length - p < ADTS_HEADER_BYTES && !final && pending < 0 && fallbackEnd < 0) pending = p; // cut header
      continue;
    }
    if (out.end > b.length) {
      if (final || fallbackEnd >= 0) continue;
      if (pending < 0) pending = p;
      break; // incomplete: wait for more bytes
    }
    if (!syncFollows(b, out.end)) {
      if (p === pos) fallbackEnd = out.end;
      continue;
    }
    return accept(b, p, pos, out);
  }
  if (fallbackEnd >= 0) {
    readAdtsHeader(b, pos, out);
    return accept(b, pos, pos, out);
  }
  if (pending >= 0) {
    out.skipped = pending - pos;
    return false;
  }
  // Keep a trailing 0xFF unless final: it may be the first half of a syncword.
  const keep = !final && b.length > pos && b[b.length - 1] === 0xff ? 1 : 0;
  out.skipped = Math.max(0, b.length - pos - keep);
  return false;
}

function accept(b: Uint8Array, p: number, pos: number, out: AdtsFrame): true {
  out.skipped = p - pos;
  out.payload = b.subarray(p + out.headerLength, out.end);
  return true;
}

export interface AudioSpecificConfig {
  /** As signalled first: 5 (SBR) or 29 (PS) for explicit HE-AAC, else the core type. */
  audioObjectType: number;
  /** The core coder's object type (2 = AAC-LC), after any SBR/PS signalling. */
  coreObjectType: number;
  /** 15 when the rate is given explicitly. */
  samplingFrequencyIndex: number;
  /** Core sampling rate in Hz. */
  sampleRate: number;
  channelConfiguration: number;
  /** Output rate of SBR when signalled explicitly, else 0. */
  extensionSampleRate: number;
  /** GASpecificConfig frameLengthFlag: frames of 960 samples instead of 1024. */
  frameLengthFlag: boolean;
}

// §1.6.2.1 GetAudioObjectType()
function readAot(r: BitReader): number {
  const aot = r.u(5);
  return aot === 31 ? 32 + r.u(6) : aot;
}

function readRate(r: BitReader): [number, number] {
  const sfi = r.u(4);
  if (sfi === 15) return [15, r.u(24)];
  const rate = SAMPLING_FREQUENCIES[sfi];
  if (rate === undefined) throw new ParseError(`reserved samplingFrequencyIndex ${sfi}`, r.pos >> 3);
  return [sfi, rate];
}

/** Object types whose config starts with GASpecificConfig (§1.6.2.1 Table 1.15). */
const GA_TYPES = new Set([1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23]);

/** ISO/IEC 14496-3 §1.6.2.1 AudioSpecificConfig(), up to the GASpecificConfig frameLengthFlag. Throws ParseError. */
export function parseAudioSpecificConfig(b: Uint8Array): AudioSpecificConfig {
  const r = new BitReader(b);
  const audioObjectType = readAot(r);
  if (audioObjectType === 0) throw new ParseError('audioObjectType 0 (null)', 0);
  const [samplingFrequencyIndex, sampleRate] = readRate(r);
  if (sampleRate === 0) throw new ParseError('samplingFrequency 0', 1);
  const channelConfiguration = r.u(4);
  let coreObjectType = audioObjectType;
  let extensionSampleRate = 0;
  if (audioObjectType === 5 || audioObjectType === 29) {
    extensionSampleRate = readRate(r)[1];
    coreObjectType = readAot(r);
    if (coreObjectType === 22) r.skip(4); // extensionChannelConfiguration
  }
  const frameLengthFlag = GA_TYPES.has(coreObjectType) && r.bitsLeft > 0 ? r.flag() : false;
  return {
    audioObjectType, coreObjectType, samplingFrequencyIndex, sampleRate, channelConfiguration,
    extensionSampleRate, frameLengthFlag,
  };
}

/**
 * Builds an AudioSpecificConfig: 2 bytes for AAC-LC at a standard rate; the escape for
 * object types >= 31 and the explicit 24-bit rate when no index matches. GASpecificConfig
 * flags are 0 (1024-sample frames, no core coder, no extension).
 */
export function audioSpecificConfig(audioObjectType: number, sampleRate: number, channelConfiguration: number): Uint8Array {
  if (audioObjectType < 1 || audioObjectType > 95 || channelConfiguration < 0 || channelConfiguration > 15) {
    throw new RangeError(`cannot encode audioObjectType ${audioObjectType} / channelConfiguration ${channelConfiguration}`);
  }
  const bits: [number, number][] = [];
  if (audioObjectType >= 31) bits.push([31, 5], [audioObjectType - 32, 6]);
  else bits.push([audioObjectType, 5]);
  const sfi = SAMPLING_FREQUENCIES.indexOf(sampleRate);
  if (sfi >= 0) bits.push([sfi, 4]);
  else bits.push([15, 4], [sampleRate & 0xffffff, 24]);
  bits.push([channelConfiguration, 4]);
  if (GA_TYPES.has(audioObjectType)) bits.push([0, 3]); // frameLengthFlag, dependsOnCoreCoder, extensionFlag
  let total = 0;
  for (const [, n] of bits) total += n;
  const out = new Uint8Array((total + 7) >> 3);
  let pos = 0;
  for (const [v, n] of bits) {
    for (let i = n - 1; i >= 0; i--, pos++) if ((v >> i) & 1) out[pos >> 3]! |= 0x80 >> (pos & 7);
  }
  return out;
}

/** The AudioSpecificConfig an ADTS stream implies (audioObjectType = profile + 1). */
export const adtsToAudioSpecificConfig = (h: AdtsFrame): Uint8Array =>
  audioSpecificConfig(h.profile + 1, h.sampleRate, h.channelConfiguration);

/** Channels for channelConfiguration 1..7 (§1.6.3.5 Table 1.19); 0 means "in a PCE": assume stereo. */
const channelsOf = (cfg: number): number => (cfg === 7 ? 8 : cfg >= 1 && cfg <= 6 ? cfg : 2);

/** The AAC track description from an AudioSpecificConfig (kept as the track's config). */
export function audioTrackInfoAac(asc: Uint8Array): AudioTrackInfo {
  const c = parseAudioSpecificConfig(asc);
  return {
    kind: 'audio',
    codec: 'aac',
    timescale: c.sampleRate,
    sampleRate: c.sampleRate,
    channels: channelsOf(c.channelConfiguration),
    config: asc,
    codecString: `mp4a.40.${c.audioObjectType}`,
  };
}
