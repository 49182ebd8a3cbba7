import { describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { mulberry32, randInt } from '../media/testdata/test-helpers.ts';
import { Authenticator, basicAuthorization, chooseChallenge, MAX_AUTH_PARAMS, MAX_CHALLENGES, parseChallenges } from './http-auth.ts';

/** Pulls `name=value` (quoted or not) out of an Authorization value. */
const param = (v: string, name: string) => new RegExp(`[ ,]${name}="?([^",]*)"?`).exec(v)?.[1];

describe('WWW-Authenticate challenges', () => {
  test('reads several challenges from one header and from several headers', () => {
    const chs = parseChallenges([
      'Digest realm="Login to \\"cam\\", ok", nonce="n1", qop="auth,auth-int", algorithm=MD5, Basic realm="b"',
      'Negotiate',
    ]);
    expect(chs.map((c) => [c.scheme, { ...c.params }])).toEqual([
      ['digest', { realm: 'Login to "cam", ok', nonce: 'n1', qop: 'auth,auth-int', algorithm: 'MD5' }],
      ['basic', { realm: 'b' }],
      ['negotiate', {}],
    ]);
  });

  test('prefers Digest over Basic whatever the order, skipping algorithms we lack', () => {
    const pick = (...v: string[]) => chooseChallenge(parseChallenges(v));
    expect(pick('Basic realm="x"', 'Digest realm="x", nonce="1"')?.scheme).toBe('digest');
    expect(pick('Digest realm="x", nonce="1", algorithm=SHA-512-256', 'Digest realm="x", nonce="2", algorithm=SHA-256')?.params.nonce).toBe('2');
    expect(pick('Digest realm="x", nonce="1", algorithm=SHA-512-256', 'Basic realm="x"')?.scheme).toBe('basic');
    expect(pick('Digest realm="x"', 'Negotiate')).toBeNull(); // Digest without a nonce is unusable
  });

  test('never throws and stays within its caps on random header values', () => {
    const rnd = mulberry32(11);
    const alphabet = 'DigestBasic realm=nonce"\\, \t=qop';
    for (let k = 0; k < 5000; k++) {
      let s = '';
      const n = randInt(rnd, 200);
      for (let i = 0; i < n; i++) s += alphabet[randInt(rnd, alphabet.length)];
      const chs = parseChallenges([s, s.slice(3)]);
      expect(chs.length).toBeLessThanOrEqual(MAX_CHALLENGES);
      for (const c of chs) expect(Object.keys(c.params).length).toBeLessThanOrEqual(MAX_AUTH_PARAMS);
      chooseChallenge(chs);
    }
  });
});

describe('Authorization values', () => {
  test('Basic per RFC 7617 §2', () => {
    expect(basicAuthorization({ username: 'Aladdin', password: 'open sesame' })).toBe('Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==');
  });

  test('Digest MD5 with qop=auth: the RFC 2617 §3.5 example', () => {
    const [ch] = parseChallenges(['Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"']);
    const a = new Authenticator(ch!, { username: 'Mufasa', password: 'Circle Of Life' }, () => '0a4f113b');
    const v = a.authorization('GET', '/dir/index.html');
    expect(v).toBe(
      'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", ' +
        'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001, cnonce="0a4f113b"',
    );
    expect(param(a.authorization('GET', '/dir/index.html'), 'nc')).toBe('00000002');
  });

  test('Digest MD5 and SHA-256 with qop=auth: the RFC 7616 §3.9.1 examples', () => {
    const challenge = (alg: string) => parseChallenges([
      `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${alg}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
    ])[0]!;
    const creds = { username: 'Mufasa', password: 'Circle of Life' };
    const cnonce = () => 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ';
    const md5 = new Authenticator(challenge('MD5'), creds, cnonce).authorization('GET', '/dir/index.html');
    expect(param(md5, 'response')).toBe('8ca523f5e9506fed4657c9700eebdbec');
    const sha = new Authenticator(challenge('SHA-256'), creds, cnonce).authorization('GET', '/dir/index.html');
    expect(param(sha, 'response')).toBe('753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
    expect(param(sha, 'algorithm')).toBe('SHA-256');
  });

  test('Digest MD5 without qop (RFC 2069 compatibility, as gst-rtsp-server and many cameras send)', () => {
    const [ch] = parseChallenges(['Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"']);
    const v = new Authenticator(ch!, { username: 'Mufasa', password: 'Circle Of Life' }, () => 'unused').authorization('DESCRIBE', 'rtsp://h/x');
    // computed step by step by the shell's md5sum, independently of node:crypto
    const md5sum = (s: string) => Bun.spawnSync(['md5sum'], { stdin: new TextEncoder().encode(s) }).stdout.toString().slice(0, 32);
    const expected = md5sum(`${md5sum('Mufasa:testrealm@host.com:Circle Of Life')}:dcd98b7102dd2f0e8b11d0f600bfb0c093:${md5sum('DESCRIBE:rtsp://h/x')}`);
    expect(param(v, 'response')).toBe(expected);
    expect(v).not.toContain('nc=');
    expect(v).not.toContain('cnonce');
  });

  test('Digest MD5-sess and auth-int follow RFC 2617 §3.2.2', () => {
    const h = (s: string) => createHash('md5').update(s).digest('hex');
    const [ch] = parseChallenges(['Digest realm="r", nonce="n", algorithm=MD5-sess, qop="auth-int"']);
    const v = new Authenticator(ch!, { username: 'u', password: 'p' }, () => 'c').authorization('PLAY', 'rtsp://h/x');
    const ha1 = h(`${h('u:r:p')}:n:c`);
    const ha2 = h(`PLAY:rtsp://h/x:${h('')}`);
    expect(param(v, 'response')).toBe(h(`${ha1}:n:00000001:c:auth-int:${ha2}`));
    expect(param(v, 'qop')).toBe('auth-int');
  });

  test('a new challenge (stale nonce) restarts the nonce count', () => {
    const [c1, c2] = parseChallenges(['Digest realm="r", nonce="a", qop=auth', 'Digest realm="r", nonce="b", qop=auth, stale=true']);
    const a = new Authenticator(c1!, { username: 'u', password: 'p' }, () => 'c');
    a.authorization('OPTIONS', '*');
    expect(param(a.authorization('OPTIONS', '*'), 'nc')).toBe('00000002');
    a.update(c2!);
    const v = a.authorization('OPTIONS', '*');
    expect([param(v, 'nonce'), param(v, 'nc')]).toEqual(['b', '00000001']);
  });
});
