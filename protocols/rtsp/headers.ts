// RTSP header values the client reads and writes: Transport, Session, RTP-Info, Public, and RTSP
// URL handling (userinfo). RFC 2326 §12 and §3.2.

/** Session ids: RFC 2326 §3.4 says at least 8 octets; cameras use 8-32; ×8. */
export const MAX_SESSION_ID_CHARS = 256;
/** Session timeouts we honour, in seconds: below 2 s keepalive would flood, above 1 h a dead peer lingers. */
export const MIN_SESSION_TIMEOUT_S = 2;
export const MAX_SESSION_TIMEOUT_S = 3600;
/** RTP-Info entries per PLAY reply: one per track; cameras have ≤ 4; ×4. */
export const MAX_RTP_INFO = 16;

/** What a SETUP reply's Transport says (RFC 2326 §12.39). */
export interface TransportReply {
  lower: 'tcp' | 'udp';
  interleaved?: [number, number];
  serverPorts?: [number, number];
  clientPorts?: [number, number];
  /** RTP SSRC the server will use (8 hex digits). */
  ssrc?: number;
  source?: string;
}

function range(v: string, max: number): [number, number] | undefined {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v.trim());
  if (!m) return undefined;
  const a = Number(m[1]);
  const b = m[2] === undefined ? a + 1 : Number(m[2]);
  return a <= max && b <= max ? [a, b] : undefined;
}

/** The first transport spec of a Transport header value; null when it is not RTP/AVP. */
export function parseTransport(v: string): TransportReply | null {
  const spec = v.split(',')[0]!.trim();
  const parts = spec.split(';').map((s) => s.trim());
  const proto = (parts[0] ?? '').toUpperCase();
  if (!proto.startsWith('RTP/AVP')) return null;
  const t: TransportReply = { lower: proto === 'RTP/AVP/TCP' ? 'tcp' : 'udp' };
  for (const p of parts.slice(1)) {
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    const val = eq < 0 ? '' : p.slice(eq + 1).trim();
    if (key === 'interleaved') {
      t.interleaved = range(val, 255);
      t.lower = 'tcp';
    } else if (key === 'server_port') t.serverPorts = range(val, 65535);
    else if (key === 'client_port') t.clientPorts = range(val, 65535);
    else if (key === 'ssrc' && /^[0-9a-f]{1,8}$/i.test(val)) t.ssrc = parseInt(val, 16) >>> 0;
    else if (key === 'source') t.source = val.slice(0, 256);
  }
  return t;
}

/** RFC 2326 §12.37 `Session: id [;timeout=delta-seconds]`; timeout clamped to our bounds, null when absent. */
export function parseSession(v: string): { id: string; timeoutS: number | null } | null {
  const [idPart, ...params] = v.split(';');
  const id = (idPart ?? '').trim();
  if (id === '' || id.length > MAX_SESSION_ID_CHARS || /[\s,]/.test(id)) return null;
  let timeoutS: number | null = null;
  for (const p of params) {
    const m = /^\s*timeout\s*=\s*(\d{1,9})\s*$/i.exec(p);
    if (m) timeoutS = Math.min(MAX_SESSION_TIMEOUT_S, Math.max(MIN_SESSION_TIMEOUT_S, Number(m[1])));
  }
  return { id, timeoutS };
}

export interface RtpInfoEntry {
  url: string;
  seq?: number;
  rtptime?: number;
}

/** RFC 2326 §12.33 `RTP-Info: url=...;seq=...;rtptime=..., url=...`. Entries split at `, url=`. */
export function parseRtpInfo(v: string): RtpInfoEntry[] {
  const out: RtpInfoEntry[] = [];
  for (const entry of v.split(/,\s*(?=url=)/i)) {
    if (out.length >= MAX_RTP_INFO) break;
    const e: RtpInfoEntry = { url: '' };
    for (const p of entry.split(';')) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      const k = p.slice(0, eq).trim().toLowerCase();
      const val = p.slice(eq + 1).trim();
      if (k === 'url') e.url = val.slice(0, 4096);
      else if (k === 'seq' && /^\d{1,5}$/.test(val) && Number(val) <= 0xffff) e.seq = Number(val);
      else if (k === 'rtptime' && /^\d{1,10}$/.test(val) && Number(val) <= 0xffffffff) e.rtptime = Number(val);
    }
    if (e.url !== '' || e.seq !== undefined || e.rtptime !== undefined) out.push(e);
  }
  return out;
}

/** RFC 2326 §12.28 `Public: OPTIONS, DESCRIBE, ...` as upper-case method names. */
export function parsePublic(v: string | undefined): Set<string> {
  const s = new Set<string>();
  if (v !== undefined) for (const m of v.split(',')) if (m.trim() !== '') s.add(m.trim().toUpperCase());
  return s;
}

export interface RtspUrl {
  /** The URL to put in request lines: userinfo removed. */
  requestUrl: string;
  /** Percent-decoded userinfo, when present. */
  username?: string;
  password?: string;
  host: string;
  port: number;
}

const URL_RE = /^(rtsps?|rtspu?):\/\/(?:([^@/?#]*)@)?(\[[0-9a-fA-F:.]+\]|[^/?#:@]+)(?::(\d{1,5}))?([/?#].*)?$/i;

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Splits an rtsp:// URL; null when it is not one (or holds whitespace/control characters). */
export function parseRtspUrl(url: string): RtspUrl | null {
  if (url.length > 4096 || /[\s\0-\x1f]/.test(url)) return null;
  const m = URL_RE.exec(url);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  const port = m[4] === undefined ? (scheme === 'rtsps' ? 322 : 554) : Number(m[4]);
  if (port === 0 || port > 65535) return null;
  const r: RtspUrl = {
    requestUrl: `${scheme}://${m[3]}${m[4] === undefined ? '' : `:${m[4]}`}${m[5] ?? ''}`.replace(/#.*$/, ''),
    host: m[3]!.replace(/^\[|\]$/g, ''),
    port,
  };
  if (m[2] !== undefined) {
    const colon = m[2].indexOf(':');
    r.username = decode(colon < 0 ? m[2] : m[2].slice(0, colon));
    if (colon >= 0) r.password = decode(m[2].slice(colon + 1));
  }
  return r;
}
