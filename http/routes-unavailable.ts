// Routes of SPEC.md's API that this build does not serve yet (GB28181, analysis): each answers
// 501 with what is missing, after the same id checks a full implementation would make.
import type { Hono } from 'hono';
import type { AppContext } from './app.ts';
import { HttpError, notFound } from './errors.ts';
import { streamIdParam } from './params.ts';

const GB28181 = 'GB28181 devices, PTZ and device playback are not available in this build yet';
const ANALYZE = 'danger detection (analyze) is not available in this build yet';

export function unavailableRoutes(app: Hono, { engine }: AppContext): void {
  app.get('/api/video/gb28181/devices', () => { throw new HttpError(501, GB28181); });
  app.post('/api/video/gb28181/devices/:device_id/ptz', () => { throw new HttpError(501, GB28181); });
  app.post('/api/video/gb28181/devices/:device_id/playback', () => { throw new HttpError(501, GB28181); });
  app.post('/api/video/analyze/:id', (c) => {
    const id = streamIdParam(c);
    if (!engine.streams.has(id)) throw notFound(`no stream ${id}`);
    throw new HttpError(501, ANALYZE);
  });
}
