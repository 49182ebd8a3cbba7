// The avcC decoder configuration record (build and parse), the RFC 6381 "avc1" codec
// string, and the VideoTrackInfo of an H.264 track built from its parameter sets.
import { ByteReader } from './bits.ts';
import { parseSps } from './h264.ts';
import { ParseError, VIDEO_TIMESCALE, type VideoTrackInfo } from './types.ts';

/** numOfSequenceParameterSets is a 5-bit field (§5.3.3.1.2). */
export const MAX_AVCC_SPS = 31;
/** numOfPictureParameterSets is an 8-bit field. */
export const MAX_AVCC_PPS = 255;
/** Each parameter set length is a u16. */
const MAX_PARAM_SET_BYTES = 0xffff;

export interface AvcDecoderConfig {
  profileIdc: number;
  profileCompatibility: number;
  levelIdc: number;
  /** NAL length field size minus one (0, 1 or 3). */
  lengthSizeMinusOne: number;
  /** Views into the parsed record. */
  sps: Uint8Array[];
  pps: Uint8Array[];
  /** Present (>= 0) only when the record carries the high-profile extension. */
  chromaFormat: number;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
  spsExt: Uint8Array[];
}

/**
 * Profiles whose avcC carries the chroma/bit-depth extension: 100, 110, 122, 144 per
 * ISO/IEC 14496-15 §5.3.3.1.2; 244 (High 4:4:4 Predictive, which replaced 144 in H.264)
 * too, as FFmpeg and x264-era muxers write it.
 */
export const hasAvcCExtension = (profileIdc: number): boolean =>
  profileIdc === 100 || profileIdc === 110 || profileIdc === 122 || profileIdc === 144 || profileIdc === 244;

/**
 * ISO/IEC 14496-15 §5.3.3.1 AVCDecoderConfigurationRecord with 4-byte NAL lengths.
 * Profile, compatibility and level come from the first SPS. Throws ParseError when the
 * first SPS cannot be parsed, RangeError when a list or a set is too large for the record.
 */
export function avcC(sps: readonly Uint8Array[], pps: readonly Uint8Array[]): Uint8Array {
  const first = sps[0];
  if (!first) throw new RangeError('avcC needs at least one SPS');
  if (sps.length > MAX_AVCC_SPS || pps.length > MAX_AVCC_PPS) {
    throw new RangeError(`avcC holds at most ${MAX_AVCC_SPS} SPS and ${MAX_AVCC_PPS} PPS, got ${sps.length}/${pps.length}`);
  }
  const info = parseSps(first);
  const ext = hasAvcCExtension(info.profileIdc);
  let size = 7 + (ext ? 4 : 0);
  for (const s of sps) size += 2 + s.length;
  for (const p of pps) size += 2 + p.length;
  const out = new Uint8Array(size);
  out[0] = 1; // configurationVersion
  out[1] = first[1]!; // AVCProfileIndication
  out[2] = first[2]!; // profile_compatibility
  out[3] = first[3]!; // AVCLevelIndication
  out[4] = 0xfc | 3; // reserved '111111' + lengthSizeMinusOne
  out[5] = 0xe0 | sps.length; // reserved '111' + numOfSequenceParameterSets
  let p = writeSets(out, 6, sps);
  out[p++] = pps.length;
  p = writeSets(out, p, pps);
  if (ext) {
    out[p++] = 0xfc | info.chromaFormatIdc;
    out[p++] = 0xf8 | (info.bitDepthLuma - 8);
    out[p++] = 0xf8 | (info.bitDepthChroma - 8);
    out[p++] = 0; // numOfSequenceParameterSetExt
  }
  return out;
}

function writeSets(out: Uint8Array, at: number, sets: readonly Uint8Array[]): number {
  let p = at;
  for (const s of sets) {
    if (s.length > MAX_PARAM_SET_BYTES) throw new RangeError(`parameter set of ${s.length} bytes exceeds ${MAX_PARAM_SET_BYTES}`);
    out[p] = s.length >> 8;
    out[p + 1] = s.length & 0xff;
    out.set(s, p + 2);
    p += 2 + s.length;
  }
  return p;
}

/** Parses an avcC record body; parameter sets are views into `b`. Throws ParseError. */
export function parseAvcC(b: Uint8Array): AvcDecoderConfig {
  const r = new ByteReader(b);
  const version = r.u8('configurationVersion');
  if (version !== 1) throw new ParseError(`avcC configurationVersion ${version}`, 0);
  const profileIdc = r.u8();
  const profileCompatibility = r.u8();
  const levelIdc = r.u8();
  const lengthSizeMinusOne = r.u8() & 3;
  if (lengthSizeMinusOne === 2) throw new ParseError('avcC lengthSizeMinusOne 2 (3-byte lengths)', 4);
  const sps = readSets(r, r.u8() & 0x1f, 'SPS');
  const pps = readSets(r, r.u8(), 'PPS');
  const cfg: AvcDecoderConfig = {
    profileIdc, profileCompatibility, levelIdc, lengthSizeMinusOne, sps, pps,
    chromaFormat: -1, bitDepthLumaMinus8: -1, bitDepthChromaMinus8: -1, spsExt: [],
  };
  // The extension is optional in practice: many writers omit it even for high profiles.
  if (hasAvcCExtension(profileIdc) && r.remaining >= 4) {
    cfg.chromaFormat = r.u8() & 3;
    cfg.bitDepthLumaMinus8 = r.u8() & 7;
    cfg.bitDepthChromaMinus8 = r.u8() & 7;
    cfg.spsExt = readSets(r, r.u8(), 'SPS extension');
  }
  return cfg;
}

function readSets(r: ByteReader, count: number, what: string): Uint8Array[] {
  const sets: Uint8Array[] = [];
  for (let i = 0; i < count; i++) sets.push(r.bytes(r.u16(`${what} length`), what));
  return sets;
}

const hex2 = (v: number): string => (v < 16 ? '0' : '') + v.toString(16);

/** RFC 6381 §3.3 "avc1.PPCCLL" from the SPS bytes after the NAL header. */
export function avcCodecString(sps: Uint8Array): string {
  if (sps.length < 4) throw new ParseError('SPS too short for a codec string', sps.length);
  return `avc1.${hex2(sps[1]!)}${hex2(sps[2]!)}${hex2(sps[3]!)}`;
}

/** The complete track description from the parameter sets (first SPS decides). */
export function videoTrackInfoH264(sps: readonly Uint8Array[], pps: readonly Uint8Array[]): VideoTrackInfo {
  const first = sps[0];
  if (!first) throw new RangeError('an H.264 track needs an SPS');
  const info = parseSps(first);
  return {
    kind: 'video',
    codec: 'h264',
    timescale: VIDEO_TIMESCALE,
    width: info.width,
    height: info.height,
    fps: info.fps,
    config: avcC(sps, pps),
    codecString: avcCodecString(first),
  };
}
