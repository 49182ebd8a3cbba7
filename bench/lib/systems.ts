// One measured run per recorder: the simulator and the system under test as separate
// processes, sampled every second, then what was sent compared with what was recorded.
// This file: the shared steps and flux (the engine); the baselines are in baselines.ts.
import { mkdirSync, writeFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { ProcSampler, processTree } from './proc.ts';
import { fileErrors, fluxFrames, listFiles, type CamRecord } from './recorded.ts';
import { LatencyViewers, percentile } from './viewer.ts';
import { engineToml, gbStreamId, isPush, rtpRange, simArgs, startGbLive, type EnginePorts, type Protocol } from './push.ts';

export const ROOT = join(import.meta.dir, '..', '..');
const BUN = process.execPath;
export type System = 'flux' | 'ffmpeg' | 'floor';

export interface RunOptions {
  cameras: number;
  bitrate: number;
  codec: 'h264' | 'h265';
  height: 720 | 1080;
  protocol: Protocol;
  /** GB28181 media transport asked for in the live route. */
  gbTransport: 'udp' | 'tcp';
  durationS: number;
  verify: boolean;
  /** Live viewers for latency (flux). */
  viewers: number;
  keyframes: boolean;
  /** FLUX_* variables for the engine (config overrides, e.g. FLUX_STORAGE_PERFORMANCE_USE_IO_URING=false). */
  engineEnv: Record<string, string>;
  workDir: string;
  progress(line: string): void;
}

export interface RunResult {
  system: System;
  cameras: number;
  bitrate: number;
  cpu_pct: number;
  rss_mb: number;
  peak_rss_mb: number;
  frames_sent: number;
  frames_recorded: number;
  frames_lost: number;
  segments_bad: number;
  latency_p99_ms: number | null;
  startup_ms: number | null;
  // Extra fields.
  codec: string;
  protocol: string;
  duration_s: number;
  memory_basis: 'rss' | 'pss-sum';
  pss_mb: number;
  processes: number;
  bytes_sent: number;
  bytes_recorded: number;
  frames_skipped_by_sim: number;
  frames_lagged_by_sim: number;
  frames_dropped_engine: number | null;
  /** The engine's own counters, summed over streams (GET /api/video/streams). */
  engine_counters: Record<string, number> | null;
  segments_checked: number;
  segments_total: number;
  bad_examples: string[];
  latency_ms: { p50: number | null; p90: number | null; p99: number | null; max: number | null; samples: number; unstamped: number } | null;
  snapshot_ms: { p50: number | null; max: number | null; errors: number } | null;
  rest_rss_mb: number | null;
  rest_startup_ms: number | null;
  all_playing_ms: number | null;
  ring_fill_max: number | null;
  write_queue_max: number | null;
  sim_cpu_pct: number;
  /**
   * flux: CPU and RSS while K live viewers watch (the latency window after the recording
   * window; cpu_pct/rss_mb are recording only, the same work the baselines do).
   */
  viewers: { count: number; seconds: number; cpu_pct: number; rss_mb: number } | null;
  timeline: { t: number; cpu_pct: number; rss_mb: number }[];
  notes: string[];
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function getJson<T>(url: string, timeoutMs = 5000): Promise<T | null> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return r.ok ? ((await r.json()) as T) : null;
  } catch {
    return null;
  }
}

interface SimStats { playing: number; totals: { frames: number; bytes: number; skipped: number; lagged: number }; cameras: { cam: number; frames: number; bytes: number; preroll: number; skipped: number; lagged: number; device?: string; channel?: string }[] }

export class Sim {
  proc!: Subprocess<'ignore', 'pipe', 'pipe'>;
  port = 0;
  statsPort = 0;
  /** RTSP: a server the recorders pull from; rtmp/gb28181 (`engine` given): clients of the engine's ports. */
  async start(o: RunOptions, engine?: EnginePorts): Promise<void> {
    this.port = await freePort();
    this.statsPort = await freePort();
    const { script, args } = simArgs(engine ? o.protocol : 'rtsp', engine ?? { http: 0, rtmp: 0, sip: 0, rtpMin: 0 }, this.port);
    this.proc = Bun.spawn([BUN, join(ROOT, script), ...args, '--stats-port', `${this.statsPort}`,
      '--cameras', `${o.cameras}`, '--codec', o.codec, '--height', `${o.height}`, '--bitrate', `${o.bitrate}`], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
    const dec = new TextDecoder();
    let text = '';
    const deadline = Date.now() + 360_000; // the first run makes the clip
    for await (const chunk of this.proc.stdout) {
      text += dec.decode(chunk);
      if (text.includes('ready')) break;
      if (Date.now() > deadline) break;
    }
    if (!text.includes('ready')) throw new Error(`simulator did not start: ${text}${await new Response(this.proc.stderr).text()}`);
  }
  url(k: number, o: RunOptions): string {
    return `rtsp://127.0.0.1:${this.port}/cam${k}${o.protocol === 'rtsp-udp' ? '?transport=udp' : ''}`;
  }
  stats(): Promise<SimStats | null> {
    return getJson<SimStats>(`http://127.0.0.1:${this.statsPort}/stats`);
  }
  async stopSending(): Promise<void> {
    await getJson(`http://127.0.0.1:${this.statsPort}/stop`);
  }
  async closeAll(): Promise<void> {
    await getJson(`http://127.0.0.1:${this.statsPort}/close`);
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
    await Promise.race([this.proc.exited, sleep(3000)]);
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

/** Polls until every camera is being sent; returns ms since `t0` (or null on timeout). */
export async function waitPlaying(sim: Sim, n: number, t0: number): Promise<number | null> {
  const end = Date.now() + 30_000 + n * 100;
  while (Date.now() < end) {
    const s = await sim.stats();
    if (s && s.playing >= n) return Math.round(performance.now() - t0);
    await sleep(50);
  }
  return null;
}

export function emptyResult(system: System, o: RunOptions): RunResult {
  return {
    system, cameras: o.cameras, bitrate: o.bitrate, cpu_pct: 0, rss_mb: 0, peak_rss_mb: 0, frames_sent: 0, frames_recorded: 0,
    frames_lost: 0, segments_bad: 0, latency_p99_ms: null, startup_ms: null, codec: o.codec, protocol: o.protocol, duration_s: o.durationS,
    memory_basis: system === 'ffmpeg' ? 'pss-sum' : 'rss', pss_mb: 0, processes: 0, bytes_sent: 0, bytes_recorded: 0,
    frames_skipped_by_sim: 0, frames_lagged_by_sim: 0, frames_dropped_engine: null, engine_counters: null, segments_checked: 0, segments_total: 0, bad_examples: [],
    latency_ms: null, snapshot_ms: null, viewers: null, rest_rss_mb: null, rest_startup_ms: null, all_playing_ms: null, ring_fill_max: null,
    write_queue_max: null, sim_cpu_pct: 0, timeline: [], notes: [],
  };
}

/** The measurement window shared by all systems: `durationS` one-second samples. */
export async function measure(o: RunOptions, label: string, sampler: ProcSampler, simSampler: ProcSampler, extra?: () => Promise<string>): Promise<void> {
  sampler.startWindow();
  simSampler.startWindow();
  for (let s = 1; s <= o.durationS; s++) {
    await sleep(1000);
    const x = sampler.sample();
    const y = simSampler.sample();
    const more = extra ? await extra() : '';
    o.progress(`[${label}] ${s}/${o.durationS} s  cpu ${x.cpuPct.toFixed(0)}%  rss ${x.rssMb.toFixed(0)} MB  pss ${x.pssMb.toFixed(0)} MB${more}  (sim cpu ${y.cpuPct.toFixed(0)}%)`);
  }
}

/** Per camera: lost = sent + skipped for back-pressure - recorded (never negative). */
export function settle(r: RunResult, sim: SimStats, recs: Map<number, CamRecord>): void {
  let lost = 0;
  for (const c of sim.cameras) {
    const rec = recs.get(c.cam);
    lost += Math.max(0, c.frames + c.skipped - (rec?.frames ?? 0));
  }
  r.frames_sent = sim.totals.frames;
  r.bytes_sent = sim.totals.bytes;
  r.frames_skipped_by_sim = sim.totals.skipped;
  r.frames_lagged_by_sim = sim.totals.lagged;
  r.frames_recorded = [...recs.values()].reduce((a, x) => a + x.frames, 0);
  r.frames_lost = lost;
}

export function fill(r: RunResult, sampler: ProcSampler, simSampler: ProcSampler, basis: 'rss' | 'pss-sum'): void {
  r.cpu_pct = round(sampler.meanCpuPct());
  const mean = (f: (s: { rssMb: number; pssMb: number }) => number) => sampler.samples.reduce((a, s) => a + f(s), 0) / Math.max(1, sampler.samples.length);
  r.pss_mb = round(mean((s) => s.pssMb));
  r.rss_mb = basis === 'rss' ? round(mean((s) => s.rssMb)) : r.pss_mb;
  r.peak_rss_mb = round(basis === 'rss' ? sampler.peakRssMb : Math.max(...sampler.samples.map((s) => s.pssMb), 0));
  r.sim_cpu_pct = round(simSampler.meanCpuPct());
  r.timeline = sampler.samples.map((s) => ({ t: s.t, cpu_pct: round(s.cpuPct), rss_mb: round(basis === 'rss' ? s.rssMb : s.pssMb) }));
}

export const round = (x: number) => Math.round(x * 10) / 10;

/** Checks a sample of files (all with verify): remux-read every packet, and decode two of them. */
export async function checkFiles(r: RunResult, files: string[], verify: boolean): Promise<void> {
  r.segments_total = files.length;
  const pick = verify ? files : files.filter((_, i) => i % Math.max(1, Math.floor(files.length / 8)) === 0).slice(0, 8);
  for (let i = 0; i < pick.length; i++) {
    const err = await fileErrors(pick[i]!, verify && i < 2);
    r.segments_checked++;
    if (err !== '') { r.segments_bad++; if (r.bad_examples.length < 5) r.bad_examples.push(`${pick[i]}: ${err.slice(0, 200)}`); }
  }
}

// ---------------------------------------------------------------------------------------
// flux

async function enginePorts(o: RunOptions): Promise<EnginePorts> {
  return { http: await freePort(), rtmp: await freePort(), sip: await freePort(), rtpMin: rtpRange(o.cameras).min };
}

/** Spawns the engine as `npm start` does and waits for its first 200 on /healthz (polled every 2 ms). */
export async function startEngine(cfgPath: string, cwd: string, port: number, env: Record<string, string>): Promise<{ proc: Subprocess<'ignore', 'pipe', 'pipe'>; startupMs: number | null; log: () => string }> {
  const t0 = performance.now();
  // As `npm start` runs it (README: Running it as a service): the launcher (the start-up bundle
  // when current), and mimalloc keeping freed pages 1 s.
  const proc = Bun.spawn([BUN, join(ROOT, 'engine/launch.ts'), '--config', cfgPath], { cwd, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', env: { MIMALLOC_PURGE_DELAY: '1000', ...process.env, ...env } });
  let text = '';
  const pump = async (s: ReadableStream<Uint8Array>) => { const d = new TextDecoder(); for await (const c of s) text = (text + d.decode(c)).slice(-20_000); };
  void pump(proc.stdout); void pump(proc.stderr);
  let startupMs: number | null = null;
  const end = Date.now() + 30_000;
  while (Date.now() < end && proc.exitCode === null) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) { startupMs = Math.round(performance.now() - t0); break; }
    } catch { /* not listening yet */ }
    await sleep(2);
  }
  if (startupMs === null) throw new Error(`engine did not answer /healthz: ${text}`);
  return { proc, startupMs, log: () => text };
}

export async function stopProc(p: Subprocess, signal: NodeJS.Signals, waitMs: number): Promise<void> {
  if (p.exitCode === null && p.signalCode === null) p.kill(signal);
  await Promise.race([p.exited, sleep(waitMs)]);
  if (p.exitCode === null && p.signalCode === null) { p.kill('SIGKILL'); await p.exited; }
}

/** Engine RSS at rest: no streams, 2 s after /healthz answers. */
export async function fluxAtRest(o: RunOptions): Promise<{ rssMb: number; startupMs: number | null }> {
  const dir = join(o.workDir, 'flux-rest');
  mkdirSync(dir, { recursive: true });
  const ports = await enginePorts(o);
  const cfg = join(dir, 'config.toml');
  writeFileSync(cfg, engineToml({ ...o, protocol: 'rtsp' }, dir, ports, []));
  const e = await startEngine(cfg, dir, ports.http, o.engineEnv);
  await sleep(2000);
  const s = new ProcSampler(() => [e.proc.pid]).sample();
  await stopProc(e.proc, 'SIGTERM', 10_000);
  return { rssMb: round(s.rssMb), startupMs: e.startupMs };
}

export async function runFlux(o: RunOptions): Promise<RunResult> {
  const r = emptyResult('flux', o);
  const rest = await fluxAtRest(o);
  r.rest_rss_mb = rest.rssMb;
  r.rest_startup_ms = rest.startupMs;
  const sim = new Sim();
  const push = isPush(o.protocol);
  if (!push) await sim.start(o);
  const dir = join(o.workDir, `flux-${o.cameras}`);
  mkdirSync(dir, { recursive: true });
  const ports = await enginePorts(o);
  const port = ports.http;
  const cfg = join(dir, 'config.toml');
  writeFileSync(cfg, engineToml(o, dir, ports, push ? [] : Array.from({ length: o.cameras }, (_, i) => sim.url(i + 1, o))));
  const t0 = performance.now();
  const e = await startEngine(cfg, dir, port, o.engineEnv);
  r.startup_ms = e.startupMs;
  let camIds = Array.from({ length: o.cameras }, (_, i) => `cam${i + 1}`);
  try {
    if (push) await sim.start(o, ports); // publishers and devices need the engine's ports open
    if (o.protocol === 'gb28181') { // the runner asks for each channel's live stream, as an operator would
      const cams = (await sim.stats())?.cameras.map((c) => ({ device: c.device ?? '', channel: c.channel ?? '' })) ?? [];
      camIds = cams.map((c) => gbStreamId(c.device, c.channel));
      const errors = await startGbLive(`http://127.0.0.1:${port}`, cams, o.gbTransport, 30_000 + o.cameras * 200);
      if (errors.length > 0) r.notes.push(`live route failed for ${errors.length} channels, e.g. ${errors[0]}`);
    }
    r.all_playing_ms = await waitPlaying(sim, o.cameras, t0);
    if (r.all_playing_ms === null) r.notes.push('not every camera was playing after the start-up timeout');
    const base = `http://127.0.0.1:${port}`;
    const ids = Array.from({ length: Math.min(o.viewers, o.cameras) }, (_, i) => camIds[Math.floor((i * o.cameras) / Math.max(1, Math.min(o.viewers, o.cameras)))]!);
    const sampler = new ProcSampler(() => processTree(e.proc.pid));
    const simSampler = new ProcSampler(() => [sim.proc.pid]);
    let ringMax = 0, queueMax = 0;
    let viewers: LatencyViewers | null = null;
    const status = async () => {
      const s = await getJson<{ workers: { ring_fill: number }[]; writer: { queue_depth: number } }>(`${base}/api/video/system`, 900);
      if (s === null) return '  (system: no answer)';
      const ring = Math.max(0, ...s.workers.map((w) => w.ring_fill));
      ringMax = Math.max(ringMax, ring);
      queueMax = Math.max(queueMax, s.writer.queue_depth);
      const st = await getJson<{ streams: { counters?: { ring_drops: number; dropped_frames: number } | null }[] }>(`${base}/api/video/streams`, 900);
      const drops = st ? st.streams.reduce((a, x) => a + (x.counters?.ring_drops ?? 0) + (x.counters?.dropped_frames ?? 0), 0) : -1;
      return `  ring ${(ring * 100).toFixed(1)}%  queue ${s.writer.queue_depth}  drops ${drops}${viewers ? `  latency n=${viewers.ms.length}` : ''}`;
    };
    // Recording only (what the baselines do): the CPU and memory the ratios compare.
    await measure(o, `flux ${o.cameras} cams`, sampler, simSampler, status);
    fill(r, sampler, simSampler, 'rss');
    // Then the latency window: K live viewers on the WebSocket while recording goes on. Live
    // preview is work the baselines do not do (each viewer costs the engine ~1 % of a core
    // at 1080p25 here), so its CPU is reported apart, not folded into the ratios.
    viewers = new LatencyViewers(base, ids, o.codec);
    const viewS = Math.min(20, Math.max(6, Math.round(o.durationS / 3)));
    const vSampler = new ProcSampler(() => processTree(e.proc.pid));
    await measure({ ...o, durationS: viewS }, `flux ${o.cameras} cams, ${ids.length} viewers`, vSampler, new ProcSampler(() => [sim.proc.pid]), status);
    r.viewers = { count: ids.length, seconds: viewS, cpu_pct: round(vSampler.meanCpuPct()), rss_mb: round(vSampler.samples.reduce((a, s) => a + s.rssMb, 0) / Math.max(1, vSampler.samples.length)) };
    r.peak_rss_mb = round(Math.max(r.peak_rss_mb, vSampler.peakRssMb));
    r.ring_fill_max = round(ringMax * 1000) / 1000;
    r.write_queue_max = queueMax;
    // Snapshots: a few cameras, one after the other, while everything still runs.
    const snaps: number[] = [];
    let snapErrors = 0;
    for (let i = 0; i < Math.min(5, o.cameras); i++) {
      const t = performance.now();
      try {
        const res = await fetch(`${base}/api/video/streams/${camIds[i]}/snapshot`, { signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        if (res.ok) snaps.push(performance.now() - t); else snapErrors++;
      } catch { snapErrors++; }
    }
    snaps.sort((a, b) => a - b);
    r.snapshot_ms = { p50: pround(percentile(snaps, 50)), max: pround(snaps.at(-1) ?? null), errors: snapErrors };
    viewers.close();
    const lat = viewers.ms.sort((a, b) => a - b);
    r.latency_ms = { p50: pround(percentile(lat, 50)), p90: pround(percentile(lat, 90)), p99: pround(percentile(lat, 99)), max: pround(lat.at(-1) ?? null), samples: lat.length, unstamped: viewers.unstamped };
    r.latency_p99_ms = r.latency_ms.p99;
    if (viewers.unstamped > 0 && lat.length === 0) r.notes.push('live fragments carried no SEI send time (stripped?)');
    if (o.keyframes) {
      const k = (await getJson<{ keyframes?: { stored: number; skipped: number; failed: number } }>(`${base}/api/video/system`))?.keyframes;
      if (k) r.notes.push(`keyframe JPEGs stored ${k.stored}, skipped ${k.skipped}, failed ${k.failed}`);
    }
    await sim.stopSending();
    await sleep(2000); // let the engine drain what is in flight
    const simStats = await sim.stats();
    const streams = await getJson<{ streams?: { stream_id: string; counters?: { dropped_frames: number; ring_drops: number } | null }[] } | { stream_id: string; counters?: { dropped_frames: number; ring_drops: number } | null }[]>(`${base}/api/video/streams`);
    const list = Array.isArray(streams) ? streams : streams?.streams ?? [];
    r.frames_dropped_engine = list.reduce((a, s) => a + (s.counters?.dropped_frames ?? 0) + (s.counters?.ring_drops ?? 0), 0);
    const sums: Record<string, number> = {};
    for (const s of list) for (const [k, v] of Object.entries(s.counters ?? {})) if (typeof v === 'number' && !k.endsWith('_bps')) sums[k] = (sums[k] ?? 0) + v;
    r.engine_counters = sums;
    await stopProc(e.proc, 'SIGTERM', 20_000);
    const recs = new Map<number, CamRecord>();
    for (let k = 1; k <= o.cameras; k++) recs.set(k, fluxFrames(join(dir, 'data', camIds[k - 1]!)));
    if (simStats) settle(r, simStats, recs);
    const files = listFiles(join(dir, 'data'), '.mp4').filter((f) => /\/(cam\d+|gb_\d+_\d+)\//.test(f));
    r.bytes_recorded = files.reduce((a, f) => a + statSync(f).size, 0);
    for (const rec of recs.values()) for (const b of rec.bad) { r.segments_bad++; if (r.bad_examples.length < 5) r.bad_examples.push(b); }
    await checkFiles(r, files, o.verify);
    r.processes = 1;
  } finally {
    await stopProc(e.proc, 'SIGKILL', 1000);
    await sim.stop();
  }
  return r;
}

const pround = (x: number | null) => (x === null ? null : round(x));
