/// <reference lib="dom" />
// Snapshots page (/snapshots/{id}?day=YYYY-MM-DD): the stored keyframe JPEGs of a day, grouped
// by hour, newest first; a click plays the recording from that moment.
import { api, enc, mediaUrl, type StreamView } from './api.ts';
import { dayStart, fmtDate, fmtTime, h, parseDay } from './dom.ts';
import type { Page } from './main.ts';

const DAY_MS = 86_400_000;
/** Thumbnails one page shows: a day at the default 10 s interval is 8 640; the newest this many. */
const MAX_SHOWN = 600;

interface Keyframe {
  ms: number;
  bytes: number;
  url: string;
}

export const snapshotsPage: Page = ({ root, params, query, navigate, setTitle }) => {
  const id = params.id;
  setTitle(id ? `Snapshots ${id}` : 'Snapshots');
  if (id === undefined) {
    const list = h('ul', { class: 'choices' });
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Snapshots')), h('p', {}, 'Choose a stream:'), list);
    api<{ streams: StreamView[] }>('/api/video/streams').then(
      ({ streams }) => list.append(...streams.map((s) => h('li', {}, h('a', { href: `/snapshots/${enc(s.stream_id)}`, class: 'mono' }, s.stream_id)))),
      (e: Error) => list.append(h('li', { class: 'error' }, e.message)),
    );
    return;
  }
  const day = parseDay(query.get('day') ?? '') ?? dayStart(Date.now());
  const dayInput = h('input', { type: 'date', value: fmtDate(day) });
  dayInput.addEventListener('change', () => {
    const d = parseDay(dayInput.value);
    if (d !== null) navigate(`/snapshots/${enc(id)}?day=${fmtDate(d)}`);
  });
  const status = h('span', { class: 'muted' }, 'loading…');
  const gallery = h('div', { class: 'gallery', 'data-testid': 'gallery' });
  const latest = h('img', { class: 'latest', alt: 'latest keyframe' });
  latest.onerror = () => latest.replaceWith(h('p', { class: 'muted' }, 'No current picture: the stream is not running or has sent no keyframe yet.'));
  latest.src = mediaUrl(`/api/video/streams/${enc(id)}/snapshot?width=640`);
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Snapshots ', h('span', { class: 'mono' }, id)), dayInput,
      h('a', { href: `/recordings/${enc(id)}?day=${fmtDate(day)}` }, 'recordings'), h('a', { href: `/live/${enc(id)}` }, 'live'), status),
    h('div', { class: 'snap-now' }, h('div', { class: 'muted' }, 'Now (decoded from the latest keyframe)'), latest),
    gallery,
  );
  api<{ keyframes: Keyframe[] }>(`/api/video/streams/${enc(id)}/keyframes?start=${day}&end=${day + DAY_MS}&limit=10000`).then(
    ({ keyframes }) => {
      const shown = keyframes.slice(-MAX_SHOWN).reverse();
      status.textContent = keyframes.length === 0
        ? `no keyframes stored on ${fmtDate(day)}`
        : `${keyframes.length} keyframes stored on ${fmtDate(day)}${keyframes.length > MAX_SHOWN ? `, the newest ${MAX_SHOWN} shown` : ''}`;
      let hour = -1;
      for (const k of shown) {
        const hr = new Date(k.ms).getHours();
        if (hr !== hour) {
          hour = hr;
          gallery.append(h('h3', { class: 'hour' }, `${String(hr).padStart(2, '0')}:00`));
        }
        gallery.append(h('a', { class: 'thumb', href: `/recordings/${enc(id)}?day=${fmtDate(day)}&t=${k.ms}`, title: `play from ${fmtTime(k.ms)}`, 'data-ms': k.ms },
          h('img', { src: mediaUrl(k.url), loading: 'lazy', alt: fmtTime(k.ms) }), h('span', {}, fmtTime(k.ms))));
      }
    },
    (e: Error) => (status.textContent = `cannot read the keyframes: ${e.message}`),
  );
};
