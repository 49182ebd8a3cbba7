// The load runner: `npm run bench -- --cameras 100 --bitrate 4M --codec h264 --protocol rtsp
// --duration 60 [--sweep 10,50,100] [--compare ffmpeg|floor|both] [--json out.json] [--verify]`.
// Starts the camera simulator (bench/sim: RTSP cameras, RTMP publishers or GB28181 devices)
// and each recorder as separate processes, samples them every second, and prints a table;
// writes JSON and a markdown report with SVG charts.
import { cpus, tmpdir } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseBitrate } from './sim/rtsp-sim.ts';
import { ensureClip } from './sim/clips.ts';
import { knee, ratios, table, writeReport } from './lib/report.ts';
import { runFfmpeg, runFloor } from './lib/baselines.ts';
import { ROOT, runFlux, type RunOptions, type RunResult } from './lib/systems.ts';
import { buildBundle } from '../scripts/bundle.mjs';

const USAGE = `usage: bun bench/run.ts [--cameras N] [--bitrate 4M] [--codec h264|h265] [--resolution 720|1080]
  [--protocol rtsp|rtsp-udp|rtmp|gb28181] [--gb-transport tcp|udp] [--duration S] [--sweep 10,50,100] [--compare ffmpeg|floor|both]
  [--json PATH] [--report NAME] [--verify] [--viewers K] [--keyframes] [--keep]
  [--engine-env FLUX_KEY=value,...]   engine config overrides (README: Configuration)`;

function parseArgs(argv: string[]) {
  const a = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    if (!k.startsWith('--')) throw new Error(`unexpected argument ${k}\n${USAGE}`);
    const name = k.slice(2);
    if (['verify', 'keyframes', 'keep', 'help'].includes(name)) flags.add(name);
    else {
      const v = argv[++i];
      if (v === undefined) throw new Error(`--${name} needs a value\n${USAGE}`);
      a.set(name, v);
    }
  }
  return { a, flags };
}

async function main(): Promise<number> {
  const { a, flags } = parseArgs(process.argv.slice(2));
  if (flags.has('help')) { console.log(USAGE); return 0; }
  const codec = a.get('codec') ?? 'h264';
  const protocol = a.get('protocol') ?? 'rtsp';
  const height = Number(a.get('resolution') ?? '1080');
  if (codec !== 'h264' && codec !== 'h265') throw new Error(`--codec ${codec}: h264 or h265`);
  if (!['rtsp', 'rtsp-udp', 'rtmp', 'gb28181'].includes(protocol)) throw new Error(`--protocol ${protocol}: rtsp, rtsp-udp, rtmp or gb28181`);
  const gbTransport = a.get('gb-transport') ?? 'tcp';
  if (gbTransport !== 'tcp' && gbTransport !== 'udp') throw new Error(`--gb-transport ${gbTransport}: tcp or udp`);
  if (a.has('gb-transport') && protocol !== 'gb28181') throw new Error('--gb-transport goes with --protocol gb28181');
  if (height !== 720 && height !== 1080) throw new Error('--resolution: 720 or 1080');
  const compare = a.get('compare') ?? '';
  if (!['', 'ffmpeg', 'floor', 'both'].includes(compare)) throw new Error('--compare: ffmpeg, floor or both');
  if (compare !== '' && (protocol === 'rtmp' || protocol === 'gb28181')) {
    throw new Error(`--compare ${compare} needs --protocol rtsp: the baselines (ffmpeg per camera, the floor recorder) pull RTSP; with ${protocol} the sources push to the engine`);
  }
  const counts = (a.get('sweep') ?? a.get('cameras') ?? '10').split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 2000)) throw new Error('camera counts: integers from 1 to 2000');
  const workDir = mkdtempSync(join(tmpdir(), 'flux-bench-'));
  const progress = (s: string) => process.stderr.write(`${s}\n`);
  const base = {
    bitrate: parseBitrate(a.get('bitrate') ?? '4M'), codec, height, protocol, gbTransport, durationS: Number(a.get('duration') ?? '60'),
    verify: flags.has('verify'), viewers: Number(a.get('viewers') ?? '4'), keyframes: flags.has('keyframes'), workDir, progress,
    engineEnv: Object.fromEntries((a.get('engine-env') ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
  } as Omit<RunOptions, 'cameras'>;
  // The engine runs as `npm start` runs it: engine/launch.ts, from the start-up bundle when it builds.
  const bundle = buildBundle(ROOT, process.execPath);
  progress(bundle.file !== null ? `engine: ${bundle.built ? 'built ' : ''}start-up bundle ${bundle.file}` : `engine: sources (${bundle.reason})`);
  progress(`clip: ${JSON.stringify(await ensureClip({ codec: base.codec, height: base.height, bitrate: base.bitrate }))}`);
  const runs: RunResult[] = [];
  try {
    for (const n of counts) {
      const o: RunOptions = { ...base, cameras: n };
      runs.push(await runFlux(o));
      if (compare === 'ffmpeg' || compare === 'both') runs.push(await runFfmpeg(o));
      if (compare === 'floor' || compare === 'both') runs.push(await runFloor(o));
      if (!flags.has('keep')) for (const d of [`flux-${n}`, `ffmpeg-${n}`, `floor-${n}`, 'flux-rest']) rmSync(join(workDir, d), { recursive: true, force: true });
    }
  } finally {
    if (!flags.has('keep')) rmSync(workDir, { recursive: true, force: true });
    else progress(`kept ${workDir}`);
  }
  const r = ratios(runs);
  const cores = cpus().length;
  const k = a.has('sweep') ? knee(runs, cores) : null;
  console.log(table(runs, r));
  if (a.has('sweep')) console.log(k === null ? `knee: none up to ${Math.max(...counts)} cameras` : `knee: ${k} cameras`);
  const json = a.get('json');
  if (json !== undefined) writeFileSync(json, JSON.stringify({ runs, ratios: { cpu: r.cpu, rss: r.rss, cpu_floor: r.cpu_floor, rss_floor: r.rss_floor }, knee: k, host: { cores, cpu: cpus()[0]?.model ?? '' } }, null, 2));
  const name = a.get('report') ?? `bench-${codec}-${protocol}-${counts.join('_')}${compare ? '-vs-' + compare : ''}`;
  const env = `Host: ${cores} cores (${cpus()[0]?.model ?? '?'}), Bun ${Bun.version}; ${base.codec} ${base.height}p at ${base.bitrate / 1e6} Mbit/s + AAC, ${protocol}, ${base.durationS} s per run; ${new Date().toISOString()}.`;
  const path = writeReport(join(ROOT, 'bench', 'results'), name, `npm run bench -- ${process.argv.slice(2).join(' ')}`, runs, r, k, env);
  progress(`report: ${path}`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 2;
}
// Everything is written; idle keep-alive connections (fetch, live viewers) would hold the process ~20 s more.
process.exit();
