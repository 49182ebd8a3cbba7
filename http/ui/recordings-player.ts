/// <reference lib="dom" />
// Playback of recordings with hls.js over the engine's HLS VOD playlist: wall-clock time to
// media time through each fragment's EXT-X-PROGRAM-DATE-TIME (gaps are cut out of media time
// by the discontinuities), speeds 0.5x to 16x as the video's playbackRate, seek by wall time.
import Hls from 'hls.js';
import { enc, mediaUrl } from './api.ts';

export const SPEEDS = [0.5, 1, 2, 4, 8, 16] as const;
/** One playlist covers this much wall time from the picked moment (the engine allows 6 h). */
const WINDOW_MS = 3_600_000;

interface Frag {
  start: number;
  duration: number;
  wall: number;
}

export class RecordingsPlayer {
  #hls: Hls | null = null;
  #frags: Frag[] = [];
  #window = { start: 0, end: 0 };
  #speed = 1;
  #pending: number | null = null;
  #loadedAt = 0;

  constructor(
    readonly video: HTMLVideoElement,
    readonly streamId: string,
    readonly onMessage: (text: string, isError: boolean) => void,
  ) {
    video.muted = true;
    video.addEventListener('ratechange', () => {
      if (video.playbackRate !== this.#speed) video.playbackRate = this.#speed; // a new source resets it
    });
    video.addEventListener('loadedmetadata', () => (video.playbackRate = this.#speed));
    // A playlist that ended at "now" when it was loaded: follow the recording on with a new one.
    video.addEventListener('ended', () => {
      const w = this.wallNow();
      if (w !== null && this.#window.end >= this.#loadedAt - 1000 && Date.now() - w > 3000) this.#load(w + 1, Math.min(w + 1 + WINDOW_MS, Date.now()));
      else this.onMessage('end of the recordings', false);
    });
  }

  get speed(): number {
    return this.#speed;
  }

  setSpeed(s: number): void {
    this.#speed = s;
    this.video.playbackRate = s;
  }

  /** The wall-clock time (ms) at the play head; null before anything is loaded. */
  wallNow(): number | null {
    const t = this.video.currentTime;
    const f = this.#fragAtMedia(t);
    return f === null ? null : Math.round(f.wall + (t - f.start) * 1000);
  }

  /** Plays from wall time `ms`: seeks inside the loaded playlist, else loads one from there. */
  playAt(ms: number, nowMs: number): void {
    if (this.#hls !== null && ms >= this.#window.start && ms < this.#window.end && this.#frags.length > 0) {
      const pos = this.#mediaOf(ms);
      if (pos !== null) {
        this.video.currentTime = pos;
        void this.video.play().catch(() => {});
        return;
      }
    }
    this.#load(ms, Math.min(ms + WINDOW_MS, nowMs));
  }

  close(): void {
    this.#hls?.destroy();
    this.#hls = null;
    this.#frags = [];
  }

  #load(start: number, end: number): void {
    this.close();
    if (!Hls.isSupported()) {
      this.onMessage('this browser has no Media Source Extensions: playback is not possible here', true);
      return;
    }
    this.#window = { start, end };
    this.#loadedAt = Date.now();
    this.#pending = start;
    const hls = new Hls({
      autoStartLoad: false,
      maxBufferLength: 60, // media seconds ahead: at 16x that is ~4 s of wall time
      maxMaxBufferLength: 120,
      backBufferLength: 30,
      enableWorker: true,
      lowLatencyMode: false,
    });
    this.#hls = hls;
    hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
      this.#frags = data.details.fragments.map((f) => ({ start: f.start, duration: f.duration, wall: f.programDateTime ?? 0 }));
      if (this.#pending === null) return;
      // A moment in a gap (or before the first recording) plays from the next recorded one.
      const pos = this.#mediaOf(this.#pending) ?? this.#frags[0]?.start ?? null;
      const f = pos === null ? null : this.#fragAtMedia(pos);
      if (f !== null && f.wall > this.#pending + 1000) this.onMessage(`nothing recorded at the picked moment; playing from ${new Date(f.wall).toLocaleTimeString()}`, false);
      this.#pending = null;
      hls.startLoad(pos ?? 0);
      this.video.currentTime = pos ?? 0;
      void this.video.play().catch(() => {});
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      const status = (data.response as { code?: number } | undefined)?.code;
      if (status === 404) return this.onMessage('nothing recorded from the picked moment on (only closed segments play back)', true);
      if (data.fatal) {
        this.onMessage(`playback failed: ${data.details}${status ? ` (HTTP ${status})` : ''}`, true);
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      }
    });
    const q = `start=${start}&end=${end}`;
    hls.loadSource(mediaUrl(`/api/video/recordings/${enc(this.streamId)}/playlist.m3u8?${q}`));
    hls.attachMedia(this.video);
  }

  #fragAtMedia(t: number): Frag | null {
    const fs = this.#frags;
    if (fs.length === 0) return null;
    let lo = 0, hi = fs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (fs[mid]!.start <= t) lo = mid;
      else hi = mid - 1;
    }
    return fs[lo]!;
  }

  /** Media time of wall time `ms`; null when `ms` is outside every fragment (a gap). */
  #mediaOf(ms: number): number | null {
    for (const f of this.#frags) {
      if (ms >= f.wall && ms < f.wall + f.duration * 1000) return f.start + (ms - f.wall) / 1000;
    }
    const next = this.#frags.find((f) => f.wall > ms);
    return next ? next.start : null;
  }
}
