// H.264 RTP depacketizer (RFC 6184, non-interleaved mode): single NAL unit packets,
// STAP-A and FU-A, with parameter sets from sprop-parameter-sets and in-band.
import { RbspReader } from './bits.ts';
import * as h264 from './h264.ts';
import { videoTrackInfoH264 } from './h264-config.ts';
import type { DepacketizerOptions } from './rtp-depacketizer-core.ts';
import { NAL_KEY, NAL_REF, NAL_VCL, RtpVideoDepacketizer, SET_PPS, SET_SPS } from './rtp-video.ts';
import type { VideoTrackInfo } from './types.ts';

/** RFC 6184 §5.2 Table 1 payload types beyond single NAL units. */
export const STAP_A = 24, STAP_B = 25, MTAP16 = 26, MTAP24 = 27, FU_A = 28, FU_B = 29;

/** Parameter sets named in sprop-parameter-sets: a few in practice; more is hostile. */
const MAX_SPROP_SETS = 16;

/** first_mb_in_slice, slice_type, pic_parameter_set_id, colour_plane_id, frame_num fit in 16 bytes. */
const SLICE_PREFIX_BYTES = 16;

/** Decodes a base64 string (RFC 4648 §4); null when it is not valid base64. */
export function decodeBase64(s: string): Uint8Array | null {
  const t = s.trim();
  if (t.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return null;
  let bin: string;
  try {
    bin = atob(t);
  } catch {
    return null; // bad length or padding
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** RFC 6184 §8.1 sprop-parameter-sets: comma-separated base64 NAL units (invalid ones left out). */
export function parseSpropParameterSets(value: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const part of value.split(',')) {
    if (out.length >= MAX_SPROP_SETS) break;
    const nal = decodeBase64(part);
    if (nal && nal.length > 0) out.push(nal);
  }
  return out;
}

export class H264Depacketizer extends RtpVideoDepacketizer {
  private readonly sliceRbsp = new RbspReader(SLICE_PREFIX_BYTES);
  private log2MaxFrameNum = 0;
  private separateColourPlane = false;
  private curFrameNum = -1;
  private prevFrameNum = -1;
  private prevRef = false;

  /** `fmtp`: the payload type's a=fmtp parameters (lowercased keys). */
  constructor(payloadType: number, fmtp: ReadonlyMap<string, string> = new Map(), options: DepacketizerOptions = {}) {
    super(payloadType, options);
    const sprop = fmtp.get('sprop-parameter-sets');
    if (sprop) {
      for (const nal of parseSpropParameterSets(sprop)) {
        const t = h264.nalType(nal);
        if (t === h264.NAL_SPS) this.storeSet(SET_SPS, nal);
        else if (t === h264.NAL_PPS) this.storeSet(SET_PPS, nal);
      }
    }
  }

  protected headerFlags(h0: number): number {
    const t = h0 & 0x1f;
    if (t < h264.NAL_SLICE || t > h264.NAL_IDR) return 0;
    return NAL_VCL | (t === h264.NAL_IDR ? NAL_KEY : 0) | ((h0 & 0x60) !== 0 ? NAL_REF : 0);
  }

  protected startsPicture(nal: Uint8Array): boolean {
    return h264.firstMbInSlice(nal) === 0;
  }

  protected setSlot(nal: Uint8Array): number {
    const t = nal[0]! & 0x1f;
    return t === h264.NAL_SPS ? SET_SPS : t === h264.NAL_PPS ? SET_PPS : -1;
  }

  protected checkSps(nal: Uint8Array): void {
    const sps = h264.parseSps(nal);
    this.log2MaxFrameNum = sps.log2MaxFrameNum;
    this.separateColourPlane = sps.separateColourPlane;
  }

  protected buildInfo(): VideoTrackInfo | null {
    const [sps, pps] = this.sets as [Uint8Array, Uint8Array];
    return sps.length > 0 && pps.length > 0 ? videoTrackInfoH264([sps], [pps]) : null;
  }

  // §7.3.3 slice_header() up to frame_num.
  protected override firstVcl(nal: Uint8Array): void {
    this.curFrameNum = -1;
    if (this.log2MaxFrameNum === 0) return;
    const r = this.sliceRbsp.load(nal, 1);
    try {
      r.ue(); // first_mb_in_slice
      r.ue(); // slice_type
      r.ue(); // pic_parameter_set_id
      if (this.separateColourPlane) r.skip(2); // colour_plane_id
      this.curFrameNum = r.u(this.log2MaxFrameNum);
    } catch {
      this.curFrameNum = -1;
    }
  }

  // §7.4.3 frame_num: a picture after a reference picture has frame_num + 1; after a
  // non-reference picture the same frame_num. Anything else means a reference was lost.
  protected override continuesAfterGap(): boolean {
    if (this.curFrameNum < 0 || this.prevFrameNum < 0) return false;
    const max = 2 ** this.log2MaxFrameNum;
    const expected = this.prevRef ? (this.prevFrameNum + 1) % max : this.prevFrameNum;
    return this.curFrameNum === expected;
  }

  protected override emitted(ref: boolean): void {
    this.prevFrameNum = this.curFrameNum;
    this.prevRef = ref;
  }

  /*
   * RFC 6184 §5.7.1 STAP-A: [STAP-A NAL HDR][NALU 1 size u16][NALU 1]...[NALU n size][NALU n]
   * §5.8 FU-A:  [FU indicator: F|NRI|28][FU header: S|E|R|Type][FU payload]
   */
  protected parse(b: Uint8Array, s: number, e: number, gap: boolean): void {
    const c = this.counters;
    if (e - s < 1) {
      c.malformed++;
      this.curBroken = true;
      return;
    }
    const h = b[s]!;
    const t = h & 0x1f;
    if (t >= 1 && t <= 23) {
      if (t !== h264.NAL_AUD) this.addWholeNal(b, s, e);
      return;
    }
    if (t === STAP_A) {
      let p = s + 1;
      while (p < e) {
        if (e - p < 2) break;
        const n = (b[p]! << 8) | b[p + 1]!;
        p += 2;
        if (n === 0 || n > e - p) break;
        if ((b[p]! & 0x1f) !== h264.NAL_AUD) this.addWholeNal(b, p, p + n);
        p += n;
      }
      if (p !== e) {
        c.malformed++;
        this.curBroken = true;
      }
      return;
    }
    if (t === FU_A) {
      if (e - s < 2) {
        c.malformed++;
        this.curBroken = true;
        return;
      }
      const fh = b[s + 1]!;
      const nalHeader = (h & 0xe0) | (fh & 0x1f);
      this.noteHeader(nalHeader, 0);
      if (fh & 0x80) {
        if (this.inFu) {
          this.arena.abortNal(); // the previous FU lost its end fragment
          this.curBroken = true;
        }
        if (!this.arena.openNal() || !this.arena.appendByte(nalHeader)) {
          this.curBroken = true;
          return;
        }
        this.inFu = true;
      } else if (!this.inFu) {
        if (!gap) c.fuWithoutStart++; // after a gap it is just the loss we already counted
        this.curBroken = true;
        return;
      }
      if (!this.arena.append(b, s + 2, e)) {
        this.arena.abortNal();
        this.inFu = false;
        this.curBroken = true;
        return;
      }
      if (fh & 0x40) {
        // E bit (also with S set in the same packet: tolerated though §5.8 forbids it)
        this.inFu = false;
        if (this.arena.closeNal()) this.afterNal(this.arena.lastNal());
      }
      return;
    }
    if (t === STAP_B || t === MTAP16 || t === MTAP24 || t === FU_B) {
      c.unsupported++; // interleaved mode only; we never offer it
      this.curBroken = true;
      return;
    }
    c.unsupported++; // 0, 30, 31: reserved, "MUST be ignored" (§5.4)
  }
}
