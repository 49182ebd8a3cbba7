// Input adapter for GB28181 media: RTP packets carrying MPEG-PS (one whole packet per ring
// record, KIND_RTP, flags 0, ts = arrival ms since the stream's wall-clock base; the SSRC
// was checked on the main thread) -> reorder window (UDP) -> PS payload bytes -> PS demux
// -> access units on the stream's timeline (the PS clock, anchored at the first arrival).
import { audioSpecificConfig, audioTrackInfoAac } from '../media/aac.ts';
import { audioTrackInfoPcma, audioTrackInfoPcmu } from '../media/g711.ts';
import { videoTrackInfoH264 } from '../media/h264-config.ts';
import { videoTrackInfoH265 } from '../media/h265-config.ts';
import { PsDemuxer, type PsAudioFrame, type PsSink } from '../media/ps.ts';
import { newRtpView, readRtp } from '../media/rtp.ts';
import { REORDER_DELIVER, RtpReorderBuffer } from '../media/rtp-reorder.ts';
import type { AccessUnit, AudioCodec, AudioTrackInfo, TrackInfo, VideoCodec, VideoTrackInfo } from '../media/types.ts';
import type { PsRtpInputSpec } from './control.ts';
import { equalBytes } from './input-annexb.ts';
import { msToTicks, type InputSink, type StreamInput } from './input.ts';
import { classifiers, keepPictureNalus, NAL_PICTURE, NAL_PPS, NAL_SPS, NAL_VPS, type NalClassifier } from './nal-filter.ts';
import { KIND_RTP } from './ring-format.ts';

/** RTP over UDP may arrive out of order: hold up to this many packets (TCP never reorders). */
const UDP_REORDER_WINDOW = 32;
/** A PS clock this far from the arrival clock is a device restart or a jump: re-anchor. */
const MAX_CLOCK_DRIFT_TICKS = 10 * 90_000;
/** Audio frames to wait for the video's parameter sets before recording audio alone. */
const AUDIO_ONLY_AFTER_FRAMES = 200;

const trackInfo: Record<VideoCodec, (v: Uint8Array[], s: Uint8Array[], p: Uint8Array[]) => VideoTrackInfo> = {
  h264: (_v, s, p) => videoTrackInfoH264(s, p),
  h265: (v, s, p) => videoTrackInfoH265(v, s, p),
};

export class PsRtpInput implements StreamInput, PsSink {
  #sink: InputSink;
  #reorder: RtpReorderBuffer;
  #demux: PsDemuxer;
  #rtp = newRtpView();
  #lostSeen = 0;
  #arrivalMs = 0;
  // Video track: parameter sets captured from the units (copies), rebuilt on a keyframe.
  #videoCodec: VideoCodec | null = null;
  #classify: NalClassifier | null = null;
  #sets: Uint8Array[][] = [[], [], []]; // VPS, SPS, PPS
  #setsChanged = false;
  #video: VideoTrackInfo | null = null;
  #audioCodec: AudioCodec | null = null;
  #audio: AudioTrackInfo | null = null;
  #audioWithoutVideo = 0;
  #videoIndex = -1;
  #audioIndex = -1;
  /** The tracks last given to the sink. */
  #setV: VideoTrackInfo | null = null;
  #setA: AudioTrackInfo | null = null;
  /** PS ticks (90 kHz) to stream-timeline ticks; NaN until the first unit. */
  #shift = Number.NaN;
  #lastVideoDts = -Infinity;
  #lastAudioDts = -Infinity;
  #au: AccessUnit = { nalus: [], bytes: 0, keyframe: true, dts: 0, pts: 0 };
  /** Packets that were not RTP, and PS clock jumps re-anchored. */
  badPackets = 0;
  clockJumps = 0;

  constructor(spec: PsRtpInputSpec, sink: InputSink) {
    this.#sink = sink;
    this.#reorder = new RtpReorderBuffer(spec.transport === 'udp' ? UDP_REORDER_WINDOW : 0);
    this.#demux = new PsDemuxer(this);
  }

  get lostPackets(): number {
    return this.#reorder.lost;
  }

  /** Times the PS demuxer lost sync (loss, garbage) and scanned for the next pack header. */
  get resyncs(): number {
    return this.#demux.counters.resyncs;
  }

  push(kind: number, _flags: number, arrivalMs: number, packet: Uint8Array): void {
    if (kind !== KIND_RTP || !readRtp(packet, this.#rtp)) {
      this.badPackets++;
      return;
    }
    this.#arrivalMs = arrivalMs;
    if (this.#reorder.offer(packet, this.#rtp.seq, arrivalMs) === REORDER_DELIVER) this.#packet(packet);
    for (let p = this.#reorder.next(); p !== null; p = this.#reorder.next()) this.#packet(p);
  }

  #packet(p: Uint8Array): void {
    if (this.#reorder.lost > this.#lostSeen) {
      this.#lostSeen = this.#reorder.lost;
      this.#demux.lost(); // the partial picture is dropped; video resumes at a keyframe
    }
    if (!readRtp(p, this.#rtp)) return;
    const dropped = this.#demux.droppedUnits;
    this.#demux.push(p.subarray(this.#rtp.payloadStart, this.#rtp.payloadEnd));
    if (this.#demux.droppedUnits > dropped) this.#sink.dropped(this.#demux.droppedUnits - dropped);
  }

  // PsSink
  codec(kind: 'video' | 'audio', codec: VideoCodec | AudioCodec): void {
    if (kind === 'video') {
      // A new codec (PSM or probe): the track is set up again from its parameter sets.
      this.#videoCodec = codec as VideoCodec;
      this.#classify = classifiers[codec as VideoCodec];
      this.#sets = [[], [], []];
      this.#video = null;
      this.#setsChanged = false;
    } else {
      this.#audioCodec = codec as AudioCodec;
      this.#audio = null;
    }
    this.#retrack();
  }

  video(au: AccessUnit): void {
    const classify = this.#classify!;
    for (const n of au.nalus) {
      const c = classify(n);
      if (c === NAL_PICTURE || n.length === 0) continue;
      if (c === NAL_VPS || c === NAL_SPS || c === NAL_PPS) this.#capture(c === NAL_VPS ? 0 : c === NAL_SPS ? 1 : 2, n);
    }
    if (this.#setsChanged && au.keyframe) this.#updateVideo();
    if (this.#videoIndex < 0) return this.#sink.dropped(1);
    keepPictureNalus(au, classify);
    if (au.nalus.length === 0) return;
    const dts = this.#place(au.dts);
    if (dts <= this.#lastVideoDts) return this.#sink.dropped(1);
    au.pts += dts - au.dts;
    au.dts = dts;
    this.#lastVideoDts = dts;
    this.#sink.unit(this.#videoIndex, au);
  }

  audio(f: PsAudioFrame): void {
    const a = this.#audio;
    if (a === null || a.sampleRate !== f.sampleRate || a.channels !== f.channels) {
      this.#audio = this.#audioInfo(f);
      this.#retrack();
    } else if (this.#audioIndex < 0 && this.#videoCodec === null && ++this.#audioWithoutVideo === AUDIO_ONLY_AFTER_FRAMES) {
      this.#retrack();
    }
    if (this.#audioIndex < 0) return;
    const rate = this.#audio!.sampleRate;
    const dts = Math.round((this.#place(f.pts) * rate) / 90_000);
    if (dts <= this.#lastAudioDts) return;
    this.#lastAudioDts = dts;
    const au = this.#au;
    au.nalus.length = 1;
    au.nalus[0] = f.data;
    au.bytes = f.data.length;
    au.keyframe = true;
    au.dts = dts;
    au.pts = dts;
    this.#sink.unit(this.#audioIndex, au);
  }

  /** PS time (90 kHz, unwrapped) on the stream's timeline: anchored where the first unit arrived. */
  #place(psTicks: number): number {
    const arrival = msToTicks(this.#arrivalMs, 90_000);
    if (Number.isNaN(this.#shift)) this.#shift = arrival - psTicks;
    else if (Math.abs(psTicks + this.#shift - arrival) > MAX_CLOCK_DRIFT_TICKS) {
      this.clockJumps++;
      this.#shift = arrival - psTicks;
    }
    return psTicks + this.#shift;
  }

  #audioInfo(f: PsAudioFrame): AudioTrackInfo | null {
    try {
      if (f.codec === 'aac') return audioTrackInfoAac(audioSpecificConfig(f.audioObjectType, f.sampleRate, f.channels === 8 ? 7 : f.channels));
      return f.codec === 'pcma' ? audioTrackInfoPcma(f.sampleRate, f.channels) : audioTrackInfoPcmu(f.sampleRate, f.channels);
    } catch {
      return null;
    }
  }

  /** Parameter sets are small and rare: copy them (the unit's views die with the call). */
  #capture(slot: number, nal: Uint8Array): void {
    const list = this.#sets[slot]!;
    if (list.length === 1 && equalBytes(list[0]!, nal)) return;
    this.#sets[slot] = [nal.slice()];
    this.#setsChanged = true;
  }

  #updateVideo(): void {
    this.#setsChanged = false;
    const [vps, sps, pps] = this.#sets as [Uint8Array[], Uint8Array[], Uint8Array[]];
    if (sps.length === 0 || pps.length === 0 || (this.#videoCodec === 'h265' && vps.length === 0)) return;
    try {
      this.#video = trackInfo[this.#videoCodec!](vps, sps, pps);
    } catch (err) {
      this.#video = null;
      this.#retrack();
      throw new Error(`unusable parameter sets: ${(err as Error).message}`, { cause: err });
    }
    this.#retrack();
  }

  /** Video first once its parameter sets are known; audio alone only after a long wait. */
  #retrack(): void {
    const v = this.#video;
    const a = this.#audio;
    const audioAlone = this.#videoCodec === null && this.#audioWithoutVideo >= AUDIO_ONLY_AFTER_FRAMES;
    const useA = a !== null && (v !== null || audioAlone) ? a : null;
    if (v === this.#setV && useA === this.#setA) return; // nothing changed: no segment rotation
    this.#setV = v;
    this.#setA = useA;
    const infos: TrackInfo[] = [];
    this.#videoIndex = v ? infos.push(v) - 1 : -1;
    this.#audioIndex = useA ? infos.push(useA) - 1 : -1;
    if (infos.length > 0) this.#sink.setTracks(infos);
  }
}
