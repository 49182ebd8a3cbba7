// SDP (RFC 4566) parser and serializer for what RTSP DESCRIBE answers and GB28181 INVITEs
// carry, the control-URL resolution of RFC 2326 C.1.1, and the GB28181 INVITE offer.
import { ParseError } from './types.ts';

/** DESCRIBE bodies are a few hundred bytes; 64 KiB is far above any camera's SDP. */
export const MAX_SDP_CHARS = 65_536;
/** Lines per description: a camera with several tracks sends ~40. */
export const MAX_SDP_LINES = 1024;
/** m= sections: video, audio, metadata, backchannel... 16 is generous. */
export const MAX_SDP_MEDIA = 16;
/** Formats on one m= line: RTP payload types are 7 bits. */
export const MAX_SDP_FORMATS = 128;

export type SdpDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface SdpOrigin {
  username: string;
  sessionId: string;
  sessionVersion: string;
  netType: string;
  addrType: string;
  address: string;
}

export interface SdpConnection {
  netType: string;
  addrType: string;
  /** As written, e.g. "192.168.1.10" or "224.2.36.42/127". */
  address: string;
}

export interface SdpAttribute {
  name: string;
  /** null for a property attribute (`a=recvonly`). */
  value: string | null;
}

export interface SdpRtpMap {
  /** Encoding name as written (compare case-insensitively), e.g. "H264", "mpeg4-generic". */
  encoding: string;
  clockRate: number;
  /** Audio channels; 1 when not given. */
  channels: number;
}

export interface SdpMedia {
  type: string;
  port: number;
  /** The "/2" of "m=video 5000/2 ..."; 1 when absent. */
  portCount: number;
  protocol: string;
  /** Format tokens (RTP payload types as decimal strings). */
  formats: string[];
  rtpmap: Map<number, SdpRtpMap>;
  /** Payload type -> parameters, keys lowercased, in order. */
  fmtp: Map<number, Map<string, string>>;
  /** a=control, null when absent. */
  control: string | null;
  direction: SdpDirection | null;
  /** Attributes not broken out into the fields above, in order. */
  attributes: SdpAttribute[];
  connection: SdpConnection | null;
  /** GB28181 y= line: the 10-digit SSRC as a decimal string. */
  ssrc: string | null;
  /** GB28181 f= line: media description string. */
  format: string | null;
}

export interface SessionDescription {
  version: number;
  origin: SdpOrigin | null;
  sessionName: string;
  /** u= (GB28181 playback carries "channelId:0" here). */
  uri: string | null;
  connection: SdpConnection | null;
  /** First t= line. */
  timing: { start: number; stop: number } | null;
  control: string | null;
  direction: SdpDirection | null;
  attributes: SdpAttribute[];
  media: SdpMedia[];
}

const DIRECTIONS: ReadonlySet<string> = new Set(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

export const newSdpMedia = (type: string, port: number, protocol: string, formats: string[]): SdpMedia => ({
  type, port, portCount: 1, protocol, formats, rtpmap: new Map(), fmtp: new Map(), control: null,
  direction: null, attributes: [], connection: null, ssrc: null, format: null,
});

const isDecimal = (s: string): boolean => /^\d{1,15}$/.test(s);

/**
 * RFC 4566 §5: parses a session description. Tolerates LF or CRLF, trailing spaces,
 * blank lines, and unknown line types (ignored). Throws ParseError ("line N: ...", with
 * the character offset of that line) for a line without "=", a bad v=/m=/c=/t=/rtpmap,
 * or when a cap (characters, lines, media sections) is exceeded.
 */
export function parseSdp(text: string): SessionDescription {
  if (text.length > MAX_SDP_CHARS) throw new ParseError(`SDP of ${text.length} chars exceeds ${MAX_SDP_CHARS}`, 0);
  const s: SessionDescription = {
    version: 0, origin: null, sessionName: '', uri: null, connection: null, timing: null,
    control: null, direction: null, attributes: [], media: [],
  };
  let media: SdpMedia | null = null;
  let offset = 0;
  let lineNo = 0;
  let sawVersion = false;
  while (offset < text.length) {
    let nl = text.indexOf('\n', offset);
    if (nl < 0) nl = text.length;
    const at = offset;
    const line = text.slice(offset, nl).replace(/[\r \t]+$/, '');
    offset = nl + 1;
    lineNo++;
    if (lineNo > MAX_SDP_LINES) throw new ParseError(`line ${lineNo}: more than ${MAX_SDP_LINES} lines`, at);
    if (line.length === 0) continue;
    const fail = (why: string): never => {
      throw new ParseError(`line ${lineNo}: ${why}: "${line.slice(0, 80)}"`, at);
    };
    if (line.length < 2 || line[1] !== '=') fail('expected "<type>=<value>"');
    const type = line[0]!;
    const value = line.slice(2);
    switch (type) {
      case 'v':
        if (value.trim() !== '0') fail('unsupported version');
        sawVersion = true;
        break;
      case 'o': {
        const f = value.trim().split(/\s+/);
        if (f.length !== 6) fail('o= needs 6 fields');
        s.origin = { username: f[0]!, sessionId: f[1]!, sessionVersion: f[2]!, netType: f[3]!, addrType: f[4]!, address: f[5]! };
        break;
      }
      case 's':
        s.sessionName = value;
        break;
      case 'u':
        s.uri = value;
        break;
      case 'c': {
        const f = value.trim().split(/\s+/);
        if (f.length !== 3) fail('c= needs 3 fields');
        const c = { netType: f[0]!, addrType: f[1]!, address: f[2]! };
        if (media) media.connection = c;
        else s.connection = c;
        break;
      }
      case 't': {
        const f = value.trim().split(/\s+/);
        if (f.length !== 2 || !isDecimal(f[0]!) || !isDecimal(f[1]!)) fail('t= needs two decimal times');
        s.timing ??= { start: Number(f[0]), stop: Number(f[1]) };
        break;
      }
      case 'm': {
        if (s.media.length >= MAX_SDP_MEDIA) fail(`more than ${MAX_SDP_MEDIA} media sections`);
        const f = value.trim().split(/\s+/);
        if (f.length < 3) fail('m= needs media, port and protocol');
        const [port, count] = f[1]!.split('/');
        if (!isDecimal(port!) || Number(port) > 65535 || (count !== undefined && !isDecimal(count))) fail('bad port');
        const formats = f.slice(3);
        if (formats.length > MAX_SDP_FORMATS) fail(`more than ${MAX_SDP_FORMATS} formats`);
        media = newSdpMedia(f[0]!, Number(port), f[2]!, formats);
        if (count !== undefined) media.portCount = Number(count);
        s.media.push(media);
        break;
      }
      case 'a':
        attribute(value, media, s, fail);
        break;
      case 'y':
        if (media) media.ssrc = value.trim();
        break;
      case 'f':
        if (media) media.format = value.trim();
        break;
      default:
        break; // i=, e=, p=, b=, z=, k=, r= and unknown types: not needed here (§5: ignore)
    }
  }
  if (!sawVersion && s.media.length === 0) throw new ParseError('line 1: no v= line and no media: not an SDP', 0);
  return s;
}

function attribute(value: string, media: SdpMedia | null, s: SessionDescription, fail: (why: string) => never): void {
  const colon = value.indexOf(':');
  const name = (colon < 0 ? value : value.slice(0, colon)).trim();
  const v = colon < 0 ? null : value.slice(colon + 1).trim();
  if (name.length === 0) fail('empty attribute name');
  const lower = name.toLowerCase();
  if (DIRECTIONS.has(lower) && v === null) {
    if (media) media.direction = lower as SdpDirection;
    else s.direction = lower as SdpDirection;
    return;
  }
  if (lower === 'control' && v !== null) {
    if (media) media.control = v;
    else s.control = v;
    return;
  }
  if (media && lower === 'rtpmap' && v !== null) {
    // RFC 4566 §6: a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
    const m = /^(\d{1,3})\s+([^/\s]+)\/(\d{1,10})(?:\/(\d{1,3}))?$/.exec(v);
    if (!m || Number(m[1]) > 127 || Number(m[3]) === 0) fail('bad rtpmap');
    media.rtpmap.set(Number(m[1]), { encoding: m[2]!, clockRate: Number(m[3]), channels: m[4] ? Number(m[4]) : 1 });
    return;
  }
  if (media && lower === 'fmtp' && v !== null) {
    const m = /^(\d{1,3})(?:\s+(.*))?$/.exec(v);
    if (m && Number(m[1]) <= 127) {
      media.fmtp.set(Number(m[1]), parseFmtpParams(m[2] ?? ''));
      return;
    }
  }
  (media ? media.attributes : s.attributes).push({ name, value: v });
}

/** "key=value; key2=value2" (RFC 4566 §6 fmtp, as RFC 6184/7798/3640 use it): keys lowercased; values keep '='. */
export function parseFmtpParams(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(';')) {
    const p = part.trim();
    if (p.length === 0) continue;
    const eq = p.indexOf('=');
    if (eq < 0) out.set(p.toLowerCase(), '');
    else out.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim());
  }
  return out;
}

/** A session attribute's value by name (case-insensitive), else undefined. */
export function sdpAttribute(list: readonly SdpAttribute[], name: string): string | null | undefined {
  const n = name.toLowerCase();
  for (const a of list) if (a.name.toLowerCase() === n) return a.value;
  return undefined;
}

/** The payload type a media section's first format names, or -1. */
export function firstPayloadType(m: SdpMedia): number {
  const f = m.formats[0];
  return f !== undefined && /^\d{1,3}$/.test(f) && Number(f) <= 127 ? Number(f) : -1;
}

const conn = (c: SdpConnection): string => `c=${c.netType} ${c.addrType} ${c.address}`;
const attr = (a: SdpAttribute): string => (a.value === null ? `a=${a.name}` : `a=${a.name}:${a.value}`);

/** Writes a session description with CRLF line ends (the inverse of parseSdp for the fields it keeps). */
export function serializeSdp(s: SessionDescription): string {
  const L: string[] = [`v=${s.version}`];
  if (s.origin) {
    const o = s.origin;
    L.push(`o=${o.username} ${o.sessionId} ${o.sessionVersion} ${o.netType} ${o.addrType} ${o.address}`);
  }
  L.push(`s=${s.sessionName.length > 0 ? s.sessionName : ' '}`);
  if (s.uri !== null) L.push(`u=${s.uri}`);
  if (s.connection) L.push(conn(s.connection));
  if (s.timing) L.push(`t=${s.timing.start} ${s.timing.stop}`);
  if (s.direction) L.push(`a=${s.direction}`);
  if (s.control !== null) L.push(`a=control:${s.control}`);
  for (const a of s.attributes) L.push(attr(a));
  for (const m of s.media) {
    const port = m.portCount !== 1 ? `${m.port}/${m.portCount}` : `${m.port}`;
    L.push(`m=${m.type} ${port} ${m.protocol}${m.formats.map((f) => ` ${f}`).join('')}`);
    if (m.connection) L.push(conn(m.connection));
    if (m.direction) L.push(`a=${m.direction}`);
    for (const [pt, r] of m.rtpmap) L.push(`a=rtpmap:${pt} ${r.encoding}/${r.clockRate}${r.channels !== 1 ? `/${r.channels}` : ''}`);
    for (const [pt, p] of m.fmtp) {
      const params = [...p].map(([k, v]) => (v.length > 0 ? `${k}=${v}` : k)).join(';');
      L.push(params.length > 0 ? `a=fmtp:${pt} ${params}` : `a=fmtp:${pt}`);
    }
    if (m.control !== null) L.push(`a=control:${m.control}`);
    for (const a of m.attributes) L.push(attr(a));
    if (m.ssrc !== null) L.push(`y=${m.ssrc}`);
    if (m.format !== null) L.push(`f=${m.format}`);
  }
  return `${L.join('\r\n')}\r\n`;
}

/**
 * RFC 2326 C.1.1: a=control relative to the base (Content-Base, else the request URL).
 * "*" or an empty/absent control means the base itself; an absolute URL is used as is.
 * A relative one is appended after a "/" (as live555 and FFmpeg do, and as cameras expect:
 * strict RFC 3986 resolution would replace the base's last path segment).
 */
export function resolveControlUrl(base: string, control: string | null): string {
  if (control === null || control.length === 0 || control === '*') return base;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(control)) return control;
  if (base.endsWith('/')) return base + (control.startsWith('/') ? control.slice(1) : control);
  return `${base}${control.startsWith('/') ? '' : '/'}${control}`;
}

/** What a GB28181 platform asks for in its INVITE (GB/T 28181-2016 §C.2, Annex F). */
export interface GbInviteOptions {
  /** SIP id of the platform (the o= username). */
  platformId: string;
  /** IPv4 address where the platform receives media. */
  address: string;
  port: number;
  /** The 10-digit SSRC of the y= line (first digit 0 = live, 1 = playback). */
  ssrc: string;
  /** 'Play' (live), 'Playback' or 'Download'. */
  sessionName?: 'Play' | 'Playback' | 'Download';
  /** Channel id for playback/download (u=<channelId>:0). */
  channelId?: string;
  /** Start/stop (seconds since 1970) for playback; 0 0 for live. */
  start?: number;
  stop?: number;
  /** Media over TCP (RFC 4571) with the platform's role; UDP when absent. */
  tcpSetup?: 'active' | 'passive';
}

/** The SDP offer of a GB28181 INVITE: PS, H.264 and MPEG-4 over RTP, receive only. */
export function gbInviteSdp(o: GbInviteOptions): SessionDescription {
  const name = o.sessionName ?? 'Play';
  const m = newSdpMedia('video', o.port, o.tcpSetup ? 'TCP/RTP/AVP' : 'RTP/AVP', ['96', '98', '97']);
  m.direction = 'recvonly';
  m.rtpmap.set(96, { encoding: 'PS', clockRate: 90000, channels: 1 });
  m.rtpmap.set(98, { encoding: 'H264', clockRate: 90000, channels: 1 });
  m.rtpmap.set(97, { encoding: 'MPEG4', clockRate: 90000, channels: 1 });
  if (o.tcpSetup) m.attributes.push({ name: 'setup', value: o.tcpSetup }, { name: 'connection', value: 'new' });
  m.ssrc = o.ssrc;
  return {
    version: 0,
    origin: { username: o.platformId, sessionId: '0', sessionVersion: '0', netType: 'IN', addrType: 'IP4', address: o.address },
    sessionName: name,
    uri: name === 'Play' ? null : `${o.channelId ?? o.platformId}:0`,
    connection: { netType: 'IN', addrType: 'IP4', address: o.address },
    timing: { start: o.start ?? 0, stop: o.stop ?? 0 },
    control: null,
    direction: null,
    attributes: [],
    media: [m],
  };
}
