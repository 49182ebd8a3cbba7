// Input adapter for the file source: one Annex-B access unit per ring record (KIND_ANNEXB_AU:
// composition-offset prefix + bytes), 90 kHz dts since the stream's start in `ts`.
import { MAX_NALUS_PER_AU, splitAnnexB } from '../media/annexb.ts';
import { videoTrackInfoH264 } from '../media/h264-config.ts';
import { videoTrackInfoH265 } from '../media/h265-config.ts';
import type { AccessUnit, VideoCodec, VideoTrackInfo } from '../media/types.ts';
import type { InputSink, StreamInput } from './input.ts';
import { classifiers, NAL_DROP, NAL_PICTURE, NAL_VPS, NAL_SPS, type NalClassifier } from './nal-filter.ts';
import { ANNEXB_CTS_BYTES, FLAG_KEYFRAME, KIND_ANNEXB_AU } from './ring-format.ts';

const trackInfo: Record<VideoCodec, (v: Uint8Array[], s: Uint8Array[], p: Uint8Array[]) => VideoTrackInfo> = {
  h264: (_v, s, p) => videoTrackInfoH264(s, p),
  h265: (v, s, p) => videoTrackInfoH265(v, s, p),
};

export class AnnexbInput implements StreamInput {
  readonly lostPackets = 0;
  #sink: InputSink;
  #classify: NalClassifier;
  #info: (v: Uint8Array[], s: Uint8Array[], p: Uint8Array[]) => VideoTrackInfo;
  #needsVps: boolean;
  #nalus: Uint8Array[] = [];
  #au: AccessUnit = { nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 };
  #vps: Uint8Array[] = [];
  #sps: Uint8Array[] = [];
  #pps: Uint8Array[] = [];
  #psChanged = false;
  #haveTrack = false;
  // 32-bit timestamp unwrap (STYLE 9), seeded by the first record.
  #tsPrev = 0;
  #tsExt = -1;

  constructor(codec: VideoCodec, sink: InputSink) {
    this.#sink = sink;
    this.#classify = classifiers[codec];
    this.#info = trackInfo[codec];
    this.#needsVps = codec === 'h265';
  }

  push(kind: number, flags: number, ts32: number, record: Uint8Array): void {
    if (kind !== KIND_ANNEXB_AU || record.length <= ANNEXB_CTS_BYTES) return this.#sink.dropped(1);
    const cts = record[0]! | (record[1]! << 8) | (record[2]! << 16) | (record[3]! << 24);
    const keyframe = (flags & FLAG_KEYFRAME) !== 0;
    const dts = this.#unwrap(ts32);
    const n = splitAnnexB(record.subarray(ANNEXB_CTS_BYTES), this.#nalus, MAX_NALUS_PER_AU);
    if (n < 0) return this.#sink.dropped(1); // more NAL units than any real picture has
    const au = this.#au;
    au.nalus.length = 0;
    au.bytes = 0;
    for (let i = 0; i < n; i++) {
      const nal = this.#nalus[i]!;
      if (nal.length === 0) continue;
      const c = this.#classify(nal);
      if (c === NAL_PICTURE) {
        au.nalus.push(nal);
        au.bytes += nal.length;
      } else if (c !== NAL_DROP) {
        this.#capture(c, nal);
      }
    }
    if (au.nalus.length === 0) return; // parameter sets only
    if (this.#psChanged && keyframe) this.#updateTrack();
    if (!this.#haveTrack) return this.#sink.dropped(1);
    au.keyframe = keyframe;
    au.dts = dts;
    au.pts = dts + cts;
    this.#sink.unit(0, au);
  }

  /** Continues a failed predecessor's timestamp unwrap (it may have wrapped). */
  inherit(old: AnnexbInput): void {
    this.#tsPrev = old.#tsPrev;
    this.#tsExt = old.#tsExt;
  }

  #unwrap(ts: number): number {
    if (this.#tsExt < 0) this.#tsExt = ts >>> 0;
    else this.#tsExt += (ts - this.#tsPrev) | 0;
    this.#tsPrev = ts;
    return this.#tsExt;
  }

  /** Parameter sets are small and rare: copy them (they outlive the ring slot). */
  #capture(kind: number, nal: Uint8Array): void {
    const list = kind === NAL_VPS ? this.#vps : kind === NAL_SPS ? this.#sps : this.#pps;
    if (list.length === 1 && equalBytes(list[0]!, nal)) return;
    list.length = 0;
    list.push(nal.slice());
    this.#psChanged = true;
  }

  #updateTrack(): void {
    this.#psChanged = false;
    if (this.#sps.length === 0 || this.#pps.length === 0 || (this.#needsVps && this.#vps.length === 0)) return;
    let info: VideoTrackInfo;
    try {
      info = this.#info(this.#vps, this.#sps, this.#pps);
    } catch (err) {
      this.#haveTrack = false;
      throw new Error(`unusable parameter sets: ${(err as Error).message}`, { cause: err });
    }
    this.#sink.setTracks([info]);
    this.#haveTrack = true;
  }
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
