// The audio elementary stream of an MPEG program stream: AAC in ADTS frames (stream type
// 0x0F, ISO/IEC 13818-7) or G.711 (GB/T 28181 stream types 0x90 A-law, 0x91 mu-law), one
// PES payload collected whole, then split into frames stamped from the PES PTS.
import { AAC_SAMPLES_PER_FRAME, newAdtsFrame, nextAdtsFrame } from './aac.ts';
import { G711_DEFAULT_RATE } from './g711.ts';
import type { AudioCodec } from './types.ts';

/** A PES payload is at most 65535 bytes; ADTS leftovers from the previous one add < 8 KiB. */
const MAX_AUDIO_BUFFER = 80 << 10;

/** One audio frame; `data` is a view valid during the sink call only (ADTS header removed). */
export interface PsAudioFrame {
  codec: AudioCodec;
  data: Uint8Array;
  /** 90 kHz, unwrapped. */
  pts: number;
  sampleRate: number;
  channels: number;
  /** AAC: audioObjectType (profile + 1); 0 for G.711. */
  audioObjectType: number;
}

export interface PsAudioSink {
  audio(f: PsAudioFrame): void;
}

export class PsAudioAssembler {
  frames = 0;
  /** Bytes that were not a frame (ADTS garbage, oversize PES). */
  garbageBytes = 0;
  readonly codec: AudioCodec;
  #sink: PsAudioSink;
  #buf = new Uint8Array(8 << 10);
  #len = 0;
  #pts = Number.NaN;
  #nextPts = Number.NaN;
  #adts = newAdtsFrame();
  #out: PsAudioFrame;

  constructor(codec: AudioCodec, sink: PsAudioSink) {
    this.codec = codec;
    this.#sink = sink;
    this.#out = { codec, data: this.#buf, pts: 0, sampleRate: G711_DEFAULT_RATE, channels: 1, audioObjectType: 0 };
  }

  /** A PES packet of this stream begins; pts NaN when it carries none. */
  begin(pts: number): void {
    this.#pts = pts;
    if (this.codec !== 'aac') this.#len = 0;
  }

  write(b: Uint8Array): void {
    if (this.#len + b.length > MAX_AUDIO_BUFFER) {
      this.garbageBytes += this.#len + b.length;
      this.#len = 0;
      return;
    }
    if (this.#len + b.length > this.#buf.length) {
      const next = new Uint8Array(Math.min(MAX_AUDIO_BUFFER, Math.max(this.#len + b.length, this.#buf.length * 2)));
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
    }
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /** The PES packet ended: emit its frames. */
  end(): void {
    if (this.codec === 'aac') return this.#adtsFrames();
    if (this.#len === 0) return;
    const f = this.#out;
    f.data = this.#buf.subarray(0, this.#len);
    f.pts = this.#stamp(Math.round((this.#len * 90_000) / G711_DEFAULT_RATE));
    this.frames++;
    this.#sink.audio(f);
    this.#len = 0;
  }

  reset(): void {
    this.#len = 0;
    this.#pts = Number.NaN;
  }

  /** The frame's PTS: the PES PTS for its first frame, then extrapolated by `ticks` each. */
  #stamp(ticks: number): number {
    const pts = Number.isNaN(this.#pts) ? (Number.isNaN(this.#nextPts) ? 0 : this.#nextPts) : this.#pts;
    this.#pts = Number.NaN;
    this.#nextPts = pts + ticks;
    return pts;
  }

  #adtsFrames(): void {
    const h = this.#adts;
    const f = this.#out;
    let pos = 0;
    while (nextAdtsFrame(this.#buf.subarray(0, this.#len), pos, h)) {
      this.garbageBytes += h.skipped;
      f.data = h.payload;
      f.sampleRate = h.sampleRate;
      f.channels = h.channelConfiguration === 7 ? 8 : h.channelConfiguration || 2;
      f.audioObjectType = h.profile + 1;
      f.pts = this.#stamp(Math.round((AAC_SAMPLES_PER_FRAME * h.rawDataBlocks * 90_000) / h.sampleRate));
      this.frames++;
      this.#sink.audio(f);
      pos = h.end;
    }
    this.garbageBytes += h.skipped;
    pos += h.skipped;
    this.#buf.copyWithin(0, pos, this.#len); // a partial frame waits for the next PES
    this.#len -= pos;
  }
}
