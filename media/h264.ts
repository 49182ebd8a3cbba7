// ITU-T H.264 (AVC) NAL unit types, keyframe tests, the sequence parameter set parser
// and the slice-header prefix needed to find access-unit boundaries.
import { type BitReader, RbspReader } from './bits.ts';
import { ParseError } from './types.ts';

// ITU-T H.264 Table 7-1 nal_unit_type
export const NAL_SLICE = 1;
export const NAL_SLICE_DPA = 2;
export const NAL_SLICE_DPB = 3;
export const NAL_SLICE_DPC = 4;
export const NAL_IDR = 5;
export const NAL_SEI = 6;
export const NAL_SPS = 7;
export const NAL_PPS = 8;
export const NAL_AUD = 9;
export const NAL_END_OF_SEQ = 10;
export const NAL_END_OF_STREAM = 11;
export const NAL_FILLER = 12;
export const NAL_SPS_EXT = 13;
export const NAL_PREFIX = 14;
export const NAL_SUBSET_SPS = 15;
export const NAL_DPS = 16;
export const NAL_SLICE_AUX = 19;
export const NAL_SLICE_EXT = 20;
export const NAL_SLICE_EXT_DEPTH = 21;

/**
 * Largest picture dimension in macroblocks: Table A-1 level 6.2 MaxFS = 139264 MBs and
 * §A.3.1 bounds each side by sqrt(8 * MaxFS) = 1055 MBs (16880 samples).
 */
export const MAX_DIMENSION_MBS = 1055;

export const nalType = (nal: Uint8Array): number => (nal.length > 0 ? nal[0]! & 0x1f : -1);

/** Coded slice NAL units of the primary picture (Table 7-1, types 1..5). */
export const isVcl = (type: number): boolean => type >= NAL_SLICE && type <= NAL_IDR;

/** An access unit is a keyframe when it carries an IDR picture (nal_unit_type 5). */
export function isKeyframe(nalus: readonly Uint8Array[], count = nalus.length): boolean {
  for (let i = 0; i < count; i++) if (nalType(nalus[i]!) === NAL_IDR) return true;
  return false;
}

export interface H264Sps {
  profileIdc: number;
  /** constraint_set0..5 flags and reserved bits: the byte after profile_idc. */
  constraintFlags: number;
  levelIdc: number;
  spsId: number;
  chromaFormatIdc: number;
  separateColourPlane: boolean;
  bitDepthLuma: number;
  bitDepthChroma: number;
  log2MaxFrameNum: number;
  picOrderCntType: number;
  log2MaxPicOrderCntLsb: number;
  maxNumRefFrames: number;
  frameMbsOnly: boolean;
  /** Luma samples after the cropping window is applied. */
  width: number;
  height: number;
  /** 0 when the VUI carries no timing_info. */
  numUnitsInTick: number;
  timeScale: number;
  fixedFrameRate: boolean;
  /** time_scale / (2 * num_units_in_tick) when timing_info is present, else 0. */
  fps: number;
}

/** Profiles whose SPS carries chroma_format_idc and friends (§7.3.2.1.1). */
function hasChromaInfo(profileIdc: number): boolean {
  switch (profileIdc) {
    case 100: case 110: case 122: case 244: case 44: case 83: case 86:
    case 118: case 128: case 138: case 139: case 134: case 135:
      return true;
    default:
      return false;
  }
}

// §7.3.2.1.1.1 scaling_list(): only skipped, we never dequantise.
function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) {
      const delta = r.se();
      if (delta < -128 || delta > 127) throw new ParseError(`delta_scale ${delta} out of range`, r.pos >> 3);
      next = (last + delta + 256) % 256;
    }
    last = next === 0 ? last : next;
  }
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
 * ITU-T H.264 §7.3.2.1.1 seq_parameter_set_data(), with the VUI (Annex E.1.1) read up to
 * timing_info. `nal` is the whole NAL unit including its 1-byte header; it is not modified.
 * Throws ParseError for a truncated or out-of-range SPS. A VUI that breaks before the
 * timing fields leaves fps at 0 instead of failing the SPS.
 */
export function parseSps(nal: Uint8Array): H264Sps {
  if (nal.length < 4 || (nal[0]! & 0x1f) !== NAL_SPS) throw new ParseError('not an SPS NAL unit', 0);
  const r = rbsp.load(nal, 1);
  const profileIdc = r.u(8);
  const constraintFlags = r.u(8);
  const levelIdc = r.u(8);
  const spsId = r.ueMax(31, 'seq_parameter_set_id');
  let chromaFormatIdc = 1;
  let separateColourPlane = false;
  let bitDepthLuma = 8;
  let bitDepthChroma = 8;
  if (hasChromaInfo(profileIdc)) {
    chromaFormatIdc = r.ueMax(3, 'chroma_format_idc');
    if (chromaFormatIdc === 3) separateColourPlane = r.flag();
    bitDepthLuma = 8 + r.ueMax(6, 'bit_depth_luma_minus8');
    bitDepthChroma = 8 + r.ueMax(6, 'bit_depth_chroma_minus8');
    r.skip(1); // qpprime_y_zero_transform_bypass_flag
    if (r.flag()) {
      // seq_scaling_matrix_present_flag
      const lists = chromaFormatIdc !== 3 ? 8 : 12;
      for (let i = 0; i < lists; i++) if (r.flag()) skipScalingList(r, i < 6 ? 16 : 64);
    }
  }
  const log2MaxFrameNum = 4 + r.ueMax(12, 'log2_max_frame_num_minus4');
  const picOrderCntType = r.ueMax(2, 'pic_order_cnt_type');
  let log2MaxPicOrderCntLsb = 0;
  if (picOrderCntType === 0) {
    log2MaxPicOrderCntLsb = 4 + r.ueMax(12, 'log2_max_pic_order_cnt_lsb_minus4');
  } else if (picOrderCntType === 1) {
    r.skip(1); // delta_pic_order_always_zero_flag
    r.se(); // offset_for_non_ref_pic
    r.se(); // offset_for_top_to_bottom_field
    const cycle = r.ueMax(255, 'num_ref_frames_in_pic_order_cnt_cycle');
    for (let i = 0; i < cycle; i++) r.se(); // offset_for_ref_frame[i]
  }
  const maxNumRefFrames = r.ueMax(16, 'max_num_ref_frames');
  r.skip(1); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = 1 + r.ueMax(MAX_DIMENSION_MBS - 1, 'pic_width_in_mbs_minus1');
  const heightMapUnits = 1 + r.ueMax(MAX_DIMENSION_MBS - 1, 'pic_height_in_map_units_minus1');
  const frameMbsOnly = r.flag();
  if (!frameMbsOnly) r.skip(1); // mb_adaptive_frame_field_flag
  r.skip(1); // direct_8x8_inference_flag
  let width = widthMbs * 16;
  let height = (frameMbsOnly ? 1 : 2) * heightMapUnits * 16;
  if (r.flag()) {
    // frame_cropping_flag; §7.4.2.1.1 CropUnitX/CropUnitY (7-19..7-22)
    const at = r.pos >> 3;
    const left = r.ue();
    const right = r.ue();
    const top = r.ue();
    const bottom = r.ue();
    const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
    const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
    const subHeightC = chromaArrayType === 1 ? 2 : 1;
    const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
    const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * (frameMbsOnly ? 1 : 2);
    const cropW = cropUnitX * (left + right);
    const cropH = cropUnitY * (top + bottom);
    if (cropW >= width || cropH >= height) throw new ParseError(`cropping ${cropW}x${cropH} exceeds ${width}x${height}`, at);
    width -= cropW;
    height -= cropH;
  }
  const sps: H264Sps = {
    profileIdc, constraintFlags, levelIdc, spsId, chromaFormatIdc, separateColourPlane,
    bitDepthLuma, bitDepthChroma, log2MaxFrameNum, picOrderCntType, log2MaxPicOrderCntLsb,
    maxNumRefFrames, frameMbsOnly, width, height,
    numUnitsInTick: 0, timeScale: 0, fixedFrameRate: false, fps: 0,
  };
  if (r.flag()) {
    try {
      readVuiTiming(r, sps);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e; // a broken VUI only costs the frame rate
    }
  }
  return sps;
}

// Annex E.1.1 vui_parameters() up to and including timing_info.
function readVuiTiming(r: BitReader, sps: H264Sps): void {
  if (r.flag()) {
    // aspect_ratio_info_present_flag
    if (r.u(8) === 255) r.skip(32); // Extended_SAR: sar_width, sar_height
  }
  if (r.flag()) r.skip(1); // overscan_info_present_flag -> overscan_appropriate_flag
  if (r.flag()) {
    // video_signal_type_present_flag: video_format, video_full_range_flag
    r.skip(4);
    if (r.flag()) r.skip(24); // colour_primaries, transfer_characteristics, matrix_coefficients
  }
  if (r.flag()) {
    r.ue(); // chroma_sample_loc_type_top_field
    r.ue(); // chroma_sample_loc_type_bottom_field
  }
  if (!r.flag()) return; // timing_info_present_flag
  const numUnitsInTick = r.u(32);
  const timeScale = r.u(32);
  const fixed = r.flag();
  if (numUnitsInTick === 0 || timeScale === 0) return;
  sps.numUnitsInTick = numUnitsInTick;
  sps.timeScale = timeScale;
  sps.fixedFrameRate = fixed;
  const fps = timeScale / (2 * numUnitsInTick); // E.2.1: one frame is two field ticks
  sps.fps = fps <= MAX_FPS ? fps : 0; // beyond any camera: a misread VUI, not a rate
}

/** A slice header prefix is tiny: first_mb_in_slice is at most 37 bits (Exp-Golomb). */
const SLICE_PREFIX_BYTES = 16;
const sliceRbsp = new RbspReader(SLICE_PREFIX_BYTES);

/**
 * §7.3.3 slice_header(): first_mb_in_slice of a coded slice NAL unit (types 1, 2, 5, and
 * 20/21 after their 3-byte header extension), or -1 when it cannot be read.
 */
export function firstMbInSlice(nal: Uint8Array): number {
  const t = nalType(nal);
  const header = t === NAL_SLICE_EXT || t === NAL_SLICE_EXT_DEPTH ? 4 : 1;
  if (nal.length <= header) return -1;
  const r = sliceRbsp.load(nal, header);
  try {
    return r.ue();
  } catch {
    return -1;
  }
}
