// Where a worker thread's entry point is: workers/<name>.ts, or, when the engine itself runs
// from the start-up bundle (engine/launch.ts sets globalThis.fluxBundle), the bytecode bundle of
// that entry built beside it (.build/<name>.js, scripts/bundle.mjs), so the thread does not
// parse and compile its ~100 modules on another core while the engine starts.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export function workerEntry(name: 'media-worker' | 'thumbnail-worker'): string {
  const bundle = (globalThis as { fluxBundle?: string }).fluxBundle;
  if (typeof bundle === 'string') {
    const file = join(dirname(bundle), `${name}.js`);
    if (existsSync(file)) return pathToFileURL(file).href;
  }
  return new URL(`../workers/${name}.ts`, import.meta.url).href;
}
