/// <reference lib="dom" />
// System page: the writer, disk, CPU and memory, and each media worker's load and ring fill,
// from /api/video/system every 3 s; the raw figures are at /metrics.
import { api, mediaUrl } from './api.ts';
import { fmtBitrate, fmtBytes, fmtDuration, h } from './dom.ts';
import type { Page } from './main.ts';

interface System {
  uptime_ms: number;
  writer: { kind: string; native_status: string; queue_depth: number };
  storage: { base_path: string; recorded_bytes: number; segments: number; disk_total_bytes: number | null; disk_free_bytes: number | null };
  process: { cpu_percent: number; rss_bytes: number; heap_used_bytes: number };
  host: { cpus: number; load_average: number[]; mem_total_bytes?: number; mem_free_bytes?: number };
  workers: { index: number; alive: boolean; streams: number; bytes_per_sec: number; ring_fill: number }[];
  streams: { total: number; live: number };
}

/** A bar for a 0..1 figure, amber past `warn` and red past `bad`. */
function meter(f: number, warn = 0.7, bad = 0.9): HTMLElement {
  const cls = f >= bad ? 'bad' : f >= warn ? 'warn' : 'ok';
  const m = h('span', { class: `meter ${cls}`, title: `${(f * 100).toFixed(1)} %` }, h('i'));
  (m.firstChild as HTMLElement).style.width = `${Math.min(100, Math.max(0, f * 100))}%`;
  return m;
}

const row = (k: string, ...v: (Node | string)[]) => h('tr', {}, h('th', {}, k), h('td', {}, ...v));

export const systemPage: Page = ({ root, setTitle }) => {
  setTitle('System');
  const cards = h('div', { class: 'cards', 'data-testid': 'system' }, h('p', { class: 'muted' }, 'loading…'));
  const workers = h('tbody');
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'System'), h('a', { href: mediaUrl('/metrics'), target: '_blank' }, 'Prometheus metrics (/metrics)')),
    cards,
    h('h2', {}, 'Media workers'),
    h('table', { class: 'grid-table' }, h('thead', {}, h('tr', {}, ...['Worker', 'Alive', 'Streams', 'Ingest', 'Ring fill', ''].map((t) => h('th', {}, t)))), workers),
  );
  const tick = async () => {
    let s: System;
    try {
      s = await api<System>('/api/video/system');
    } catch (e) {
      cards.replaceChildren(h('p', { class: 'error' }, `cannot read the system state: ${(e as Error).message}`));
      return;
    }
    const d = s.storage;
    const used = d.disk_total_bytes !== null && d.disk_free_bytes !== null ? 1 - d.disk_free_bytes / d.disk_total_bytes : null;
    const memUsed = s.host.mem_total_bytes && s.host.mem_free_bytes !== undefined ? 1 - s.host.mem_free_bytes / s.host.mem_total_bytes : null;
    cards.replaceChildren(
      h('section', { class: 'card' }, h('h2', {}, 'Writer'), h('table', { class: 'kv' },
        row('kind', h('strong', { 'data-testid': 'writer-kind' }, s.writer.kind)), row('native addon', s.writer.native_status),
        row('write queue', String(s.writer.queue_depth)), row('uptime', fmtDuration(s.uptime_ms)),
        row('streams', `${s.streams.live} live of ${s.streams.total}`))),
      h('section', { class: 'card' }, h('h2', {}, 'Storage'), h('table', { class: 'kv' },
        row('path', h('span', { class: 'mono' }, d.base_path)),
        row('disk used', used === null ? 'unknown' : `${(used * 100).toFixed(1)} %`, used === null ? '' : meter(used, 0.8, 0.95)),
        row('free', d.disk_free_bytes === null ? 'unknown' : `${fmtBytes(d.disk_free_bytes)} of ${fmtBytes(d.disk_total_bytes)}`),
        row('recorded', `${fmtBytes(d.recorded_bytes)} in ${d.segments.toLocaleString('en-US')} segments`))),
      h('section', { class: 'card' }, h('h2', {}, 'CPU and memory'), h('table', { class: 'kv' },
        row('engine CPU', `${s.process.cpu_percent} % of one core`, meter(s.process.cpu_percent / 100 / Math.max(1, s.host.cpus))),
        row('load average', `${s.host.load_average.map((x) => x.toFixed(2)).join(' ')} on ${s.host.cpus} cores`),
        row('engine memory', `${fmtBytes(s.process.rss_bytes)} resident, ${fmtBytes(s.process.heap_used_bytes)} JS heap`),
        row('host memory', memUsed === null ? 'unknown' : `${fmtBytes(s.host.mem_free_bytes)} free of ${fmtBytes(s.host.mem_total_bytes)}`, memUsed === null ? '' : meter(memUsed)))),
    );
    workers.replaceChildren(...s.workers.map((w) => h('tr', {},
      h('td', {}, String(w.index)), h('td', {}, w.alive ? h('span', { class: 'state state-live' }, 'alive') : h('span', { class: 'state state-stopped' }, 'down')),
      h('td', { class: 'num' }, String(w.streams)), h('td', { class: 'num' }, fmtBitrate(w.bytes_per_sec * 8)),
      h('td', { class: 'num' }, `${(w.ring_fill * 100).toFixed(1)} %`), h('td', {}, meter(w.ring_fill, 0.5, 0.8)))));
  };
  void tick();
  const timer = setInterval(() => void tick(), 3000);
  return () => clearInterval(timer);
};
