// What `npm start` runs: the start-up bundle of engine/main.ts (scripts/bundle.mjs: one file
// with Bun's bytecode, built into .build/ by scripts/setup.mjs, which `npm start` runs first and
// which rebuilds it when a source changed) if it was built for this checkout and this Bun, else
// engine/main.ts itself. Same engine, same arguments; the bundle reaches a listening API in
// about half the time. FLUX_NO_BUNDLE=1 runs the sources.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

function bundlePath(): string | null {
  if (process.env.FLUX_NO_BUNDLE === '1') return null;
  const root = dirname(import.meta.dir);
  try {
    // Written by scripts/bundle.mjs after the bundle itself (its BUNDLE_DIR, STAMP_FILE, BUNDLE_FILE).
    const stamp = JSON.parse(readFileSync(join(root, '.build', 'flux.stamp.json'), 'utf8')) as { root?: string; bun?: string };
    const file = join(root, '.build', 'flux.js');
    return stamp.root === root && stamp.bun === Bun.version && existsSync(file) ? file : null;
  } catch {
    return null;
  }
}

const bundle = bundlePath();
// main.ts names the bundle in its ready line.
(globalThis as { fluxBundle?: string }).fluxBundle = bundle ?? undefined;
if (bundle !== null) require(bundle);
else await import('./main.ts');
