// ITU-T H.265 (HEVC) NAL unit types, IRAP keyframe tests, the sequence parameter set
// parser (profile_tier_level, cropping, bit depths, VUI timing) and the slice-start flag.
import { type BitReader, RbspReader } from './bits.ts';
import { ParseError } from './types.ts';

// ITU-T H.265 Table 7-1 nal_unit_type
export const NAL_TRAIL_N = 0;
export const NAL_RASL_R = 9;
export const NAL_BLA_W_LP = 16;
export const NAL_IDR_W_RADL = 19;
export const NAL_IDR_N_LP = 20;
export const NAL_CRA = 21;
export const NAL_RSV_IRAP_23 = 23;
export const NAL_VPS = 32;
export const NAL_SPS = 33;
export const NAL_PPS = 34;
export const NAL_AUD = 35;
export const NAL_EOS = 36;
export const NAL_EOB = 37;
export const NAL_FD = 38;
export const NAL_SEI_PREFIX = 39;
export const NAL_SEI_SUFFIX = 40;

/** Largest picture side in luma samples: sqrt(8 * MaxLumaPs) at level 6.2 (Table A.8) = 8444. */
export const MAX_DIMENSION = 8448;

/** nal_unit_type from the 2-byte NAL unit header (§7.3.1.2), -1 when too short. */
export const nalType = (nal: Uint8Array): number => (nal.length >= 2 ? (nal[0]! >> 1) & 0x3f : -1);

/** VCL NAL unit types are 0..31 (Table 7-1). */
export const isVcl = (type: number): boolean => type >= 0 && type <= 31;

/** Intra random access point pictures: BLA, IDR, CRA and reserved IRAP types 16..23. */
export const isIrap = (type: number): boolean => type >= NAL_BLA_W_LP && type <= NAL_RSV_IRAP_23;

/** An access unit is a keyframe when it carries an IRAP picture. */
export function isKeyframe(nalus: readonly Uint8Array[], count = nalus.length): boolean {
  for (let i = 0; i < count; i++) if (isIrap(nalType(nalus[i]!))) return true;
  return false;
}

/** §7.3.3 profile_tier_level(1, ...): the general part, as hvcC and RFC 6381 need it. */
export interface H265ProfileTierLevel {
  generalProfileSpace: number;
  generalTierFlag: number;
  generalProfileIdc: number;
  /** general_profile_compatibility_flag[0..31], flag j at bit 31 - j (stream order). */
  generalProfileCompatibilityFlags: number;
  /** The 48 bits from general_progressive_source_flag on, 6 bytes in stream order. */
  generalConstraintIndicatorFlags: Uint8Array;
  generalLevelIdc: number;
}

export interface H265Sps {
  vpsId: number;
  maxSubLayers: number;
  temporalIdNesting: boolean;
  ptl: H265ProfileTierLevel;
  spsId: number;
  chromaFormatIdc: number;
  separateColourPlane: boolean;
  /** Luma samples after the conformance window is applied. */
  width: number;
  height: number;
  codedWidth: number;
  codedHeight: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  /** log2_max_pic_order_cnt_lsb_minus4 + 4: bits of slice_pic_order_cnt_lsb. */
  log2MaxPicOrderCntLsb: number;
  /** 0 when the VUI carries no timing (or could not be read up to it). */
  numUnitsInTick: number;
  timeScale: number;
  /** vui_time_scale / vui_num_units_in_tick, else 0. */
  fps: number;
}

// §7.3.3 profile_tier_level(profilePresentFlag = 1, maxNumSubLayersMinus1)
function readProfileTierLevel(r: BitReader, maxSubLayersMinus1: number): H265ProfileTierLevel {
  const generalProfileSpace = r.u(2);
  const generalTierFlag = r.u(1);
  const generalProfileIdc = r.u(5);
  const generalProfileCompatibilityFlags = r.u(32) >>> 0;
  const flags = new Uint8Array(6);
  for (let i = 0; i < 6; i++) flags[i] = r.u(8);
  const generalLevelIdc = r.u(8);
  const profilePresent: boolean[] = [];
  const levelPresent: boolean[] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    profilePresent.push(r.flag());
    levelPresent.push(r.flag());
  }
  if (maxSubLayersMinus1 > 0) r.skip(2 * (8 - maxSubLayersMinus1)); // reserved_zero_2bits
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (profilePresent[i]) r.skip(88); // sub_layer profile space .. inbld/reserved bit
    if (levelPresent[i]) r.skip(8); // sub_layer_level_idc
  }
  return {
    generalProfileSpace, generalTierFlag, generalProfileIdc, generalProfileCompatibilityFlags,
    generalConstraintIndicatorFlags: flags, generalLevelIdc,
  };
}

// §7.3.4 scaling_list_data(): skipped.
function skipScalingListData(r: BitReader): void {
  for (let sizeId = 0; sizeId < 4; sizeId++) {
    for (let matrixId = 0; matrixId < 6; matrixId += sizeId === 3 ? 3 : 1) {
      if (!r.flag()) {
        r.ueMax(matrixId, 'scaling_list_pred_matrix_id_delta');
      } else {
        const coefNum = Math.min(64, 1 << (4 + (sizeId << 1)));
        if (sizeId > 1) r.se(); // scaling_list_dc_coef_minus8
        for (let i = 0; i < coefNum; i++) r.se(); // scaling_list_delta_coef
      }
    }
  }
}

/** §7.4.8: num_negative_pics and num_positive_pics are each at most 16 (sps_max_dec_pic_buffering). */
const MAX_DELTA_POCS = 32;

// §7.3.7 st_ref_pic_set(stRpsIdx) inside an SPS; returns NumDeltaPocs[stRpsIdx].
function skipStRefPicSet(r: BitReader, idx: number, numDeltaPocs: number[]): number {
  if (idx !== 0 && r.flag()) {
    // inter_ref_pic_set_prediction_flag; delta_idx_minus1 is absent in an SPS, so RefRpsIdx = idx - 1
    r.skip(1); // delta_rps_sign
    r.ue(); // abs_delta_rps_minus1
    const refCount = numDeltaPocs[idx - 1]!;
    let n = 0;
    for (let j = 0; j <= refCount; j++) {
      const used = r.flag(); // used_by_curr_pic_flag
      if (used || r.flag()) n++; // use_delta_flag (inferred 1 when used)
    }
    return n;
  }
  const neg = r.ueMax(16, 'num_negative_pics');
  const pos = r.ueMax(16, 'num_positive_pics');
  for (let i = 0; i < neg + pos; i++) {
    r.ueMax(0x7fff, 'delta_poc_minus1');
    r.skip(1); // used_by_curr_pic_flag
  }
  return Math.min(neg + pos, MAX_DELTA_POCS);
}

/** Frame rates above this are treated as a misread VUI (reported as 0). */
export const MAX_FPS = 1000;

/**
 * Largest SPS we unescape: one with every scaling list, a VUI and HRD parameters stays
 * under 1 KiB; the VUI past 4 KiB would only cost the frame rate.
 */
const MAX_SPS_BYTES = 4096;
const rbsp = new RbspReader(MAX_SPS_BYTES);

/**
 * ITU-T H.265 §7.3.2.2.1 seq_parameter_set_rbsp() up to the VUI, and the VUI (Annex E.2.1)
 * up to vui_timing_info. `nal` is the whole NAL unit including its 2-byte header; it is
 * not modified. Throws ParseError for a truncated or out-of-range SPS; a VUI that cannot
 * be read up to the timing fields leaves fps at 0.
 */
export function parseSps(nal: Uint8Array): H265Sps {
  if (nal.length < 4 || nalType(nal) !== NAL_SPS) throw new ParseError('not an SPS NAL unit', 0);
  const r = rbsp.load(nal, 2);
  const vpsId = r.u(4);
  const maxSubLayersMinus1 = r.u(3);
  if (maxSubLayersMinus1 > 6) throw new ParseError('sps_max_sub_layers_minus1 7', 0);
  const temporalIdNesting = r.flag();
  const ptl = readProfileTierLevel(r, maxSubLayersMinus1);
  const spsId = r.ueMax(15, 'sps_seq_parameter_set_id');
  const chromaFormatIdc = r.ueMax(3, 'chroma_format_idc');
  const separateColourPlane = chromaFormatIdc === 3 ? r.flag() : false;
  const codedWidth = r.ueMax(MAX_DIMENSION, 'pic_width_in_luma_samples');
  const codedHeight = r.ueMax(MAX_DIMENSION, 'pic_height_in_luma_samples');
  if (codedWidth === 0 || codedHeight === 0) throw new ParseError('zero picture size', r.pos >> 3);
  let width = codedWidth;
  let height = codedHeight;
  if (r.flag()) {
    // conformance_window_flag; offsets are in chroma units (§7.4.3.2.1, Table 6-1)
    const at = r.pos >> 3;
    const left = r.ue();
    const right = r.ue();
    const top = r.ue();
    const bottom = r.ue();
    const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
    const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
    const subHeightC = chromaArrayType === 1 ? 2 : 1;
    const cropW = subWidthC * (left + right);
    const cropH = subHeightC * (top + bottom);
    if (cropW >= width || cropH >= height) throw new ParseError(`conformance window ${cropW}x${cropH} exceeds ${width}x${height}`, at);
    width -= cropW;
    height -= cropH;
  }
  const bitDepthLuma = 8 + r.ueMax(8, 'bit_depth_luma_minus8');
  const bitDepthChroma = 8 + r.ueMax(8, 'bit_depth_chroma_minus8');
  const log2MaxPocLsb = 4 + r.ueMax(12, 'log2_max_pic_order_cnt_lsb_minus4');
  const orderingInfo = r.flag();
  for (let i = orderingInfo ? 0 : maxSubLayersMinus1; i <= maxSubLayersMinus1; i++) {
    r.ue(); // sps_max_dec_pic_buffering_minus1
    r.ue(); // sps_max_num_reorder_pics
    r.ue(); // sps_max_latency_increase_plus1
  }
  r.ue(); // log2_min_luma_coding_block_size_minus3
  r.ue(); // log2_diff_max_min_luma_coding_block_size
  r.ue(); // log2_min_luma_transform_block_size_minus2
  r.ue(); // log2_diff_max_min_luma_transform_block_size
  r.ue(); // max_transform_hierarchy_depth_inter
  r.ue(); // max_transform_hierarchy_depth_intra
  if (r.flag() && r.flag()) skipScalingListData(r); // scaling_list_enabled, sps_scaling_list_data_present
  r.skip(2); // amp_enabled_flag, sample_adaptive_offset_enabled_flag
  if (r.flag()) {
    // pcm_enabled_flag
    r.skip(8); // pcm_sample_bit_depth_luma_minus1, pcm_sample_bit_depth_chroma_minus1
    r.ue(); // log2_min_pcm_luma_coding_block_size_minus3
    r.ue(); // log2_diff_max_min_pcm_luma_coding_block_size
    r.skip(1); // pcm_loop_filter_disabled_flag
  }
  const numStRps = r.ueMax(64, 'num_short_term_ref_pic_sets');
  const numDeltaPocs: number[] = [];
  for (let i = 0; i < numStRps; i++) numDeltaPocs.push(skipStRefPicSet(r, i, numDeltaPocs));
  if (r.flag()) {
    // long_term_ref_pics_present_flag
    const numLt = r.ueMax(32, 'num_long_term_ref_pics_sps');
    for (let i = 0; i < numLt; i++) r.skip(log2MaxPocLsb + 1); // lt_ref_pic_poc_lsb_sps, used_by_curr_pic_lt_sps_flag
  }
  r.skip(2); // sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
  const sps: H265Sps = {
    vpsId, maxSubLayers: maxSubLayersMinus1 + 1, temporalIdNesting, ptl, spsId, chromaFormatIdc,
    separateColourPlane, width, height, codedWidth, codedHeight, bitDepthLuma, bitDepthChroma,
    log2MaxPicOrderCntLsb: log2MaxPocLsb, numUnitsInTick: 0, timeScale: 0, fps: 0,
  };
  if (r.flag()) {
    try {
      readVuiTiming(r, sps);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e; // a VUI we cannot follow only costs the frame rate
    }
  }
  return sps;
}

// Annex E.2.1 vui_parameters() up to vui_time_scale.
function readVuiTiming(r: BitReader, sps: H265Sps): void {
  if (r.flag() && r.u(8) === 255) r.skip(32); // aspect_ratio_info_present_flag, aspect_ratio_idc, EXTENDED_SAR
  if (r.flag()) r.skip(1); // overscan_info_present_flag -> overscan_appropriate_flag
  if (r.flag()) {
    // video_signal_type_present_flag: video_format, video_full_range_flag
    r.skip(4);
    if (r.flag()) r.skip(24); // colour_description_present_flag: primaries, transfer, matrix
  }
  if (r.flag()) {
    r.ue(); // chroma_sample_loc_type_top_field
    r.ue(); // chroma_sample_loc_type_bottom_field
  }
  r.skip(3); // neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag
  if (r.flag()) {
    // default_display_window_flag
    for (let i = 0; i < 4; i++) r.ue();
  }
  if (!r.flag()) return; // vui_timing_info_present_flag
  const numUnitsInTick = r.u(32);
  const timeScale = r.u(32);
  if (numUnitsInTick === 0 || timeScale === 0) return;
  sps.numUnitsInTick = numUnitsInTick;
  sps.timeScale = timeScale;
  const fps = timeScale / numUnitsInTick; // E.3.1: a picture lasts one clock tick
  sps.fps = fps <= MAX_FPS ? fps : 0; // beyond any camera: a misread VUI, not a rate
}

/** §7.3.6.1 first_slice_segment_in_pic_flag: the first bit after the 2-byte header. */
export const firstSliceSegmentInPic = (nal: Uint8Array): boolean => nal.length >= 3 && (nal[2]! & 0x80) !== 0;
