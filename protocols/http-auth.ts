// HTTP authentication as RTSP and SIP use it: auth-param lists (WWW-Authenticate challenges,
// Digest Authorization values) and the client's Authorization values for Basic (RFC 7617) and Digest (RFC 2617, RFC 7616: MD5, MD5-sess, SHA-256, qop auth/auth-int or none).

/** Challenges per 401 we look at: a camera offers 1-3; ×5. */
export const MAX_CHALLENGES = 16;
/** Parameters per challenge: realm, nonce, opaque, qop, algorithm, stale, domain, charset, userhash; ×2. */
export const MAX_AUTH_PARAMS = 20;
/** A header value we parse; the longest real challenges are ~300 bytes; ×13. */
export const MAX_CHALLENGE_CHARS = 4096;

export interface Challenge {
  /** Lower-cased scheme: 'basic', 'digest', or whatever the server sent. */
  scheme: string;
  /** Lower-cased parameter names; quoted values unescaped. */
  params: Record<string, string>;
}

/**
 * RFC 7235 §4.1: `WWW-Authenticate: 1#challenge`, challenge = auth-scheme [ 1*SP #auth-param ].
 * Several challenges may share one header value, separated by commas. Malformed parts are skipped.
 */
export function parseChallenges(values: string[]): Challenge[] {
  const out: Challenge[] = [];
  for (const raw of values) {
    const v = raw.slice(0, MAX_CHALLENGE_CHARS);
    let i = 0;
    let cur: Challenge | null = null;
    while (i < v.length && out.length < MAX_CHALLENGES) {
      while (i < v.length && (v[i] === ' ' || v[i] === '\t' || v[i] === ',')) i++;
      const t0 = i;
      while (i < v.length && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(v[i]!)) i++;
      if (i === t0) { i++; continue; } // junk character
      const token = v.slice(t0, i);
      let j = i;
      while (j < v.length && (v[j] === ' ' || v[j] === '\t')) j++;
      if (v[j] === '=' && cur !== null) {
        // auth-param: token = ( token / quoted-string )
        j++;
        while (j < v.length && (v[j] === ' ' || v[j] === '\t')) j++;
        let value = '';
        if (v[j] === '"') {
          j++;
          while (j < v.length && v[j] !== '"') {
            if (v[j] === '\\' && j + 1 < v.length) j++;
            value += v[j]!;
            j++;
          }
          j++; // closing quote
        } else {
          const s = j;
          while (j < v.length && v[j] !== ',' && v[j] !== ' ' && v[j] !== '\t') j++;
          value = v.slice(s, j);
        }
        if (Object.keys(cur.params).length < MAX_AUTH_PARAMS) cur.params[token.toLowerCase()] = value;
        i = j;
      } else if (v[j] === '=') {
        i = j + 1; // a parameter before any scheme: skip
      } else {
        cur = { scheme: token.toLowerCase(), params: Object.create(null) as Record<string, string> };
        out.push(cur);
      }
    }
  }
  return out;
}

type Algorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess';
const ALGORITHMS: Record<string, Algorithm> = { 'md5': 'MD5', 'md5-sess': 'MD5-sess', 'sha-256': 'SHA-256', 'sha-256-sess': 'SHA-256-sess' };

/** The first Digest challenge with an algorithm we implement, else the first Basic one, else null (RFC 7616 §3.7: servers list in order of preference). */
export function chooseChallenge(chs: Challenge[]): Challenge | null {
  for (const c of chs) {
    if (c.scheme !== 'digest' || c.params.nonce === undefined) continue;
    if (ALGORITHMS[(c.params.algorithm ?? 'MD5').toLowerCase()] !== undefined) return c;
  }
  for (const c of chs) if (c.scheme === 'basic') return c;
  return null;
}

export interface Credentials {
  username: string;
  password: string;
}

/** RFC 7617 §2: `Basic base64(user ":" pass)` (UTF-8). */
export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}

// Bun's hasher and Web Crypto rather than node:crypto, whose import costs ~10 ms of start-up.
const hash = (alg: Algorithm, s: string): string =>
  new Bun.CryptoHasher(alg.startsWith('SHA-256') ? 'sha256' : 'md5').update(s, 'utf8').digest('hex');

const randomHex = (bytes: number): string => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex');

const quote = (s: string): string => `"${s.replace(/(["\\])/g, '\\$1')}"`;

/**
 * One server's authentication state for a connection: the chosen challenge, the nonce count,
 * and the header value for each request. Digest nonce counts start at 1 per nonce (RFC 7616 §3.4).
 */
export class Authenticator {
  readonly scheme: 'basic' | 'digest';
  private realm = '';
  private nonce = '';
  private opaque: string | undefined;
  private algorithm: Algorithm = 'MD5';
  private qop: 'auth' | 'auth-int' | null = null;
  private nc = 0;
  private ha1Sess = '';

  /**
   * @param newCnonce client nonce source; random in use, fixed in tests. Called once per request with qop
   * (and once per nonce with a -sess algorithm).
   */
  constructor(
    challenge: Challenge,
    private readonly creds: Credentials,
    private readonly newCnonce: () => string = () => randomHex(8),
  ) {
    this.scheme = challenge.scheme === 'digest' ? 'digest' : 'basic';
    if (this.scheme === 'digest') this.update(challenge);
  }

  /** Takes a fresh challenge (e.g. stale=true): new nonce, nonce count back to 0. */
  update(c: Challenge): void {
    const p = c.params;
    this.realm = p.realm ?? '';
    this.nonce = p.nonce ?? '';
    this.opaque = p.opaque;
    this.algorithm = ALGORITHMS[(p.algorithm ?? 'MD5').toLowerCase()] ?? 'MD5';
    const offered = (p.qop ?? '').split(',').map((s) => s.trim().toLowerCase());
    this.qop = offered.includes('auth') ? 'auth' : offered.includes('auth-int') ? 'auth-int' : null;
    this.nc = 0;
    this.ha1Sess = '';
  }

  get realmName(): string {
    return this.realm;
  }

  /** Authorization header value for one request. `body` matters only with qop=auth-int. */
  authorization(method: string, uri: string, body: Uint8Array = new Uint8Array(0)): string {
    if (this.scheme === 'basic') return basicAuthorization(this.creds);
    const alg = this.algorithm;
    const { username, password } = this.creds;
    // RFC 7616 §3.4.2 (RFC 2617 §3.2.2.2): A1 = user:realm:pass; -sess: H(A1):nonce:cnonce
    let ha1 = hash(alg, `${username}:${this.realm}:${password}`);
    this.nc++;
    const nc = this.nc.toString(16).padStart(8, '0');
    const cnonce = this.qop !== null || alg.endsWith('-sess') ? this.newCnonce() : '';
    if (alg.endsWith('-sess')) {
      if (this.ha1Sess === '') this.ha1Sess = hash(alg, `${ha1}:${this.nonce}:${cnonce}`);
      ha1 = this.ha1Sess;
    }
    // §3.4.3: A2 = method:uri (auth, none) or method:uri:H(body) (auth-int)
    const ha2 = hash(alg, this.qop === 'auth-int' ? `${method}:${uri}:${hash(alg, Buffer.from(body).toString('latin1'))}` : `${method}:${uri}`);
    // §3.4.1: with qop H(HA1:nonce:nc:cnonce:qop:HA2); RFC 2069 compatibility without qop: H(HA1:nonce:HA2)
    const response = this.qop !== null ? hash(alg, `${ha1}:${this.nonce}:${nc}:${cnonce}:${this.qop}:${ha2}`) : hash(alg, `${ha1}:${this.nonce}:${ha2}`);
    let v = `Digest username=${quote(username)}, realm=${quote(this.realm)}, nonce=${quote(this.nonce)}, uri=${quote(uri)}, response=${quote(response)}`;
    if (alg !== 'MD5') v += `, algorithm=${alg}`;
    if (this.opaque !== undefined) v += `, opaque=${quote(this.opaque)}`;
    if (this.qop !== null) v += `, qop=${this.qop}, nc=${nc}, cnonce=${quote(cnonce)}`;
    else if (alg.endsWith('-sess')) v += `, cnonce=${quote(cnonce)}`;
    return v;
  }
}
