// Picture order counts from H.264/H.265 slice headers, and the presentation order of a
// clip stored in decode order (Annex-B files carry no timestamps, so B-frames need it).
import { RbspReader, type BitReader } from './bits.ts';
import { parseSps as parseSps264, type H264Sps } from './h264.ts';
import { parseSps as parseSps265, type H265Sps } from './h265.ts';
import { ParseError, type VideoCodec } from './types.ts';

const rbsp = new RbspReader(256); // slice headers up to the POC fields fit easily

/** What a POC computation needs from the parameter sets, per codec. */
interface H264Params { sps: H264Sps }
interface H265Params { sps: H265Sps; dependentSliceSegments: boolean; outputFlagPresent: boolean; numExtraSliceHeaderBits: number }

/** ITU-T H.265 §7.3.2.3.1: the first PPS fields (those the slice header depends on). */
function parsePps265(nal: Uint8Array): Omit<H265Params, 'sps'> {
  const r = rbsp.load(nal, 2);
  r.ue(); // pps_pic_parameter_set_id
  r.ue(); // pps_seq_parameter_set_id
  return { dependentSliceSegments: r.flag(), outputFlagPresent: r.flag(), numExtraSliceHeaderBits: r.u(3) };
}

/**
 * Computes POCs picture by picture in decode order (§8.2.1 H.264 type 0, §8.3.1 H.265).
 * POC type 2 (H.264) is decode order itself; type 1 is not followed: it reports -1 and the
 * caller treats the stream as having no reordering.
 */
export class PocCounter {
  #codec: VideoCodec;
  #h264: H264Params | null = null;
  #h265: Partial<H265Params> = {};
  #prevMsb = 0;
  #prevLsb = 0;
  #decodeIndex = 0;

  constructor(codec: VideoCodec) {
    this.#codec = codec;
  }

  /** Feed every parameter-set NAL unit as it appears. Throws ParseError for a bad one. */
  parameterSet(nal: Uint8Array): void {
    if (this.#codec === 'h264') {
      if ((nal[0]! & 0x1f) === 7) this.#h264 = { sps: parseSps264(nal) };
    } else {
      const t = (nal[0]! >> 1) & 0x3f;
      if (t === 33) this.#h265.sps = parseSps265(nal);
      else if (t === 34) Object.assign(this.#h265, parsePps265(nal));
    }
  }

  /** POC of the picture whose first slice NAL unit is `slice`; -1 when it cannot be known. */
  picture(slice: Uint8Array): number {
    try {
      return this.#codec === 'h264' ? this.#poc264(slice) : this.#poc265(slice);
    } catch (e) {
      if (e instanceof ParseError) return -1;
      throw e;
    } finally {
      this.#decodeIndex++;
    }
  }

  // H.264 §7.3.3 slice_header() up to pic_order_cnt_lsb, then §8.2.1.1.
  #poc264(nal: Uint8Array): number {
    const p = this.#h264;
    if (p === null) return -1;
    const sps = p.sps;
    if (sps.picOrderCntType === 2) return 2 * this.#decodeIndex;
    if (sps.picOrderCntType !== 0) return -1;
    const nalType = nal[0]! & 0x1f;
    const idr = nalType === 5;
    const ref = (nal[0]! & 0x60) !== 0;
    const r: BitReader = rbsp.load(nal, 1);
    r.ue(); // first_mb_in_slice
    r.ue(); // slice_type
    r.ue(); // pic_parameter_set_id
    if (sps.separateColourPlane) r.skip(2); // colour_plane_id
    r.skip(sps.log2MaxFrameNum); // frame_num
    if (!sps.frameMbsOnly && r.flag()) r.skip(1); // field_pic_flag -> bottom_field_flag
    if (idr) r.ue(); // idr_pic_id
    const lsb = r.u(sps.log2MaxPicOrderCntLsb);
    if (idr) {
      this.#prevMsb = 0;
      this.#prevLsb = 0;
    }
    const msb = nextMsb(this.#prevMsb, this.#prevLsb, lsb, 1 << sps.log2MaxPicOrderCntLsb);
    if (ref) {
      this.#prevMsb = msb;
      this.#prevLsb = lsb;
    }
    return msb + lsb;
  }

  // H.265 §7.3.6.1 slice_segment_header() up to slice_pic_order_cnt_lsb, then §8.3.1.
  #poc265(nal: Uint8Array): number {
    const p = this.#h265;
    if (p.sps === undefined || p.numExtraSliceHeaderBits === undefined) return -1;
    const nalType = (nal[0]! >> 1) & 0x3f;
    const temporalId = (nal[1]! & 7) - 1;
    const r: BitReader = rbsp.load(nal, 2);
    if (!r.flag()) return -1; // not the first slice segment of a picture
    const irap = nalType >= 16 && nalType <= 23;
    if (irap) r.skip(1); // no_output_of_prior_pics_flag
    r.ue(); // slice_pic_parameter_set_id
    r.skip(p.numExtraSliceHeaderBits); // slice_reserved_flag[i]
    r.ue(); // slice_type
    if (p.outputFlagPresent) r.skip(1); // pic_output_flag
    if (p.sps.separateColourPlane) r.skip(2); // colour_plane_id
    const idr = nalType === 19 || nalType === 20;
    const lsb = idr ? 0 : r.u(p.sps.log2MaxPicOrderCntLsb);
    // An IRAP that starts a coded video sequence resets the MSB (NoRaslOutputFlag = 1): in a
    // file played from its start every IDR/BLA does, and so does a CRA (we start at it).
    const msb = irap && nalType !== 21 ? 0 : nextMsb(this.#prevMsb, this.#prevLsb, lsb, 1 << p.sps.log2MaxPicOrderCntLsb);
    // prevTid0Pic: TemporalId 0 and not RASL, RADL or a sub-layer non-reference picture.
    const subLayerNonRef = nalType <= 14 && nalType % 2 === 0;
    if (temporalId === 0 && !(nalType >= 6 && nalType <= 9) && !subLayerNonRef) {
      this.#prevMsb = msb;
      this.#prevLsb = lsb;
    }
    return msb + lsb;
  }
}

/** §8.2.1.1 (8-3) / §8.3.1 (8-1): PicOrderCntMsb from the previous reference picture. */
function nextMsb(prevMsb: number, prevLsb: number, lsb: number, maxLsb: number): number {
  if (lsb < prevLsb && prevLsb - lsb >= maxLsb / 2) return prevMsb + maxLsb;
  if (lsb > prevLsb && lsb - prevLsb > maxLsb / 2) return prevMsb - maxLsb;
  return prevMsb;
}

/**
 * Presentation offsets (in frames, >= 0) for access units in decode order, given each
 * picture's POC and whether it starts a new POC period (IDR/IRAP): within a period the
 * pictures are presented in POC order; every offset is lifted by the stream's reorder
 * depth so that no picture is presented before it is decoded. Unknown POCs (-1) mean
 * "no reordering" for the whole clip.
 */
export function presentationOffsets(pocs: readonly number[], periodStarts: readonly boolean[]): Int32Array {
  const n = pocs.length;
  const out = new Int32Array(n);
  if (pocs.some((p) => p < 0)) return out;
  const rank = new Int32Array(n);
  let start = 0;
  while (start < n) {
    let end = start + 1;
    while (end < n && !periodStarts[end]) end++;
    const order = Array.from({ length: end - start }, (_, i) => start + i).sort((a, b) => pocs[a]! - pocs[b]! || a - b);
    order.forEach((au, i) => (rank[au] = start + i));
    start = end;
  }
  let depth = 0;
  for (let i = 0; i < n; i++) depth = Math.max(depth, i - rank[i]!);
  for (let i = 0; i < n; i++) out[i] = rank[i]! + depth - i;
  return out;
}
