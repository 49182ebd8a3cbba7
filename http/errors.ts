// HTTP error classes and the one error handler that maps every error class to a status code;
// a bad request gets a 4xx with a JSON message, never a stack.
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { EngineError } from '../engine/engine.ts';
import { IndexError } from '../engine/index-db.ts';
import { log } from '../engine/log.ts';

/** An error with its status; `field` names the request field at fault (400s). */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly field?: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const badRequest = (field: string, message: string) => new HttpError(400, message, field);
export const notFound = (message: string) => new HttpError(404, message);
export const conflict = (message: string) => new HttpError(409, message);

/** JSON body of every error answer: `{error}` plus `field` for validation errors. */
export function errorBody(message: string, field?: string): { error: string; field?: string } {
  return field === undefined ? { error: message } : { error: message, field };
}

/** Hono onError: known classes to their status; anything else is a 500 logged once with its stack. */
export function handleError(err: Error, c: Context): Response {
  if (err instanceof HttpError) {
    for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
    return c.json(errorBody(err.message, err.field), err.status);
  }
  if (err instanceof IndexError) {
    const status = err.code === 'invalid' ? 400 : err.code === 'not-found' ? 404 : 503;
    return c.json(errorBody(err.message), status);
  }
  if (err instanceof EngineError) return c.json(errorBody(err.message), 409);
  if (err instanceof SyntaxError) return c.json(errorBody(`malformed JSON: ${err.message}`, ''), 400);
  log.error(`${c.req.method} ${new URL(c.req.url).pathname}: ${err.stack ?? err.message}`);
  return c.json(errorBody('internal error; see the engine log'), 500);
}
