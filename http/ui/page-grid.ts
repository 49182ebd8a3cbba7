/// <reference lib="dom" />
// Live grid (/grid): every camera at a glance. Up to LIVE_GRID_MAX tiles play live video over
// the WebSocket; more than that show keyframe snapshots refreshed every few seconds, so a
// wall of cameras costs the browser and the engine little.
import { api, enc, mediaUrl, type StreamView } from './api.ts';
import { fmtTime, h } from './dom.ts';
import { LivePlayer } from './live-player.ts';
import type { Page } from './main.ts';
import { stateBadge } from './page-streams.ts';

/** Live decoders a grid runs at most: 4 small H.264 decodes are cheap, 16 are not. */
export const LIVE_GRID_MAX = 4;
const THUMB_REFRESH_MS = 5000;
const THUMB_WIDTH = 480;

export const gridPage: Page = ({ root, query, navigate, setTitle }) => {
  setTitle('Live');
  const tiles = h('div', { class: 'tiles' });
  const modeNote = h('span', { class: 'muted' });
  const players: LivePlayer[] = [];
  const thumbs: { img: HTMLImageElement; label: HTMLElement; id: string }[] = [];
  let timer: ReturnType<typeof setInterval> | null = null;
  let gone = false;

  const modeSel = h('select', { 'aria-label': 'grid mode' }, h('option', { value: 'auto' }, 'auto'), h('option', { value: 'live' }, 'live video'), h('option', { value: 'thumbs' }, 'snapshots'));
  modeSel.value = query.get('mode') ?? 'auto';
  modeSel.addEventListener('change', () => navigate(modeSel.value === 'auto' ? '/grid' : `/grid?mode=${modeSel.value}`));

  const refreshThumbs = () => {
    for (const t of thumbs) {
      const next = new Image();
      next.onload = () => {
        t.img.src = next.src;
        t.label.textContent = `snapshot ${fmtTime(Date.now())}`;
      };
      next.onerror = () => (t.label.textContent = 'no picture (stream not running or no keyframe yet)');
      next.src = mediaUrl(`/api/video/streams/${enc(t.id)}/snapshot?width=${THUMB_WIDTH}&t=${Date.now()}`);
    }
  };

  void (async () => {
    let streams: StreamView[];
    try {
      streams = (await api<{ streams: StreamView[] }>('/api/video/streams')).streams;
    } catch (e) {
      tiles.append(h('p', { class: 'error' }, `Cannot read the streams: ${(e as Error).message}`));
      return;
    }
    if (gone) return;
    streams.sort((a, b) => a.stream_id.localeCompare(b.stream_id));
    const mode = modeSel.value;
    const live = mode === 'live' || (mode === 'auto' && streams.length <= LIVE_GRID_MAX);
    modeNote.textContent = live
      ? `${streams.length} camera${streams.length === 1 ? '' : 's'}, live video`
      : `${streams.length} cameras, snapshots every ${THUMB_REFRESH_MS / 1000} s (live video above ${LIVE_GRID_MAX} cameras costs too much; open one to watch it live)`;
    tiles.dataset.mode = live ? 'live' : 'thumbs';
    tiles.style.setProperty('--cols', String(Math.max(2, Math.ceil(Math.sqrt(streams.length)))));
    if (streams.length === 0) tiles.append(h('p', { class: 'muted' }, 'No streams. ', h('a', { href: '/streams' }, 'Add one.')));
    for (const s of streams) {
      const label = h('span', { class: 'tile-note' });
      let media: HTMLElement;
      if (live) {
        const v = h('video', { muted: true, autoplay: true, playsinline: true });
        players.push(new LivePlayer(v, s.stream_id, (st, d) => (label.textContent = d ? `${st}: ${d}` : st)));
        media = v;
      } else {
        const img = h('img', { alt: `${s.stream_id} snapshot` });
        thumbs.push({ img, label, id: s.stream_id });
        media = img;
      }
      tiles.append(h('a', { class: 'tile', href: `/live/${enc(s.stream_id)}`, 'data-stream': s.stream_id },
        media, h('div', { class: 'tile-cap' }, h('span', { class: 'mono' }, s.stream_id), stateBadge(s.state), label)));
    }
    if (!live) {
      refreshThumbs();
      timer = setInterval(refreshThumbs, THUMB_REFRESH_MS);
    }
  })();

  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Live'), modeSel, modeNote), tiles);
  return () => {
    gone = true;
    if (timer !== null) clearInterval(timer);
    for (const p of players) p.close();
  };
};
