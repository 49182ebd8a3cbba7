import { describe, expect, test } from 'bun:test';
import { mulberry32, mutate } from '../../media/testdata/test-helpers.ts';
import { authorizationFor, challengeHeader, checkNonce, createNonce, digestResponse, md5, parseAuthorization, verifyDigest } from './digest.ts';

const SECRET = 's3cret';
const T0 = 1_700_000_000_000;
const base = { method: 'REGISTER', realm: '3402000000', expectUser: '34020000001320000001', password: 'pw', secret: SECRET, nonceLifetimeMs: 300_000 };

function answer(nowMs: number, o: { password?: string; qop?: boolean; user?: string } = {}) {
  const challenge = challengeHeader({ realm: '3402000000', nonce: createNonce(SECRET, nowMs), qop: o.qop });
  return authorizationFor({ challenge, method: 'REGISTER', uri: 'sip:34020000002000000001@3402000000', username: o.user ?? '34020000001320000001', password: o.password ?? 'pw' })!;
}

describe('SIP digest (server side)', () => {
  test('RFC 2617 §3.5 example response (qop=auth)', () => {
    // The RFC's worked example (HTTP GET, but the same computation).
    const r = digestResponse({ username: 'Mufasa', realm: 'testrealm@host.com', nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', uri: '/dir/index.html', qop: 'auth', nc: '00000001', cnonce: '0a4f113b' }, 'GET', 'Circle Of Life');
    expect(r).toBe('6629fae49393a05397450978507c4ef1');
  });

  test('the GB28181 formula without qop: MD5(HA1:nonce:HA2)', () => {
    const c = { username: 'u', realm: 'r', nonce: 'n', uri: 'sip:x@r' };
    expect(digestResponse(c, 'REGISTER', 'p')).toBe(md5(`${md5('u:r:p')}:n:${md5('REGISTER:sip:x@r')}`));
  });

  test('accepts the right password, with and without qop', () => {
    expect(verifyDigest({ ...base, authorization: answer(T0), nowMs: T0 + 1000 })).toEqual({ kind: 'ok' });
    expect(verifyDigest({ ...base, authorization: answer(T0, { qop: true }), nowMs: T0 + 1000 })).toEqual({ kind: 'ok' });
  });

  test('a wrong password or another user is forbidden', () => {
    expect(verifyDigest({ ...base, authorization: answer(T0, { password: 'no' }), nowMs: T0 }).kind).toBe('forbidden');
    expect(verifyDigest({ ...base, authorization: answer(T0, { user: '34020000001320000009' }), nowMs: T0 }).kind).toBe('forbidden');
  });

  test('an expired nonce is stale; a foreign or missing one is challenged', () => {
    expect(verifyDigest({ ...base, authorization: answer(T0), nowMs: T0 + 300_001 })).toEqual({ kind: 'stale' });
    expect(checkNonce(createNonce('other', T0), SECRET, T0, 1000)).toBe('invalid');
    expect(verifyDigest({ ...base, authorization: undefined, nowMs: T0 }).kind).toBe('challenge');
    expect(verifyDigest({ ...base, authorization: 'Basic abc', nowMs: T0 }).kind).toBe('challenge');
    const forged = answer(T0).replace(/nonce="[^"]*"/, `nonce="${createNonce('other', T0)}"`);
    expect(verifyDigest({ ...base, authorization: forged, nowMs: T0 }).kind).toBe('challenge');
  });

  test('the challenge carries stale=true and qop when asked', () => {
    expect(challengeHeader({ realm: 'r', nonce: 'n', stale: true, qop: true })).toBe('Digest realm="r", nonce="n", algorithm=MD5, qop="auth", stale=true');
  });

  test('fuzz: mutated Authorization values never verify and never throw', () => {
    const rnd = mulberry32(0xd16);
    const good = new TextEncoder().encode(answer(T0));
    let ok = 0;
    for (let i = 0; i < 3000; i++) {
      const v = new TextDecoder().decode(mutate(good, rnd));
      parseAuthorization(v);
      const r = verifyDigest({ ...base, authorization: v, nowMs: T0 });
      if (r.kind === 'ok') ok++;
    }
    // A mutation that only touches quoting or spacing can still verify; a changed response never does.
    expect(ok).toBeLessThan(3000 * 0.2);
  });
});
