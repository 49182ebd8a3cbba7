// Start-up to API ready, measured many times: `bun bench/startup.ts [--runs 15] [--sources]`.
// Each run spawns the engine as `npm start` does (engine/launch.ts, the start-up bundle when
// current; --sources: FLUX_NO_BUNDLE=1) with no streams and a fresh data directory, the same
// way the load runner does (bench/lib/systems.ts startEngine: time to the first 200 on
// /healthz, polled every 2 ms); the engine's ready line gives
// its own phases. Prints min / median / max and one JSON line. Figures are the harness's, never
// asserted in tests (test/bench-smoke.test.ts runs --runs 2).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBundle } from '../scripts/bundle.mjs';
import { freePort, ROOT, startEngine, stopProc } from './lib/systems.ts';

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
};
const runs = Number(arg('runs', '15'));
if (!Number.isInteger(runs) || runs < 1 || runs > 500) throw new Error('--runs: an integer from 1 to 500');
const sources = argv.includes('--sources');

if (!sources) {
  const b = buildBundle(ROOT, process.execPath);
  if (b.file === null) console.error(`no start-up bundle (${b.reason}): measuring the sources`);
}

interface Run { healthz_ms: number; ready_ms: number | null; phases: string | null }
const results: Run[] = [];
const dir = mkdtempSync(join(tmpdir(), 'flux-startup-'));
try {
  for (let i = 0; i < runs; i++) {
    const http = await freePort();
    const rtmp = await freePort();
    const cfg = join(dir, 'config.toml');
    rmSync(join(dir, 'data'), { recursive: true, force: true });
    writeFileSync(cfg, `[http]\nport = ${http}\nhost = "127.0.0.1"\n[rtmp]\nport = ${rtmp}\nhost = "127.0.0.1"\n[video.storage]\nbase_path = "${join(dir, 'data')}"\n[video.demo]\nenabled = false\n`);
    const e = await startEngine(cfg, dir, http, sources ? { FLUX_NO_BUNDLE: '1' } : {});
    await stopProc(e.proc, 'SIGTERM', 10_000); // the ready line is out by now; the stop flushes the pipes
    const ms = e.startupMs!;
    const m = /ready (\d+) ms after the process started \(([^)]*)\)/.exec(e.log());
    results.push({ healthz_ms: ms, ready_ms: m ? Number(m[1]) : null, phases: m ? m[2]! : null });
    process.stderr.write(`run ${i + 1}/${runs}: ${ms} ms to /healthz${m ? `, ready line ${m[1]} ms (${m[2]})` : ''}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor((s.length - 1) / 2)]!, max: s.at(-1)! };
};
const h = stats(results.map((r) => r.healthz_ms));
const readies = results.map((r) => r.ready_ms).filter((x): x is number => x !== null);
const r = readies.length > 0 ? stats(readies) : null;
console.log(`start-up (${sources ? 'sources' : 'npm start: launcher'}), ${runs} runs: spawn to /healthz min ${h.min} / median ${h.median} / max ${h.max} ms` +
  (r ? `; engine ready line min ${r.min} / median ${r.median} / max ${r.max} ms` : ''));
console.log(JSON.stringify({ mode: sources ? 'sources' : 'launcher', runs, healthz_ms: h, ready_ms: r, samples: results }));
