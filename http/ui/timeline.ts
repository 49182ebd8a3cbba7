/// <reference lib="dom" />
// The recordings timeline: a day at a glance, zoomable (wheel, buttons) down to minutes.
// Recorded spans and unrecorded gaps are drawn differently; a click asks to play from that
// moment, a drag selects a range (for export). Pure drawing: the page owns data and player.
import { fmtDuration, fmtTime, h } from './dom.ts';

/** Segments closer than this are one span (the engine's own gap tolerance, http/recording-files.ts). */
export const SPAN_JOIN_MS = 1000;
const MIN_VIEW_MS = 60_000;
const DAY_MS = 86_400_000;
/** A press that moves less than this many pixels is a click, not a drag. */
const DRAG_PX = 4;
const TICK_STEPS_MS = [10_000, 30_000, 60_000, 300_000, 900_000, 1_800_000, 3_600_000, 3 * 3_600_000];

export interface Span {
  start: number;
  end: number;
}

export interface TimelineEvents {
  onPick(ms: number): void;
  onSelect(span: Span): void;
}

export class Timeline {
  readonly el: HTMLElement;
  #track: HTMLElement;
  #axis: HTMLElement;
  #layer: HTMLElement;
  #head: HTMLElement;
  #sel: HTMLElement;
  #hover: HTMLElement;
  #rec: Span[] = [];
  #gaps: Span[] = [];
  #selection: Span | null = null;
  #headMs: number | null = null;
  #day: Span;
  view: Span;

  constructor(dayStartMs: number, readonly ev: TimelineEvents) {
    this.#day = { start: dayStartMs, end: dayStartMs + DAY_MS };
    this.view = { ...this.#day };
    this.#layer = h('div', { class: 'tl-layer' });
    this.#sel = h('div', { class: 'tl-sel', hidden: true });
    this.#head = h('div', { class: 'tl-head', hidden: true });
    this.#hover = h('div', { class: 'tl-hover', hidden: true });
    this.#track = h('div', { class: 'tl-track', 'data-testid': 'timeline-track' }, this.#layer, this.#sel, this.#head, this.#hover);
    this.#axis = h('div', { class: 'tl-axis' });
    const zoomBtn = (label: string, ms: number) => h('button', { type: 'button', onclick: () => this.zoomTo(ms) }, label);
    this.el = h('div', { class: 'timeline', 'data-testid': 'timeline' },
      h('div', { class: 'tl-tools' },
        h('button', { type: 'button', title: 'earlier', onclick: () => this.pan(-0.5) }, '◀'),
        h('button', { type: 'button', title: 'later', onclick: () => this.pan(0.5) }, '▶'),
        zoomBtn('24 h', DAY_MS), zoomBtn('6 h', 6 * 3_600_000), zoomBtn('1 h', 3_600_000), zoomBtn('10 min', 600_000), zoomBtn('2 min', 120_000),
        h('span', { class: 'tl-legend' }, h('i', { class: 'sw rec' }), 'recorded', h('i', { class: 'sw gap' }), 'not recorded (gap)', h('i', { class: 'sw none' }), 'no data'),
      ),
      this.#track, this.#axis);
    this.#bind();
    this.draw();
  }

  setData(recorded: Span[], gaps: Span[]): void {
    this.#rec = recorded;
    this.#gaps = gaps;
    this.draw();
  }

  setHead(ms: number | null): void {
    this.#headMs = ms;
    this.#placeHead();
  }

  setSelection(s: Span | null): void {
    this.#selection = s;
    this.#placeSel();
  }

  /** Zooms to `spanMs` around the play head, else the selection, else the latest recording. */
  zoomTo(spanMs: number, center?: number): void {
    const c = center ?? this.#headMs ?? (this.#selection ? (this.#selection.start + this.#selection.end) / 2 : (this.#rec.at(-1)?.end ?? Date.now()));
    this.#setView(c - spanMs / 2, c + spanMs / 2);
  }

  pan(fraction: number): void {
    const w = this.view.end - this.view.start;
    this.#setView(this.view.start + w * fraction, this.view.end + w * fraction);
  }

  /** The x (px, relative to the track) of a wall time in the current view. */
  xOf(ms: number): number {
    return ((ms - this.view.start) / (this.view.end - this.view.start)) * this.#track.clientWidth;
  }

  #msAt(clientX: number): number {
    const r = this.#track.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / r.width));
    return Math.round(this.view.start + f * (this.view.end - this.view.start));
  }

  #setView(a: number, b: number): void {
    let w = Math.min(DAY_MS, Math.max(MIN_VIEW_MS, b - a));
    let s = (a + b) / 2 - w / 2;
    s = Math.max(this.#day.start, Math.min(this.#day.end - w, s));
    w = Math.min(w, this.#day.end - s);
    this.view = { start: Math.round(s), end: Math.round(s + w) };
    this.draw();
  }

  #pct(ms: number): number {
    return ((ms - this.view.start) / (this.view.end - this.view.start)) * 100;
  }

  #place(el: HTMLElement, s: Span): boolean {
    const a = Math.max(s.start, this.view.start), b = Math.min(s.end, this.view.end);
    if (b <= a) return false;
    el.style.left = `${this.#pct(a)}%`;
    el.style.width = `${Math.max(0.05, this.#pct(b) - this.#pct(a))}%`;
    return true;
  }

  draw(): void {
    this.el.dataset.viewStart = String(this.view.start);
    this.el.dataset.viewEnd = String(this.view.end);
    const parts: HTMLElement[] = [];
    const add = (cls: string, s: Span, title: string) => {
      const el = h('div', { class: cls, title, 'data-start-ms': s.start, 'data-end-ms': s.end });
      if (this.#place(el, s)) parts.push(el);
    };
    for (const s of this.#rec) add('tl-rec', s, `recorded ${fmtTime(s.start)} – ${fmtTime(s.end)} (${fmtDuration(s.end - s.start)})`);
    for (const g of this.#gaps) add('tl-gap', g, `NOT recorded ${fmtTime(g.start)} – ${fmtTime(g.end)} (${fmtDuration(g.end - g.start)})`);
    const now = Date.now();
    if (now < this.view.end) add('tl-future', { start: Math.max(now, this.view.start), end: this.view.end }, 'not yet');
    this.#layer.replaceChildren(...parts);
    this.#drawAxis();
    this.#placeHead();
    this.#placeSel();
  }

  #drawAxis(): void {
    const w = this.view.end - this.view.start;
    const step = TICK_STEPS_MS.find((s) => w / s <= 12) ?? TICK_STEPS_MS.at(-1)!;
    const offset = new Date(this.view.start).getTimezoneOffset() * 60_000; // ticks on local round times
    const ticks: HTMLElement[] = [];
    for (let t = Math.ceil((this.view.start - offset) / step) * step + offset; t <= this.view.end; t += step) {
      const label = step < 60_000 ? fmtTime(t) : fmtTime(t).slice(0, 5);
      const tick = h('span', { class: 'tl-tick' }, label);
      tick.style.left = `${this.#pct(t)}%`;
      ticks.push(tick);
    }
    this.#axis.replaceChildren(...ticks);
  }

  #placeHead(): void {
    const t = this.#headMs;
    const show = t !== null && t >= this.view.start && t <= this.view.end;
    this.#head.hidden = !show;
    if (show) this.#head.style.left = `${this.#pct(t)}%`;
  }

  #placeSel(): void {
    const s = this.#selection;
    this.#sel.hidden = s === null || !this.#place(this.#sel, s);
  }

  #bind(): void {
    const t = this.#track;
    let down: { x: number; ms: number } | null = null;
    t.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      down = { x: e.clientX, ms: this.#msAt(e.clientX) };
      t.setPointerCapture(e.pointerId);
    });
    t.addEventListener('pointermove', (e) => {
      const ms = this.#msAt(e.clientX);
      this.#hover.hidden = false;
      this.#hover.style.left = `${this.#pct(ms)}%`;
      this.#hover.textContent = fmtTime(ms);
      if (down && Math.abs(e.clientX - down.x) >= DRAG_PX) this.setSelection({ start: Math.min(down.ms, ms), end: Math.max(down.ms, ms) });
    });
    t.addEventListener('pointerleave', () => (this.#hover.hidden = true));
    t.addEventListener('pointerup', (e) => {
      if (down === null) return;
      const ms = this.#msAt(e.clientX);
      if (Math.abs(e.clientX - down.x) < DRAG_PX) this.ev.onPick(ms);
      else this.ev.onSelect({ start: Math.min(down.ms, ms), end: Math.max(down.ms, ms) });
      down = null;
    });
    t.addEventListener('wheel', (e) => {
      e.preventDefault();
      const c = this.#msAt(e.clientX);
      const k = e.deltaY > 0 ? 1.5 : 1 / 1.5;
      this.#setView(c - (c - this.view.start) * k, c + (this.view.end - c) * k);
    }, { passive: false });
  }
}

/** Joins segments into recorded spans (touching ones merge). Input sorted by start. */
export function spansOf(segs: readonly { start_ms: number; end_ms: number }[]): Span[] {
  const out: Span[] = [];
  for (const s of segs) {
    const last = out.at(-1);
    if (last && s.start_ms - last.end <= SPAN_JOIN_MS) last.end = Math.max(last.end, s.end_ms);
    else out.push({ start: s.start_ms, end: s.end_ms });
  }
  return out;
}
