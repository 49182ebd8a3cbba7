// One stream's pipeline inside a media worker: input records -> access units (with
// parameter-set capture) -> segmenter. One bad stream resets only its own pipeline.
import { MAX_NALUS_PER_AU, splitAnnexB } from '../media/annexb.ts';
import { videoTrackInfoH264 } from '../media/h264-config.ts';
import { videoTrackInfoH265 } from '../media/h265-config.ts';
import type { AccessUnit, VideoCodec, VideoTrackInfo } from '../media/types.ts';
import type { AddStream, KeyframeData, KeyframeEvent, SegmentClosed, SegmentOpened } from './control.ts';
import { PreviewMuxer } from './preview.ts';
import { ANNEXB_CTS_BYTES } from './ring-format.ts';
import type { RingProducer } from './ring.ts';
import { Segmenter } from './segmenter.ts';
import type { SegmentWriter } from './writer.ts';

/** Per-codec NAL classification, picked once per stream (no codec branches per NAL). */
interface NalHandler {
  /** 0 = other, 1 = VPS, 2 = SPS, 3 = PPS, 4 = drop (AUD, filler). */
  classify(n: Uint8Array): number;
  trackInfo(vps: Uint8Array[], sps: Uint8Array[], pps: Uint8Array[]): VideoTrackInfo;
  needsVps: boolean;
}

const PS_OTHER = 0, PS_VPS = 1, PS_SPS = 2, PS_PPS = 3, PS_DROP = 4;

const handlers: Record<VideoCodec, NalHandler> = {
  h264: {
    // ITU-T H.264 Table 7-1: 7 SPS, 8 PPS, 9 AUD, 12 filler.
    classify(n) {
      const t = n[0]! & 0x1f;
      return t === 7 ? PS_SPS : t === 8 ? PS_PPS : t === 9 || t === 12 ? PS_DROP : PS_OTHER;
    },
    trackInfo: (_v, s, p) => videoTrackInfoH264(s, p),
    needsVps: false,
  },
  h265: {
    // ITU-T H.265 Table 7-1: 32 VPS, 33 SPS, 34 PPS, 35 AUD, 38 filler.
    classify(n) {
      const t = (n[0]! >> 1) & 0x3f;
      return t === 32 ? PS_VPS : t === 33 ? PS_SPS : t === 34 ? PS_PPS : t === 35 || t === 38 ? PS_DROP : PS_OTHER;
    },
    trackInfo: (v, s, p) => videoTrackInfoH265(v, s, p),
    needsVps: true,
  },
};

export interface PipelineCounters {
  bytesIn: number;
  frames: number;
  /** Frames skipped: before the first keyframe, after a reset, or malformed. */
  droppedFrames: number;
}

export interface PipelineContext {
  basePath: string;
  segmentDurationMs: number;
  fragmentDurationMs: number;
  writer: SegmentWriter;
  emit(ev: SegmentOpened | SegmentClosed | KeyframeEvent): void;
  problem(message: string): void;
  /** worker -> main ring for preview fragments. */
  out: RingProducer;
}

const START_CODE = new Uint8Array([0, 0, 0, 1]);

export class StreamPipeline {
  readonly counters: PipelineCounters = { bytesIn: 0, frames: 0, droppedFrames: 0 };
  readonly streamId: string;
  #h: NalHandler;
  #seg: Segmenter | null;
  #nalus: Uint8Array[] = [];
  #au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
  #vps: Uint8Array[] = [];
  #sps: Uint8Array[] = [];
  #pps: Uint8Array[] = [];
  #psChanged = false;
  #haveTrack = false;
  #track: VideoTrackInfo | null = null;
  #slot: number;
  #wallBaseMs: number;
  #out: RingProducer;
  #emit: PipelineContext['emit'];
  #preview: PreviewMuxer | null = null;
  /** The latest keyframe as Annex-B with its parameter sets (a reused, growing buffer). */
  #key = new Uint8Array(256 << 10);
  #keyLen = 0;
  #keyWallMs = 0;
  #keyIntervalMs: number;
  #keyEmittedMs = -Infinity;
  #keyDts = -1;
  /** Ticks between the last two keyframes (the GOP length), 0 until known. */
  #keyIntervalTicks = 0;
  // RTP-style 32-bit timestamp unwrap (STYLE 9), seeded by the first record.
  #tsPrev = 0;
  #tsExt = -1;

  constructor(spec: AddStream, ctx: PipelineContext) {
    this.streamId = spec.streamId;
    this.#slot = spec.slot;
    this.#wallBaseMs = spec.wallBaseMs;
    this.#out = ctx.out;
    this.#emit = ctx.emit;
    this.#keyIntervalMs = spec.keyframeIntervalMs;
    this.#h = handlers[spec.input.codec];
    this.#seg = spec.record
      ? new Segmenter({
          streamId: spec.streamId,
          basePath: ctx.basePath,
          segmentDurationMs: ctx.segmentDurationMs,
          fragmentDurationMs: ctx.fragmentDurationMs,
          wallBaseMs: spec.wallBaseMs,
          firstSegmentNumber: spec.firstSegmentNumber,
          writer: ctx.writer,
          syncOnClose: true,
          emit: ctx.emit,
          onError: (err) => ctx.problem(err.message),
        })
      : null;
  }

  /** One KIND_ANNEXB_AU record (cts prefix + Annex-B bytes); valid only during this call. */
  pushAnnexB(record: Uint8Array, keyframe: boolean, ts32: number): void {
    this.counters.bytesIn += record.length;
    if (record.length <= ANNEXB_CTS_BYTES) {
      this.counters.droppedFrames++;
      return;
    }
    const cts = record[0]! | (record[1]! << 8) | (record[2]! << 16) | (record[3]! << 24);
    const bytes = record.subarray(ANNEXB_CTS_BYTES);
    const dts = this.#unwrap(ts32);
    const n = splitAnnexB(bytes, this.#nalus, MAX_NALUS_PER_AU);
    if (n < 0) {
      this.counters.droppedFrames++; // more NAL units than any real picture has
      return;
    }
    const au = this.#au;
    au.nalus.length = 0;
    au.bytes = 0;
    for (let i = 0; i < n; i++) {
      const nal = this.#nalus[i]!;
      if (nal.length === 0) continue;
      const c = this.#h.classify(nal);
      if (c === PS_OTHER) {
        au.nalus.push(nal);
        au.bytes += nal.length;
      } else if (c !== PS_DROP) {
        this.#capture(c, nal);
      }
    }
    if (au.nalus.length === 0) return; // parameter sets only
    if (this.#psChanged && keyframe) this.#updateTrack();
    if (!this.#haveTrack) {
      this.counters.droppedFrames++;
      return;
    }
    au.keyframe = keyframe;
    au.dts = dts;
    au.pts = dts + cts;
    this.counters.frames++;
    if (this.#seg !== null && !this.#seg.push(0, au)) this.counters.droppedFrames++;
    this.#preview?.push(0, au);
    if (keyframe) this.#keepKeyframe(au);
  }

  /** Live preview while someone watches: one fragment per frame into the out ring. */
  setPreview(on: boolean): void {
    if (!on) {
      this.#preview = null;
      return;
    }
    if (this.#preview !== null) return;
    this.#preview = new PreviewMuxer(this.#out, this.#slot);
    if (this.#track === null) return;
    this.#preview.setTracks([this.#track]);
    if (this.#keyLen > 0 && this.#keyIntervalTicks > 0) {
      // The retained keyframe, shown until the next one is due (no gap for MSE).
      const still: AccessUnit = { nalus: [], bytes: 0, keyframe: true, dts: this.#keyDts, pts: this.#keyDts };
      splitAnnexB(this.#key.subarray(0, this.#keyLen), still.nalus);
      still.nalus = still.nalus.filter((n) => this.#h.classify(n) === PS_OTHER);
      for (const n of still.nalus) still.bytes += n.length;
      this.#preview.pushStill(still, this.#keyIntervalTicks);
    }
  }

  get previewDrops(): number {
    return this.#preview?.counters.dropped ?? 0;
  }

  /** A copy of the latest keyframe with its parameter sets, or null before the first. */
  latestKeyframe(): KeyframeData | null {
    const t = this.#track;
    if (t === null || this.#keyLen === 0) return null;
    return { codec: t.codec, width: t.width, height: t.height, wallMs: this.#keyWallMs, data: this.#key.slice(0, this.#keyLen) };
  }

  /** Keeps the picture (one copy per GOP) so a snapshot never waits for the next keyframe. */
  #keepKeyframe(au: AccessUnit): void {
    let need = au.bytes + 4 * au.nalus.length;
    for (const l of [this.#vps, this.#sps, this.#pps]) for (const n of l) need += 4 + n.length;
    if (need > this.#key.length) this.#key = new Uint8Array(need * 2);
    let at = 0;
    const put = (n: Uint8Array) => {
      this.#key.set(START_CODE, at);
      this.#key.set(n, at + 4);
      at += 4 + n.length;
    };
    for (const l of [this.#vps, this.#sps, this.#pps]) for (const n of l) put(n);
    for (const n of au.nalus) put(n);
    this.#keyLen = at;
    if (this.#keyDts >= 0 && au.dts > this.#keyDts) this.#keyIntervalTicks = au.dts - this.#keyDts;
    this.#keyDts = au.dts;
    this.#keyWallMs = this.#wallBaseMs + Math.floor(au.dts / 90);
    if (this.#keyIntervalMs > 0 && this.#keyWallMs - this.#keyEmittedMs >= this.#keyIntervalMs) {
      this.#keyEmittedMs = this.#keyWallMs;
      const k = this.latestKeyframe();
      if (k !== null) this.#emit({ type: 'keyframe', streamId: this.streamId, ...k });
    }
  }

  /** Continues a failed predecessor's counters and timestamp unwrap (it may have wrapped). */
  inherit(old: StreamPipeline): void {
    this.counters.bytesIn = old.counters.bytesIn;
    this.counters.frames = old.counters.frames;
    this.counters.droppedFrames = old.counters.droppedFrames + 1;
    this.#tsPrev = old.#tsPrev;
    this.#tsExt = old.#tsExt;
    if (old.#seg !== null) this.#seg?.continueNumbering(old.#seg.nextSegmentNumber);
  }

  /** Closes the open segment. Idempotent. */
  close(): void {
    this.#seg?.close();
  }

  #unwrap(ts: number): number {
    if (this.#tsExt < 0) {
      this.#tsExt = ts >>> 0;
    } else {
      this.#tsExt += (ts - this.#tsPrev) | 0;
    }
    this.#tsPrev = ts;
    return this.#tsExt;
  }

  /** Parameter sets are small and rare: copy them (they outlive the ring slot). */
  #capture(kind: number, nal: Uint8Array): void {
    const list = kind === PS_VPS ? this.#vps : kind === PS_SPS ? this.#sps : this.#pps;
    if (list.length === 1 && equalBytes(list[0]!, nal)) return;
    list.length = 0;
    list.push(nal.slice());
    this.#psChanged = true;
  }

  #updateTrack(): void {
    this.#psChanged = false;
    if (this.#sps.length === 0 || this.#pps.length === 0 || (this.#h.needsVps && this.#vps.length === 0)) return;
    let info: VideoTrackInfo;
    try {
      info = this.#h.trackInfo(this.#vps, this.#sps, this.#pps);
    } catch (err) {
      this.#haveTrack = false;
      throw new Error(`stream ${this.streamId}: unusable parameter sets: ${(err as Error).message}`, { cause: err });
    }
    this.#seg?.setTracks([info]);
    this.#preview?.setTracks([info]);
    this.#track = info;
    this.#haveTrack = true;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
