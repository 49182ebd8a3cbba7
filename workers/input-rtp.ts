// Input adapter for RTSP (and later GB28181/WebRTC RTP): one RTP packet per ring record
// (KIND_RTP, flags = the session's track index, ts = arrival ms since the stream's wall-clock
// base), depacketized per track and placed on the stream's timeline by arrival time.
import { parseRtcp } from '../media/rtcp.ts';
import { createDepacketizer, type Depacketizer } from '../media/rtp-depacketizer.ts';
import { parseSdp } from '../media/sdp.ts';
import type { AccessUnit, TrackInfo } from '../media/types.ts';
import type { RtpInputSpec } from './control.ts';
import { msToTicks, type InputSink, type StreamInput } from './input.ts';
import { classifiers, keepPictureNalus, type NalClassifier } from './nal-filter.ts';
import { KIND_RTCP, KIND_RTP, RTP_TRACK_MASK } from './ring-format.ts';

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
  /** Added to the track's RTP time to place it on the stream's timeline; NaN until the first unit. */
  shift: number;
  /** Last dts emitted (timeline ticks): units must not go back. */
  lastDts: number;
  /** The latest sender report: RTP time (32-bit) at sender wall-clock ms. */
  srRtp: number;
  srWallMs: number;
  /** Audio re-anchored to the video through the sender's clock (once per connection). */
  synced: boolean;
  classify: NalClassifier | null;
}

const TWO32 = 0x1_0000_0000;
/**
 * Audio units kept while the video's parameter sets are still unknown: with encoder latency,
 * audio that arrives before the first keyframe belongs after it. ~4 s of AAC or G.711.
 */
const MAX_EARLY_AUDIO = 200;

interface EarlyAudio {
  track: RtpTrack;
  /** Raw RTP times (not yet on the stream's timeline) and when the unit arrived. */
  dts: number;
  pts: number;
  arrivalMs: number;
  data: Uint8Array;
}

export class RtpInput implements StreamInput {
  #sink: InputSink;
  #tracks: RtpTrack[] = [];
  #hasVideo: boolean;
  #au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
  #droppedSeen = 0;
  /** Stream time minus sender wall clock (ms) of the latest video unit, once video has an SR. */
  #videoLeadMs = Number.NaN;
  #early: EarlyAudio[] = [];

  constructor(spec: RtpInputSpec, sink: InputSink) {
    this.#sink = sink;
    const sdp = parseSdp(spec.sdp);
    for (const t of spec.tracks) {
      const media = sdp.media[t.mediaIndex];
      const dep = media ? createDepacketizer(media, t.payloadType, { reorderWindow: t.transport === 'udp' ? UDP_REORDER_WINDOW : 0 }) : null;
      if (media === undefined || dep === null) throw new Error(`track ${t.mediaIndex}: no depacketizer for payload type ${t.payloadType}`);
      const clockRate = media.rtpmap.get(t.payloadType)?.clockRate ?? (media.type === 'video' ? 90_000 : 8_000);
      this.#tracks.push({
        dep, isVideo: media.type === 'video', clockRate, index: -1, seenVersion: -1, seenInfo: false,
        shift: Number.NaN, lastDts: -Infinity, srRtp: 0, srWallMs: -1, synced: false, classify: null,
      });
    }
    this.#hasVideo = this.#tracks.some((t) => t.isVideo);
  }

  get lostPackets(): number {
    let n = 0;
    for (const t of this.#tracks) n += t.dep.counters.lost;
    return n;
  }

  push(kind: number, flags: number, arrivalMs: number, packet: Uint8Array): void {
    const tr = this.#tracks[flags & RTP_TRACK_MASK];
    if (tr === undefined) return;
    if (kind === KIND_RTCP) return this.#rtcp(tr, packet);
    if (kind !== KIND_RTP) return;
    tr.dep.push(packet, arrivalMs);
    const info = tr.dep.trackInfo();
    if ((info !== null) !== tr.seenInfo || tr.dep.paramsVersion !== tr.seenVersion) this.#retrack();
    const au = this.#au;
    while (tr.dep.pop(au)) {
      if (tr.index < 0) {
        // Before the video's parameter sets are known: keep audio (with encoder latency it
        // belongs after the first keyframe), drop video (it cannot be decoded yet).
        if (!tr.isVideo && tr.seenInfo && this.#early.length < MAX_EARLY_AUDIO) this.#keepEarly(tr, au, arrivalMs);
        else if (tr.isVideo) this.#sink.dropped(1);
        continue;
      }
      if (!this.#place(tr, au, arrivalMs)) continue;
      this.#sink.unit(tr.index, au);
      if (tr.isVideo && this.#early.length > 0) this.#replayEarly();
    }
    let dropped = 0;
    for (const t of this.#tracks) dropped += t.dep.counters.droppedFrames;
    if (dropped > this.#droppedSeen) {
      this.#sink.dropped(dropped - this.#droppedSeen);
      this.#droppedSeen = dropped;
    }
  }

  /**
   * Puts a unit on the stream's timeline: its track's first unit where it arrived, audio
   * re-anchored to the video through the sender's clock once both have a sender report
   * (arrival times carry each encoder's latency; RFC 3550 §6.4.1). False: skip the unit.
   */
  #place(tr: RtpTrack, au: AccessUnit, arrivalMs: number): boolean {
    if (Number.isNaN(tr.shift)) tr.shift = msToTicks(arrivalMs, tr.clockRate) - au.dts;
    const raw = au.dts;
    if (tr.isVideo) {
      if (tr.srWallMs >= 0) this.#videoLeadMs = ((raw + tr.shift) * 1000) / tr.clockRate - this.#senderMs(tr, raw);
    } else if (!tr.synced && tr.srWallMs >= 0 && !Number.isNaN(this.#videoLeadMs)) {
      tr.shift = msToTicks(this.#senderMs(tr, raw) + this.#videoLeadMs, tr.clockRate) - raw;
      tr.synced = true;
    }
    au.dts = raw + tr.shift;
    au.pts += tr.shift;
    if (au.dts <= tr.lastDts) return false; // a re-anchor moved this track back: skip the overlap
    tr.lastDts = au.dts;
    if (tr.classify !== null) {
      keepPictureNalus(au, tr.classify); // parameter sets live in the init segment
      if (au.nalus.length === 0) return false;
    }
    return true;
  }

  #keepEarly(tr: RtpTrack, au: AccessUnit, arrivalMs: number): void {
    const data = new Uint8Array(au.bytes); // start-up only: a plain copy
    let at = 0;
    for (const n of au.nalus) {
      data.set(n, at);
      at += n.length;
    }
    this.#early.push({ track: tr, dts: au.dts, pts: au.pts, arrivalMs, data });
  }

  /** After the first video unit: the early audio, placed as if it had just arrived in order. */
  #replayEarly(): void {
    const early = this.#early;
    this.#early = [];
    const au = this.#au;
    for (const e of early) {
      if (e.track.index < 0) continue;
      au.nalus.length = 1;
      au.nalus[0] = e.data;
      au.bytes = e.data.length;
      au.keyframe = true;
      au.dts = e.dts;
      au.pts = e.pts;
      if (this.#place(e.track, au, e.arrivalMs)) this.#sink.unit(e.track.index, au);
    }
  }

  /** Sender wall-clock ms of RTP time `raw` (extended) on track `tr`, from its latest SR. */
  #senderMs(tr: RtpTrack, raw: number): number {
    return tr.srWallMs + ((((raw % TWO32) - tr.srRtp) | 0) * 1000) / tr.clockRate;
  }

  #rtcp(tr: RtpTrack, packet: Uint8Array): void {
    try {
      for (const p of parseRtcp(packet, false)) {
        if (p.type !== 'sr') continue;
        tr.srRtp = p.rtpTimestamp >>> 0;
        tr.srWallMs = p.wallClockMs;
      }
    } catch {
      /* a malformed report only costs the sync it would have given */
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
