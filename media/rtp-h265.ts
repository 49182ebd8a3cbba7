// H.265 RTP depacketizer (RFC 7798): single NAL unit packets, aggregation packets (AP)
// and fragmentation units (FU), DONL/DOND skipped when sprop-max-don-diff > 0, and the
// parameter sets from sprop-vps/sps/pps and in-band.
import * as h265 from './h265.ts';
import { videoTrackInfoH265 } from './h265-config.ts';
import { parseSpropParameterSets } from './rtp-h264.ts';
import type { DepacketizerOptions } from './rtp-depacketizer-core.ts';
import { NAL_KEY, NAL_REF, NAL_VCL, RtpVideoDepacketizer, SET_PPS, SET_SPS, SET_VPS } from './rtp-video.ts';
import type { VideoTrackInfo } from './types.ts';

/** RFC 7798 §4.4 payload header types beyond single NAL units. */
export const AP = 48, FU = 49, PACI = 50;

export class H265Depacketizer extends RtpVideoDepacketizer {
  /** §7.2 sprop-max-don-diff > 0: DONL (and DOND in APs) fields are present. */
  private readonly donl: boolean;
  private maxTemporalId = -1;

  /** `fmtp`: the payload type's a=fmtp parameters (lowercased keys). */
  constructor(payloadType: number, fmtp: ReadonlyMap<string, string> = new Map(), options: DepacketizerOptions = {}) {
    super(payloadType, options);
    const diff = Number(fmtp.get('sprop-max-don-diff') ?? '0');
    this.donl = Number.isFinite(diff) && diff > 0;
    const keys = ['sprop-vps', 'sprop-sps', 'sprop-pps'] as const;
    const slots = [SET_VPS, SET_SPS, SET_PPS] as const;
    for (let k = 0; k < 3; k++) {
      const v = fmtp.get(keys[k]!);
      const nal = v ? parseSpropParameterSets(v)[0] : undefined;
      if (nal) this.storeSet(slots[k]!, nal);
    }
  }

  // Table 7-1: VCL types 0..31; IRAP 16..23; even types below 16 are sub-layer
  // non-reference pictures. Those may still be referenced by pictures of a higher
  // sub-layer (§3.132), so they only count as non-reference on the highest sub-layer.
  protected headerFlags(h0: number, h1: number): number {
    const t = (h0 >> 1) & 0x3f;
    if (t > 31) return 0;
    if (t >= h265.NAL_BLA_W_LP && t <= h265.NAL_RSV_IRAP_23) return NAL_VCL | NAL_KEY | NAL_REF;
    const tid = (h1 & 7) - 1;
    const nonRef = t < 16 && (t & 1) === 0 && this.maxTemporalId >= 0 && tid >= this.maxTemporalId;
    return NAL_VCL | (nonRef ? 0 : NAL_REF);
  }

  protected startsPicture(nal: Uint8Array): boolean {
    return h265.firstSliceSegmentInPic(nal);
  }

  protected setSlot(nal: Uint8Array): number {
    const t = h265.nalType(nal);
    return t === h265.NAL_SPS ? SET_SPS : t === h265.NAL_PPS ? SET_PPS : t === h265.NAL_VPS ? SET_VPS : -1;
  }

  protected checkSps(nal: Uint8Array): void {
    this.maxTemporalId = h265.parseSps(nal).maxSubLayers - 1;
  }

  protected buildInfo(): VideoTrackInfo | null {
    const [sps, pps, vps] = this.sets as [Uint8Array, Uint8Array, Uint8Array];
    return sps.length > 0 && pps.length > 0 && vps.length > 0 ? videoTrackInfoH265([vps], [sps], [pps]) : null;
  }

  /*
   * RFC 7798 §1.1.4 payload header: |F|  Type(6)  |  LayerId(6)  | TID(3) |
   * §4.4.1 single NAL unit: [PayloadHdr][DONL (opt)][NAL payload]
   * §4.4.2 AP: [PayloadHdr=48][DONL (opt)][size u16][NALU 1][DOND u8 (opt)][size u16][NALU 2]...
   * §4.4.3 FU: [PayloadHdr=49][FU header: S|E|FuType(6)][DONL (opt, S only)][FU payload]
   */
  protected parse(b: Uint8Array, s: number, e: number, gap: boolean): void {
    const c = this.counters;
    if (e - s < 3) {
      c.malformed++;
      this.curBroken = true;
      return;
    }
    const t = (b[s]! >> 1) & 0x3f;
    if (t < AP) {
      if (!this.donl) {
        if (t !== h265.NAL_AUD) this.addWholeNal(b, s, e);
        return;
      }
      if (e - s < 5) {
        c.malformed++;
        this.curBroken = true;
        return;
      }
      if (t === h265.NAL_AUD) return;
      const a = this.arena;
      if (!a.openNal() || !a.append(b, s, s + 2) || !a.append(b, s + 4, e)) {
        a.abortNal();
        this.curBroken = true;
        return;
      }
      if (a.closeNal()) this.afterNal(a.lastNal());
      return;
    }
    if (t === AP) return this.aggregation(b, s, e);
    if (t === FU) return this.fragment(b, s, e, gap);
    c.unsupported++;
    if (t === PACI) this.curBroken = true; // 51..63: reserved, ignored (§4.4)
  }

  private aggregation(b: Uint8Array, s: number, e: number): void {
    let p = s + 2;
    let first = true;
    while (p < e) {
      if (this.donl) p += first ? 2 : 1; // DONL, then DOND
      first = false;
      if (e - p < 2) break;
      const n = (b[p]! << 8) | b[p + 1]!;
      p += 2;
      if (n < 2 || n > e - p) break;
      if (((b[p]! >> 1) & 0x3f) !== h265.NAL_AUD) this.addWholeNal(b, p, p + n);
      p += n;
    }
    if (p !== e) {
      this.counters.malformed++;
      this.curBroken = true;
    }
  }

  private fragment(b: Uint8Array, s: number, e: number, gap: boolean): void {
    const fh = b[s + 2]!;
    const h0 = (b[s]! & 0x81) | ((fh & 0x3f) << 1);
    const h1 = b[s + 1]!;
    this.noteHeader(h0, h1);
    let p = s + 3;
    const a = this.arena;
    if (fh & 0x80) {
      if (this.donl) p += 2;
      if (p > e) {
        this.counters.malformed++;
        this.curBroken = true;
        return;
      }
      if (this.inFu) {
        a.abortNal(); // the previous FU lost its end fragment
        this.curBroken = true;
      }
      if (!a.openNal() || !a.appendByte(h0) || !a.appendByte(h1)) {
        this.curBroken = true;
        return;
      }
      this.inFu = true;
    } else if (!this.inFu) {
      if (!gap) this.counters.fuWithoutStart++;
      this.curBroken = true;
      return;
    }
    if (!a.append(b, p, e)) {
      a.abortNal();
      this.inFu = false;
      this.curBroken = true;
      return;
    }
    if (fh & 0x40) {
      this.inFu = false;
      if (a.closeNal()) this.afterNal(a.lastNal());
    }
  }
}
