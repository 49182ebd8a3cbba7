/// <reference lib="dom" />
// Live preview in a <video>: the engine's WebSocket (a JSON codec message, the fMP4 init
// segment, then one fragment per frame) fed into Media Source Extensions, kept near the live
// edge, reconnecting with a growing pause when the stream or the socket goes away.
import { enc, wsUrl } from './api.ts';

/** Appends waiting while the SourceBuffer is busy: ~8 s at 25 fps. Past it we are not keeping up: reconnect. */
const MAX_QUEUED = 200;
/** Behind the live edge by more than this, jump to it (a background tab, a slow decoder). */
const MAX_LATENCY_S = 1.5;
/** Buffer kept behind the play head; older media is removed so a long watch stays small. */
const KEEP_BEHIND_S = 10;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10_000;

export type LiveStatus = 'connecting' | 'playing' | 'waiting' | 'unsupported' | 'closed';

export class LivePlayer {
  #ws: WebSocket | null = null;
  #ms: MediaSource | null = null;
  #sb: SourceBuffer | null = null;
  #mime = '';
  #queue: ArrayBuffer[] = [];
  #closed = false;
  #retryMs = RETRY_MIN_MS;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #started = false;
  /** Bytes and fragments received (shown under the picture). */
  bytes = 0;
  fragments = 0;

  constructor(
    readonly video: HTMLVideoElement,
    readonly streamId: string,
    readonly onStatus: (s: LiveStatus, detail: string) => void = () => {},
  ) {
    video.muted = true;
    video.playsInline = true;
    this.#connect();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#ws?.close();
    this.#ws = null;
    this.#resetMedia();
    this.onStatus('closed', '');
  }

  #connect(): void {
    if (this.#closed) return;
    this.onStatus('connecting', 'opening the live socket');
    const ws = new WebSocket(wsUrl(`/api/video/streams/${enc(this.streamId)}/live`));
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') this.#hello(e.data);
      else this.#push(e.data as ArrayBuffer);
    };
    ws.onclose = (e) => {
      if (this.#ws !== ws || this.#closed) return;
      this.#ws = null;
      const why = e.reason || (e.code === 1006 ? 'the stream is not running or the engine is unreachable' : `socket closed (${e.code})`);
      this.onStatus('waiting', `${why}; retrying in ${Math.round(this.#retryMs / 1000)} s`);
      this.#timer = setTimeout(() => this.#connect(), this.#retryMs);
      this.#retryMs = Math.min(RETRY_MAX_MS, this.#retryMs * 2);
    };
  }

  #reconnect(why: string): void {
    const ws = this.#ws;
    this.#resetMedia();
    if (ws !== null) ws.close(4000, why);
    this.onStatus('waiting', why);
  }

  #hello(text: string): void {
    let msg: { type?: string; mime?: string };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.type !== 'init' || typeof msg.mime !== 'string') return;
    if (!('MediaSource' in window) || !MediaSource.isTypeSupported(msg.mime)) {
      this.onStatus('unsupported', `this browser cannot decode ${msg.mime}`);
      this.#ws?.close();
      this.#closed = true;
      return;
    }
    if (msg.mime === this.#mime && this.#ms !== null) return; // same codecs: the new init appends as is
    this.#resetMedia();
    this.#mime = msg.mime;
    const ms = new MediaSource();
    this.#ms = ms;
    this.video.src = URL.createObjectURL(ms);
    ms.addEventListener('sourceopen', () => {
      if (this.#ms !== ms) return;
      URL.revokeObjectURL(this.video.src);
      const sb = ms.addSourceBuffer(this.#mime);
      sb.addEventListener('updateend', () => this.#afterAppend());
      sb.addEventListener('error', () => this.#reconnect('the browser refused a fragment'));
      this.#sb = sb;
      this.#drain();
    }, { once: true });
  }

  #push(b: ArrayBuffer): void {
    this.bytes += b.byteLength;
    this.fragments++;
    if (this.#queue.length >= MAX_QUEUED) return this.#reconnect('the browser fell behind the stream; reconnecting');
    this.#queue.push(b);
    this.#drain();
  }

  #drain(): void {
    const sb = this.#sb;
    if (sb === null || sb.updating || this.#queue.length === 0) return;
    const v = this.video;
    // Trim what is long played, before it fills the browser's quota.
    if (sb.buffered.length > 0 && v.currentTime - sb.buffered.start(0) > 2 * KEEP_BEHIND_S) {
      sb.remove(sb.buffered.start(0), v.currentTime - KEEP_BEHIND_S);
      return;
    }
    try {
      sb.appendBuffer(this.#queue.shift()!);
    } catch (e) {
      this.#reconnect(`append failed: ${(e as Error).message}`);
    }
  }

  #afterAppend(): void {
    const sb = this.#sb;
    const v = this.video;
    if (sb === null) return;
    if (sb.buffered.length > 0) {
      const end = sb.buffered.end(sb.buffered.length - 1);
      if (!this.#started || end - v.currentTime > MAX_LATENCY_S || v.currentTime < sb.buffered.start(0)) {
        v.currentTime = Math.max(sb.buffered.start(sb.buffered.length - 1), end - 0.2);
      }
      if (!this.#started || v.paused) {
        this.#started = true;
        this.#retryMs = RETRY_MIN_MS;
        v.play().then(() => this.onStatus('playing', ''), () => this.onStatus('waiting', 'the browser blocked playback; click the picture'));
      }
    }
    this.#drain();
  }

  #resetMedia(): void {
    this.#queue = [];
    this.#sb = null;
    this.#mime = '';
    this.#started = false;
    if (this.#ms !== null) {
      this.#ms = null;
      this.video.removeAttribute('src');
      this.video.load();
    }
  }
}
