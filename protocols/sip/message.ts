// SIP messages (RFC 3261 §7): parse one message from a datagram or a framed TCP chunk, serialize
// requests and responses, and read the headers a platform needs (Via, From/To, CSeq, Expires).
// A malformed message is a value naming the reason, so the adapter can answer 400 with it.

/** Start line + headers: real REGISTER/MESSAGE headers are < 1.5 KiB; 16 KiB is ×10 with room. */
export const MAX_SIP_HEADER_BYTES = 16 << 10;
/** Header lines per message: devices send 10-15; 64 leaves room for odd stacks, bounds a flood. */
export const MAX_SIP_HEADER_COUNT = 64;
/** Bodies: a Catalog MESSAGE of 100+ channels over TCP stays under 64 KiB; ×4. UDP caps itself at 64 KiB. */
export const MAX_SIP_BODY_BYTES = 256 << 10;
/** Via entries: each proxy adds one; devices talk to us directly (1), a cascade adds a few. */
export const MAX_SIP_VIAS = 16;

export interface SipMessage {
  kind: 'request' | 'response';
  /** Requests: method (upper case as sent) and Request-URI; '' for responses. */
  method: string;
  uri: string;
  /** Responses: status code and reason phrase; 0 and '' for requests. */
  status: number;
  reason: string;
  /** Header lines in order; names in their long form, lower case (compact forms expanded); folded lines joined. */
  headers: [string, string][];
  /** The body (Content-Length bytes); a copy owned by the message. */
  body: Uint8Array;
}

/** What the parser could not accept; `headers` holds those read before the fault (to build the 400). */
export interface SipParseFailure {
  ok: false;
  reason: string;
  /** The start line looked like a request (only requests get a 400 back). */
  request: boolean;
  headers: [string, string][];
}
export type SipParseResult = { ok: true; msg: SipMessage } | SipParseFailure;

/** RFC 3261 §7.3.3 compact forms (plus RFC 3265/3515 ones devices use). */
const COMPACT: Record<string, string> = {
  i: 'call-id', m: 'contact', v: 'via', f: 'from', t: 'to', l: 'content-length', c: 'content-type',
  k: 'supported', e: 'content-encoding', s: 'subject', o: 'event', r: 'refer-to', u: 'allow-events',
};
const TOKEN_RE = /^[A-Za-z0-9\-.!%*_+`'~]+$/;
const dec = new TextDecoder('latin1'); // headers are ASCII; latin1 never throws and maps bytes 1:1
const enc = new TextEncoder();

/** Long lower-case form of a header name. */
export function canonicalHeaderName(name: string): string {
  const n = name.toLowerCase();
  return COMPACT[n] ?? n;
}

/** Index of the CRLFCRLF (or LFLF) ending the head, and where the body starts; -1 if not present. */
export function findHeadEnd(b: Uint8Array, from = 0, limit = b.length): { end: number; body: number } | null {
  for (let i = from; i < limit; i++) {
    if (b[i] !== 0x0a) continue;
    if (b[i + 1] === 0x0a) return { end: i, body: i + 2 };
    if (b[i + 1] === 0x0d && b[i + 2] === 0x0a) return { end: i, body: i + 3 };
  }
  return null;
}

const fail = (reason: string, request: boolean, headers: [string, string][] = []): SipParseFailure => ({ ok: false, reason, request, headers });

/**
 * Parses one message. `stream` = the bytes came from a TCP framer (Content-Length is then
 * mandatory per RFC 3261 §18.3 and already sized the body); for a datagram a missing
 * Content-Length means "the rest of the datagram" and a larger one is an error (§18.3).
 */
export function parseSipMessage(b: Uint8Array, stream = false): SipParseResult {
  let start = 0;
  while (start < b.length && (b[start] === 0x0d || b[start] === 0x0a)) start++; // §7.5 leading CRLFs
  const head = findHeadEnd(b, start, Math.min(b.length, start + MAX_SIP_HEADER_BYTES));
  const firstLineEnd = b.indexOf(0x0a, start);
  const firstLine = dec.decode(b.subarray(start, firstLineEnd < 0 ? Math.min(b.length, start + 256) : firstLineEnd)).replace(/\r$/, '');
  const request = !firstLine.startsWith('SIP/');
  if (head === null) {
    return fail(b.length - start > MAX_SIP_HEADER_BYTES ? `header block larger than ${MAX_SIP_HEADER_BYTES} bytes` : 'no empty line after the headers', request);
  }
  const lines = dec.decode(b.subarray(start, head.end)).replace(/\r$/, '').split(/\r?\n/);
  const msg: SipMessage = { kind: 'request', method: '', uri: '', status: 0, reason: '', headers: [], body: new Uint8Array(0) };
  const startLine = lines[0]!;
  if (request) {
    const m = /^([A-Za-z]+) ([!-~]+) SIP\/2\.0$/.exec(startLine);
    if (m === null) return fail(`bad request line: ${clip(startLine)}`, true);
    msg.method = m[1]!;
    msg.uri = m[2]!;
    if (!/^(sips?|tel):/i.test(msg.uri)) return fail(`bad Request-URI scheme: ${clip(msg.uri)}`, true);
  } else {
    const m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(startLine);
    if (m === null) return fail(`bad status line: ${clip(startLine)}`, false);
    msg.kind = 'response';
    msg.status = Number(m[1]);
    msg.reason = m[2]!;
    if (msg.status < 100 || msg.status > 699) return fail(`status ${msg.status} out of 100-699`, false);
  }
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (/[\r\0]/.test(line)) return fail('CR or NUL inside a header line', request, msg.headers);
    if (line.startsWith(' ') || line.startsWith('\t')) { // §7.3.1 folded continuation
      const last = msg.headers.at(-1);
      if (last === undefined) return fail('continuation line before any header', request, msg.headers);
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) return fail(`header line without a name: ${clip(line)}`, request, msg.headers);
    const name = line.slice(0, colon).trim();
    if (!TOKEN_RE.test(name)) return fail(`bad header name: ${clip(name)}`, request, msg.headers);
    if (msg.headers.length >= MAX_SIP_HEADER_COUNT) return fail(`more than ${MAX_SIP_HEADER_COUNT} headers`, request, msg.headers);
    msg.headers.push([canonicalHeaderName(name), line.slice(colon + 1).trim()]);
  }
  const bad = checkMandatory(msg);
  if (bad !== null) return fail(bad, request, msg.headers);
  const clText = getHeader(msg, 'content-length');
  const rest = b.length - head.body;
  let bodyLen = stream ? 0 : rest;
  if (clText !== undefined) {
    if (!/^\d{1,9}$/.test(clText)) return fail(`bad Content-Length: ${clip(clText)}`, request, msg.headers);
    bodyLen = Number(clText);
    if (bodyLen > rest) return fail(`Content-Length ${bodyLen} but ${rest} body bytes`, request, msg.headers);
  }
  if (bodyLen > MAX_SIP_BODY_BYTES) return fail(`body of ${bodyLen} bytes exceeds ${MAX_SIP_BODY_BYTES}`, request, msg.headers);
  msg.body = b.slice(head.body, head.body + bodyLen);
  return { ok: true, msg };
}

/** RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Via (Max-Forwards is not enforced: many devices omit it). */
function checkMandatory(m: SipMessage): string | null {
  for (const h of ['via', 'from', 'to', 'call-id', 'cseq']) if (getHeader(m, h) === undefined) return `missing ${h} header`;
  const cseq = parseCSeq(getHeader(m, 'cseq')!);
  if (cseq === null) return `bad CSeq: ${clip(getHeader(m, 'cseq')!)}`;
  if (m.kind === 'request' && cseq.method !== m.method) return `CSeq method ${cseq.method} does not match ${m.method}`;
  if (getHeaders(m, 'via').length > MAX_SIP_VIAS) return `more than ${MAX_SIP_VIAS} Via entries`;
  if (parseVia(getHeaders(m, 'via')[0]!) === null) return `bad Via: ${clip(getHeaders(m, 'via')[0]!)}`;
  if (parseNameAddr(getHeader(m, 'from')!) === null) return 'bad From header';
  if (parseNameAddr(getHeader(m, 'to')!) === null) return 'bad To header';
  return null;
}

const clip = (s: string) => (s.length > 60 ? `${s.slice(0, 60)}…` : s).replace(/[^\x20-\x7e]/g, '?');

/** First value of a header (long or compact name), or undefined. */
export function getHeader(m: { headers: [string, string][] }, name: string): string | undefined {
  const n = canonicalHeaderName(name);
  for (const [k, v] of m.headers) if (k === n) return v;
  return undefined;
}

/** Every value of a header, comma-separated lists split (outside quotes and <>), in order. */
export function getHeaders(m: { headers: [string, string][] }, name: string): string[] {
  const n = canonicalHeaderName(name);
  const out: string[] = [];
  for (const [k, v] of m.headers) if (k === n) out.push(...splitList(v));
  return out;
}

function splitList(v: string): string[] {
  const out: string[] = [];
  let q = false, angle = false, s = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === '"' && v[i - 1] !== '\\') q = !q;
    else if (!q && c === '<') angle = true;
    else if (!q && c === '>') angle = false;
    else if (c === ',' && !q && !angle) { out.push(v.slice(s, i).trim()); s = i + 1; }
  }
  out.push(v.slice(s).trim());
  return out.filter((x) => x.length > 0);
}

export interface Via { transport: string; host: string; port: number | null; params: Map<string, string> }

/** RFC 3261 §20.42: `SIP/2.0/UDP host[:port];branch=...;rport`. null when malformed. */
export function parseVia(v: string): Via | null {
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+(\[[0-9a-fA-F:.]+\]|[^\s;:]+)(?::(\d{1,5}))?\s*((?:;.*)?)$/.exec(v.trim());
  if (m === null) return null;
  return { transport: m[1]!.toUpperCase(), host: m[2]!, port: m[3] === undefined ? null : Number(m[3]), params: parseParams(m[4]!) };
}

function parseParams(s: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of s.split(';')) {
    const t = p.trim();
    if (t === '') continue;
    const eq = t.indexOf('=');
    if (eq < 0) out.set(t.toLowerCase(), '');
    else out.set(t.slice(0, eq).trim().toLowerCase(), t.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'));
  }
  return out;
}

export interface NameAddr { display: string; uri: string; user: string; host: string; params: Map<string, string> }

/** RFC 3261 §20.20/§20.39 From/To/Contact: `"name" <sip:user@host>;tag=x` or `sip:user@host;tag=x`. */
export function parseNameAddr(v: string): NameAddr | null {
  let display = '', uri: string, rest: string;
  const a = /^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>(.*)$/.exec(v);
  if (a !== null) {
    display = (a[1] ?? a[2] ?? '').trim();
    uri = a[3]!.trim();
    rest = a[4]!;
  } else {
    const semi = v.indexOf(';');
    uri = (semi < 0 ? v : v.slice(0, semi)).trim();
    rest = semi < 0 ? '' : v.slice(semi);
  }
  const u = /^(sips?):(?:([^@;]+)@)?([^;?>]+)/i.exec(uri);
  if (u === null) return null;
  return { display, uri, user: u[2] ?? '', host: u[3]!, params: parseParams(rest) };
}

/** RFC 3261 §20.16: `number method`; null when malformed (number must fit 31 bits). */
export function parseCSeq(v: string): { seq: number; method: string } | null {
  const m = /^(\d{1,10})\s+([A-Za-z]+)$/.exec(v.trim());
  if (m === null || Number(m[1]) > 0x7fffffff) return null;
  return { seq: Number(m[1]), method: m[2]! };
}

/** Expires header (or the Contact's expires param) as seconds; null when absent or malformed. */
export function expiresOf(m: SipMessage): number | null {
  const h = getHeader(m, 'expires');
  if (h !== undefined) return /^\d{1,10}$/.test(h.trim()) ? Number(h.trim()) : null;
  const c = getHeader(m, 'contact');
  const e = c === undefined ? undefined : parseNameAddr(c)?.params.get('expires');
  return e !== undefined && /^\d{1,10}$/.test(e) ? Number(e) : null;
}

const FORBIDDEN = /[\r\n\0]/;

/** Serializes a message; Content-Length is (re)written from the body. Throws on CR/LF/NUL in a field (a caller bug). */
export function serializeSipMessage(m: SipMessage): Uint8Array {
  let head: string;
  if (m.kind === 'request') {
    if (!/^[A-Za-z]+$/.test(m.method) || /\s/.test(m.uri) || FORBIDDEN.test(m.uri)) throw new TypeError(`invalid SIP request line ${m.method} ${m.uri}`);
    head = `${m.method} ${m.uri} SIP/2.0\r\n`;
  } else {
    head = `SIP/2.0 ${m.status} ${m.reason.replace(/[\r\n\0]/g, ' ')}\r\n`;
  }
  for (const [k, v] of m.headers) {
    if (k === 'content-length') continue;
    if (FORBIDDEN.test(k) || FORBIDDEN.test(v) || !TOKEN_RE.test(k)) throw new TypeError(`invalid SIP header ${JSON.stringify(k)}`);
    head += `${displayName(k)}: ${v}\r\n`;
  }
  head += `Content-Length: ${m.body.length}\r\n\r\n`;
  const h = enc.encode(head);
  if (m.body.length === 0) return h;
  const out = new Uint8Array(h.length + m.body.length);
  out.set(h);
  out.set(m.body, h.length);
  return out;
}

const DISPLAY: Record<string, string> = { 'call-id': 'Call-ID', cseq: 'CSeq', 'www-authenticate': 'WWW-Authenticate' };
/** `content-type` -> `Content-Type` (devices compare case-insensitively, logs read better). */
function displayName(k: string): string {
  return DISPLAY[k] ?? k.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase());
}
