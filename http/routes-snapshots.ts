// Snapshots and keyframe JPEGs: GET /api/video/streams/{id}/snapshot?width= (the latest
// keyframe, decoded on demand), GET .../keyframes?start=&end=&limit= (the stored ones) and
// GET .../keyframes/{ms}.jpg.
import type { RouteModule } from './app.ts';
import { badRequest, HttpError, notFound } from './errors.ts';
import { numberParam, rangeParams, streamIdParam } from './params.ts';
import { containedPath } from '../engine/retention.ts';
import { MAX_SNAPSHOT_WIDTH } from '../engine/snapshots.ts';

const MAX_KEYFRAMES_LISTED = 10_000;

export const snapshotRoutes: RouteModule = (app, { engine }) => {
  app.get('/api/video/streams/:id/snapshot', async (c) => {
    const id = streamIdParam(c);
    const width = Math.round(numberParam(c, 'width', 16, MAX_SNAPSHOT_WIDTH, 0));
    const e = engine.streams.get(id);
    if (e === undefined) throw notFound(`no stream ${id}`);
    if (e.handle === null) throw new HttpError(409, `stream ${id} is ${e.state}: no picture to show`);
    const k = await engine.pool.latestKeyframe(e.handle);
    if (k === null) throw new HttpError(503, `stream ${id} has not sent a keyframe yet`, undefined, { 'retry-after': '2' });
    const jpeg = await engine.snapshots.jpeg(k, width);
    return new Response(jpeg as Uint8Array<ArrayBuffer>, {
      headers: { 'content-type': 'image/jpeg', 'cache-control': 'no-store', 'x-flux-picture-ms': String(k.wallMs) },
    });
  });

  app.get('/api/video/streams/:id/keyframes', (c) => {
    const id = streamIdParam(c);
    const now = Date.now();
    const { start, end } = rangeParams(c, { defaultSpanMs: 86_400_000, maxSpanMs: 31 * 86_400_000 }, now);
    const limit = Math.round(numberParam(c, 'limit', 1, MAX_KEYFRAMES_LISTED, 1000));
    const list = engine.index.queryKeyframes(id, start, end, limit);
    return c.json({
      stream_id: id,
      start,
      end,
      keyframes: list.map((k) => ({ ms: k.ms, bytes: k.bytes, url: `/api/video/streams/${id}/keyframes/${k.ms}.jpg` })),
    });
  });

  app.get('/api/video/streams/:id/keyframes/:file', (c) => {
    const id = streamIdParam(c);
    const m = /^(\d{1,15})\.jpg$/.exec(c.req.param('file'));
    if (m === null) throw badRequest('file', 'a keyframe is named <unix_ms>.jpg');
    const ms = Number(m[1]);
    const rec = engine.index.queryKeyframes(id, ms, ms + 1, 1)[0];
    const abs = rec ? containedPath(engine.basePath, rec.path) : undefined;
    if (rec === undefined || abs === undefined) throw notFound(`no keyframe ${ms} for ${id}`);
    return new Response(Bun.file(abs), { headers: { 'content-type': 'image/jpeg', 'cache-control': 'max-age=86400' } });
  });
};
