// Every benchmark keeps working: their short modes run here (figures are not asserted;
// performance is judged by the harness itself, never by timed assertions).
import { expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUN, ROOT, run, tempDir } from './helpers.ts';

test('bench/disk.ts --quick writes its table and JSON with every method', async () => {
  const dir = tempDir('bench');
  const json = join(dir, 'disk.json');
  const out = await run([BUN, join(ROOT, 'bench/disk.ts'), '--quick', '--no-strace', '--dir', dir, '--json', json], { cwd: ROOT });
  expect(out).toContain('portable');
  expect(existsSync(json)).toBe(true);
  const r = JSON.parse(readFileSync(json, 'utf8')) as { results: { method: string; files: number; mb_per_s: number }[] };
  const methods = new Set(r.results.map((x) => x.method.split('-')[0]));
  for (const m of ['portable', 'bun', 'node']) expect(methods.has(m)).toBe(true);
  for (const x of r.results) expect(x.mb_per_s).toBeGreaterThan(0);
}, 120_000);

test('bench/ring-throughput.ts --short runs', async () => {
  const out = await run([BUN, join(ROOT, 'bench/ring-throughput.ts'), '--short'], { cwd: ROOT });
  expect(out).toMatch(/records\/s|MB\/s/);
}, 60_000);

test('bench/ps-demux.ts --short runs and every picture comes out', async () => {
  const out = await run([BUN, join(ROOT, 'bench/ps-demux.ts'), '--short'], { cwd: ROOT });
  expect(out).toMatch(/worker input .* MB\/s/);
}, 60_000);

test('bench/pipeline.ts --short pushes the simulator\'s packets through stream pipelines and records them', async () => {
  const out = await run([BUN, join(ROOT, 'bench/pipeline.ts'), '--short'], { cwd: ROOT });
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { cameras: number; packets: number; segments: number; us_per_packet: number; stage_blocks: { inUse: number } };
  expect(r.cameras).toBe(4);
  expect(r.packets).toBeGreaterThan(0);
  expect(r.segments).toBe(4); // one segment per camera, closed at the end
  expect(r.us_per_packet).toBeGreaterThan(0);
  expect(r.stage_blocks.inUse).toBe(0); // every fragment's staging went back to the pool
}, 120_000);

test('bench/startup.ts --runs 2 starts the engine twice and reports spawn-to-/healthz and the ready line', async () => {
  const out = await run([BUN, join(ROOT, 'bench/startup.ts'), '--runs', '2'], { cwd: ROOT });
  const r = JSON.parse(out.split('\n').find((l) => l.startsWith('{"mode"'))!) as { runs: number; healthz_ms: { median: number }; samples: { healthz_ms: number; ready_ms: number | null; phases: string | null }[] };
  expect(r.runs).toBe(2);
  expect(r.samples.length).toBe(2);
  for (const x of r.samples) {
    expect(x.healthz_ms).toBeGreaterThan(0);
    expect(x.ready_ms).not.toBeNull();
    expect(x.phases).toContain('from the start-up bundle');
  }
}, 60_000);

// The load runner's short mode: simulator, engine, ffmpeg-per-camera and the floor recorder
// for real, 5 cameras for a few seconds each; asserts the harness works (JSON shape, frames
// recorded, files valid), never its figures. 720p keeps the first-use clip quick to make.
test('bench/run.ts records 5 simulated cameras and reports flux, ffmpeg and floor in the JSON shape', async () => {
  const dir = tempDir('bench-run');
  const json = join(dir, 'run.json');
  const out = await run(
    [BUN, join(ROOT, 'bench/run.ts'), '--cameras', '5', '--duration', '4', '--bitrate', '2M', '--resolution', '720', '--compare', 'both', '--viewers', '2', '--json', json, '--report', 'smoke'],
    { cwd: ROOT },
  );
  expect(out).toContain('| flux');
  const r = JSON.parse(readFileSync(json, 'utf8')) as { runs: Record<string, unknown>[]; ratios: { cpu: number | null; rss: number | null } };
  expect(Object.keys(r.ratios)).toEqual(expect.arrayContaining(['cpu', 'rss']));
  expect(r.runs.map((x) => x.system)).toEqual(['flux', 'ffmpeg', 'floor']);
  expect(r.ratios.cpu).toBeGreaterThan(0);
  const keys = ['system', 'cameras', 'bitrate', 'cpu_pct', 'rss_mb', 'peak_rss_mb', 'frames_sent', 'frames_recorded', 'frames_lost', 'segments_bad', 'latency_p99_ms', 'startup_ms'];
  for (const x of r.runs) {
    for (const k of keys) expect(x).toHaveProperty(k);
    expect(x.cameras).toBe(5);
    expect(x.frames_sent as number).toBeGreaterThan(0);
    expect(x.frames_recorded as number).toBeGreaterThan(0);
    expect(x.segments_bad).toBe(0);
    expect(x.segments_checked as number).toBeGreaterThan(0);
  }
  const flux = r.runs[0]!;
  expect((flux.latency_ms as { samples: number }).samples).toBeGreaterThan(0); // the SEI send time reached the viewer
  // The latency window comes after the recording window, with its own CPU figure.
  expect((flux.viewers as { count: number; cpu_pct: number }).count).toBe(2);
  expect(typeof (flux.viewers as { cpu_pct: number }).cpu_pct).toBe('number');
  expect(typeof flux.startup_ms).toBe('number');
  expect(existsSync(join(ROOT, 'bench/results/smoke.md'))).toBe(true);
  expect(readFileSync(join(ROOT, 'bench/results/smoke-cpu.svg'), 'utf8')).toStartWith('<svg');
}, 120_000);

// The push sources: RTMP publishers (bench/sim/rtmp-sim.ts) and GB28181 devices
// (bench/sim/gb-sim.ts) against the engine, both runs at once to stay short. Asserts the
// harness works (JSON shape, frames sent and recorded, files checked, the SEI send time
// reached a viewer), never its figures.
test('bench/run.ts --protocol rtmp and gb28181: publishers and devices are recorded and reported', async () => {
  const dir = tempDir('bench-push');
  const runOne = async (protocol: string) => {
    const json = join(dir, `${protocol}.json`);
    const out = await run(
      [BUN, join(ROOT, 'bench/run.ts'), '--protocol', protocol, '--cameras', '3', '--duration', '4', '--bitrate', '2M', '--resolution', '720', '--viewers', '1', '--json', json, '--report', `smoke-${protocol}`],
      { cwd: ROOT },
    );
    expect(out).toContain('| flux');
    return JSON.parse(readFileSync(json, 'utf8')) as { runs: Record<string, unknown>[] };
  };
  const [rtmp, gb] = await Promise.all([runOne('rtmp'), runOne('gb28181')]);
  for (const r of [rtmp, gb]) {
    expect(r.runs.length).toBe(1);
    const x = r.runs[0]!;
    for (const k of ['system', 'cameras', 'cpu_pct', 'rss_mb', 'frames_sent', 'frames_recorded', 'frames_lost', 'segments_bad', 'latency_p99_ms', 'startup_ms']) expect(x).toHaveProperty(k);
    expect(x.system).toBe('flux');
    expect(x.cameras).toBe(3);
    expect(x.frames_sent as number).toBeGreaterThan(0);
    expect(x.frames_recorded as number).toBeGreaterThan(0);
    expect(x.segments_checked as number).toBeGreaterThan(0);
    expect((x.latency_ms as { samples: number }).samples).toBeGreaterThan(0);
    expect(x.notes).toEqual([]);
  }
  expect(gb.runs[0]!.protocol).toBe('gb28181');
  expect(rtmp.runs[0]!.protocol).toBe('rtmp');
  // Every file reads through: RTMP's AAC sequence header comes after the video's, so the tracks
  // change before the first segment opens (this caught a stale track state in the segmenter).
  for (const r of [rtmp, gb]) expect(r.runs[0]!.segments_bad).toBe(0);
}, 60_000);

test('bench/run.ts refuses baselines for push protocols', async () => {
  const p = Bun.spawn([BUN, join(ROOT, 'bench/run.ts'), '--protocol', 'rtmp', '--compare', 'ffmpeg'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  expect(code).toBe(2);
  expect(err).toContain('needs --protocol rtsp');
});
