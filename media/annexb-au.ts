// Access-unit assembler for H.264/H.265 Annex-B elementary streams: groups NAL units into
// access units, tracks the latest parameter sets, and derives the VideoTrackInfo.
import { findNal, MAX_NALUS_PER_AU, type NalRange } from './annexb.ts';
import * as h264 from './h264.ts';
import { videoTrackInfoH264 } from './h264-config.ts';
import * as h265 from './h265.ts';
import { videoTrackInfoH265 } from './h265-config.ts';
import { type AccessUnit, ParseError, type VideoCodec, type VideoTrackInfo } from './types.ts';

/** 4K at 50 Mbit/s: an IDR is about 1/8 s of bits, 0.8 MB; x10 headroom. */
export const MAX_AU_BYTES = 8 << 20;

/** avcC/hvcC store each parameter set with a u16 length; real ones are tens of bytes. */
const MAX_PARAM_SET_BYTES = 0xffff;

// What a NAL unit means for access-unit grouping (plain numbers: roles are per NAL).
/** Starts a new AU when the current one already has a picture (SEI, prefix NALs...). */
const ROLE_LEADING = 0;
/** Access unit delimiter: always the first NAL of an AU. */
const ROLE_AUD = 1;
/** Coded slice continuing the current picture. */
const ROLE_VCL = 2;
/** First slice of a picture: a new AU when the current one already has a picture. */
const ROLE_FIRST_VCL = 3;
/** End of sequence/stream: the next NAL starts a new AU. */
const ROLE_END = 4;
/** Belongs to the current AU wherever it appears (suffix SEI, filler, ...). */
const ROLE_TRAILING = 5;
/** Parameter sets: leading, and remembered. */
const ROLE_SPS = 10, ROLE_PPS = 11, ROLE_VPS = 12;
/** Slot of each parameter set kind in the `sets`/`pending` arrays. */
const slotOf = (role: number): number => role - ROLE_SPS;

// H.264 §7.4.1.2.3. A first slice is found by first_mb_in_slice == 0 alone, not by the
// full §7.4.1.2.4 comparison (frame_num, pps_id, ...): arbitrary slice order and redundant
// pictures (Baseline options cameras do not use) would split a picture.
function roleH264(nal: Uint8Array): number {
  const t = h264.nalType(nal);
  if (t >= h264.NAL_SLICE && t <= h264.NAL_IDR) {
    // Data partitions B and C (3, 4) follow partition A of the same slice.
    if (t === h264.NAL_SLICE_DPB || t === h264.NAL_SLICE_DPC) return ROLE_VCL;
    return h264.firstMbInSlice(nal) === 0 ? ROLE_FIRST_VCL : ROLE_VCL;
  }
  if (t === h264.NAL_SPS) return ROLE_SPS;
  if (t === h264.NAL_PPS) return ROLE_PPS;
  if (t === h264.NAL_AUD) return ROLE_AUD;
  if (t === h264.NAL_SEI || (t >= 14 && t <= 18)) return ROLE_LEADING;
  if (t === h264.NAL_END_OF_SEQ || t === h264.NAL_END_OF_STREAM) return ROLE_END;
  return ROLE_TRAILING; // filler, SPS extension, auxiliary slices, reserved
}

// H.265 §7.4.2.4.4
function roleH265(nal: Uint8Array): number {
  const t = h265.nalType(nal);
  if (t < 0) return ROLE_TRAILING;
  if (t <= 31) return h265.firstSliceSegmentInPic(nal) ? ROLE_FIRST_VCL : ROLE_VCL;
  if (t === h265.NAL_VPS) return ROLE_VPS;
  if (t === h265.NAL_SPS) return ROLE_SPS;
  if (t === h265.NAL_PPS) return ROLE_PPS;
  if (t === h265.NAL_AUD) return ROLE_AUD;
  if (t === h265.NAL_SEI_PREFIX || (t >= 41 && t <= 44) || (t >= 48 && t <= 55)) return ROLE_LEADING;
  if (t === h265.NAL_EOS || t === h265.NAL_EOB) return ROLE_END;
  return ROLE_TRAILING; // filler, suffix SEI, reserved
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const EMPTY = new Uint8Array(0);

/**
 * Feed NAL units (views without start codes) in stream order with push(); when it returns
 * true, `au` holds the access unit that just completed. NAL views are kept, not copied:
 * the caller keeps their bytes alive until the AU holding them has been consumed. `au`
 * (its nalus array included) is reused and valid until the next push() or flush() that
 * returns true; dts/pts are left 0 for the caller to set.
 */
export class AnnexBAuAssembler {
  readonly au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
  private version = 0;
  /** NAL units dropped because their AU exceeded MAX_NALUS_PER_AU or MAX_AU_BYTES. */
  droppedNalus = 0;
  /** Parameter sets that failed to parse (kept out of the track info). */
  badParameterSets = 0;

  private cur: Uint8Array[] = [];
  private curBytes = 0;
  private curHasVcl = false;
  private curKeyframe = false;
  private ended = false;
  /** Latest SPS, PPS, VPS in effect (copies owned by the assembler). */
  private readonly sets: Uint8Array[] = [EMPTY, EMPTY, EMPTY];
  /**
   * Sets seen since the last push() began. They take effect at the start of the next
   * push(), so that right after a push() that completed an AU, videoTrackInfo() still
   * describes that AU even when the NAL that completed it was a new SPS.
   */
  private readonly pending: (Uint8Array | null)[] = [null, null, null];
  private hasPending = false;
  private justCompleted = false;
  private info: VideoTrackInfo | null = null;
  private infoVersion = -1;
  private readonly role: (nal: Uint8Array) => number;
  private readonly isKeyNal: (nal: Uint8Array) => boolean;

  constructor(readonly codec: VideoCodec) {
    // Per-codec code is picked once (STYLE: no codec branches per NAL).
    this.role = codec === 'h264' ? roleH264 : roleH265;
    this.isKeyNal = codec === 'h264'
      ? (nal) => h264.nalType(nal) === h264.NAL_IDR
      : (nal) => h265.isIrap(h265.nalType(nal));
  }

  /** Adds one NAL unit; returns true when it completed the previous access unit into `au`. */
  push(nal: Uint8Array): boolean {
    if (this.hasPending) this.applyPending();
    this.justCompleted = false;
    if (nal.length === 0) return false;
    let role = this.role(nal);
    let completed = false;
    if (this.curHasVcl && (this.ended || role === ROLE_AUD || role >= ROLE_SPS || role === ROLE_LEADING || role === ROLE_FIRST_VCL)) {
      completed = this.complete();
    }
    if (role >= ROLE_SPS) {
      // After completing: the AU just emitted still belongs to the previous sets.
      this.remember(role, nal);
      role = ROLE_LEADING;
    }
    // The AUD carries only primary_pic_type / pic_type: dropped, since the muxer writes
    // length-prefixed samples where it has no use, and its boundary is already applied.
    if (role === ROLE_AUD) return completed;
    if (this.cur.length >= MAX_NALUS_PER_AU || this.curBytes + nal.length > MAX_AU_BYTES) {
      this.droppedNalus++;
      return completed;
    }
    this.cur.push(nal);
    this.curBytes += nal.length;
    if (role === ROLE_VCL || role === ROLE_FIRST_VCL) {
      this.curHasVcl = true;
      if (!this.curKeyframe && this.isKeyNal(nal)) this.curKeyframe = true;
    } else if (role === ROLE_END) {
      this.ended = true;
    }
    return completed;
  }

  /** Completes the pending access unit at the end of the stream; true when `au` was filled. */
  flush(): boolean {
    if (this.hasPending) this.applyPending(); // sets after the last picture belong to no AU
    if (!this.curHasVcl) {
      this.reset();
      return false;
    }
    return this.complete();
  }

  /** Drops the pending access unit (e.g. after a loss); parameter sets are kept. */
  reset(): void {
    this.cur.length = 0;
    this.curBytes = 0;
    this.curHasVcl = false;
    this.curKeyframe = false;
    this.ended = false;
  }

  private complete(): true {
    const au = this.au;
    const done = this.cur;
    this.cur = au.nalus; // swap the two reused arrays
    au.nalus = done;
    au.bytes = this.curBytes;
    au.keyframe = this.curKeyframe;
    au.dts = 0;
    au.pts = 0;
    this.reset();
    this.justCompleted = true;
    return true;
  }

  private remember(role: number, nal: Uint8Array): void {
    const slot = slotOf(role);
    if (sameBytes(this.pending[slot] ?? this.sets[slot]!, nal)) return;
    if (nal.length > MAX_PARAM_SET_BYTES) {
      this.badParameterSets++;
      return;
    }
    if (role === ROLE_SPS) {
      try {
        if (this.codec === 'h264') h264.parseSps(nal);
        else h265.parseSps(nal);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        this.badParameterSets++;
        return;
      }
    }
    this.pending[slot] = nal.slice(); // parameter sets are small and rare: keep our own copy
    this.hasPending = true;
  }

  private applyPending(): void {
    for (let i = 0; i < 3; i++) {
      const p = this.pending[i];
      if (!p) continue;
      if (!sameBytes(p, this.sets[i]!)) {
        this.sets[i] = p;
        this.version++;
      }
      this.pending[i] = null;
    }
    this.hasPending = false;
  }

  /** Applies sets seen in the last push() unless that push() completed an AU (see `pending`). */
  private settle(): void {
    if (this.hasPending && !this.justCompleted) this.applyPending();
  }

  /** Increments whenever a parameter set in effect changes (see `pending` for when). */
  get paramsVersion(): number {
    this.settle();
    return this.version;
  }

  /** The latest parameter sets in effect (copies owned by the assembler; empty when unknown). */
  parameterSets(): { vps: Uint8Array; sps: Uint8Array; pps: Uint8Array } {
    this.settle();
    return { vps: this.sets[2]!, sps: this.sets[0]!, pps: this.sets[1]! };
  }

  /**
   * The track description once SPS and PPS (and VPS for H.265) are known, else null.
   * Rebuilt only after a parameter set changed.
   */
  videoTrackInfo(): VideoTrackInfo | null {
    this.settle();
    if (this.infoVersion === this.version) return this.info;
    this.infoVersion = this.version;
    this.info = null;
    const [sps, pps, vps] = this.sets as [Uint8Array, Uint8Array, Uint8Array];
    if (sps.length === 0 || pps.length === 0) return null;
    if (this.codec === 'h264') {
      this.info = videoTrackInfoH264([sps], [pps]);
    } else if (vps.length > 0) {
      this.info = videoTrackInfoH265([vps], [sps], [pps]);
    }
    return this.info;
  }
}

/** One access unit of an Annex-B file: its bytes with start codes, and whether it is a keyframe. */
export interface AuRange {
  offset: number;
  length: number;
  keyframe: boolean;
}

/**
 * Splits a whole Annex-B file into access-unit byte ranges (each begins at the 3-byte
 * start code of its first NAL, AUD included, and ends after its last NAL). For start-up
 * of a looping file source: allocates the result.
 */
export function splitAccessUnits(stream: Uint8Array, codec: VideoCodec): AuRange[] {
  const asm = new AnnexBAuAssembler(codec);
  const ranges: AuRange[] = [];
  const nal: NalRange = { start: 0, end: 0 };
  let auStart = -1;
  let lastEnd = 0;
  let pos = 0;
  while ((pos = findNal(stream, pos, nal)) >= 0) {
    if (asm.push(stream.subarray(nal.start, nal.end))) {
      ranges.push({ offset: auStart, length: lastEnd - auStart, keyframe: asm.au.keyframe });
      auStart = -1;
    }
    if (auStart < 0) auStart = nal.start - 3;
    lastEnd = nal.end;
  }
  if (asm.flush()) ranges.push({ offset: auStart, length: lastEnd - auStart, keyframe: asm.au.keyframe });
  return ranges;
}
