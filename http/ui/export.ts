/// <reference lib="dom" />
// Export of a recorded range as one MP4: streamed from /export with a progress bar (the
// total estimated from the segments' sizes), then saved as a download.
import { apiFetch, enc } from './api.ts';
import { fmtBytes, fmtTime, h } from './dom.ts';
import type { Segment } from './api.ts';
import type { Span } from './timeline.ts';

/** The engine refuses longer exports (http/routes-playback.ts); a browser holds the file in memory too. */
export const EXPORT_MAX_MS = 6 * 3_600_000;

/** Bytes the segments overlapping [a, b) hold in it, pro rata: the progress bar's estimate. */
function estimate(segs: readonly Segment[], s: Span): number {
  let n = 0;
  for (const g of segs) {
    const a = Math.max(g.start_ms, s.start), b = Math.min(g.end_ms, s.end);
    if (b > a && g.end_ms > g.start_ms) n += (g.bytes * (b - a)) / (g.end_ms - g.start_ms);
  }
  return n;
}

export class ExportPanel {
  readonly el: HTMLElement;
  #range: HTMLElement;
  #bar: HTMLProgressElement;
  #msg: HTMLElement;
  #go: HTMLButtonElement;
  #cancel: HTMLButtonElement;
  #span: Span | null = null;
  #abort: AbortController | null = null;

  constructor(readonly streamId: string, readonly segments: () => readonly Segment[]) {
    this.#range = h('span', { class: 'mono', 'data-testid': 'export-range' }, 'drag on the timeline to select a range');
    this.#bar = h('progress', { max: 1, value: 0, hidden: true, 'data-testid': 'export-progress' });
    this.#msg = h('span', { class: 'muted', role: 'status', 'data-testid': 'export-msg' });
    this.#go = h('button', { type: 'button', disabled: true, onclick: () => void this.#run() }, 'Export MP4');
    this.#cancel = h('button', { type: 'button', hidden: true, onclick: () => this.#abort?.abort() }, 'Cancel');
    this.el = h('div', { class: 'export' }, h('strong', {}, 'Export '), this.#range, this.#go, this.#cancel, this.#bar, this.#msg);
  }

  setSpan(s: Span | null): void {
    this.#span = s;
    this.#go.disabled = s === null || this.#abort !== null;
    if (s === null) return void (this.#range.textContent = 'drag on the timeline to select a range');
    const long = s.end - s.start > EXPORT_MAX_MS;
    this.#range.textContent = `${fmtTime(s.start)} – ${fmtTime(s.end)}${long ? ' (longer than 6 h: select less)' : ''}`;
    if (long) this.#go.disabled = true;
  }

  async #run(): Promise<void> {
    const s = this.#span;
    if (s === null) return;
    const total = estimate(this.segments(), s);
    const abort = new AbortController();
    this.#abort = abort;
    this.#go.disabled = true;
    this.#cancel.hidden = false;
    this.#bar.hidden = false;
    this.#bar.value = 0;
    this.#msg.className = 'muted';
    this.#msg.textContent = 'starting…';
    try {
      const r = await apiFetch(`/api/video/recordings/${enc(this.streamId)}/export?start=${Math.floor(s.start)}&end=${Math.ceil(s.end)}`, { signal: abort.signal });
      if (!r.ok || r.body === null) {
        const j = (await r.json().catch(() => ({}))) as { error?: string };
        throw new Error(j.error ?? `HTTP ${r.status}`);
      }
      const chunks: Uint8Array[] = [];
      let got = 0;
      const reader = r.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        got += value.length;
        this.#bar.value = total > 0 ? Math.min(0.99, got / total) : 0;
        this.#msg.textContent = `${fmtBytes(got)}${total > 0 ? ` of about ${fmtBytes(total)}` : ''}`;
      }
      this.#bar.value = 1;
      const name = /filename="([^"]+)"/.exec(r.headers.get('content-disposition') ?? '')?.[1] ?? `${this.streamId}.mp4`;
      const gaps = JSON.parse(r.headers.get('x-flux-gaps') ?? '[]') as unknown[];
      const url = URL.createObjectURL(new Blob(chunks as BlobPart[], { type: 'video/mp4' }));
      const a = h('a', { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      this.#msg.textContent = `done: ${name}, ${fmtBytes(got)}${gaps.length ? `, ${gaps.length} unrecorded gaps kept as jumps in time` : ''}`;
      this.el.dataset.done = name;
    } catch (e) {
      this.#msg.className = 'error';
      this.#msg.textContent = abort.signal.aborted ? 'cancelled' : `export failed: ${(e as Error).message}`;
    } finally {
      this.#abort = null;
      this.#cancel.hidden = true;
      this.#go.disabled = this.#span === null;
    }
  }
}
