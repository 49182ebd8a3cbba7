// Live-preview fan-out: one preview muxer per watched stream (in its media worker), any
// number of viewers here. A viewer gets the init segment, then fragments from a keyframe
// on; one that cannot keep up is skipped forward to the next keyframe (bounded buffer).
import { codecStringsFromInit } from '../media/fmp4-codec.ts';
import { FLAG_INIT, FLAG_KEYFRAME } from '../workers/ring-format.ts';
import { log } from './log.ts';
import type { MediaPool, StreamHandle } from './media-pool.ts';

/**
 * Unsent bytes a viewer may have queued before it is cut back to keyframes: ~4 s of a
 * 4 Mbit/s camera. More would only add latency; less drops frames on a short hiccup.
 */
export const MAX_VIEWER_BUFFER_BYTES = 2 << 20;
/** Viewers of one stream; each costs one socket copy per fragment. */
export const MAX_VIEWERS_PER_STREAM = 64;

/** What the hub needs of a WebSocket (Bun's ServerWebSocket fits). */
export interface ViewerSocket {
  send(data: Uint8Array | string): number;
  getBufferedAmount(): number;
  close(code?: number, reason?: string): void;
}

export interface ViewerStats {
  fragments: number;
  /** Fragments skipped because the viewer was behind (it resumes at a keyframe). */
  skipped: number;
}

class Viewer {
  readonly stats: ViewerStats = { fragments: 0, skipped: 0 };
  needInit = true;
  needKeyframe = true;
  constructor(readonly ws: ViewerSocket) {}
}

class LiveStream {
  readonly viewers = new Set<Viewer>();
  init: Uint8Array | null = null;
  /** The JSON text message that precedes the init: MSE needs the codec strings first. */
  hello = '';
  constructor(readonly streamId: string) {}
}

export class LiveHub {
  #pool: MediaPool;
  #bySlot = new Map<number, LiveStream>();
  #byId = new Map<string, LiveStream>();

  constructor(pool: MediaPool) {
    this.#pool = pool;
  }

  viewerCount(streamId: string): number {
    return this.#byId.get(streamId)?.viewers.size ?? 0;
  }

  /** Adds a viewer; the first one turns the stream's preview muxer on. */
  attach(h: StreamHandle, ws: ViewerSocket): Viewer | null {
    let st = this.#byId.get(h.spec.streamId);
    if (st === undefined) {
      st = new LiveStream(h.spec.streamId);
      this.#byId.set(h.spec.streamId, st);
      this.#bySlot.set(h.slot, st);
    }
    if (st.viewers.size >= MAX_VIEWERS_PER_STREAM) return null;
    const v = new Viewer(ws);
    st.viewers.add(v);
    if (st.viewers.size === 1) {
      this.#pool.setPreview(h, true).catch((e: Error) => log.warn(`stream ${h.spec.streamId}: preview on failed: ${e.message}`));
    }
    return v;
  }

  /** Removes a viewer; the last one turns the preview muxer off (no muxing for nobody). */
  detach(h: StreamHandle, v: Viewer): void {
    const st = this.#byId.get(h.spec.streamId);
    if (st === undefined || !st.viewers.delete(v)) return;
    const { fragments, skipped } = v.stats;
    log.info(`live viewer of ${h.spec.streamId} left: ${fragments} fragments sent, ${skipped} skipped${skipped > 0 ? ' (slow or joined mid-GOP)' : ''}`);
    if (st.viewers.size === 0) {
      this.#byId.delete(h.spec.streamId);
      this.#bySlot.delete(h.slot);
      this.#pool.setPreview(h, false).catch(() => {
        /* the stream or its worker is gone: nothing to turn off */
      });
    }
  }

  /** Closes every viewer of a stream (it was removed). */
  closeStream(streamId: string): void {
    const st = this.#byId.get(streamId);
    if (st === undefined) return;
    for (const v of st.viewers) v.ws.close(1001, 'stream removed');
    st.viewers.clear();
    this.#byId.delete(streamId);
    for (const [slot, s] of this.#bySlot) if (s === st) this.#bySlot.delete(slot);
  }

  /** A preview record from a worker's out ring; `payload` is valid during this call only. */
  onFragment(h: StreamHandle, flags: number, _ts: number, payload: Uint8Array): void {
    const st = this.#bySlot.get(h.slot);
    if (st === undefined) return;
    if ((flags & FLAG_INIT) !== 0) {
      st.init = payload.slice(); // kept for viewers that join later
      const codecs = codecStringsFromInit(st.init);
      st.hello = JSON.stringify({ type: 'init', stream_id: st.streamId, codecs, mime: `video/mp4; codecs="${codecs.join(', ')}"` });
      for (const v of st.viewers) {
        v.needInit = true;
        v.needKeyframe = true;
      }
      return;
    }
    const key = (flags & FLAG_KEYFRAME) !== 0;
    for (const v of st.viewers) {
      if (v.needKeyframe && !key) {
        v.stats.skipped++;
        continue;
      }
      if (v.ws.getBufferedAmount() > MAX_VIEWER_BUFFER_BYTES) {
        v.needKeyframe = true; // what follows would depend on what we skip
        v.stats.skipped++;
        continue;
      }
      if (v.needInit) {
        if (st.init === null) continue;
        v.ws.send(st.hello);
        v.ws.send(st.init);
        v.needInit = false;
      }
      v.ws.send(payload); // Bun copies into the socket's buffer
      v.needKeyframe = false;
      v.stats.fragments++;
    }
  }
}

export type { Viewer };
