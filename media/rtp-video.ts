// Picture assembly shared by the H.264 and H.265 RTP depacketizers: picture boundaries
// (marker bit or timestamp change), loss handling (drop incomplete pictures, wait for a
// keyframe when a reference may be broken) and the parameter sets behind trackInfo().
import { RtpDepacketizerBase, type DepacketizerOptions } from './rtp-depacketizer-core.ts';
import { ParseError, type VideoTrackInfo } from './types.ts';

/** NAL header classification bits (codec subclasses compute them from the header bytes). */
export const NAL_VCL = 1;
export const NAL_KEY = 2;
/** May be referenced by later pictures (H.264 nal_ref_idc != 0; H.265 not sub-layer non-reference). */
export const NAL_REF = 4;

/** Parameter set slots. */
export const SET_SPS = 0, SET_PPS = 1, SET_VPS = 2;
/** avcC/hvcC store each set with a u16 length; real ones are tens of bytes. */
const MAX_PARAM_SET_BYTES = 0xffff;
const EMPTY = new Uint8Array(0);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export abstract class RtpVideoDepacketizer extends RtpDepacketizerBase {
  private hasCur = false;
  private curTime = 0;
  /** A fragment of the current picture is missing. */
  protected curBroken = false;
  private curFlags = 0;
  /** Packets were lost right before the current picture started. */
  private curGapBefore = false;
  private gapPending = false;
  /** First VCL NAL seen and checked: is it the picture's first slice? */
  private curFirstSeen = false;
  private curFirstIsStart = false;
  /** A fragmentation unit is open in the arena. */
  protected inFu = false;
  private waiting = true;
  /** The sender sets the marker bit on the last packet of a picture (RFC 6184 §5.1). */
  private markers = false;

  protected readonly sets: Uint8Array[] = [EMPTY, EMPTY, EMPTY];
  private version = 0;
  private info: VideoTrackInfo | null = null;
  private infoVersion = -1;
  /** Parameter sets that failed to parse or were too large (kept out of trackInfo). */
  badParameterSets = 0;

  constructor(payloadType: number, options: DepacketizerOptions = {}) {
    super(payloadType, options);
    this.counters.waitingForKeyframe = true;
  }

  /** NAL_VCL | NAL_KEY | NAL_REF of a NAL unit header. */
  protected abstract headerFlags(h0: number, h1: number): number;
  /** True when `nal` (a VCL NAL) begins its picture (first_mb_in_slice == 0 / first_slice_segment_in_pic_flag). */
  protected abstract startsPicture(nal: Uint8Array): boolean;
  /** Parameter set slot of a NAL, or -1. */
  protected abstract setSlot(nal: Uint8Array): number;
  /** Validates an SPS before it is kept (throws ParseError when broken). */
  protected abstract checkSps(nal: Uint8Array): void;
  /** Builds the track description from `sets` (may throw ParseError/RangeError). */
  protected abstract buildInfo(): VideoTrackInfo | null;
  /** Called with the first VCL NAL of each picture (H.264 reads frame_num here). */
  protected firstVcl(_nal: Uint8Array): void {}
  /**
   * After packets were lost between two pictures: true when the codec can tell that no
   * reference picture was among them (H.264 frame_num continuity). False: wait for a keyframe.
   */
  protected continuesAfterGap(): boolean {
    return false;
  }
  /** Called when a picture is emitted, with whether it is a reference picture. */
  protected emitted(_ref: boolean): void {}

  /** Parses one RTP payload of the current picture into the arena. */
  protected abstract parse(b: Uint8Array, start: number, end: number, gap: boolean): void;

  get paramsVersion(): number {
    return this.version;
  }

  trackInfo(): VideoTrackInfo | null {
    if (this.infoVersion === this.version) return this.info;
    this.infoVersion = this.version;
    this.info = null;
    try {
      this.info = this.buildInfo();
    } catch (e) {
      if (!(e instanceof ParseError) && !(e instanceof RangeError)) throw e;
      this.badParameterSets++;
    }
    return this.info;
  }

  /** Remembers a parameter set (out-of-band or in-band); bumps paramsVersion when it changed. */
  protected storeSet(slot: number, nal: Uint8Array): void {
    if (sameBytes(this.sets[slot]!, nal)) return;
    if (nal.length > MAX_PARAM_SET_BYTES || nal.length < 2) {
      this.badParameterSets++;
      return;
    }
    if (slot === SET_SPS) {
      try {
        this.checkSps(nal);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        this.badParameterSets++;
        return;
      }
    }
    this.sets[slot] = nal.slice(); // small and rare: our own copy
    this.version++;
  }

  protected payload(b: Uint8Array, start: number, end: number, time: number, marker: boolean, missing: number): void {
    const gap = missing > 0;
    if (marker) this.markers = true;
    if (this.hasCur && time !== this.curTime) {
      if (gap) {
        // The open picture lost at least its last packet (the one with the marker bit).
        // When exactly one packet is missing and the sender marks picture ends, that
        // was the only loss, and the new picture starts clean.
        this.curBroken = true;
        if (missing === 1 && this.markers) missing = 0;
      }
      this.finishPicture();
    }
    if (gap) {
      if (this.hasCur) this.curBroken = true;
      else if (missing > 0) this.gapPending = true;
      if (this.inFu) {
        this.arena.abortNal();
        this.inFu = false;
      }
    }
    if (!this.hasCur) this.startPicture(time);
    this.parse(b, start, end, gap);
    if (marker) this.finishPicture();
  }

  protected end(): void {
    this.finishPicture();
  }

  /** Adds `b[from, to)` as a whole NAL of the current picture (AUDs are left out). */
  protected addWholeNal(b: Uint8Array, from: number, to: number): void {
    if (to - from < 1) return;
    if (!this.arena.addNal(b, from, to)) {
      this.curBroken = true;
      return;
    }
    this.afterNal(this.arena.lastNal());
  }

  /** Bookkeeping for a NAL just completed in the arena. */
  protected afterNal(nal: Uint8Array): void {
    const f = this.headerFlags(nal[0]!, nal.length > 1 ? nal[1]! : 0);
    this.curFlags |= f;
    if (f & NAL_VCL) {
      if (!this.curFirstSeen) {
        this.curFirstSeen = true;
        this.curFirstIsStart = this.startsPicture(nal);
        if (this.curFirstIsStart) this.firstVcl(nal);
      }
      return;
    }
    const slot = this.setSlot(nal);
    if (slot >= 0) this.storeSet(slot, nal);
  }

  /** Notes a NAL header seen in a fragment (ref/key status even if the NAL never completes). */
  protected noteHeader(h0: number, h1: number): void {
    this.curFlags |= this.headerFlags(h0, h1);
  }

  private startPicture(time: number): void {
    this.hasCur = true;
    this.curTime = time;
    this.curBroken = false;
    this.curFlags = 0;
    this.curGapBefore = this.gapPending;
    this.gapPending = false;
    this.curFirstSeen = false;
    this.curFirstIsStart = false;
  }

  private finishPicture(): void {
    if (!this.hasCur) return;
    this.hasCur = false;
    const c = this.counters;
    if (this.inFu) {
      this.inFu = false;
      this.arena.abortNal();
      this.curBroken = true; // the FU never ended
    }
    const f = this.curFlags;
    const key = (f & NAL_KEY) !== 0;
    if (!this.curBroken && (f & NAL_VCL) === 0) {
      // Parameter sets or SEI sent with their own timestamp: keep them for the next picture.
      this.hasCur = false;
      this.gapPending ||= this.curGapBefore;
      return;
    }
    if (!this.curBroken && (!this.curFirstSeen || !this.curFirstIsStart)) this.curBroken = true; // head lost
    if (!this.curBroken && this.curGapBefore && !key && !this.waiting && !this.continuesAfterGap()) {
      this.waiting = true; // whole pictures were lost; one may have been a reference
    }
    if (this.curBroken) {
      this.arena.dropCurrent();
      c.droppedFrames++;
      // Only a lost reference breaks later pictures; unknown (no VCL header seen) counts as one.
      if ((f & NAL_REF) !== 0 || (f & NAL_VCL) === 0) this.waiting = true;
    } else if (this.waiting && !key) {
      this.arena.dropCurrent();
      c.skippedFrames++;
    } else {
      this.waiting = false;
      if (this.arena.commit(this.curTime, key)) this.emitted((f & NAL_REF) !== 0);
      else c.droppedFrames++;
    }
    c.waitingForKeyframe = this.waiting;
  }
}
