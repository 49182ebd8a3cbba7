// Routes of SPEC.md's API that this build does not serve yet (analysis): each answers
// 501 with what is missing, after the same id checks a full implementation would make.
import type { Hono } from 'hono';
import type { AppContext } from './app.ts';
import { HttpError, notFound } from './errors.ts';
import { streamIdParam } from './params.ts';

const ANALYZE = 'danger detection (analyze) is not available in this build yet';

export function unavailableRoutes(app: Hono, { engine }: AppContext): void {
  app.post('/api/video/analyze/:id', (c) => {
    const id = streamIdParam(c);
    if (!engine.streams.has(id)) throw notFound(`no stream ${id}`);
    throw new HttpError(501, ANALYZE);
  });
}
