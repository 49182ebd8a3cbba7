// One stream's pipeline inside a media worker: ring records -> the stream's input adapter
// (Annex-B file, RTP, FLV; picked once) -> access units -> recorder, live preview and the
// retained keyframe. One bad stream resets only its own pipeline.
import { toAnnexB } from '../media/annexb.ts';
import { parseAvcC } from '../media/h264-config.ts';
import { parseHvcC } from '../media/h265-config.ts';
import type { AccessUnit, TrackInfo, VideoTrackInfo } from '../media/types.ts';
import type { AddStream, InputFormat, KeyframeData, KeyframeEvent, KeyframeRef, SegmentClosed, SegmentOpened } from './control.ts';
import type { InputSink, StreamInput } from './input.ts';
import { AnnexbInput } from './input-annexb.ts';
import { FlvInput } from './input-flv.ts';
import { PsRtpInput } from './input-ps.ts';
import { RtpInput } from './input-rtp.ts';
import { PreviewMuxer } from './preview.ts';
import type { RingProducer } from './ring.ts';
import { Segmenter } from './segmenter.ts';
import type { SegmentWriter } from './writer.ts';
import { splitAnnexB } from '../media/annexb.ts';

export interface PipelineCounters {
  bytesIn: number;
  /** Video pictures (or audio frames for an audio-only stream) that reached the pipeline. */
  frames: number;
  /** Frames skipped: before the first keyframe, incomplete after loss, after a reset. */
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

const EMPTY = new Uint8Array(0);

function createInput(f: InputFormat, sink: InputSink): StreamInput {
  switch (f.kind) {
    case 'annexb':
      return new AnnexbInput(f.codec, sink);
    case 'rtp':
      return new RtpInput(f, sink);
    case 'flv':
      return new FlvInput(sink);
    case 'ps-rtp':
      return new PsRtpInput(f, sink);
  }
}

/** The parameter sets of a video track, from its avcC/hvcC (for decodable keyframes). */
function parameterSets(t: VideoTrackInfo): Uint8Array[] {
  if (t.codec === 'h264') {
    const c = parseAvcC(t.config);
    return [...c.sps, ...c.pps];
  }
  const c = parseHvcC(t.config);
  return [32, 33, 34].flatMap((type) => c.arrays.filter((a) => a.nalUnitType === type).flatMap((a) => a.nalus));
}

export class StreamPipeline implements InputSink {
  readonly counters: PipelineCounters = { bytesIn: 0, frames: 0, droppedFrames: 0 };
  readonly streamId: string;
  #input: StreamInput;
  #seg: Segmenter | null;
  #tracks: TrackInfo[] = [];
  #video: VideoTrackInfo | null = null;
  #ps: Uint8Array[] = [];
  #slot: number;
  #wallBaseMs: number;
  #out: RingProducer;
  #emit: PipelineContext['emit'];
  #preview: PreviewMuxer | null = null;
  /**
   * Where the last two keyframes lie in the segment files (newest first) while they are being
   * recorded: snapshots and the preview still read them from there, so a recorded stream keeps
   * no copy of its picture (~120 KB a 1080p camera).
   */
  #keyAt: { path: string; offset: number; size: number; wallMs: number }[] = [];
  /** The latest keyframe as Annex-B with its parameter sets when it was not recorded (a reused buffer). */
  #key = EMPTY;
  #keyLen = 0;
  #keyWallMs = 0;
  #keyIntervalMs: number;
  #keyEmittedMs = -Infinity;
  #keyDts = -1;
  /** Ticks between the last two keyframes (the GOP length), 0 until known. */
  #keyIntervalTicks = 0;

  constructor(spec: AddStream, ctx: PipelineContext) {
    this.streamId = spec.streamId;
    this.#slot = spec.slot;
    this.#wallBaseMs = spec.wallBaseMs;
    this.#out = ctx.out;
    this.#emit = ctx.emit;
    this.#keyIntervalMs = spec.keyframeIntervalMs;
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
    this.#input = createInput(spec.input, this);
  }

  /** One ring record of this stream; `payload` is valid only during this call. */
  push(kind: number, flags: number, ts: number, payload: Uint8Array): void {
    this.counters.bytesIn += payload.length;
    this.#input.push(kind, flags, ts, payload);
  }

  get lostPackets(): number {
    return this.#input.lostPackets;
  }

  get resyncs(): number {
    return this.#input.resyncs ?? 0;
  }

  // InputSink
  setTracks(tracks: TrackInfo[]): void {
    this.#tracks = tracks;
    const v = tracks[0]?.kind === 'video' ? tracks[0] : null;
    this.#video = v;
    this.#ps = v ? parameterSets(v) : [];
    this.#seg?.setTracks(tracks);
    this.#preview?.setTracks(tracks);
  }

  unit(t: number, au: AccessUnit): void {
    const isVideo = this.#tracks[t]?.kind === 'video';
    if (isVideo || this.#video === null) this.counters.frames++;
    const recorded = this.#seg !== null && this.#seg.push(t, au);
    if (this.#seg !== null && !recorded && isVideo) this.counters.droppedFrames++;
    this.#preview?.push(t, au);
    if (isVideo && au.keyframe) this.#keyframe(au, recorded ? this.#seg!.lastSampleAt() : null);
  }

  dropped(n: number): void {
    this.counters.droppedFrames += n;
  }

  /**
   * Live preview while someone watches: one fragment per frame into the out ring. `still`
   * (the latest keyframe, which the main thread reads from the recording) is shown at once
   * until the next keyframe is due, so a new viewer sees a picture without waiting a GOP.
   */
  setPreview(on: boolean, still?: KeyframeData): void {
    if (!on) {
      this.#preview = null;
      return;
    }
    if (this.#preview !== null) return;
    this.#preview = new PreviewMuxer(this.#out, this.#slot);
    if (this.#tracks.length === 0) return;
    this.#preview.setTracks(this.#tracks);
    const picture = still?.data ?? (this.#keyLen > 0 ? this.#key.subarray(0, this.#keyLen) : null);
    if (picture !== null && this.#keyIntervalTicks > 0) {
      // Shown until the next keyframe is due (no gap for MSE).
      const au: AccessUnit = { nalus: [], bytes: 0, keyframe: true, dts: this.#keyDts, pts: this.#keyDts };
      splitAnnexB(picture, au.nalus);
      au.nalus = au.nalus.slice(this.#ps.length); // the picture's NAL units follow the parameter sets
      for (const n of au.nalus) au.bytes += n.length;
      if (au.nalus.length > 0) this.#preview.pushStill(au, this.#keyIntervalTicks);
    }
  }

  get previewDrops(): number {
    return this.#preview?.counters.dropped ?? 0;
  }

  /**
   * The latest keyframe with its parameter sets: a copy when it was not recorded, else where
   * it lies in the recording (the main thread reads it there); null before the first.
   */
  latestKeyframe(): KeyframeData | KeyframeRef | null {
    const t = this.#video;
    if (t === null) return null;
    if (this.#keyLen > 0) return { codec: t.codec, width: t.width, height: t.height, wallMs: this.#keyWallMs, data: this.#key.slice(0, this.#keyLen) };
    if (this.#keyAt.length === 0) return null;
    return { codec: t.codec, width: t.width, height: t.height, wallMs: this.#keyWallMs, parameterSets: toAnnexB(this.#ps), at: this.#keyAt.slice() };
  }

  /** Continues a failed predecessor's counters and timeline (a file's timestamps may have wrapped). */
  inherit(old: StreamPipeline): void {
    this.counters.bytesIn = old.counters.bytesIn;
    this.counters.frames = old.counters.frames;
    this.counters.droppedFrames = old.counters.droppedFrames + 1;
    if (this.#input instanceof AnnexbInput && old.#input instanceof AnnexbInput) this.#input.inherit(old.#input);
    if (old.#seg !== null) this.#seg?.continueNumbering(old.#seg.nextSegmentNumber);
  }

  /** Closes the open segment. Idempotent. */
  close(): void {
    this.#seg?.close();
  }

  /**
   * A keyframe went by: note where it was recorded (or, when it was not, keep a copy) so a
   * snapshot never waits for the next one, and send the periodic keyframe event.
   */
  #keyframe(au: AccessUnit, at: { path: string; offset: number; size: number } | null): void {
    if (this.#keyDts >= 0 && au.dts > this.#keyDts) this.#keyIntervalTicks = au.dts - this.#keyDts;
    this.#keyDts = au.dts;
    this.#keyWallMs = this.#wallBaseMs + Math.floor((au.dts * 1000) / this.#video!.timescale);
    const all = this.#ps.length === 0 ? au.nalus : this.#ps.concat(au.nalus);
    if (at !== null) {
      this.#keyAt.unshift({ ...at, wallMs: this.#keyWallMs });
      if (this.#keyAt.length > 2) this.#keyAt.length = 2;
      this.#key = EMPTY; // recorded: the file holds it
      this.#keyLen = 0;
    } else {
      this.#keyAt.length = 0;
      let need = 0;
      for (const n of all) need += 4 + n.length;
      if (need > this.#key.length) this.#key = new Uint8Array((need + (need >> 2) + 4095) & ~4095); // 25% room for the next
      this.#keyLen = toAnnexB(all, this.#key).length;
    }
    // The first periodic keyframe comes a per-stream share of the interval after the stream's
    // first keyframe: cameras started together (an engine start) would otherwise all send
    // theirs in the same second, every interval, and the thumbnail pool would skip most.
    if (this.#keyIntervalMs > 0 && this.#keyEmittedMs === -Infinity) this.#keyEmittedMs = this.#keyWallMs - this.#keyIntervalMs + keyframePhaseMs(this.streamId, this.#keyIntervalMs);
    if (this.#keyIntervalMs > 0 && this.#keyWallMs - this.#keyEmittedMs >= this.#keyIntervalMs) {
      this.#keyEmittedMs = this.#keyWallMs;
      const t = this.#video!;
      const data = this.#keyLen > 0 ? this.#key.slice(0, this.#keyLen) : toAnnexB(all);
      this.#emit({ type: 'keyframe', streamId: this.streamId, codec: t.codec, width: t.width, height: t.height, wallMs: this.#keyWallMs, data });
    }
  }
}

/** A stream's offset into the keyframe interval: FNV-1a of its id, so it is the same at every start. */
export function keyframePhaseMs(streamId: string, intervalMs: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < streamId.length; i++) h = Math.imul(h ^ streamId.charCodeAt(i), 0x01000193) >>> 0;
  return h % intervalMs;
}
