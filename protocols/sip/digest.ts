// Server-side HTTP Digest for SIP REGISTER (RFC 3261 §22.4, RFC 2617 §3.2 with MD5, qop=auth
// optional): challenges, stateless nonces that expire (stale=true), and response checking.
// Time is passed in; nonces are `<hex ms>.<HMAC(secret, hex ms)>` so no table of nonces is kept.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { Authenticator, chooseChallenge, parseChallenges } from '../http-auth.ts';

/** Authorization header values are ~300 chars; 4 KiB bounds what we split. */
export const MAX_AUTH_HEADER_CHARS = 4096;

export const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

export function createNonce(secret: string, nowMs: number): string {
  const t = Math.floor(nowMs).toString(16);
  return `${t}.${createHmac('sha256', secret).update(t).digest('hex').slice(0, 32)}`;
}

export type NonceCheck = 'ok' | 'stale' | 'invalid';

/** 'stale' when ours but older than lifetimeMs (or from the future beyond 5 s of clock slack). */
export function checkNonce(nonce: string, secret: string, nowMs: number, lifetimeMs: number): NonceCheck {
  const m = /^([0-9a-f]{1,13})\.([0-9a-f]{32})$/.exec(nonce);
  if (m === null) return 'invalid';
  const want = Buffer.from(createHmac('sha256', secret).update(m[1]!).digest('hex').slice(0, 32));
  if (!timingSafeEqual(want, Buffer.from(m[2]!))) return 'invalid';
  const age = nowMs - parseInt(m[1]!, 16);
  return age > lifetimeMs || age < -5000 ? 'stale' : 'ok';
}

export interface ChallengeOptions { realm: string; nonce: string; stale?: boolean; qop?: boolean }

/** WWW-Authenticate value of the 401. */
export function challengeHeader(o: ChallengeOptions): string {
  return `Digest realm="${o.realm}", nonce="${o.nonce}", algorithm=MD5${o.qop ? ', qop="auth"' : ''}${o.stale ? ', stale=true' : ''}`;
}

export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm: string;
  qop?: string;
  nc?: string;
  cnonce?: string;
  opaque?: string;
}

/** Parses `Digest k=v, k="v", ...` (the RFC 7235 auth-param list RTSP uses too); null when it is not Digest or lacks a required field. */
export function parseAuthorization(v: string): DigestCredentials | null {
  if (v.length > MAX_AUTH_HEADER_CHARS) return null;
  const [ch] = parseChallenges([v]);
  if (ch === undefined || ch.scheme !== 'digest') return null;
  const p = ch.params;
  const { username, realm, nonce, uri, response } = p;
  if (username === undefined || realm === undefined || nonce === undefined || uri === undefined || response === undefined) return null;
  const c: DigestCredentials = { username, realm, nonce, uri, response: response.toLowerCase(), algorithm: p.algorithm ?? 'MD5' };
  for (const k of ['qop', 'nc', 'cnonce', 'opaque'] as const) if (p[k] !== undefined) c[k] = p[k];
  return c;
}

/** RFC 2617 §3.2.2.1 request-digest, MD5 (HA1 of user:realm:password), with or without qop=auth. */
export function digestResponse(c: Omit<DigestCredentials, 'response' | 'algorithm'>, method: string, password: string): string {
  const ha1 = md5(`${c.username}:${c.realm}:${password}`);
  const ha2 = md5(`${method}:${c.uri}`);
  return c.qop === 'auth' ? md5(`${ha1}:${c.nonce}:${c.nc ?? ''}:${c.cnonce ?? ''}:auth:${ha2}`) : md5(`${ha1}:${c.nonce}:${ha2}`);
}

export type DigestVerdict =
  | { kind: 'ok' }
  | { kind: 'stale' }
  | { kind: 'challenge'; reason: string }
  | { kind: 'forbidden'; reason: string };

/**
 * What to do with a REGISTER's Authorization: ok; stale (ours but expired: 401 stale=true);
 * challenge (absent, unparsable, foreign nonce or realm: a fresh 401); forbidden (our nonce,
 * wrong password or user: 403, RFC 3261 §22.4 lets a server refuse instead of re-challenging).
 */
export function verifyDigest(o: {
  authorization: string | undefined;
  method: string;
  realm: string;
  expectUser: string;
  password: string;
  secret: string;
  nowMs: number;
  nonceLifetimeMs: number;
}): DigestVerdict {
  if (o.authorization === undefined) return { kind: 'challenge', reason: 'no Authorization' };
  const c = parseAuthorization(o.authorization);
  if (c === null) return { kind: 'challenge', reason: 'unparsable Authorization' };
  if (c.algorithm.toUpperCase() !== 'MD5') return { kind: 'challenge', reason: `algorithm ${c.algorithm} not supported` };
  if (c.realm !== o.realm) return { kind: 'challenge', reason: `realm ${c.realm} is not ${o.realm}` };
  if (c.qop !== undefined && c.qop !== 'auth') return { kind: 'challenge', reason: `qop ${c.qop} not supported` };
  const n = checkNonce(c.nonce, o.secret, o.nowMs, o.nonceLifetimeMs);
  if (n === 'invalid') return { kind: 'challenge', reason: 'nonce not issued by us' };
  if (c.username !== o.expectUser) return { kind: 'forbidden', reason: `username ${c.username} is not the device id ${o.expectUser}` };
  const want = digestResponse(c, o.method, o.password);
  const got = Buffer.from(c.response);
  const ok = got.length === want.length && timingSafeEqual(Buffer.from(want), got);
  if (!ok) return { kind: 'forbidden', reason: 'wrong password' };
  return n === 'stale' ? { kind: 'stale' } : { kind: 'ok' };
}

/** Client side (the device simulator, tests): the Authorization answering a challenge, by the RTSP client's Authenticator. */
export function authorizationFor(o: { challenge: string; method: string; uri: string; username: string; password: string }): string | null {
  const ch = chooseChallenge(parseChallenges([o.challenge]));
  if (ch === null || ch.scheme !== 'digest') return null;
  return new Authenticator(ch, { username: o.username, password: o.password }).authorization(o.method, o.uri);
}
