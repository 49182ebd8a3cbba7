// The operator's web UI: the HTML shell at `/` and at every page path the client-side router
// knows, and the script and style bundled from http/ui by Bun.build on the first request.
import { join } from 'node:path';
import type { Context, Hono } from 'hono';
import { log } from '../engine/log.ts';
import type { AppContext } from './app.ts';

const UI_DIR = join(import.meta.dir, 'ui');

/**
 * Page paths the router in http/ui/main.ts renders; each gets the shell so a shared link
 * opens that page. Kept explicit (no catch-all) so unknown paths still answer a JSON 404.
 */
export const UI_PAGES = ['/', '/streams', '/grid', '/live/:id', '/recordings/:id', '/snapshots/:id', '/snapshots', '/recordings', '/system', '/devices', '/login'] as const;

const SHELL = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FLUX video</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/app.css">
</head>
<body>
<noscript>The FLUX video console needs JavaScript.</noscript>
<script type="module" src="/ui/app.js"></script>
</body>
</html>
`;

interface Asset {
  body: Uint8Array;
  gzip: Uint8Array;
  type: string;
  etag: string;
}

/**
 * The bundle, built once per process on first use and kept in memory (~0.5 MB with hls.js).
 * Building takes a few hundred ms, so it never runs at start-up: the API is ready at once and
 * the first page load pays for it. A failed build is retried on the next request.
 */
let building: Promise<Map<string, Asset>> | null = null;

function asset(body: Uint8Array, type: string): Asset {
  const hash = Bun.hash(body).toString(36);
  return { body, gzip: Bun.gzipSync(body as Uint8Array<ArrayBuffer>), type, etag: `"${hash}"` };
}

async function build(): Promise<Map<string, Asset>> {
  const t0 = performance.now();
  const out = await Bun.build({
    entrypoints: [join(UI_DIR, 'main.ts')],
    target: 'browser',
    minify: true,
    sourcemap: 'none',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  if (!out.success) throw new Error(out.logs.map(String).join('\n'));
  const js = out.outputs.find((o) => o.kind === 'entry-point');
  if (js === undefined) throw new Error('Bun.build produced no entry point');
  const css = await Bun.file(join(UI_DIR, 'style.css')).bytes();
  const assets = new Map<string, Asset>([
    ['app.js', asset(new Uint8Array(await js.arrayBuffer()), 'text/javascript; charset=utf-8')],
    ['app.css', asset(css, 'text/css; charset=utf-8')],
  ]);
  log.info(`web UI bundled in ${Math.round(performance.now() - t0)} ms (${assets.get('app.js')!.body.length} bytes of script)`);
  return assets;
}

function assets(): Promise<Map<string, Asset>> {
  if (building === null) {
    building = build();
    building.catch((e: Error) => {
      log.error(`web UI bundle failed: ${e.message}`);
      building = null;
    });
  }
  return building;
}

function serveAsset(c: Context, a: Asset): Response {
  const headers: Record<string, string> = { 'Content-Type': a.type, ETag: a.etag, 'Cache-Control': 'no-cache', Vary: 'Accept-Encoding' };
  if (c.req.header('if-none-match') === a.etag) return new Response(null, { status: 304, headers });
  const gz = /\bgzip\b/.test(c.req.header('accept-encoding') ?? '');
  if (gz) headers['Content-Encoding'] = 'gzip';
  return new Response((gz ? a.gzip : a.body) as Uint8Array<ArrayBuffer>, { status: 200, headers });
}

/** Static shell and bundle: open without the API token (the API calls they make are guarded). */
export function uiRoutes(app: Hono, _ctx: AppContext): void {
  const shell = (c: Context) => c.html(SHELL, 200, { 'Cache-Control': 'no-cache' });
  for (const p of UI_PAGES) app.get(p, shell);
  app.get('/ui/:file', async (c) => {
    const a = (await assets()).get(c.req.param('file'));
    if (a === undefined) return c.json({ error: `no UI file ${c.req.param('file')}` }, 404);
    return serveAsset(c, a);
  });
}
