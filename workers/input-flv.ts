// Input adapter for RTMP: one FLV tag per ring record (KIND_FLV_TAG: the 11-byte tag header
// with the publisher's timestamp, then the body; ts = arrival ms since the stream's
// wall-clock base). Audio and video share the publisher's millisecond clock.
import { FLV_ERROR, FLV_FRAME, FLV_TRACK, FlvAudioDemuxer, FlvVideoDemuxer } from '../media/flv.ts';
import type { AccessUnit, TrackInfo } from '../media/types.ts';
import { msToTicks, type InputSink, type StreamInput } from './input.ts';
import { classifiers, keepPictureNalus } from './nal-filter.ts';
import { KIND_FLV_TAG } from './ring-format.ts';

const FLV_TAG_HEADER_BYTES = 11;
const TAG_AUDIO = 8, TAG_VIDEO = 9;
/** Audio frames to wait for a video sequence header before recording audio only. */
const AUDIO_ONLY_AFTER_FRAMES = 200;

export class FlvInput implements StreamInput {
  readonly lostPackets = 0;
  #sink: InputSink;
  #video = new FlvVideoDemuxer();
  #audio = new FlvAudioDemuxer();
  #videoIndex = -1;
  #audioIndex = -1;
  #audioWithoutVideo = 0;
  /** The publisher's first timestamp (ms) and where it lies on the stream's timeline. */
  #t0 = -1;
  #offsetMs = 0;
  // 32-bit millisecond timestamp unwrap, seeded by the first tag.
  #tsPrev = 0;
  #tsExt = -1;

  constructor(sink: InputSink) {
    this.#sink = sink;
  }

  push(kind: number, _flags: number, arrivalMs: number, tag: Uint8Array): void {
    if (kind !== KIND_FLV_TAG || tag.length < FLV_TAG_HEADER_BYTES) return this.#sink.dropped(1);
    const type = tag[0]! & 0x1f;
    const ts32 = ((tag[7]! << 24) | (tag[4]! << 16) | (tag[5]! << 8) | tag[6]!) >>> 0;
    if (this.#tsExt < 0) this.#tsExt = ts32;
    else this.#tsExt += (ts32 - this.#tsPrev) | 0;
    this.#tsPrev = ts32;
    const ms = this.#tsExt;
    if (this.#t0 < 0) {
      this.#t0 = ms;
      this.#offsetMs = arrivalMs;
    }
    const body = tag.subarray(FLV_TAG_HEADER_BYTES);
    if (type === TAG_VIDEO) {
      const r = this.#video.push(body, ms);
      if (r === FLV_ERROR) return this.#sink.dropped(1);
      if (r & FLV_TRACK) this.#retrack();
      if (r & FLV_FRAME && this.#videoIndex >= 0) this.#emit(this.#videoIndex, this.#video.au, this.#video.track!.timescale, true);
    } else if (type === TAG_AUDIO) {
      const r = this.#audio.push(body, ms);
      if (r === FLV_ERROR) return;
      if (r & FLV_TRACK || (this.#audioIndex < 0 && this.#video.track === null && ++this.#audioWithoutVideo === AUDIO_ONLY_AFTER_FRAMES)) this.#retrack();
      if (r & FLV_FRAME && this.#audioIndex >= 0) this.#emit(this.#audioIndex, this.#audio.au, this.#audio.track!.timescale, false);
    }
  }

  #emit(t: number, au: AccessUnit, timescale: number, video: boolean): void {
    const shift = msToTicks(this.#offsetMs - this.#t0, timescale);
    au.dts += shift;
    au.pts += shift;
    if (video) {
      keepPictureNalus(au, classifiers[this.#video.track!.codec]);
      if (au.nalus.length === 0) return;
    }
    this.#sink.unit(t, au);
  }

  /** Video first once its sequence header arrived; audio alone only after a long wait. */
  #retrack(): void {
    const v = this.#video.track;
    const a = this.#audio.track;
    if (v === null && this.#audioWithoutVideo < AUDIO_ONLY_AFTER_FRAMES) return;
    const infos: TrackInfo[] = [];
    this.#videoIndex = v ? infos.push(v) - 1 : -1;
    this.#audioIndex = a ? infos.push(a) - 1 : -1;
    if (infos.length > 0) this.#sink.setTracks(infos);
  }
}
