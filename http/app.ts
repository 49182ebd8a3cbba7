// The HTTP app (Hono on Bun.serve): auth, the route modules, and the one error handler.
// A feature adds its routes as a RouteModule (a function of the app and the shared context).
import { Hono } from 'hono';
import { TrieRouter } from 'hono/router/trie-router';
import type { Engine } from '../engine/engine.ts';
import { requireToken } from './auth.ts';
import { errorBody, handleError } from './errors.ts';
import { Metrics } from './metrics.ts';
import { RecordingFiles } from './recording-files.ts';
import { liveRoutes } from './routes-live.ts';
import { playbackRoutes } from './routes-playback.ts';
import { recordingRoutes } from './routes-recordings.ts';
import { snapshotRoutes } from './routes-snapshots.ts';
import { streamRoutes } from './routes-streams.ts';
import { systemRoutes } from './routes-system.ts';
import { unavailableRoutes } from './routes-unavailable.ts';
import { gb28181Routes } from './routes-gb28181.ts';
import { uiRoutes } from './routes-ui.ts';

/** What route modules share: the engine, the metrics registry (setViewers), cached recording reads. */
export interface AppContext {
  engine: Engine;
  metrics: Metrics;
  files: RecordingFiles;
}

export type RouteModule = (app: Hono, ctx: AppContext) => void;

/** Registered in this order; more specific paths of one prefix must not be shadowed by earlier ones. */
export const ROUTE_MODULES: readonly RouteModule[] = [systemRoutes, streamRoutes, liveRoutes, snapshotRoutes, recordingRoutes, playbackRoutes, gb28181Routes, unavailableRoutes, uiRoutes];

export interface AppOptions {
  /** Modules added after the built-in ones. */
  routes?: readonly RouteModule[];
}

/**
 * Auth covers every /api route (WebSocket upgrades included) and /metrics when `[http] token`
 * is set; /healthz stays open for load balancers and supervisors.
 */
export function createApp(engine: Engine, opts: AppOptions = {}): Hono & { ctx: AppContext } {
  // TrieRouter rather than Hono's default (SmartRouter over RegExpRouter): the default builds one
  // regular expression of every route on the first request, 6-15 ms that the first caller after
  // a start waits for (a supervisor's /healthz); the trie is built as routes are added and
  // matches a first request in 0.3-0.5 ms. Routing is not a hot path here: 0.8 µs a match against
  // 0.16 (micro-benchmark of these routes).
  // (LinearRouter, also compile-free, answered /segments/%2e%2e with the recording's listing.)
  const app = new Hono({ router: new TrieRouter() });
  const ctx: AppContext = { engine, metrics: new Metrics(engine), files: new RecordingFiles() };
  const auth = requireToken(engine.config.http.token);
  app.use('/api/*', auth);
  app.use('/metrics', auth);
  for (const register of [...ROUTE_MODULES, ...(opts.routes ?? [])]) register(app, ctx);
  app.notFound((c) => c.json(errorBody(`no route ${c.req.method} ${new URL(c.req.url).pathname}`), 404));
  app.onError(handleError);
  return Object.assign(app, { ctx });
}
