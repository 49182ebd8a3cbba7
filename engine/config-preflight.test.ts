// Tests of the start-up path checks: they reject unusable storage paths and create nothing.
import { afterAll, describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDirectoryPath } from './config-preflight.ts';
import { type Config, ConfigError, loadConfig, preflight, preflightProblems } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'flux-preflight-'));
chmodSync(dir, 0o755); // readable by the unprivileged child below
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configWith(base: string, index = ''): Config {
  const { config } = loadConfig({ argv: [], env: {}, cwd: dir });
  config.video.storage.base_path = base;
  config.video.storage.index_path = index;
  return config;
}

describe('preflight', () => {
  test('accepts paths that do not exist yet under a writable directory, and creates nothing', () => {
    const base = join(dir, 'fresh', 'rec');
    expect(preflightProblems(configWith(base))).toEqual([]);
    expect(() => preflight(configWith(base, join(dir, 'idx')))).not.toThrow();
    expect(existsSync(join(dir, 'fresh'))).toBe(false);
    expect(existsSync(join(dir, 'idx'))).toBe(false);
  });

  test('accepts existing writable directories', () => {
    mkdirSync(join(dir, 'existing'));
    expect(preflightProblems(configWith(join(dir, 'existing')))).toEqual([]);
  });

  test('a file used as base_path, or as a directory above it, is an error naming it', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    let err: unknown;
    try {
      preflight(configWith(file, join(file, 'deeper', 'index')), { file: '/x/config.toml' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message.split('\n')).toEqual([
      `config error in /x/config.toml: video.storage.base_path = "${file}": ${file} exists and is not a directory`,
      `config error in /x/config.toml: video.storage.index_path = "${join(file, 'deeper', 'index')}": ${file} is not a directory`,
    ]);
  });

  test('the message style of the spec example', () => {
    // /etc/passwd exists on every Linux box; the check only stats it.
    expect(checkDirectoryPath('/etc/passwd/x')).toBe('/etc/passwd is not a directory');
    const [p] = preflightProblems(configWith('/etc/passwd/x'));
    expect(p?.path).toBe('video.storage.base_path');
    expect(p?.value).toBe('"/etc/passwd/x"');
  });

  test('a path with a NUL byte is rejected before any system call', () => {
    expect(preflightProblems(configWith(`${dir}/a\0b`))[0]?.rule).toBe('must not contain a NUL character');
    const e = (() => {
      try {
        loadConfig({ argv: [], env: { FLUX_STORAGE_BASE_PATH: 'a\0b' } });
      } catch (err) {
        return err as Error;
      }
    })();
    expect(e?.message).toBe(
      'config error in env FLUX_STORAGE_BASE_PATH: video.storage.base_path = "a\\u0000b": must be a non-empty path without NUL characters',
    );
  });

  test('names the env var when the path came from the environment', () => {
    const file = join(dir, 'env-file');
    writeFileSync(file, 'x');
    const loaded = loadConfig({ argv: [], env: { FLUX_STORAGE_INDEX_PATH: join(file, 'i') }, cwd: dir });
    const problems = preflightProblems(loaded.config, loaded);
    expect(problems.map((p) => `${p.origin} ${p.path}`)).toEqual(['env FLUX_STORAGE_INDEX_PATH video.storage.index_path']);
  });

  test('a path under a directory this process cannot write to is an error', () => {
    const ro = join(dir, 'read-only');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    const target = join(ro, 'data');
    const expected = new RegExp(`^${ro.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not writable by this process \\(uid \\d+\\): EACCES$`);
    if (process.getuid?.() !== 0) {
      expect(checkDirectoryPath(target)).toMatch(expected);
      return;
    }
    // root writes anywhere: run the same check as the unprivileged user "nobody".
    const bun = join(import.meta.dir, '..', 'node_modules', '.bin', 'bun');
    const script = `import { checkDirectoryPath } from ${JSON.stringify(join(import.meta.dir, 'config-preflight.ts'))};
console.log(JSON.stringify([checkDirectoryPath(${JSON.stringify(target)}), checkDirectoryPath(${JSON.stringify(join(dir, 'ok'))})]));`;
    const r = spawnSync(bun, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: dir } });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    const [bad, good] = JSON.parse(r.stdout) as [string | null, string | null];
    expect(bad).toMatch(expected);
    expect(good).toMatch(/is not writable by this process \(uid 65534\)/); // dir is root's 0755
  });
});
