// Bearer-token auth for the API: `Authorization: Bearer <token>`, or `?token=` on GET/HEAD
// (media URLs and WebSocket upgrades, which cannot set headers); compared in constant time.
import { constantTimeEqual } from '../media/bytes.ts';
import type { MiddlewareHandler } from 'hono';
import { errorBody } from './errors.ts';

/** Tokens longer than this are not ours: refuse before hashing a peer-sized string. */
const MAX_TOKEN_CHARS = 4096;

// Bun's hasher rather than node:crypto, whose import costs ~10 ms of start-up.
const digest = (s: string): Uint8Array => new Bun.CryptoHasher('sha256').update(s).digest();

/** Constant-time equality of a presented token and the configured one (hashes make lengths equal). */
export function tokenMatches(presented: string | null | undefined, expected: string): boolean {
  if (presented === null || presented === undefined || presented.length > MAX_TOKEN_CHARS) return false;
  return constantTimeEqual(digest(presented), digest(expected));
}

/** The token a request presents: the Bearer header, else `?token=` for GET and HEAD only. */
export function presentedToken(req: Request): string | null {
  const h = req.headers.get('authorization');
  if (h !== null) {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
    return m ? m[1]! : null;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return null;
  return new URL(req.url).searchParams.get('token');
}

/** Middleware: passes every request when `token` is "" (auth off), else only those presenting it. */
export function requireToken(token: string): MiddlewareHandler {
  return async (c, next) => {
    if (token === '' || tokenMatches(presentedToken(c.req.raw), token)) return next();
    c.header('WWW-Authenticate', 'Bearer realm="flux-video"');
    return c.json(errorBody('missing or wrong token: send Authorization: Bearer <token> (or ?token= on media and WebSocket URLs)'), 401);
  };
}
