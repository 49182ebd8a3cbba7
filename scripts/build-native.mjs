#!/usr/bin/env node
// Builds the flux-native addon into native/flux-native.<platform>.node with `napi build`
// when cargo is on PATH; skips quickly when the .node is newer than every source.
// Prints one line: built / up to date / skipped / FAILED. Exits 0 in every case unless
// --strict is given (then a skip or failure exits 1). --force rebuilds regardless.
// Plain Node with no dependencies: it runs from scripts/setup.mjs before tests and start.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const strict = process.argv.includes('--strict');
const force = process.argv.includes('--force');
/** A release build from scratch takes ~5 s here; a stuck toolchain must not hang setup. */
const BUILD_TIMEOUT_MS = 10 * 60 * 1000;

function done(ok, line) {
  console.log(`[build-native] ${line}`);
  process.exit(ok || !strict ? 0 : 1);
}

function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, cmd))) return true;
  }
  return false;
}

/** Same rule as platformSuffix() in native/index.ts (the file name napi --platform writes). */
function platformSuffix() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    let libc = 'gnu';
    try {
      if (!process.report?.getReport()?.header?.glibcVersionRuntime) libc = 'musl';
    } catch {}
    return arch === 'arm' ? `linux-arm-${libc}eabihf` : `linux-${arch}-${libc}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** Newest mtime (ms) of the files the build reads: native/src/**, Cargo files, napi config. */
function newestSourceMtime() {
  let newest = 0;
  const visit = (p) => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) for (const name of readdirSync(p)) visit(join(p, name));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['native/src', 'native/Cargo.toml', 'native/package.json', 'Cargo.toml', 'Cargo.lock']) {
    visit(join(root, p));
  }
  return newest;
}

const output = join(nativeDir, `flux-native.${platformSuffix()}.node`);
const shown = relative(root, output);

if (!force) {
  const built = statSync(output, { throwIfNoEntry: false });
  if (built && built.mtimeMs > newestSourceMtime()) done(true, `up to date: ${shown}`);
}
if (!onPath('cargo')) {
  done(false, 'skipped: cargo not found on PATH; the engine will use the portable writer');
}
const napi = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'napi.cmd' : 'napi');
if (!existsSync(napi)) {
  done(false, 'skipped: node_modules/.bin/napi missing (run npm install); the engine will use the portable writer');
}

const started = Date.now();
// --platform names the file flux-native.<platform>.node; --no-js: native/index.ts is the loader.
const args = ['build', '--release', '--platform', '--no-js'];
const r = spawnSync(napi, args, { cwd: nativeDir, encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (r.status !== 0 || !existsSync(output)) {
  process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  const why = r.error ? r.error.message : r.status !== 0 ? `exit ${r.status ?? r.signal}` : `${shown} not produced`;
  done(false, `FAILED after ${seconds} s (cd native && napi ${args.join(' ')}: ${why}); the engine will use the portable writer`);
}
const kib = Math.round(statSync(output).size / 1024);
done(true, `built ${shown} (${kib} KiB) in ${seconds} s`);
