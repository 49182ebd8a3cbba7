// The start-up bundle: engine/main.ts and everything it imports (our modules, zod, hono, lmdb's
// and piscina's JavaScript) in one CommonJS file with Bun's bytecode beside it, built into
// .build/ by scripts/setup.mjs (before `npm start`, `npm test`) and by the benchmark.
// engine/launch.ts runs it when the stamp names this checkout and Bun. Why: Bun parses and
// compiles ~400 modules on every start (~100 ms of ~230 ms to a listening API on a 2-core VM);
// loading them as bytecode takes ~10 ms.
//
// Bun inlines `import.meta.url` and each package's `__dirname` as absolute paths of the
// sources, so the worker entry points, the native addons and the UI directory resolve to this
// checkout: the bundle is valid for this directory and this Bun only, which the stamp records.
// Plain JavaScript with no dependencies: setup.mjs runs it under Node, the bench under Bun.
// engine/launch.ts reads the stamp itself (importing this file's child_process would cost it
// start-up time).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';

const BUNDLE_DIR = '.build';
const BUNDLE_FILE = 'flux.js';
/** Entry points: the engine, and the worker threads' entries (engine/worker-entry.ts picks them). */
const ENTRIES = { 'flux.js': 'engine/main.ts', 'media-worker.js': 'workers/media-worker.ts', 'thumbnail-worker.js': 'workers/thumbnail-worker.ts' };
const STAMP_FILE = 'flux.stamp.json';
/**
 * Loaded from node_modules at run time, not bundled: sharp (its native addon is found relative
 * to its files; only the thumbnail thread uses it), and what only lazily imported paths use
 * (prom-client on the first /metrics scrape; iconv-lite and fast-xml-parser for GB28181): 600
 * KB of the bundle, mostly encoding tables, that every start would otherwise deserialize.
 */
const EXTERNAL = ['sharp', 'prom-client', 'iconv-lite', 'fast-xml-parser'];
/** Directories whose sources the bundle is built from (tests excluded). */
const SOURCE_DIRS = ['engine', 'http', 'media', 'protocols', 'workers', 'native'];

/** What the bundle depends on: the path, size and mtime of every source, the lockfile, this script, the checkout. */
function sourceFingerprint(root) {
  const parts = [root];
  const walk = (dir) => {
    let names;
    try {
      names = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const d of names) {
      const p = join(dir, d.name);
      if (d.isDirectory()) {
        if (d.name !== 'node_modules' && d.name !== 'target' && d.name !== 'testdata' && d.name !== 'ui') walk(p);
      } else if (/\.(ts|mjs|js|cjs|json)$/.test(d.name) && !/\.test\.ts$/.test(d.name)) {
        const st = statSync(p);
        parts.push(`${p}:${st.size}:${st.mtimeMs}`);
      }
    }
  };
  for (const d of SOURCE_DIRS) walk(join(root, d));
  // The lockfile (dependencies) and this file (the build's options).
  for (const f of ['package.json', 'package-lock.json', 'scripts/bundle.mjs']) {
    const p = join(root, f);
    if (existsSync(p)) {
      const st = statSync(p);
      parts.push(`${p}:${st.size}:${st.mtimeMs}`);
    }
  }
  // Sorted: Node (setup.mjs) and Bun (the bench) list a directory in different orders.
  return createHash('sha256').update(parts.sort().join('\n')).digest('hex');
}

function readStamp(root) {
  try {
    return JSON.parse(readFileSync(join(root, BUNDLE_DIR, STAMP_FILE), 'utf8'));
  } catch {
    return null;
  }
}

/** The bundle's path when it exists and was built from these sources for this Bun, else null. */
function currentBundle(root, bunVersion) {
  root = resolve(root);
  const file = join(root, BUNDLE_DIR, BUNDLE_FILE);
  const s = readStamp(root);
  if (s === null || s.root !== root || s.bun !== bunVersion || !existsSync(file)) return null;
  if (s.sources !== sourceFingerprint(root)) return null;
  return file;
}

/**
 * Builds the bundle unless it is current. Returns { file } or { file: null, reason } when
 * `bun build` fails (engine/launch.ts then runs the sources, as it would without a bundle).
 */
export function buildBundle(root, bun) {
  root = resolve(root);
  const v = spawnSync(bun, ['--version'], { encoding: 'utf8' });
  if (v.status !== 0) return { file: null, reason: `${bun} --version failed` };
  const bunVersion = v.stdout.trim();
  const have = currentBundle(root, bunVersion);
  if (have !== null) return { file: have, built: false };
  const sources = sourceFingerprint(root);
  const out = join(root, BUNDLE_DIR);
  const tmp = join(out, 'tmp');
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // One build per entry (each self-contained): `bun build` names outputs after their sources.
  for (const [name, src] of Object.entries(ENTRIES)) {
    const args = ['build', join(root, src), '--target=bun', '--format=cjs', '--bytecode', '--outdir', tmp, '--entry-naming', name];
    for (const e of EXTERNAL) args.push('--external', e);
    const r = spawnSync(bun, args, { cwd: root, encoding: 'utf8' });
    if (r.status !== 0 || !existsSync(join(tmp, name))) {
      rmSync(tmp, { recursive: true, force: true });
      return { file: null, reason: `bun build ${src} failed: ${(r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' ')}` };
    }
  }
  rmSync(join(out, STAMP_FILE), { force: true });
  for (const f of readdirSync(tmp)) renameSync(join(tmp, f), join(out, f));
  rmSync(tmp, { recursive: true, force: true });
  writeFileSync(join(out, STAMP_FILE), JSON.stringify({ root, bun: bunVersion, sources }) + '\n');
  return { file: join(out, BUNDLE_FILE), built: true };
}
