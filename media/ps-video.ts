// The video elementary stream of an MPEG program stream: Annex-B bytes from PES payloads
// (copied once into one buffer) split into access units, each stamped with the PTS/DTS of
// the PES packet in which it commences (ISO/IEC 13818-1 §2.4.3.7).
//
// PES packets need not align with access units: GB28181 devices start one PES (often a
// series of <= 64 KiB PES) per picture, ffmpeg's VOB muxer cuts 2 KiB packs anywhere. So
// units are found by the NAL units themselves (H.264 §7.4.1.2.3, H.265 §7.4.2.4.4), never
// by PES boundaries.
import { MAX_NALUS_PER_AU } from './annexb.ts';
import { MAX_AU_BYTES } from './annexb-au.ts';
import * as h264 from './h264.ts';
import * as h265 from './h265.ts';
import { PocCounter } from './poc.ts';
import { type AccessUnit, ParseError, type VideoCodec } from './types.ts';

/** PTS marks kept while their unit is incomplete: one per PES with a new PTS; a picture
 *  split into 64 KiB PES packets by an 8 MiB cap is 128, and most repeat the same PTS. */
export const MAX_PTS_MARKS = 256;
/** Bytes of a NAL unit enough to classify it: header + first_mb_in_slice ue(v) (<= 35 bits). */
const CLASSIFY_BYTES = 8;
/** A frame duration to extrapolate with until two timestamps are known: 25 fps at 90 kHz. */
const DEFAULT_FRAME_TICKS = 3600;

// What a NAL unit means for unit boundaries.
/** markAt value of a mark that stamped a unit already. */
const USED = -1;
const R_TRAILING = 0, R_VCL = 1, R_NEW = 2, R_FIRST_VCL = 3, R_END = 4;

function roleH264(n: Uint8Array): number {
  const t = h264.nalType(n);
  if (t >= h264.NAL_SLICE && t <= h264.NAL_IDR) {
    if (t === h264.NAL_SLICE_DPB || t === h264.NAL_SLICE_DPC) return R_VCL;
    return h264.firstMbInSlice(n) === 0 ? R_FIRST_VCL : R_VCL;
  }
  if (t === h264.NAL_SPS || t === h264.NAL_PPS || t === h264.NAL_AUD || t === h264.NAL_SEI || (t >= 14 && t <= 18)) return R_NEW;
  if (t === h264.NAL_END_OF_SEQ || t === h264.NAL_END_OF_STREAM) return R_END;
  return R_TRAILING;
}

function roleH265(n: Uint8Array): number {
  const t = h265.nalType(n);
  if (t < 0) return R_TRAILING;
  if (t <= 31) return h265.firstSliceSegmentInPic(n) ? R_FIRST_VCL : R_VCL;
  if ((t >= 32 && t <= 35) || t === h265.NAL_SEI_PREFIX || (t >= 41 && t <= 44) || (t >= 48 && t <= 55)) return R_NEW;
  if (t === h265.NAL_EOS || t === h265.NAL_EOB) return R_END;
  return R_TRAILING;
}

const keyH264 = (n: Uint8Array): boolean => h264.nalType(n) === h264.NAL_IDR;
const keyH265 = (n: Uint8Array): boolean => h265.isIrap(h265.nalType(n));

/**
 * Guesses the codec of an Annex-B stream from its first NAL unit headers (for a PS without
 * a program stream map): H.265 headers have nuh_layer_id 0 and TemporalId+1 >= 1 in byte 2
 * (0x01 for the VPS/SPS/PPS/AUD a stream starts with); H.264 headers have the forbidden bit 0.
 * Returns null until a start code and two header bytes are in `b`.
 */
export function probeVideoCodec(b: Uint8Array, len: number): VideoCodec | null {
  for (let i = 0; i + 4 < len; i++) {
    if (b[i] !== 0 || b[i + 1] !== 0 || b[i + 2] !== 1) continue;
    const h0 = b[i + 3]!, h1 = b[i + 4]!;
    const t5 = (h0 >> 1) & 0x3f;
    if ((h0 & 0x81) === 0 && h1 === 1 && (t5 === 32 || t5 === 33 || t5 === 34 || t5 === 35 || t5 === 39 || t5 === 19 || t5 === 20)) return 'h265';
    const t4 = h0 & 0x1f;
    if ((h0 & 0x80) === 0 && (t4 === 7 || t4 === 9 || t4 === 5 || t4 === 6 || t4 === 1 || t4 === 8)) return 'h264';
  }
  return null;
}

export interface PsVideoSink {
  /** One access unit; `au.nalus` are views valid during the call only. Times: 90 kHz, unwrapped. */
  video(au: AccessUnit): void;
}

export interface PsVideoCounters {
  units: number;
  /** Partial or oversize units dropped (loss, caps) and units skipped until a keyframe. */
  droppedUnits: number;
  /** Units without a PTS of their own (timestamp extrapolated). */
  missingPts: number;
}

export class PsVideoAssembler {
  readonly counters: PsVideoCounters = { units: 0, droppedUnits: 0, missingPts: 0 };
  readonly codec: VideoCodec;
  #sink: PsVideoSink;
  #role: (n: Uint8Array) => number;
  #isKey: (n: Uint8Array) => boolean;
  /** Grows (doubling) to the largest picture seen plus what follows it; ~1.5x a keyframe. */
  #es = new Uint8Array(64 << 10);
  #len = 0;
  /** Next offset to search for a start code. */
  #scan = 0;
  /** Offset of the NAL unit in progress (after its start code), -1 before the first start code. */
  #nalStart = -1;
  /** Offset of that NAL unit's start code (where the next unit would begin). */
  #nalCode = 0;
  #nalClassified = false;
  #nalRole = R_TRAILING;
  // The unit in progress: finished NAL units as [start, end) offsets.
  #starts = new Int32Array(MAX_NALUS_PER_AU);
  #ends = new Int32Array(MAX_NALUS_PER_AU);
  #count = 0;
  #auStart = -1;
  #hasVcl = false;
  #key = false;
  #ended = false;
  #tooBig = false;
  // PTS marks: ES offset where a PES with a PTS began, and its PTS/DTS.
  #markAt = new Float64Array(MAX_PTS_MARKS);
  #markPts = new Float64Array(MAX_PTS_MARKS);
  #markDts = new Float64Array(MAX_PTS_MARKS);
  #marks = 0;
  #lastDts = Number.NaN;
  #lastPts = Number.NaN;
  #frameTicks = DEFAULT_FRAME_TICKS;
  /** The previous unit had its own PTS (frame durations are learnt between such units). */
  #lastStamped = false;
  // Picture order counts, to place pictures without a PTS of their own.
  #poc: PocCounter;
  #isParamSet: (n: Uint8Array) => boolean;
  #refPoc = -1;
  #refPts = 0;
  #pocStep: number;
  #pocReset = false;
  #resetsPoc: (slice: Uint8Array) => boolean;
  /** After a loss: units are dropped until a keyframe (what follows would not decode). */
  #needKey = true;
  #au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };

  constructor(codec: VideoCodec, sink: PsVideoSink) {
    this.codec = codec;
    this.#sink = sink;
    this.#role = codec === 'h264' ? roleH264 : roleH265; // picked once
    this.#isKey = codec === 'h264' ? keyH264 : keyH265;
    this.#isParamSet = codec === 'h264' ? (n) => (n[0]! & 0x1f) === 7 || (n[0]! & 0x1f) === 8 : (n) => ((n[0]! >> 1) & 0x3f) === 33 || ((n[0]! >> 1) & 0x3f) === 34;
    this.#poc = new PocCounter(codec);
    this.#resetsPoc = codec === 'h264' ? keyH264 : (n) => h265.nalType(n) >= h265.NAL_BLA_W_LP && h265.nalType(n) <= h265.NAL_IDR_N_LP;
    this.#pocStep = codec === 'h264' ? 2 : 1;
  }

  /** A PES packet with a PTS starts here (times already unwrapped, 90 kHz). */
  mark(pts: number, dts: number): void {
    const n = this.#marks;
    if (n > 0 && this.#markPts[n - 1] === pts && this.#markDts[n - 1] === dts) return; // a repeated PTS (split picture)
    if (n === MAX_PTS_MARKS) {
      this.#markAt.copyWithin(0, 1);
      this.#markPts.copyWithin(0, 1);
      this.#markDts.copyWithin(0, 1);
      this.#marks--;
    }
    this.#markAt[this.#marks] = this.#len;
    this.#markPts[this.#marks] = pts;
    this.#markDts[this.#marks] = dts;
    this.#marks++;
  }

  /** Appends PES payload bytes (copied; `b` may be released after the call). */
  write(b: Uint8Array): void {
    if (this.#len + b.length > MAX_AU_BYTES + (64 << 10)) {
      // One unit larger than any real picture: drop it and look for the next start code.
      this.#dropUnit();
      this.#tooBig = true;
      this.#discardAll();
    }
    if (this.#len + b.length > this.#es.length) this.#grow(this.#len + b.length);
    this.#es.set(b, this.#len);
    this.#len += b.length;
    this.#process();
  }

  /** The end of the stream: completes the unit in progress. */
  flush(): void {
    if (this.#nalStart >= 0) {
      this.#classify(this.#len);
      this.#finishNal(this.#len);
      this.#nalStart = -1;
    }
    if (this.#hasVcl) this.#complete(this.#len);
    this.#discardAll();
  }

  /** Loss or resynchronisation: drops the partial unit (counted) and waits for a keyframe. */
  reset(): void {
    this.#dropUnit();
    this.#discardAll();
    this.#marks = 0;
    this.#needKey = true;
  }

  #dropUnit(): void {
    if (this.#count > 0 || (this.#nalStart >= 0 && this.#len > this.#nalStart)) this.counters.droppedUnits++;
    this.#clearUnit();
  }

  #clearUnit(): void {
    this.#count = 0;
    this.#auStart = -1;
    this.#hasVcl = false;
    this.#key = false;
    this.#ended = false;
  }

  #discardAll(): void {
    this.#len = 0;
    this.#scan = 0;
    this.#nalStart = -1;
    this.#nalClassified = false;
    this.#clearUnit();
  }

  #grow(need: number): void {
    let size = this.#es.length;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#es.subarray(0, this.#len));
    this.#es = next;
  }

  #process(): void {
    while (this.#scanOnce()) {
      /* the buffer moved after a unit: scan on from the new offsets */
    }
  }

  /** Finds NAL boundaries from #scan on; true when a unit left the buffer (offsets moved). */
  #scanOnce(): boolean {
    const es = this.#es;
    const len = this.#len;
    let i = this.#scan;
    for (; i + 2 < len; i++) {
      if (es[i + 2]! > 1) {
        i += 2; // 00 00 01 cannot start at i, i+1 or i+2 (Boyer-Moore style skip)
        continue;
      }
      if (es[i] !== 0 || es[i + 1] !== 0 || es[i + 2] !== 1) continue;
      if (this.#nalStart >= 0) {
        let end = i;
        while (end > this.#nalStart && es[end - 1] === 0) end--;
        this.#classify(end);
        this.#finishNal(end);
      }
      this.#nalStart = i + 3;
      this.#nalCode = i > 0 && es[i - 1] === 0 && i - 1 >= this.#lastEnd() ? i - 1 : i;
      this.#nalClassified = false;
      i += 2;
      if (this.#compactIfDone()) return true;
    }
    this.#scan = Math.max(0, len - 2);
    if (this.#nalStart >= 0 && !this.#nalClassified && len - this.#nalStart >= CLASSIFY_BYTES) {
      this.#classify(len);
      if (this.#compactIfDone()) return true;
    }
    if (this.#nalStart < 0 && this.#count === 0 && len > 3) this.#shift(len - 3); // joined mid-NAL: keep a possible partial start code
    return false;
  }

  #lastEnd(): number {
    return this.#count > 0 ? this.#ends[this.#count - 1]! : 0;
  }

  /** Decides whether the NAL unit in progress starts a new unit (completing the current one). */
  #classify(end: number): void {
    if (this.#nalClassified || this.#nalStart < 0) return;
    this.#nalClassified = true;
    const nal = this.#es.subarray(this.#nalStart, end);
    const role = nal.length === 0 ? R_TRAILING : this.#role(nal);
    this.#nalRole = role;
    if (this.#hasVcl && (this.#ended || role === R_NEW || role === R_FIRST_VCL)) this.#complete(this.#nalCode);
    if (this.#auStart < 0) this.#auStart = this.#nalCode;
    if (role === R_VCL || role === R_FIRST_VCL) {
      this.#hasVcl = true;
      if (!this.#key && this.#isKey(nal)) this.#key = true;
    } else if (role === R_END) {
      this.#ended = true;
    }
  }

  #finishNal(end: number): void {
    if (end <= this.#nalStart) return;
    if (this.#count === MAX_NALUS_PER_AU) {
      this.#tooBig = true;
      return;
    }
    this.#starts[this.#count] = this.#nalStart;
    this.#ends[this.#count] = end;
    this.#count++;
  }

  /** A unit was emitted: drop its bytes, keep the next one's. True when the buffer moved. */
  #compactIfDone(): boolean {
    if (this.#auStart <= 0) return false;
    this.#shift(this.#auStart);
    return true;
  }

  /** Moves the bytes from `from` on to the buffer start and every offset with them. */
  #shift(from: number): void {
    this.#es.copyWithin(0, from, this.#len);
    this.#len -= from;
    if (this.#nalStart >= 0) this.#nalStart -= from;
    this.#nalCode = Math.max(0, this.#nalCode - from);
    this.#scan = Math.max(0, this.#nalStart >= 0 ? this.#nalStart : this.#scan - from);
    if (this.#auStart >= 0) this.#auStart = Math.max(0, this.#auStart - from);
    for (let k = 0; k < this.#count; k++) {
      this.#starts[k] = this.#starts[k]! - from;
      this.#ends[k] = this.#ends[k]! - from;
    }
    // A mark inside the dropped bytes but unused stamps the first unit after it: clamp to 0.
    let w = 0;
    for (let k = 0; k < this.#marks; k++) {
      const at = this.#markAt[k]!;
      if (at === USED) continue;
      this.#markAt[w] = Math.max(0, at - from);
      this.#markPts[w] = this.#markPts[k]!;
      this.#markDts[w] = this.#markDts[k]!;
      w++;
    }
    this.#marks = w;
  }

  /** Emits the unit of the finished NAL units (those before `boundary`). */
  #complete(boundary: number): void {
    const n = this.#count;
    const start = this.#auStart;
    const key = this.#key;
    const tooBig = this.#tooBig;
    this.#clearUnit();
    this.#tooBig = false;
    this.#auStart = boundary; // the next unit starts at the boundary NAL
    if (n === 0) return;
    const au = this.#au;
    au.nalus.length = n;
    let bytes = 0;
    for (let k = 0; k < n; k++) {
      const v = this.#es.subarray(this.#starts[k]!, this.#ends[k]!);
      au.nalus[k] = v;
      bytes += v.length;
    }
    au.bytes = bytes;
    au.keyframe = key;
    this.#stamp(au, start);
    if (tooBig) {
      this.counters.droppedUnits++;
      this.#needKey = true;
      return;
    }
    if (this.#needKey && !key) {
      this.counters.droppedUnits++;
      return;
    }
    this.#needKey = false;
    this.counters.units++;
    this.#sink.video(au);
  }

  /**
   * The unit's PTS/DTS: those of the latest PES mark at or before its first byte (4 bytes of
   * slack for a start code cut by the PES boundary; marks up to there are used up). A unit
   * without one (ffmpeg stamps only the first picture starting in a PES) gets the next DTS
   * and a PTS from its picture order count relative to the last stamped picture of the same
   * coded video sequence (H.264 §8.2.1, H.265 §8.3.1), so B-frames keep their order.
   */
  #stamp(au: AccessUnit, start: number): void {
    const poc = this.#pictureOrderCount(au);
    let m = -1;
    for (let k = 0; k < this.#marks && this.#markAt[k]! <= start + 3; k++) if (this.#markAt[k] !== USED) m = k;
    let pts: number, dts: number;
    if (m >= 0) {
      pts = this.#markPts[m]!;
      dts = this.#markDts[m]!;
      for (let k = 0; k <= m; k++) this.#markAt[k] = USED; // never stamps a second unit
      if (this.#lastStamped && dts > this.#lastDts && dts - this.#lastDts < 90_000) this.#frameTicks = dts - this.#lastDts;
      if (poc >= 0 && this.#refPoc >= 0 && !this.#pocReset && poc !== this.#refPoc && pts !== this.#refPts) {
        const step = Math.round(((poc - this.#refPoc) * this.#frameTicks) / (pts - this.#refPts));
        if (step === 1 || step === 2) this.#pocStep = step; // POC per frame: 2 for H.264 frames, 1 usually for H.265
      }
      this.#lastStamped = true;
    } else {
      this.counters.missingPts++;
      dts = Number.isNaN(this.#lastDts) ? 0 : this.#lastDts + this.#frameTicks;
      pts = poc >= 0 && this.#refPoc >= 0 && !this.#pocReset
        ? this.#refPts + ((poc - this.#refPoc) * this.#frameTicks) / this.#pocStep
        : Number.isNaN(this.#lastPts) ? dts : dts + (this.#lastPts - this.#lastDts);
      if (pts < dts) pts = dts; // a picture is never shown before it is decoded
      this.#lastStamped = false;
    }
    if (poc >= 0 && (m >= 0 || this.#pocReset)) {
      this.#refPoc = poc;
      this.#refPts = pts;
    } else if (this.#pocReset) this.#refPoc = -1;
    this.#lastDts = dts;
    this.#lastPts = pts;
    au.dts = dts;
    au.pts = pts;
  }

  /** POC of the unit's picture (-1 unknown); parameter sets of the unit are fed first. */
  #pictureOrderCount(au: AccessUnit): number {
    let slice: Uint8Array | null = null;
    for (const n of au.nalus) {
      const r = this.#role(n);
      if (r === R_NEW && this.#isParamSet(n)) {
        try {
          this.#poc.parameterSet(n);
        } catch (e) {
          if (!(e instanceof ParseError)) throw e;
        }
      } else if (slice === null && (r === R_VCL || r === R_FIRST_VCL)) slice = n;
    }
    // IDR (and H.265 BLA) pictures restart the count: earlier references no longer apply.
    this.#pocReset = slice !== null && this.#resetsPoc(slice);
    return slice === null ? -1 : this.#poc.picture(slice);
  }
}
