// The hvcC decoder configuration record (build and parse), the RFC 6381 "hvc1" codec
// string, and the VideoTrackInfo of an H.265 track built from its parameter sets.
import { ByteReader } from './bits.ts';
import { type H265ProfileTierLevel, NAL_PPS, NAL_SPS, NAL_VPS, parseSps } from './h265.ts';
import { ParseError, VIDEO_TIMESCALE, type VideoTrackInfo } from './types.ts';

/** numNalus of one array is a u16, but no stream needs more than a handful of sets. */
export const MAX_HVCC_SETS_PER_TYPE = 64;
const MAX_PARAM_SET_BYTES = 0xffff;
/** Fixed part of HEVCDecoderConfigurationRecord before its arrays. */
const HVCC_HEADER_BYTES = 23;

export interface HvcArray {
  arrayCompleteness: boolean;
  nalUnitType: number;
  /** Views into the parsed record. */
  nalus: Uint8Array[];
}

export interface HevcDecoderConfig extends H265ProfileTierLevel {
  minSpatialSegmentationIdc: number;
  parallelismType: number;
  chromaFormat: number;
  bitDepthLumaMinus8: number;
  bitDepthChromaMinus8: number;
  avgFrameRate: number;
  constantFrameRate: number;
  numTemporalLayers: number;
  temporalIdNested: boolean;
  lengthSizeMinusOne: number;
  arrays: HvcArray[];
}

/**
 * ISO/IEC 14496-15 §8.3.3.1 HEVCDecoderConfigurationRecord: general profile fields from
 * the first SPS's profile_tier_level, no spatial segmentation or parallelism claims,
 * unknown frame rate, 4-byte NAL lengths, and complete VPS/SPS/PPS arrays.
 * Throws ParseError when the first SPS cannot be parsed, RangeError for oversize input.
 */
export function hvcC(vps: readonly Uint8Array[], sps: readonly Uint8Array[], pps: readonly Uint8Array[]): Uint8Array {
  const first = sps[0];
  if (!first) throw new RangeError('hvcC needs at least one SPS');
  const s = parseSps(first);
  const lists = [vps, sps, pps];
  let size = HVCC_HEADER_BYTES;
  for (const list of lists) {
    if (list.length > MAX_HVCC_SETS_PER_TYPE) throw new RangeError(`hvcC array of ${list.length} sets exceeds ${MAX_HVCC_SETS_PER_TYPE}`);
    if (list.length > 0) size += 3;
    for (const n of list) {
      if (n.length > MAX_PARAM_SET_BYTES) throw new RangeError(`parameter set of ${n.length} bytes exceeds ${MAX_PARAM_SET_BYTES}`);
      size += 2 + n.length;
    }
  }
  const out = new Uint8Array(size);
  const ptl = s.ptl;
  out[0] = 1; // configurationVersion
  out[1] = (ptl.generalProfileSpace << 6) | (ptl.generalTierFlag << 5) | ptl.generalProfileIdc;
  const compat = ptl.generalProfileCompatibilityFlags;
  out[2] = compat >>> 24;
  out[3] = (compat >>> 16) & 0xff;
  out[4] = (compat >>> 8) & 0xff;
  out[5] = compat & 0xff;
  out.set(ptl.generalConstraintIndicatorFlags, 6);
  out[12] = ptl.generalLevelIdc;
  out[13] = 0xf0; // reserved '1111' + min_spatial_segmentation_idc (12 bits) = 0
  out[14] = 0x00;
  out[15] = 0xfc; // reserved '111111' + parallelismType 0 (unknown)
  out[16] = 0xfc | s.chromaFormatIdc;
  out[17] = 0xf8 | (s.bitDepthLuma - 8);
  out[18] = 0xf8 | (s.bitDepthChroma - 8);
  out[19] = 0; // avgFrameRate (u16) = 0: unspecified
  out[20] = 0;
  // constantFrameRate 0 (2 bits), numTemporalLayers (3), temporalIdNested (1), lengthSizeMinusOne 3 (2)
  out[21] = (s.maxSubLayers << 3) | (s.temporalIdNesting ? 4 : 0) | 3;
  let count = 0;
  for (const list of lists) if (list.length > 0) count++;
  out[22] = count;
  let p = HVCC_HEADER_BYTES;
  const types = [NAL_VPS, NAL_SPS, NAL_PPS];
  for (let k = 0; k < 3; k++) {
    const list = lists[k]!;
    if (list.length === 0) continue;
    out[p] = 0x80 | types[k]!; // array_completeness 1, reserved 0, NAL_unit_type
    out[p + 1] = list.length >> 8;
    out[p + 2] = list.length & 0xff;
    p += 3;
    for (const n of list) {
      out[p] = n.length >> 8;
      out[p + 1] = n.length & 0xff;
      out.set(n, p + 2);
      p += 2 + n.length;
    }
  }
  return out;
}

/** Parses an hvcC record body; parameter sets are views into `b`. Throws ParseError. */
export function parseHvcC(b: Uint8Array): HevcDecoderConfig {
  const r = new ByteReader(b);
  const version = r.u8('configurationVersion');
  if (version !== 1) throw new ParseError(`hvcC configurationVersion ${version}`, 0);
  const b1 = r.u8();
  const generalProfileCompatibilityFlags = r.u32();
  const generalConstraintIndicatorFlags = r.bytes(6, 'general_constraint_indicator_flags');
  const generalLevelIdc = r.u8();
  const minSpatialSegmentationIdc = r.u16() & 0x0fff;
  const parallelismType = r.u8() & 3;
  const chromaFormat = r.u8() & 3;
  const bitDepthLumaMinus8 = r.u8() & 7;
  const bitDepthChromaMinus8 = r.u8() & 7;
  const avgFrameRate = r.u16();
  const b21 = r.u8();
  const numArrays = r.u8();
  const arrays: HvcArray[] = [];
  for (let i = 0; i < numArrays; i++) {
    const h = r.u8('array header');
    const n = r.u16('numNalus');
    const nalus: Uint8Array[] = [];
    for (let k = 0; k < n; k++) nalus.push(r.bytes(r.u16('nalUnitLength'), 'nalUnit'));
    arrays.push({ arrayCompleteness: (h & 0x80) !== 0, nalUnitType: h & 0x3f, nalus });
  }
  return {
    generalProfileSpace: b1 >> 6,
    generalTierFlag: (b1 >> 5) & 1,
    generalProfileIdc: b1 & 0x1f,
    generalProfileCompatibilityFlags,
    generalConstraintIndicatorFlags,
    generalLevelIdc,
    minSpatialSegmentationIdc,
    parallelismType,
    chromaFormat,
    bitDepthLumaMinus8,
    bitDepthChromaMinus8,
    avgFrameRate,
    constantFrameRate: b21 >> 6,
    numTemporalLayers: (b21 >> 3) & 7,
    temporalIdNested: (b21 & 4) !== 0,
    lengthSizeMinusOne: b21 & 3,
    arrays,
  };
}

/**
 * RFC 6381 codec string per ISO/IEC 14496-15 Annex E.3 (as Chromium parses it):
 * "hvc1.[A|B|C]<profile_idc>.<compat flags bit-reversed, hex>.<L|H><level_idc>
 * [.<constraint byte hex>...]" with trailing zero constraint bytes left out.
 */
export function hevcCodecString(ptl: H265ProfileTierLevel): string {
  const space = ['', 'A', 'B', 'C'][ptl.generalProfileSpace] ?? '';
  let reversed = 0;
  let c = ptl.generalProfileCompatibilityFlags;
  for (let i = 0; i < 32; i++) {
    reversed = (reversed << 1) | (c & 1);
    c >>>= 1;
  }
  let s = `hvc1.${space}${ptl.generalProfileIdc}.${(reversed >>> 0).toString(16).toUpperCase()}.${ptl.generalTierFlag ? 'H' : 'L'}${ptl.generalLevelIdc}`;
  const flags = ptl.generalConstraintIndicatorFlags;
  let last = flags.length;
  while (last > 0 && flags[last - 1] === 0) last--;
  for (let i = 0; i < last; i++) s += `.${flags[i]!.toString(16).toUpperCase()}`;
  return s;
}

/** The complete track description from the parameter sets (first SPS decides). */
export function videoTrackInfoH265(
  vps: readonly Uint8Array[],
  sps: readonly Uint8Array[],
  pps: readonly Uint8Array[],
): VideoTrackInfo {
  const first = sps[0];
  if (!first) throw new RangeError('an H.265 track needs an SPS');
  const info = parseSps(first);
  return {
    kind: 'video',
    codec: 'h265',
    timescale: VIDEO_TIMESCALE,
    width: info.width,
    height: info.height,
    fps: info.fps,
    config: hvcC(vps, sps, pps),
    codecString: hevcCodecString(info.ptl),
  };
}
