// The engine as a user runs it: config errors stop it before anything is opened, and a
// start with no config at all records the demo camera under ./data within seconds.
import { expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { scanFragments } from '../media/fmp4-scan.ts';
import { join } from 'node:path';
import { BUN, ROOT, sleep, tempDir, waitFor } from './helpers.ts';

async function runMain(cwd: string, args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawn([BUN, join(ROOT, 'engine/main.ts'), ...args], { cwd, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

test.each([
  ['a bad port', '[http]\nport = 70000\n', /http\.port = 70000: must be an integer from 1 to 65535/],
  ['an unknown protocol', '[[video.streams]]\nstream_id = "x"\nprotocol = "ftp"\nsource_url = "ftp://h/x"\n', /video\.streams\[0\]\.protocol = "ftp": must be one of file, rtsp, rtmp, gb28181, webrtc/],
])('%s exits 2 with a message naming the key, the value and what is allowed, before opening anything', async (_name, toml, re) => {
  const dir = tempDir('cli');
  writeFileSync(join(dir, 'config.toml'), `[video.storage]\nbase_path = "${dir}/data"\n${toml}`);
  const r = await runMain(dir, ['--config', join(dir, 'config.toml')]);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(re);
  expect(r.stderr).toContain(join(dir, 'config.toml'));
  expect(existsSync(join(dir, 'data'))).toBe(false);
});

test('a storage path that is a file exits 2 naming the key and the reason', async () => {
  const dir = tempDir('cli');
  writeFileSync(join(dir, 'not-a-dir'), 'x');
  const r = await runMain(dir, [], { FLUX_STORAGE_BASE_PATH: join(dir, 'not-a-dir') });
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/FLUX_STORAGE_BASE_PATH/);
  expect(r.stderr).toMatch(/video\.storage\.base_path = ".*not-a-dir": .*not a directory/);
});

test('with no config, the engine records the demo camera into ./data and the recording grows', async () => {
  const dir = tempDir('fresh');
  const p = Bun.spawn([BUN, join(ROOT, 'engine/main.ts')], {
    cwd: dir,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      ...process.env,
      FLUX_HTTP_PORT: String(19_000 + (process.pid % 900)),
      FLUX_HTTP_HOST: '127.0.0.1',
      FLUX_RTMP_PORT: String(29_000 + (process.pid % 900)),
      FLUX_RTMP_HOST: '127.0.0.1',
    },
  });
  try {
    const demoDir = join(dir, 'data', 'demo');
    const file = await waitFor(() => findMp4(demoDir), 20_000, 'a segment under ./data/demo');
    // The file's size runs ahead of its content (the native writer reserves space in steps):
    // count the whole fragments in it instead.
    const fragments = () => scanFragments(new Uint8Array(readFileSync(file))).fragments.length;
    const n1 = await waitFor(() => fragments(), 5_000, 'fragments in the segment');
    await sleep(2_500);
    expect(fragments()).toBeGreaterThan(n1);
  } finally {
    p.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  }
}, 40_000);

function findMp4(d: string): string | null {
  if (!existsSync(d)) return null;
  for (const e of readdirSync(d, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.mp4')) return join(e.parentPath, e.name);
  }
  return null;
}
