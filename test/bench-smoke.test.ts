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
