/// <reference lib="dom" />
// GB28181 page: the registered devices and their channels (live stream links) and a PTZ pad
// for the chosen channel, when the engine serves GB28181; otherwise it says it is not enabled.
import { api, ApiError, apiFetch, enc } from './api.ts';
import { fmtTime, h } from './dom.ts';
import type { Page } from './main.ts';

interface Channel {
  channel_id: string;
  name?: string;
  status?: string;
  live_stream_id?: string | null;
}
interface Device {
  device_id: string;
  name?: string;
  manufacturer?: string;
  model?: string;
  status?: string;
  transport?: string;
  address?: string;
  last_seen_ms?: number;
  channels?: Channel[];
}

/** The pad's buttons in a 3x3 layout, then zoom: the engine's PTZ command names (protocols/gb28181/ptz.ts). */
const PAD: [string, string][] = [
  ['upleft', '◤'], ['up', '▲'], ['upright', '◥'], ['left', '◀'], ['stop', '■'], ['right', '▶'],
  ['downleft', '◣'], ['down', '▼'], ['downright', '◢'], ['zoomin', '+'], ['zoomout', '−'],
];
/** "Not enabled" answers: 501 (a build without GB28181), 404 (an older one), 503 (switched off in config.toml). */
const DISABLED = new Set([501, 404, 503]);
const REFRESH_MS = 5000;

function ptzPad(deviceId: string, channelId: string): HTMLElement {
  const msg = h('span', { class: 'muted', role: 'status' });
  const speed = h('input', { type: 'range', min: 0, max: 255, value: 128 });
  const send = async (command: string) => {
    try {
      await api(`/api/video/gb28181/devices/${enc(deviceId)}/ptz`, { method: 'POST', json: { command, channel_id: channelId, speed: Number(speed.value) } });
      msg.className = 'muted';
      msg.textContent = `${command} sent`;
    } catch (e) {
      msg.className = 'error';
      msg.textContent = e instanceof ApiError ? e.message : String(e);
    }
  };
  return h('div', { class: 'card' }, h('h2', {}, 'PTZ ', h('span', { class: 'mono' }, channelId)),
    h('div', { class: 'ptz-pad' }, ...PAD.map(([c, label]) => h('button', { type: 'button', title: c, onclick: () => void send(c) }, label))),
    h('label', {}, 'speed ', speed), ' ', msg);
}

export const devicesPage: Page = ({ root, setTitle, navigate }) => {
  setTitle('GB28181');
  const body = h('div', { 'data-testid': 'devices' }, h('p', { class: 'muted' }, 'loading…'));
  const pad = h('div', { class: 'ptz-slot' });
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'GB28181 devices')), body, pad);
  let timer: ReturnType<typeof setTimeout> | null = null;
  let gone = false;

  const status = h('p', { class: 'muted', role: 'status' });
  root.append(status);
  const liveUrl = (deviceId: string, channelId: string) => `/api/video/gb28181/devices/${enc(deviceId)}/channels/${enc(channelId)}/live`;
  /** INVITEs the channel (it becomes a recorded stream) and opens its live view. */
  const startLive = async (deviceId: string, channelId: string) => {
    status.className = 'muted';
    status.textContent = `inviting ${channelId}…`;
    try {
      const r = await api<{ stream_id: string }>(liveUrl(deviceId, channelId), { method: 'POST' });
      navigate(`/live/${enc(r.stream_id)}`);
    } catch (e) {
      status.className = 'error';
      status.textContent = e instanceof ApiError ? e.message : String(e);
    }
  };
  /** Sends BYE and ends the channel's stream (its recordings stay). */
  const stopLive = async (deviceId: string, channelId: string) => {
    try {
      await api(liveUrl(deviceId, channelId), { method: 'DELETE' });
      status.className = 'muted';
      status.textContent = `${channelId} stopped`;
      if (timer !== null) clearTimeout(timer);
      await load();
    } catch (e) {
      status.className = 'error';
      status.textContent = e instanceof ApiError ? e.message : String(e);
    }
  };

  const load = async () => {
    const r = await apiFetch('/api/video/gb28181/devices');
    if (DISABLED.has(r.status)) {
      const j = (await r.json().catch(() => ({}))) as { error?: string };
      body.replaceChildren(h('div', { class: 'notice', 'data-testid': 'gb-disabled' },
        h('strong', {}, 'GB28181 not enabled'), h('p', { class: 'muted' }, j.error ?? 'this engine does not serve GB28181 devices'),
        h('p', { class: 'muted' }, 'Registered devices, their channels and the PTZ pad appear here once GB28181 is enabled in config.toml ([video.gb28181]).')));
      return;
    }
    if (!r.ok) return void body.replaceChildren(h('p', { class: 'error' }, `cannot read the devices: HTTP ${r.status}`));
    const j = (await r.json()) as Device[] | { devices?: Device[] };
    const devices = Array.isArray(j) ? j : (j.devices ?? []);
    if (devices.length === 0) {
      body.replaceChildren(h('p', { class: 'muted', 'data-testid': 'gb-empty' }, 'GB28181 is enabled; no device has registered yet.'));
    } else {
      const rows = devices.flatMap((d) => [
        h('tr', { 'data-device': d.device_id },
          h('td', { class: 'mono' }, d.device_id), h('td', {}, d.name ?? ''),
          h('td', {}, h('span', { class: `state state-${d.status === 'online' ? 'live' : 'stopped'}` }, d.status ?? '?')),
          h('td', {}, [d.manufacturer, d.model].filter(Boolean).join(' ')), h('td', { class: 'mono' }, `${d.transport ?? ''} ${d.address ?? ''}`),
          h('td', {}, d.last_seen_ms ? fmtTime(d.last_seen_ms) : '—'), h('td', { class: 'num' }, String(d.channels?.length ?? 0)),
          h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => pad.replaceChildren(ptzPad(d.device_id, d.device_id)) }, 'PTZ'))),
        ...(d.channels ?? []).map((ch) => h('tr', { class: 'sub' },
          h('td', { class: 'mono' }, `  └ ${ch.channel_id}`), h('td', {}, ch.name ?? ''), h('td', {}, ch.status ?? ''), h('td', {}), h('td', {}), h('td', {}),
          h('td', {}, ch.live_stream_id
            ? h('span', {}, h('a', { href: `/live/${enc(ch.live_stream_id)}` }, 'live'), ' ',
              h('button', { type: 'button', class: 'link', onclick: () => void stopLive(d.device_id, ch.channel_id) }, 'stop'))
            : h('button', { type: 'button', class: 'link', 'data-start-live': ch.channel_id, disabled: d.status !== 'online', onclick: () => void startLive(d.device_id, ch.channel_id) }, 'watch')),
          h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => pad.replaceChildren(ptzPad(d.device_id, ch.channel_id)) }, 'PTZ')))),
      ]);
      const head = ['Device / channel', 'Name', 'Status', 'Make', 'Address', 'Last seen', 'Channels', ''];
      body.replaceChildren(h('table', { class: 'grid-table' }, h('thead', {}, h('tr', {}, ...head.map((t) => h('th', {}, t)))), h('tbody', {}, ...rows)));
    }
    if (!gone) timer = setTimeout(() => void load().catch(() => {}), REFRESH_MS);
  };
  load().catch((e: Error) => body.replaceChildren(h('p', { class: 'error' }, e.message)));
  return () => {
    gone = true;
    if (timer !== null) clearTimeout(timer);
  };
};
