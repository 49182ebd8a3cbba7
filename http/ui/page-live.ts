/// <reference lib="dom" />
// Live page (/live/{id}): one stream full size over the WebSocket, with its state and what
// the socket delivers, refreshed every 2 s.
import { api, enc, type StreamView } from './api.ts';
import { fmtBitrate, fmtBytes, h } from './dom.ts';
import { LivePlayer } from './live-player.ts';
import type { Page } from './main.ts';
import { stateBadge } from './page-streams.ts';

export const livePage: Page = ({ root, params, setTitle }) => {
  const id = params.id!;
  setTitle(`Live ${id}`);
  const video = h('video', { class: 'live-video', 'data-testid': 'live-video', muted: true, autoplay: true, playsinline: true });
  const status = h('span', { class: 'player-status', 'data-testid': 'live-status' }, 'connecting');
  const info = h('span', { class: 'muted' });
  const badge = h('span');
  const player = new LivePlayer(video, id, (s, detail) => {
    status.textContent = detail ? `${s}: ${detail}` : s;
    status.dataset.status = s;
  });
  video.addEventListener('click', () => void video.play().catch(() => {}));
  root.append(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Live ', h('span', { class: 'mono' }, id)), badge,
      h('a', { href: `/recordings/${enc(id)}` }, 'recordings'),
      h('a', { href: `/snapshots/${enc(id)}` }, 'snapshots'),
      h('a', { href: '/grid' }, 'all cameras')),
    h('div', { class: 'live-frame' }, video),
    h('div', { class: 'player-bar' }, status, info),
  );
  const tick = async () => {
    try {
      const s = await api<StreamView>(`/api/video/streams/${enc(id)}`);
      badge.replaceChildren(stateBadge(s.state));
      const q = video.getVideoPlaybackQuality?.();
      info.textContent = [
        s.counters ? fmtBitrate(s.counters.bitrate_bps) : null,
        video.videoWidth ? `${video.videoWidth}x${video.videoHeight}` : null,
        `${player.fragments} fragments, ${fmtBytes(player.bytes)} received`,
        q ? `${q.totalVideoFrames} frames shown, ${q.droppedVideoFrames} dropped by the browser` : null,
        s.error,
      ].filter(Boolean).join(' · ');
    } catch (e) {
      info.textContent = (e as Error).message;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), 2000);
  return () => {
    clearInterval(timer);
    player.close();
  };
};
