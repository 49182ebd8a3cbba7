/// <reference lib="dom" />
// Recordings page (/recordings/{id}?day=YYYY-MM-DD&t=ms): the day's timeline, playback from
// any moment at 0.5x-16x, seek by time, and export of a selected range. `t` makes a link
// that plays from that moment.
import { api, enc, type Recordings, type Segment, type StreamView } from './api.ts';
import { dayStart, fmtDate, fmtDuration, fmtTime, h, parseDay } from './dom.ts';
import { ExportPanel } from './export.ts';
import type { Page, PageContext } from './main.ts';
import { RecordingsPlayer, SPEEDS } from './recordings-player.ts';
import { spansOf, Timeline, type Span } from './timeline.ts';

const DAY_MS = 86_400_000;
const REFRESH_MS = 10_000;
/** Segments read for one day at most (paged 10 000 at a time): a day of 10 s segments is 8 640. */
const MAX_SEGMENTS = 50_000;

/** Without an id: the streams to choose from. */
function chooser({ root, setTitle }: PageContext): void {
  setTitle('Recordings');
  const list = h('ul', { class: 'choices' });
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Recordings')), h('p', {}, 'Choose a stream:'), list);
  api<{ streams: StreamView[] }>('/api/video/streams').then(
    ({ streams }) => list.append(...streams.map((s) => h('li', {}, h('a', { href: `/recordings/${enc(s.stream_id)}`, class: 'mono' }, s.stream_id)))),
    (e: Error) => list.append(h('li', { class: 'error' }, e.message)),
  );
}

async function loadDay(id: string, start: number, end: number): Promise<{ segments: Segment[]; gaps: Span[] }> {
  const segments: Segment[] = [];
  const gaps: Span[] = [];
  let from = start;
  for (;;) {
    const r = await api<Recordings>(`/api/video/recordings/${enc(id)}?start=${from}&end=${end}&limit=10000`);
    segments.push(...r.segments);
    gaps.push(...r.gaps.map((g) => ({ start: g.start_ms, end: g.end_ms })));
    if (!r.truncated || r.next_start === undefined || segments.length >= MAX_SEGMENTS) break;
    from = r.next_start;
  }
  return { segments, gaps };
}

export const recordingsPage: Page = (ctx) => {
  const { root, params, query, navigate, setTitle } = ctx;
  if (params.id === undefined) return chooser(ctx);
  const id = params.id;
  setTitle(`Recordings ${id}`);
  const t0 = Number(query.get('t'));
  const day = parseDay(query.get('day') ?? '') ?? dayStart(Number.isFinite(t0) && t0 > 0 ? t0 : Date.now());
  const dayEnd = day + DAY_MS;
  let segments: Segment[] = [];
  let gone = false;

  const summary = h('span', { class: 'muted', 'data-testid': 'rec-summary' }, 'loading…');
  const msg = h('p', { class: 'muted', 'data-testid': 'play-msg' }, 'Click the timeline to play from that moment; drag to select a range to export.');
  const say = (text: string, isError: boolean) => {
    msg.className = isError ? 'error' : 'muted';
    msg.textContent = text;
  };
  const video = h('video', { class: 'rec-video', 'data-testid': 'rec-video', muted: true, playsinline: true });
  const player = new RecordingsPlayer(video, id, say);
  const clock = h('span', { class: 'clock mono', 'data-testid': 'play-clock' }, '--:--:--');
  const exporter = new ExportPanel(id, () => segments);

  const playAt = (ms: number) => {
    say(`playing from ${fmtDate(ms)} ${fmtTime(ms)}`, false);
    player.playAt(ms, Date.now());
    history.replaceState(null, '', `/recordings/${enc(id)}?day=${fmtDate(day)}&t=${Math.round(ms)}`);
  };
  const timeline = new Timeline(day, {
    onPick: playAt,
    onSelect: (s) => {
      exporter.setSpan(s);
      timeline.setSelection(s);
    },
  });

  const speedBtns = SPEEDS.map((s) =>
    h('button', { type: 'button', class: s === 1 ? 'speed active' : 'speed', 'data-speed': s, onclick: () => {
      player.setSpeed(s);
      for (const b of speedBtns) b.classList.toggle('active', Number(b.dataset.speed) === s);
    } }, `${s}x`));
  const jump = (d: number) => {
    const w = player.wallNow();
    if (w !== null) playAt(w + d);
  };
  const goto = h('input', { type: 'text', class: 'mono', size: 9, placeholder: 'HH:MM:SS', 'data-testid': 'goto', title: 'go to a time of this day (Enter)' });
  goto.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    const m = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(goto.value.trim());
    if (!m) return say('type a time as HH:MM or HH:MM:SS', true);
    const d = new Date(day);
    d.setHours(Number(m[1]), Number(m[2]), Number(m[3] ?? 0), 0);
    playAt(d.getTime());
  });
  const playBtn = h('button', { type: 'button', onclick: () => (video.paused ? void video.play().catch(() => {}) : video.pause()) }, 'play / pause');

  const dayLink = (d: number) => `/recordings/${enc(id)}?day=${fmtDate(d)}`;
  const dayInput = h('input', { type: 'date', value: fmtDate(day) });
  dayInput.addEventListener('change', () => {
    const d = parseDay(dayInput.value);
    if (d !== null) navigate(dayLink(d));
  });
  root.append(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Recordings ', h('span', { class: 'mono' }, id)),
      h('a', { href: dayLink(day - 1), title: 'previous day' }, '◀'), dayInput,
      h('a', { href: dayLink(day + 1.5 * DAY_MS), title: 'next day' }, '▶'),
      h('a', { href: `/live/${enc(id)}` }, 'live'), h('a', { href: `/snapshots/${enc(id)}?day=${fmtDate(day)}` }, 'snapshots'),
      summary),
    timeline.el,
    h('div', { class: 'rec-player' }, video),
    h('div', { class: 'player-bar' }, playBtn, h('button', { type: 'button', onclick: () => jump(-10_000) }, '−10 s'),
      h('button', { type: 'button', onclick: () => jump(10_000) }, '+10 s'), h('span', { class: 'speeds' }, ...speedBtns),
      h('label', {}, 'go to ', goto), clock),
    msg,
    exporter.el,
  );

  const refresh = async () => {
    try {
      const d = await loadDay(id, day, Math.min(dayEnd, Date.now()));
      if (gone) return;
      segments = d.segments;
      const spans = spansOf(segments);
      timeline.setData(spans, d.gaps);
      const rec = spans.reduce((n, s) => n + (s.end - s.start), 0);
      const gapMs = d.gaps.reduce((n, g) => n + (g.end - g.start), 0);
      summary.textContent = segments.length === 0
        ? `nothing recorded on ${fmtDate(day)}`
        : `${fmtDuration(rec)} recorded in ${segments.length} segments; ${d.gaps.length} gaps (${fmtDuration(gapMs)} not recorded)`;
    } catch (e) {
      if (!gone) summary.textContent = `cannot read the recordings: ${(e as Error).message}`;
    }
  };
  void refresh();
  const today = Date.now() < dayEnd;
  const refreshTimer = today ? setInterval(() => void refresh(), REFRESH_MS) : null;
  const headTimer = setInterval(() => {
    const w = player.wallNow();
    timeline.setHead(w);
    clock.textContent = w === null ? '--:--:--' : `${fmtTime(w, true)} · ${player.speed}x${video.paused ? ' · paused' : ''}`;
    clock.dataset.wallMs = w === null ? '' : String(w);
  }, 200);
  if (Number.isFinite(t0) && t0 >= day && t0 < dayEnd) {
    timeline.zoomTo(3_600_000, t0);
    playAt(t0);
  }
  return () => {
    gone = true;
    if (refreshTimer !== null) clearInterval(refreshTimer);
    clearInterval(headTimer);
    player.close();
  };
};
