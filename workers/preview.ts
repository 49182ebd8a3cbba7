// Live-preview muxer of one stream inside a media worker: while someone watches, every
// access unit becomes its own fMP4 fragment (lowest latency for MSE), written to the
// worker->main ring next to an init segment whenever the tracks change.
import { initSegment } from '../media/fmp4-init.ts';
import { FragmentBuilder } from '../media/fmp4-fragment.ts';
import type { AccessUnit, TrackInfo } from '../media/types.ts';
import { FLAG_INIT, FLAG_KEYFRAME, KIND_FRAGMENT } from './ring-format.ts';
import type { RingProducer } from './ring.ts';

export interface PreviewCounters {
  fragments: number;
  /** Fragments the ring had no room for (the viewer side resumes at a keyframe). */
  dropped: number;
}

export class PreviewMuxer {
  readonly counters: PreviewCounters = { fragments: 0, dropped: 0 };
  #ring: RingProducer;
  #slot: number;
  #tracks: TrackInfo[] = [];
  #builder: FragmentBuilder | null = null;
  #seq = 1;
  /** Per track: dts of the previous sample and its duration estimate. */
  #lastDts: number[] = [];
  #lastDur: number[] = [];
  #base: number[] = [];
  #needInit = true;
  #waitKeyframe = true;
  #initBytes: Uint8Array | null = null;

  constructor(ring: RingProducer, slot: number) {
    this.#ring = ring;
    this.#slot = slot;
  }

  setTracks(tracks: TrackInfo[]): void {
    this.#tracks = tracks;
    this.#builder?.release();
    this.#builder = new FragmentBuilder(tracks);
    this.#lastDts = tracks.map(() => -1);
    this.#lastDur = tracks.map((t) => (t.kind === 'video' ? Math.round(t.timescale / (t.fps > 0 ? t.fps : 25)) : 1024));
    this.#base = tracks.map(() => 0);
    this.#initBytes = initSegment(tracks);
    this.#needInit = true;
    this.#waitKeyframe = true;
  }

  /**
   * Sends a past keyframe at once (a new viewer sees a picture without waiting for the next
   * GOP), lasting `duration` ticks, which should reach the next keyframe so MSE sees no
   * gap. Live frames resume at the next keyframe: those in between were not kept.
   */
  pushStill(au: AccessUnit, duration: number): void {
    if (this.#tracks[0]?.kind !== 'video') return;
    this.#lastDts[0] = -1;
    this.#write(0, au, duration);
    this.#waitKeyframe = true;
  }

  /** Adds one access unit of track `t`; its views are consumed before returning. */
  push(t: number, au: AccessUnit): void {
    const b = this.#builder;
    if (b === null || t >= this.#tracks.length) return;
    const tr = this.#tracks[t]!;
    if (tr.kind === 'video') {
      if (this.#waitKeyframe && !au.keyframe) return;
      const prev = this.#lastDts[t]!;
      if (prev >= 0 && au.dts > prev) this.#lastDur[t] = au.dts - prev;
      this.#lastDts[t] = au.dts;
    } else if (this.#waitKeyframe) {
      return; // audio joins once the picture can be decoded
    }
    this.#write(t, au, tr.kind === 'audio' ? (tr.codec === 'aac' ? 1024 : au.bytes) : this.#lastDur[t]!);
  }

  #write(t: number, au: AccessUnit, duration: number): void {
    const b = this.#builder!;
    const tr = this.#tracks[t]!;
    if (this.#needInit) {
      if (!this.#ring.tryWrite(this.#slot, KIND_FRAGMENT, FLAG_INIT, 0, this.#initBytes!)) {
        this.counters.dropped++;
        return;
      }
      this.#needInit = false;
    }
    b.begin(this.#seq);
    if (!b.addSample(t, au, duration)) {
      this.counters.dropped++;
      return;
    }
    this.#base[t] = au.dts;
    const parts = b.finish(this.#base);
    const ms = Math.floor((au.dts * 1000) / tr.timescale) >>> 0;
    const sent = this.#ring.tryWriteParts(this.#slot, KIND_FRAGMENT, au.keyframe && tr.kind === 'video' ? FLAG_KEYFRAME : 0, ms, parts);
    b.release(); // copied into the ring (or dropped)
    if (sent) {
      this.#seq++;
      this.counters.fragments++;
      this.#waitKeyframe = false;
    } else {
      // The main thread is behind: everything after this depends on what was lost.
      this.counters.dropped++;
      this.#waitKeyframe = true;
    }
  }
}
