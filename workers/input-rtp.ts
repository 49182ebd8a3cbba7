// Input adapter for RTSP (and later GB28181/WebRTC RTP): one RTP packet per ring record
// (KIND_RTP, flags = the session's track index, ts = arrival ms since the stream's wall-clock
// base), depacketized per track and placed on the stream's timeline by arrival time.
import { createDepacketizer, type Depacketizer } from '../media/rtp-depacketizer.ts';
import { parseSdp } from '../media/sdp.ts';
import type { AccessUnit, TrackInfo } from '../media/types.ts';
import type { RtpInputSpec } from './control.ts';
import { msToTicks, type InputSink, type StreamInput } from './input.ts';
import { classifiers, keepPictureNalus, type NalClassifier } from './nal-filter.ts';
import { KIND_RTP, RTP_TRACK_MASK } from './ring-format.ts';

/** RTP over UDP may arrive out of order: hold up to this many packets (TCP never reorders). */
const UDP_REORDER_WINDOW = 32;

interface RtpTrack {
  dep: Depacketizer;
  isVideo: boolean;
  clockRate: number;
  /** Index in the sink's track list, -1 while not part of it. */
  index: number;
  seenVersion: number;
  seenInfo: boolean;
  /** RTP time of the first unit and its place on the stream's timeline (ticks), once known. */
  base: number;
  offset: number;
  classify: NalClassifier | null;
}

export class RtpInput implements StreamInput {
  #sink: InputSink;
  #tracks: RtpTrack[] = [];
  #hasVideo: boolean;
  #au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
  #droppedSeen = 0;

  constructor(spec: RtpInputSpec, sink: InputSink) {
    this.#sink = sink;
    const sdp = parseSdp(spec.sdp);
    for (const t of spec.tracks) {
      const media = sdp.media[t.mediaIndex];
      const dep = media ? createDepacketizer(media, t.payloadType, { reorderWindow: t.transport === 'udp' ? UDP_REORDER_WINDOW : 0 }) : null;
      if (media === undefined || dep === null) throw new Error(`track ${t.mediaIndex}: no depacketizer for payload type ${t.payloadType}`);
      const clockRate = media.rtpmap.get(t.payloadType)?.clockRate ?? (media.type === 'video' ? 90_000 : 8_000);
      this.#tracks.push({ dep, isVideo: media.type === 'video', clockRate, index: -1, seenVersion: -1, seenInfo: false, base: -1, offset: 0, classify: null });
    }
    this.#hasVideo = this.#tracks.some((t) => t.isVideo);
  }

  get lostPackets(): number {
    let n = 0;
    for (const t of this.#tracks) n += t.dep.counters.lost;
    return n;
  }

  push(kind: number, flags: number, arrivalMs: number, packet: Uint8Array): void {
    const tr = kind === KIND_RTP ? this.#tracks[flags & RTP_TRACK_MASK] : undefined;
    if (tr === undefined) return;
    tr.dep.push(packet, arrivalMs);
    const info = tr.dep.trackInfo();
    if ((info !== null) !== tr.seenInfo || tr.dep.paramsVersion !== tr.seenVersion) this.#retrack();
    const au = this.#au;
    while (tr.dep.pop(au)) {
      if (tr.index < 0) {
        this.#sink.dropped(1);
        continue;
      }
      if (tr.base < 0) {
        // The first unit of this track: its RTP clock starts where it arrived on the stream's timeline.
        tr.base = au.dts;
        tr.offset = msToTicks(arrivalMs, tr.clockRate);
      }
      const shift = tr.offset - tr.base;
      au.dts += shift;
      au.pts += shift;
      if (tr.classify !== null) {
        keepPictureNalus(au, tr.classify); // parameter sets live in the init segment
        if (au.nalus.length === 0) continue;
      }
      this.#sink.unit(tr.index, au);
    }
    let dropped = 0;
    for (const t of this.#tracks) dropped += t.dep.counters.droppedFrames;
    if (dropped > this.#droppedSeen) {
      this.#sink.dropped(dropped - this.#droppedSeen);
      this.#droppedSeen = dropped;
    }
  }

  /** Track list: the video first (once its parameter sets are known), then audio tracks. */
  #retrack(): void {
    for (const t of this.#tracks) {
      t.seenInfo = t.dep.trackInfo() !== null;
      t.seenVersion = t.dep.paramsVersion;
    }
    const video = this.#tracks.find((t) => t.isVideo && t.seenInfo);
    if (this.#hasVideo && video === undefined) return; // wait: a recording starts with a picture
    const order = [...(video ? [video] : []), ...this.#tracks.filter((t) => !t.isVideo && t.seenInfo)];
    for (const t of this.#tracks) t.index = -1;
    const infos: TrackInfo[] = [];
    for (const t of order) {
      const info = t.dep.trackInfo()!;
      t.index = infos.length;
      t.classify = info.kind === 'video' ? classifiers[info.codec] : null;
      infos.push(info);
    }
    this.#sink.setTracks(infos);
  }
}
