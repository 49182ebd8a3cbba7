// Live viewers for latency: each opens a stream's WebSocket preview and, for every fMP4
// fragment, reads the simulator's SEI send time out of the mdat (bench/sim/sei.ts).
import { stampOfFragment, wallUs } from '../sim/sei.ts';

/** The preview starts with the latest GOP (older frames, sent at once): skip its first seconds. */
const WARMUP_MS = 3000;

export class LatencyViewers {
  readonly ms: number[] = [];
  fragments = 0;
  /** Fragments without our SEI: the audio ones (one per AAC frame), and video if the stamp was stripped. */
  unstamped = 0;
  errors: string[] = [];
  #sockets: WebSocket[] = [];

  constructor(baseUrl: string, ids: string[], codec: 'h264' | 'h265') {
    for (const id of ids) {
      const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/api/video/streams/${id}/live`);
      ws.binaryType = 'arraybuffer';
      const opened = performance.now();
      let binaries = 0;
      ws.onmessage = (ev) => {
        if (typeof ev.data === 'string') return;
        const now = wallUs();
        if (binaries++ === 0) return; // the init segment
        this.fragments++;
        const sent = stampOfFragment(new Uint8Array(ev.data as ArrayBuffer), codec);
        if (sent < 0) { this.unstamped++; return; }
        if (performance.now() - opened >= WARMUP_MS) this.ms.push((now - sent) / 1000);
      };
      ws.onerror = () => this.errors.push(`${id}: websocket error`);
      this.#sockets.push(ws);
    }
  }

  close(): void {
    for (const ws of this.#sockets) ws.close();
  }
}

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
