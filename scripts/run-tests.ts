// Runs the whole suite with Bun's JUnit reporter and ends with the line CI reads:
// `N passed, N failed, N skipped`, counted from the JUnit report (not Bun's own summary).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeJunit } from './junit-summary.ts';

const root = join(import.meta.dir, '..');
const out = join(root, 'test-results', 'junit.xml');
mkdirSync(join(root, 'test-results'), { recursive: true });
const args = process.argv.slice(2);
const proc = Bun.spawn(
  [process.execPath, 'test', '--reporter=junit', `--reporter-outfile=${out}`, ...args],
  { cwd: root, stdio: ['inherit', 'inherit', 'inherit'], env: { ...process.env, FLUX_TEST: '1' } },
);
const code = await proc.exited;
const s = summarizeJunit(out);
console.log(`\n${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
// A run with no tests counted is a failure: CI must never pass on an empty suite.
process.exit(code !== 0 || s.failed > 0 || s.passed === 0 ? 1 : 0);
