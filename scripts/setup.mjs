#!/usr/bin/env node
// Idempotent set-up run before `npm start` and `npm test`: npm packages (incl. Bun),
// Debian packages the engine or the tests need, and the native addon when cargo exists.
// Plain Node with no dependencies, because it runs before anything is installed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { buildBundle } from './bundle.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const forTests = process.argv.includes('--test');
const quiet = process.env.FLUX_SETUP_QUIET === '1';
const log = (msg) => { if (!quiet) console.log(`[setup] ${msg}`); };

/** Debian packages the engine needs (ffmpeg makes the demo clip and decodes snapshots). */
const ENGINE_PACKAGES = ['ffmpeg'];
/** Real peers the tests start: players that judge our files, and (as ingest lands) cameras. */
const TEST_PACKAGES = [
  'vlc-bin', 'vlc-plugin-base', // VLC demuxes recordings and serves RTSP (UDP) as a camera
  'chromium', // MSE playback of fMP4, the web UI
  // gst-rtsp-server as an RTSP camera (test/peers/rtsp-camera.py, run with Debian's python3)
  'gstreamer1.0-tools', 'gstreamer1.0-plugins-base', 'gstreamer1.0-plugins-good', 'gstreamer1.0-plugins-bad',
  'gstreamer1.0-plugins-ugly', 'gstreamer1.0-libav', 'gstreamer1.0-x', 'gir1.2-gst-rtsp-server-1.0', 'python3-gi',
  'fonts-wqy-microhei', // CJK glyphs for GB28181 channel names in the UI screenshots (Chromium)
  'sip-tester', // sipp: an independent SIP peer for GB28181 REGISTER/digest and malformed-message tests
];

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function installed(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function run(cmd, args, opts = {}) {
  log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
}

function npmPackages() {
  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.flux-setup-stamp');
  const want = createHash('sha256')
    .update(readFileSync(join(root, 'package.json')))
    .update(existsSync(lock) ? readFileSync(lock) : '')
    .digest('hex');
  const have = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';
  if (have === want && existsSync(join(root, 'node_modules', '.bin', 'bun'))) return;
  run('npm', [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund']);
  writeFileSync(stamp, want + '\n');
}

function ffmpegFromEnv() {
  const p = process.env.FLUX_FFMPEG;
  return p && existsSync(p);
}

function debianPackages() {
  const wanted = forTests ? [...ENGINE_PACKAGES, ...TEST_PACKAGES] : ENGINE_PACKAGES;
  const hasDpkg = onPath('dpkg-query');
  const missing = wanted.filter((pkg) => {
    if (pkg === 'ffmpeg' && (ffmpegFromEnv() || (onPath('ffmpeg') && onPath('ffprobe')))) return false;
    return hasDpkg ? !installed(pkg) : !onPath(pkg);
  });
  if (missing.length === 0) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = onPath('apt-get');
  if (!isRoot || !hasApt) {
    const how = hasApt ? `sudo apt-get install -y ${missing.join(' ')}` : `install: ${missing.join(' ')}`;
    const msg = `missing system packages: ${missing.join(', ')}. Run as root once, or: ${how}`;
    if (forTests) throw new Error(msg);
    log(`warning: ${msg} (the engine runs, but the demo camera needs ffmpeg to make its clip)`);
    return;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
}

function nativeAddon() {
  const script = join(root, 'scripts', 'build-native.mjs');
  if (!existsSync(script)) return;
  if (!onPath('cargo')) {
    log('cargo not found: skipping the native addon; the portable writer will be used');
    return;
  }
  // build-native.mjs is itself idempotent (skips when the .node is newer than the sources).
  const r = spawnSync(process.execPath, [script], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) log('native addon build failed: the engine will use the portable writer');
}

/** The start-up bundle engine/launch.ts runs (scripts/bundle.mjs); rebuilt only when a source changed. */
function startupBundle() {
  const bun = join(root, 'node_modules', '.bin', 'bun');
  if (!existsSync(bun)) return;
  const r = buildBundle(root, bun);
  if (r.file === null) log(`start-up bundle not built (${r.reason}): npm start runs the sources, only slower to start`);
  else if (r.built) log(`start-up bundle built: ${r.file}`);
}

try {
  npmPackages();
  debianPackages();
  nativeAddon();
  startupBundle();
} catch (err) {
  console.error(`[setup] failed: ${err.message}`);
  process.exit(1);
}
