// Load tests of the flux-native addon in Bun and Node, checked against flux-native.d.ts,
// plus the loader's refusals and the build script's skip paths.
import { afterAll, describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { defaultNativePath, loadNative, NATIVE_EXPORTS, NATIVE_PATH_ENV } from './index.ts';

const root = join(import.meta.dir, '..');
const buildScript = join(root, 'scripts', 'build-native.mjs');
const TMPFS_MAGIC = 0x01021994; // include/uapi/linux/magic.h

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, cmd)));
}
const hasCargo = onPath('cargo');
const nodeBin = Bun.which('node');

// Build first when cargo can (the script is a ~50 ms no-op when the .node is newer than
// its sources), so the tests never judge a stale addon.
if (hasCargo) {
  const r = spawnSync(nodeBin ?? process.execPath, [buildScript], { cwd: root, encoding: 'utf8' });
  console.log(r.stdout.trim());
}
const loaded = loadNative(defaultNativePath());
const addon = loaded.addon;
if (addon === null && !hasCargo) {
  console.warn(`flux-native tests skipped: cargo is not on PATH and ${loaded.reason}`);
}
// With cargo present the addon must build and load: that is a failure, not a skip.
const skipAddon = addon === null && !hasCargo;

const scratch = mkdtempSync(join(tmpdir(), 'flux-native-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('flux-native addon', () => {
  test.skipIf(skipAddon)('loads in Bun when cargo is present', () => {
    expect(loaded.reason).toBeNull();
    expect(addon).not.toBeNull();
  });

  test.skipIf(skipAddon)('exports exactly the functions flux-native.d.ts declares', () => {
    const dts = readFileSync(join(import.meta.dir, 'flux-native.d.ts'), 'utf8');
    const declared = [...dts.matchAll(/^export (?:declare )?function (\w+)\(/gm)].map((m) => m[1]!).sort();
    expect(declared.length).toBeGreaterThan(0);
    const actual = Object.keys(addon!).sort();
    expect(actual).toEqual(declared);
    expect([...NATIVE_EXPORTS].sort() as string[]).toEqual(declared);
    for (const name of actual) expect(typeof (addon as unknown as Record<string, unknown>)[name]).toBe('function');
  });

  test.skipIf(skipAddon)('version() is the version in native/Cargo.toml', () => {
    const toml = readFileSync(join(import.meta.dir, 'Cargo.toml'), 'utf8');
    const version = /^\[package\][^[]*?^version\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect(addon!.version()).toBe(version!);
  });

  test.skipIf(skipAddon)('probe() on an ext4 directory reports io_uring and O_DIRECT, leaving no file', () => {
    const dir = mkdtempSync(join(root, '.flux-native-probe-'));
    try {
      expect(statfsSync(dir).type).not.toBe(TMPFS_MAGIC); // the repo must sit on a real disk
      const r = addon!.probe(dir);
      // Whole-object match so a failure shows ioUringError / directIoError.
      expect(r).toEqual({ ioUring: true, directIo: true, kernel: release() });
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const shmIsTmpfs = existsSync('/dev/shm') && statfsSync('/dev/shm').type === TMPFS_MAGIC;
  test.skipIf(skipAddon || !shmIsTmpfs)('probe() on tmpfs (/dev/shm) reports no direct I/O, with the reason', () => {
    const r = addon!.probe('/dev/shm');
    expect(r.directIo).toBe(false);
    expect(r.directIoError).toContain('tmpfs');
    expect(r.ioUring).toBe(true);
    expect(readdirSync('/dev/shm').filter((n) => n.startsWith('.flux-native-probe-'))).toEqual([]);
  });

  test.skipIf(skipAddon)('probe() on a missing directory reports the open error instead of throwing', () => {
    const r = addon!.probe(join(scratch, 'does-not-exist'));
    expect(r.directIo).toBe(false);
    expect(r.directIoError).toContain('No such file or directory');
    expect(r.kernel).toBe(release());
  });

  test.skipIf(skipAddon)('probe() with a non-string argument throws a catchable TypeError', () => {
    const probe = addon!.probe as (...args: unknown[]) => unknown;
    for (const bad of [[42], [], [undefined], [null], [{}], [Symbol('x')], [Buffer.from('/work')]]) {
      let caught: unknown;
      try {
        probe(...bad);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(TypeError);
      expect((caught as { code?: string }).code).toBe('ERR_INVALID_ARG_TYPE');
      expect((caught as Error).message).toContain('path must be a string');
    }
    expect(addon!.probe(scratch).kernel).toBe(release()); // still usable afterwards
  });

  test.skipIf(skipAddon)('probe() refuses a path longer than PATH_MAX with a TypeError', () => {
    expect(() => addon!.probe('/'.repeat(5000))).toThrow(TypeError);
    expect(() => addon!.probe('é'.repeat(2048))).toThrow('PATH_MAX'); // 4096 UTF-8 bytes
  });

  test.skipIf(skipAddon || nodeBin === null)('loads in Node, main thread and worker (child exits 0, no signal)', () => {
    const script = `
      const { createRequire } = require('node:module');
      const m = createRequire(${JSON.stringify(join(root, 'package.json'))})(${JSON.stringify(loaded.path)});
      const r = m.probe(${JSON.stringify(scratch)});
      let threw = false; try { m.probe(1); } catch (e) { threw = e instanceof TypeError; }
      // Piscina workers load it too: one more Node environment in the same process.
      const { Worker } = require('node:worker_threads');
      const w = new Worker('require(process.argv[2]); require("node:worker_threads").parentPort.postMessage(' +
        'require(process.argv[2]).version())', { eval: true, argv: [${JSON.stringify(loaded.path)}] });
      w.once('message', (inWorker) => {
        console.log(JSON.stringify({ keys: Object.keys(m).sort(), version: m.version(), kernel: r.kernel, threw, inWorker }));
      });`;
    const r = spawnSync(nodeBin!, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      keys: Object.keys(addon!).sort(),
      version: addon!.version(),
      kernel: release(),
      threw: true,
      inWorker: addon!.version(),
    });
  });

  test.skipIf(!hasCargo)('passes its Rust unit tests (cargo test: struct layouts, probe)', () => {
    const r = spawnSync('cargo', ['test', '--quiet', '-p', 'flux-native'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(`${r.stdout}${r.stderr}`).toContain('test result: ok');
    expect(r.status).toBe(0);
  });
});

describe('native/index.ts loader', () => {
  test('returns null with a reason when the file is missing, without throwing', () => {
    const missing = join(scratch, 'flux-native.missing.node');
    const r = loadNative(missing);
    expect(r.addon).toBeNull();
    expect(r.path).toBe(missing);
    expect(r.reason).toContain('not found');
  });

  test(`takes the path from $${NATIVE_PATH_ENV} when no parameter is given`, () => {
    const before = process.env[NATIVE_PATH_ENV];
    process.env[NATIVE_PATH_ENV] = join(scratch, 'from-env.node');
    try {
      const r = loadNative();
      expect(r.addon).toBeNull();
      expect(r.path).toBe(join(scratch, 'from-env.node'));
    } finally {
      if (before === undefined) delete process.env[NATIVE_PATH_ENV];
      else process.env[NATIVE_PATH_ENV] = before;
    }
  });

  test('returns null with the loader error for a file that is not an addon', () => {
    const junk = join(scratch, 'junk.node');
    writeFileSync(junk, 'not an ELF file');
    const r = loadNative(junk);
    expect(r.addon).toBeNull();
    expect(r.reason).toStartWith(`cannot load ${junk}: `);
  });

  test('refuses a module that lacks a declared function, as a stale build', () => {
    const stale = join(scratch, 'stale.cjs');
    writeFileSync(stale, "exports.version = () => '0.0.0';\n");
    const r = loadNative(stale);
    expect(r.addon).toBeNull();
    expect(r.reason).toContain('lacks probe()');
  });
});

describe('scripts/build-native.mjs', () => {
  const run = (args: string[], env: Record<string, string | undefined> = process.env) =>
    spawnSync(nodeBin!, [buildScript, ...args], {
      cwd: root,
      encoding: 'utf8',
      env,
      timeout: 120_000,
    });

  test.skipIf(nodeBin === null || addon === null)('says "up to date" and exits 0 when nothing changed', () => {
    const r = run([]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`[build-native] up to date: native/${defaultNativePath().split('/').pop()}`);
  });

  test.skipIf(nodeBin === null)('skips with one line and exit 0 without cargo, exit 1 with --strict', () => {
    const env = { ...process.env, PATH: join(scratch, 'empty-path') };
    const lax = run(['--force'], env);
    expect(lax.status).toBe(0);
    expect(lax.stdout.trim()).toBe('[build-native] skipped: cargo not found on PATH; the engine will use the portable writer');
    expect(run(['--force', '--strict'], env).status).toBe(1);
  });
});
