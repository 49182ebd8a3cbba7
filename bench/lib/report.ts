// Bench output: the table on stdout, the JSON file, and a markdown report with hand-written
// SVG charts (CPU and memory against cameras, latency percentiles) under bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunResult } from './systems.ts';

export interface Ratios { cpu: number | null; rss: number | null; cpu_floor: number | null; rss_floor: number | null }

const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? Math.round((a / b) * 1000) / 1000 : null);

/** engine/ffmpeg and engine/floor for the largest camera count that both ran. */
export function ratios(runs: RunResult[]): Ratios {
  const at = (sys: string, n: number) => runs.find((r) => r.system === sys && r.cameras === n);
  const counts = [...new Set(runs.map((r) => r.cameras))].sort((a, b) => b - a);
  const pair = (other: string) => counts.find((n) => at('flux', n) && at(other, n));
  const nf = pair('ffmpeg'), nl = pair('floor');
  return {
    cpu: nf === undefined ? null : ratio(at('flux', nf)!.cpu_pct, at('ffmpeg', nf)!.cpu_pct),
    rss: nf === undefined ? null : ratio(at('flux', nf)!.rss_mb, at('ffmpeg', nf)!.rss_mb),
    cpu_floor: nl === undefined ? null : ratio(at('flux', nl)!.cpu_pct, at('floor', nl)!.cpu_pct),
    rss_floor: nl === undefined ? null : ratio(at('flux', nl)!.rss_mb, at('floor', nl)!.rss_mb),
  };
}

const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? '-' : x.toFixed(d));

export function table(runs: RunResult[], r: Ratios): string {
  const head = ['system', 'cams', 'Mbit/s', 'CPU %', 'mem MB', 'peak MB', 'sent', 'recorded', 'lost', 'bad seg', 'lat p50', 'lat p99', 'CPU % viewing', 'snap ms', 'start ms', 'sim CPU %'];
  const rows = runs.map((x) => [
    x.system, `${x.cameras}`, f(x.bitrate / 1e6), f(x.cpu_pct), `${f(x.rss_mb)}${x.memory_basis === 'pss-sum' ? ' (PSS)' : ''}`, f(x.peak_rss_mb),
    `${x.frames_sent}`, `${x.frames_recorded}`, `${x.frames_lost}`, `${x.segments_bad}/${x.segments_checked}`,
    f(x.latency_ms?.p50), f(x.latency_p99_ms), x.viewers ? `${f(x.viewers.cpu_pct)} (${x.viewers.count})` : '-', f(x.snapshot_ms?.p50, 0), f(x.startup_ms, 0), f(x.sim_cpu_pct),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (c: string[]) => '| ' + c.map((s, i) => s.padEnd(w[i]!)).join(' | ') + ' |';
  const out = [line(head), '|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|', ...rows.map(line)];
  const rs: string[] = [];
  if (r.cpu !== null) rs.push(`engine/ffmpeg: CPU ${f(r.cpu, 3)}, memory ${f(r.rss, 3)}`);
  if (r.cpu_floor !== null) rs.push(`engine/floor: CPU ${f(r.cpu_floor, 2)}, memory ${f(r.rss_floor, 2)}`);
  const flux = runs.filter((x) => x.system === 'flux');
  if (flux.some((x) => x.viewers)) rs.push('CPU % is recording only (the work the baselines do); CPU % viewing: the same with N live viewers on the WebSocket, where the latency is measured');
  for (const x of flux.slice(0, 1)) rs.push(`engine at rest: ${f(x.rest_rss_mb)} MB RSS, start-up ${f(x.rest_startup_ms, 0)} ms (no streams)`);
  return out.join('\n') + (rs.length ? '\n' + rs.join('\n') : '');
}

/** The first camera count with loss or a saturated CPU, or null when none. */
export function knee(runs: RunResult[], cores: number): number | null {
  const flux = runs.filter((r) => r.system === 'flux').sort((a, b) => a.cameras - b.cameras);
  const bad = flux.find((r) => r.frames_lost > 0 || r.cpu_pct + r.sim_cpu_pct >= cores * 100 * 0.9 || r.cpu_pct >= cores * 100 * 0.8);
  return bad ? bad.cameras : null;
}

const COLORS: Record<string, string> = { flux: '#1f77b4', ffmpeg: '#d62728', floor: '#2ca02c' };

/** A line chart (one line per system) of `y` against cameras; plain SVG, no library. */
export function lineChart(title: string, yLabel: string, runs: RunResult[], y: (r: RunResult) => number): string {
  const W = 560, H = 320, L = 60, R = 110, T = 36, B = 44;
  const xs = [...new Set(runs.map((r) => r.cameras))].sort((a, b) => a - b);
  const ymax = Math.max(1, ...runs.map(y)) * 1.1;
  const xmax = Math.max(...xs), xmin = xs.length > 1 ? 0 : 0;
  const px = (x: number) => L + ((x - xmin) / Math.max(1, xmax - xmin)) * (W - L - R);
  const py = (v: number) => H - B - (v / ymax) * (H - T - B);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`, `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`];
  for (let i = 0; i <= 4; i++) {
    const v = (ymax / 4) * i;
    parts.push(`<line x1="${L}" y1="${py(v)}" x2="${W - R}" y2="${py(v)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${py(v) + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text>`);
  }
  for (const x of xs) parts.push(`<text x="${px(x)}" y="${H - B + 16}" text-anchor="middle">${x}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">cameras</text>`,
    `<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">${esc(yLabel)}</text>`);
  let legend = 0;
  for (const sys of ['flux', 'ffmpeg', 'floor']) {
    const pts = runs.filter((r) => r.system === sys).sort((a, b) => a.cameras - b.cameras);
    if (pts.length === 0) continue;
    const c = COLORS[sys]!;
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((r) => `${px(r.cameras).toFixed(1)},${py(y(r)).toFixed(1)}`).join(' ')}"/>`);
    for (const r of pts) parts.push(`<circle cx="${px(r.cameras).toFixed(1)}" cy="${py(y(r)).toFixed(1)}" r="3" fill="${c}"><title>${sys} ${r.cameras}: ${y(r)}</title></circle>`);
    parts.push(`<rect x="${W - R + 12}" y="${T + legend * 18}" width="12" height="12" fill="${c}"/>`, `<text x="${W - R + 30}" y="${T + legend * 18 + 10}">${sys}</text>`);
    legend++;
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** Bars of p50/p90/p99/max ingest-to-WebSocket latency per flux run. */
export function latencyChart(runs: RunResult[]): string {
  const flux = runs.filter((r) => r.system === 'flux' && r.latency_ms && r.latency_ms.samples > 0);
  const W = 560, H = 320, L = 60, T = 36, B = 44, R = 110;
  const keys = ['p50', 'p90', 'p99', 'max'] as const;
  const colors = ['#9ecae1', '#4292c6', '#08519c', '#f16913'];
  const ymax = Math.max(1, ...flux.flatMap((r) => keys.map((k) => r.latency_ms![k] ?? 0))) * 1.1;
  const py = (v: number) => H - B - (v / ymax) * (H - T - B);
  const group = (W - L - R) / Math.max(1, flux.length);
  const bw = Math.min(24, (group - 10) / keys.length);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">Ingest-to-WebSocket latency (ms)</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`, `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`];
  for (let i = 0; i <= 4; i++) {
    const v = (ymax / 4) * i;
    parts.push(`<line x1="${L}" y1="${py(v)}" x2="${W - R}" y2="${py(v)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${py(v) + 4}" text-anchor="end">${v.toFixed(v < 10 ? 1 : 0)}</text>`);
  }
  flux.forEach((r, g) => {
    const x0 = L + g * group + (group - bw * keys.length) / 2;
    keys.forEach((k, i) => {
      const v = r.latency_ms![k] ?? 0;
      parts.push(`<rect x="${(x0 + i * bw).toFixed(1)}" y="${py(v).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(H - B - py(v)).toFixed(1)}" fill="${colors[i]}"><title>${r.cameras} cams ${k}: ${v} ms</title></rect>`);
    });
    parts.push(`<text x="${(L + g * group + group / 2).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${r.cameras} cams</text>`);
  });
  keys.forEach((k, i) => parts.push(`<rect x="${W - R + 12}" y="${T + i * 18}" width="12" height="12" fill="${colors[i]}"/>`, `<text x="${W - R + 30}" y="${T + i * 18 + 10}">${k}</text>`));
  parts.push('</svg>');
  return parts.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function writeReport(dir: string, name: string, command: string, runs: RunResult[], r: Ratios, kneeAt: number | null, env: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}-cpu.svg`), lineChart('CPU (% of one core) vs cameras', 'CPU %', runs, (x) => x.cpu_pct));
  writeFileSync(join(dir, `${name}-memory.svg`), lineChart('Memory (MB: RSS; PSS sum for ffmpeg) vs cameras', 'MB', runs, (x) => x.rss_mb));
  writeFileSync(join(dir, `${name}-latency.svg`), latencyChart(runs));
  const md = [
    `# FLUX bench: ${name}`, '', `Command: \`${command}\``, '', env, '', table(runs, r), '',
    kneeAt === null ? 'Knee: none within the counts run (no loss, CPU not saturated).' : `Knee: ${kneeAt} cameras (first count with loss or CPU saturation).`, '',
    `![CPU](${name}-cpu.svg)`, `![Memory](${name}-memory.svg)`, `![Latency](${name}-latency.svg)`, '',
    '## Notes per run', '',
    ...runs.flatMap((x) => [`- ${x.system} ${x.cameras}: sim skipped ${x.frames_skipped_by_sim} (back-pressure), lagged ${x.frames_lagged_by_sim}; engine dropped ${x.frames_dropped_engine ?? '-'}; ring max ${x.ring_fill_max ?? '-'}; queue max ${x.write_queue_max ?? '-'}; all playing after ${x.all_playing_ms ?? '-'} ms; latency ${JSON.stringify(x.latency_ms)}; snapshot ${JSON.stringify(x.snapshot_ms)}${x.notes.length ? '; ' + x.notes.join('; ') : ''}${x.bad_examples.length ? '; bad: ' + x.bad_examples.join(' | ') : ''}`]),
    '',
  ].join('\n');
  const path = join(dir, `${name}.md`);
  writeFileSync(path, md);
  return path;
}
