// The HTTP app (Hono on Bun.serve): health and the first read-only API routes.
import { Hono } from 'hono';
import type { Engine } from '../engine/engine.ts';
import { registerLiveRoutes } from './routes-live.ts';

export function createApp(engine: Engine): Hono {
  const app = new Hono();
  app.get('/healthz', (c) =>
    c.json({ ok: true, uptime_ms: Date.now() - engine.startedAt, streams: engine.streams.size, writer: engine.writerKind }),
  );
  app.get('/api/video/streams', (c) =>
    c.json({
      streams: [...engine.streams.values()].map((e) => ({
        stream_id: e.config.stream_id,
        protocol: e.config.protocol,
        source_url: e.config.source_url,
        record: e.config.record,
        origin: e.origin,
        state: e.state,
        error: e.error,
        counters: e.handle?.counters ?? null,
      })),
    }),
  );
  app.get('/api/video/recordings/:id', (c) => {
    const id = c.req.param('id');
    const now = Date.now();
    const start = Number(c.req.query('start') ?? now - 3_600_000);
    const end = Number(c.req.query('end') ?? now);
    if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) {
      return c.json({ error: 'start and end must be Unix ms with start < end', field: 'start' }, 400);
    }
    if (!engine.streams.has(id) && engine.index.streamStats(id).count === 0) return c.json({ error: `no stream ${id}` }, 404);
    const segments = engine.index.querySegments(id, start, end, now).map((s) => ({
      start_ms: s.start_ms,
      end_ms: s.end_ms,
      path: s.path,
      bytes: s.bytes,
      codecs: s.codecs,
      width: s.width,
      height: s.height,
      state: s.state,
    }));
    return c.json({ stream_id: id, start, end, segments, gaps: engine.index.gaps(id, start, end, 1000, { nowMs: now }) });
  });
  registerLiveRoutes(app, engine);
  app.onError((err, c) => c.json({ error: err.message }, err.name === 'IndexError' ? 400 : 500));
  return app;
}
