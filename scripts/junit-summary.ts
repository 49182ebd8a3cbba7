// Counts passed, failed and skipped test cases in a JUnit XML report (Bun's format).
import { existsSync, readFileSync } from 'node:fs';

export interface JunitSummary { passed: number; failed: number; skipped: number }

export function summarizeJunit(path: string): JunitSummary {
  if (!existsSync(path)) return { passed: 0, failed: 1, skipped: 0 }; // the runner died before reporting
  const xml = readFileSync(path, 'utf8');
  const root = /<testsuites\b[^>]*>/.exec(xml)?.[0] ?? '';
  const attr = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(root)?.[1] ?? 0);
  const tests = attr('tests');
  const failed = attr('failures') + attr('errors');
  const skipped = attr('skipped');
  return { passed: Math.max(0, tests - failed - skipped), failed, skipped };
}

if (import.meta.main) {
  const s = summarizeJunit(process.argv[2] ?? 'test-results/junit.xml');
  console.log(`${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
}
