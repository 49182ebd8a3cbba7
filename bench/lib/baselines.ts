// The baselines the engine is measured against, run like it against the same simulator:
// ffmpeg = one `ffmpeg -c copy -f segment` per camera (how Frigate and Shinobi record);
// floor = bench/floor (raw RTSP bytes to files: the least CPU a recorder can spend).
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { ProcSampler } from './proc.ts';
import { listFiles, mp4Frames, rawFrames, type CamRecord } from './recorded.ts';
import { checkFiles, emptyResult, fill, measure, ROOT, settle, Sim, sleep, stopProc, waitPlaying, type RunOptions, type RunResult } from './systems.ts';


export async function runFfmpeg(o: RunOptions): Promise<RunResult> {
  const r = emptyResult('ffmpeg', o);
  const sim = new Sim();
  await sim.start(o);
  const dir = join(o.workDir, `ffmpeg-${o.cameras}`);
  const procs: Subprocess[] = [];
  const t0 = performance.now();
  try {
    for (let k = 1; k <= o.cameras; k++) {
      const out = join(dir, `cam${k}`);
      mkdirSync(out, { recursive: true });
      // Frigate's record arguments (segment muxer, stream copy, reset timestamps), 60 s segments like the engine.
      procs.push(Bun.spawn(['ffmpeg', '-nostdin', '-hide_banner', '-loglevel', 'error', '-rtsp_transport', o.protocol === 'rtsp-udp' ? 'udp' : 'tcp',
        '-i', sim.url(k, o).replace('?transport=udp', ''), '-map', '0', '-c', 'copy', '-f', 'segment', '-segment_time', '60',
        '-segment_format', 'mp4', '-reset_timestamps', '1', '-strftime', '1', join(out, '%Y%m%d%H%M%S.mp4')],
        { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }));
    }
    r.all_playing_ms = await waitPlaying(sim, o.cameras, t0);
    r.startup_ms = r.all_playing_ms;
    const pids = () => procs.map((p) => p.pid);
    const sampler = new ProcSampler(pids);
    const simSampler = new ProcSampler(() => [sim.proc.pid]);
    await measure(o, `ffmpeg ${o.cameras} procs`, sampler, simSampler);
    fill(r, sampler, simSampler, 'pss-sum');
    await sim.stopSending();
    await sleep(2000);
    const simStats = await sim.stats();
    await sim.closeAll(); // ffmpeg ignores SIGINT while blocked on a silent RTSP socket; EOF ends it cleanly
    await Promise.race([Promise.all(procs.map((p) => p.exited)), sleep(10_000)]);
    await Promise.all(procs.map((p) => stopProc(p, 'SIGINT', 15_000)));
    const recs = new Map<number, CamRecord>();
    for (let k = 1; k <= o.cameras; k++) recs.set(k, await mp4Frames(join(dir, `cam${k}`)));
    if (simStats) settle(r, simStats, recs);
    const files = listFiles(dir, '.mp4');
    r.bytes_recorded = files.reduce((a, f) => a + statSync(f).size, 0);
    for (const rec of recs.values()) for (const b of rec.bad) { r.segments_bad++; if (r.bad_examples.length < 5) r.bad_examples.push(b); }
    await checkFiles(r, files, o.verify);
    r.processes = procs.length;
  } finally {
    await Promise.all(procs.map((p) => stopProc(p, 'SIGKILL', 1000)));
    await sim.stop();
  }
  return r;
}

export const FLOOR_BIN = join(ROOT, 'target', 'release', 'flux-bench-floor');

/** Builds bench/floor with cargo when the binary is missing or older than its source. */
export async function buildFloor(progress: (s: string) => void): Promise<void> {
  const src = join(ROOT, 'bench', 'floor', 'src');
  const newest = Math.max(...readdirSync(src).map((f) => statSync(join(src, f)).mtimeMs), statSync(join(ROOT, 'bench', 'floor', 'Cargo.toml')).mtimeMs);
  if (existsSync(FLOOR_BIN) && statSync(FLOOR_BIN).mtimeMs > newest) return;
  progress('building bench/floor with cargo ...');
  const p = Bun.spawn(['cargo', 'build', '--release', '--offline', '-p', 'flux-bench-floor'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`cargo build -p flux-bench-floor failed: ${err}`);
}

export async function runFloor(o: RunOptions): Promise<RunResult> {
  const r = emptyResult('floor', o);
  if (o.protocol !== 'rtsp') throw new Error('the floor recorder speaks RTSP over TCP only');
  await buildFloor(o.progress);
  const sim = new Sim();
  await sim.start(o);
  const dir = join(o.workDir, `floor-${o.cameras}`);
  const t0 = performance.now();
  const proc = Bun.spawn([FLOOR_BIN, '--url', `rtsp://127.0.0.1:${sim.port}/cam`, '--cameras', `${o.cameras}`, '--out', dir], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
  try {
    r.all_playing_ms = await waitPlaying(sim, o.cameras, t0);
    r.startup_ms = r.all_playing_ms;
    const sampler = new ProcSampler(() => [proc.pid]);
    const simSampler = new ProcSampler(() => [sim.proc.pid]);
    await measure(o, `floor ${o.cameras} cams`, sampler, simSampler);
    fill(r, sampler, simSampler, 'rss');
    await sim.stopSending();
    await sleep(2000);
    const simStats = await sim.stats();
    proc.stdin.end();
    await sim.closeAll();
    await Promise.race([proc.exited, sleep(10_000)]);
    const recs = new Map<number, CamRecord>();
    for (let k = 1; k <= o.cameras; k++) {
      const f = join(dir, `cam${k}.rtp`);
      const rec = existsSync(f) ? rawFrames(f) : { frames: 0, files: 0, bad: [`${f}: missing`] };
      // The raw capture also holds the frames sent before the first keyframe, which the others cannot keep.
      rec.frames = Math.max(0, rec.frames - (simStats?.cameras[k - 1]?.preroll ?? 0));
      recs.set(k, rec);
    }
    if (simStats) settle(r, simStats, recs);
    r.segments_total = r.segments_checked = recs.size;
    r.bytes_recorded = listFiles(dir, '.rtp').reduce((a, f) => a + statSync(f).size, 0);
    for (const rec of recs.values()) for (const b of rec.bad) { r.segments_bad++; if (r.bad_examples.length < 5) r.bad_examples.push(b); }
    r.processes = 1;
    r.notes.push('floor files are raw RTSP-interleaved captures: "valid" means intact framing');
  } finally {
    await stopProc(proc, 'SIGKILL', 1000);
    await sim.stop();
  }
  return r;
}
