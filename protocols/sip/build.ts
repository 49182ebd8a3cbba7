// Builders of SIP requests and responses (RFC 3261 §8.1.1, §8.2.6) and the random tokens they
// carry: branches with the RFC 3261 magic cookie, tags, and UUID v4 Call-IDs.
import { getHeader, getHeaders, type SipMessage } from './message.ts';

/** RFC 3261 §8.1.1.7: every branch we create starts with this cookie. */
export const BRANCH_COOKIE = 'z9hG4bK';

function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/** RFC 4122 §4.4 version 4 UUID (the Call-ID GB/T 28181 devices expect to be globally unique). */
export function uuidV4(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
export const newBranch = (): string => BRANCH_COOKIE + randomHex(8);
export const newTag = (): string => randomHex(6);

export interface RequestSpec {
  method: string;
  uri: string;
  /** Our transport and sent-by for the Via (`SIP/2.0/UDP host:port;rport;branch=`). */
  via: { transport: 'UDP' | 'TCP'; host: string; port: number; branch?: string };
  from: { uri: string; tag: string };
  to: { uri: string; tag?: string };
  callId: string;
  cseq: number;
  contact?: string;
  contentType?: string;
  body?: Uint8Array;
  /** Further headers in order (long names). */
  extra?: [string, string][];
}

export function buildRequest(r: RequestSpec): SipMessage {
  const h: [string, string][] = [
    ['via', `SIP/2.0/${r.via.transport} ${r.via.host}:${r.via.port};rport;branch=${r.via.branch ?? newBranch()}`],
    ['from', `<${r.from.uri}>;tag=${r.from.tag}`],
    ['to', r.to.tag === undefined ? `<${r.to.uri}>` : `<${r.to.uri}>;tag=${r.to.tag}`],
    ['call-id', r.callId],
    ['cseq', `${r.cseq} ${r.method}`],
    ['max-forwards', '70'],
  ];
  if (r.contact !== undefined) h.push(['contact', `<${r.contact}>`]);
  if (r.contentType !== undefined) h.push(['content-type', r.contentType]);
  h.push(['user-agent', 'FLUX video']);
  if (r.extra) h.push(...r.extra);
  return { kind: 'request', method: r.method, uri: r.uri, status: 0, reason: '', headers: h, body: r.body ?? new Uint8Array(0) };
}

/**
 * RFC 3261 §8.2.6.2: a response copies Via (all), From, Call-ID and CSeq, and To with a tag added
 * when it has none (`toTag`). Works from the headers of a failed parse too (to answer 400), so
 * each copied header may be missing.
 */
export function buildResponse(
  req: { headers: [string, string][] },
  status: number,
  reason: string,
  o: { toTag?: string; extra?: [string, string][]; contentType?: string; body?: Uint8Array } = {},
): SipMessage {
  const h: [string, string][] = [];
  for (const v of getHeaders(req, 'via')) h.push(['via', v]);
  const from = getHeader(req, 'from');
  if (from !== undefined) h.push(['from', from]);
  let to = getHeader(req, 'to');
  if (to !== undefined && o.toTag !== undefined && !/;\s*tag=/i.test(to)) to = `${to};tag=${o.toTag}`;
  if (to !== undefined) h.push(['to', to]);
  for (const k of ['call-id', 'cseq']) {
    const v = getHeader(req, k);
    if (v !== undefined) h.push([k, v]);
  }
  h.push(['user-agent', 'FLUX video']);
  if (o.extra) h.push(...o.extra);
  if (o.contentType !== undefined) h.push(['content-type', o.contentType]);
  return { kind: 'response', method: '', uri: '', status, reason, headers: h, body: o.body ?? new Uint8Array(0) };
}

/** The transaction key of RFC 3261 §17.2.3: top Via branch + sent-by + method (ACK matches INVITE). */
export function transactionKey(m: SipMessage, method: string): string | null {
  const via = getHeaders(m, 'via')[0];
  if (via === undefined) return null;
  const b = /;\s*branch=([^;,\s]+)/i.exec(via);
  if (b === null) return null;
  const sentBy = /^SIP\s*\/\s*2\.0\s*\/\s*\S+\s+([^;\s]+)/i.exec(via)?.[1] ?? '';
  return `${b[1]}|${sentBy}|${method === 'ACK' ? 'INVITE' : method}`;
}
