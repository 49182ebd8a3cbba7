/// <reference lib="dom" />
// The UI's entry: the navigation bar and a client-side router (History API) that renders one
// page per URL, so every view can be shared as a link; the engine serves this shell at each path.
import { clearToken, getToken, onUnauthorized } from './api.ts';
import { h } from './dom.ts';
import { devicesPage } from './page-devices.ts';
import { gridPage } from './page-grid.ts';
import { livePage } from './page-live.ts';
import { loginPage } from './page-login.ts';
import { recordingsPage } from './page-recordings.ts';
import { snapshotsPage } from './page-snapshots.ts';
import { streamsPage } from './page-streams.ts';
import { systemPage } from './page-system.ts';

/** What a page gets; it returns its clean-up (timers, sockets, players) for when the route changes. */
export interface PageContext {
  root: HTMLElement;
  params: Record<string, string>;
  query: URLSearchParams;
  navigate(path: string, replace?: boolean): void;
  setTitle(t: string): void;
}
export type Page = (ctx: PageContext) => (() => void) | void;

interface Route {
  re: RegExp;
  keys: string[];
  page: Page;
  nav: string;
}

function route(pattern: string, page: Page, nav: string): Route {
  const keys: string[] = [];
  const re = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, k: string) => (keys.push(k), '([^/]+)'))}/?$`);
  return { re, keys, page, nav };
}

const ROUTES: Route[] = [
  route('/', streamsPage, 'streams'),
  route('/streams', streamsPage, 'streams'),
  route('/grid', gridPage, 'grid'),
  route('/live/:id', livePage, 'grid'),
  route('/recordings', recordingsPage, 'recordings'),
  route('/recordings/:id', recordingsPage, 'recordings'),
  route('/snapshots', snapshotsPage, 'snapshots'),
  route('/snapshots/:id', snapshotsPage, 'snapshots'),
  route('/system', systemPage, 'system'),
  route('/devices', devicesPage, 'devices'),
  route('/login', loginPage, ''),
];

const NAV: [string, string, string][] = [
  ['streams', '/streams', 'Streams'],
  ['grid', '/grid', 'Live'],
  ['recordings', '/recordings', 'Recordings'],
  ['snapshots', '/snapshots', 'Snapshots'],
  ['devices', '/devices', 'GB28181'],
  ['system', '/system', 'System'],
];

const navLinks = new Map<string, HTMLAnchorElement>();
const logout = h('button', { class: 'link', type: 'button', onclick: () => (clearToken(), navigate('/login')) }, 'Log out');
const header = h(
  'header',
  { class: 'top' },
  h('a', { class: 'brand', href: '/streams' }, 'FLUX', h('span', {}, ' video')),
  h('nav', {}, ...NAV.map(([k, href, label]) => {
    const a = h('a', { href, 'data-nav': k }, label);
    navLinks.set(k, a);
    return a;
  })),
  h('div', { class: 'spacer' }),
  logout,
);
const main = h('main', { id: 'page' });
document.body.append(header, main);

let cleanup: (() => void) | void;

function render(): void {
  if (cleanup) cleanup();
  cleanup = undefined;
  const path = location.pathname;
  const r = ROUTES.find((x) => x.re.test(path));
  for (const [k, a] of navLinks) a.classList.toggle('active', r?.nav === k);
  logout.hidden = getToken() === '';
  const root = h('div', { class: 'page' });
  main.replaceChildren(root);
  if (r === undefined) {
    root.append(h('h1', {}, 'Not found'), h('p', {}, `No page at ${path}. `, h('a', { href: '/streams' }, 'Back to the streams.')));
    return;
  }
  const m = r.re.exec(path)!;
  const params: Record<string, string> = {};
  r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1]!)));
  document.title = 'FLUX video';
  try {
    cleanup = r.page({
      root, params, query: new URLSearchParams(location.search), navigate,
      setTitle: (t) => (document.title = `${t} · FLUX video`),
    });
  } catch (e) {
    root.append(h('p', { class: 'error' }, `This page failed: ${(e as Error).message}`));
  }
}

export function navigate(path: string, replace = false): void {
  if (path === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

// Same-origin links navigate in place (no reload); downloads, new tabs and /metrics do not.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element).closest('a');
  if (a === null || a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
  if (a.pathname.startsWith('/api/') || a.pathname === '/metrics' || a.pathname === '/healthz') return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener('popstate', render);

onUnauthorized(() => {
  if (location.pathname === '/login') return;
  navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
});

render();
