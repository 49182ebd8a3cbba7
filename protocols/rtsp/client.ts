// The RTSP/1.0 client state machine (RFC 2326): OPTIONS, DESCRIBE, SETUP per track, PLAY, keepalive
// and TEARDOWN, with Basic/Digest auth, redirects and TCP-interleaved or UDP transport. Sans-I/O:
// bytes and times in, bytes and events out; the adapter owns the socket and the timers.
import { parseSdp, resolveControlUrl, type SessionDescription } from '../../media/sdp.ts';
import { Authenticator, chooseChallenge, parseChallenges, type Credentials } from '../http-auth.ts';
import type { PlayingTrack, RtspClientOptions, RtspEvent, RtspState, RtspTrack } from './client-types.ts';
import { parsePublic, parseRtpInfo, parseRtspUrl, parseSession, parseTransport } from './headers.ts';
import { encodeInterleaved, getHeader, getHeaders, RtspReader, serializeRequest, serializeResponse, type RtspMessage } from './message.ts';
import { chooseTracks } from './sdp-tracks.ts';

export type { PlayingTrack, RtspClientOptions, RtspEvent, RtspState, RtspTrack } from './client-types.ts';

/** Redirects followed before giving up: a load balancer plus a camera's own hop need 2; ×2.5. */
export const MAX_REDIRECTS = 5;
/** Requests awaiting replies: one step plus a keepalive plus TEARDOWN; ×2. */
export const MAX_PENDING = 6;
/** stale=true nonce refreshes in a row before we call it a loop. */
export const MAX_STALE_RETRIES = 3;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_SESSION_TIMEOUT_S = 60;

interface Pending {
  cseq: number;
  method: string;
  uri: string;
  headers: [string, string][];
  sentAt: number;
  authorized: boolean;
}

const utf8 = new TextDecoder();

/**
 * One RTSP session over one TCP connection. Call `start`, write every `send` event's bytes, feed
 * every received chunk to `receive`, call `tick` when `nextTickMs` passes, `stop` to finish.
 * Events are drained with `drain()`. After a fatal `error` the client is inert: close the socket.
 * After `redirect`, connect to `url` and call `start` again; for a transport fallback open a
 * fresh connection and call `restartWithTransport`.
 */
export class RtspClient {
  state: RtspState = 'idle';
  /** The current request URL (userinfo removed); changes on redirect. */
  url: string;
  host: string;
  port: number;
  transport: 'tcp' | 'udp';
  tracks: RtspTrack[] = [];
  readonly stats = { interleavedFrames: 0, unknownChannelFrames: 0, bytesIn: 0 };

  private out: RtspEvent[] = [];
  private reader: RtspReader;
  private cseq = 0;
  private pending: Pending[] = [];
  private creds: Credentials | null;
  private auth: Authenticator | null = null;
  private staleRetries = 0;
  /** Fresh challenges answered since the last non-401 reply. */
  private authRetries = 0;
  private redirects = 0;
  private publicMethods = new Set<string>();
  private session: { id: string; timeoutS: number } | null = null;
  private baseUrl = '';
  private sdp: SessionDescription | null = null;
  private setupIndex = 0;
  private playing: PlayingTrack[] = [];
  /** channel -> track * 2 + (rtcp ? 1 : 0); -1 when unmapped. */
  private readonly channelMap = new Int16Array(256).fill(-1);
  private nextKeepaliveMs = Infinity;
  private now = 0;

  constructor(private readonly opts: RtspClientOptions) {
    const u = parseRtspUrl(opts.url);
    if (u === null) throw new TypeError(`not an rtsp:// URL: ${JSON.stringify(opts.url)}`);
    if (opts.transport === 'udp' && opts.udpPorts === undefined) throw new TypeError('UDP transport needs udpPorts');
    this.url = u.requestUrl;
    this.host = u.host;
    this.port = u.port;
    this.transport = opts.transport;
    const username = opts.username ?? u.username;
    this.creds = username === undefined ? null : { username, password: opts.password ?? u.password ?? '' };
    this.reader = this.newReader();
  }

  /** Events queued since the last drain (empty array when none). */
  drain(): readonly RtspEvent[] {
    if (this.out.length === 0) return EMPTY_EVENTS;
    const o = this.out;
    this.out = [];
    return o;
  }

  /** When `tick` next has work: a request deadline or the keepalive; Infinity when none. */
  get nextTickMs(): number {
    let t = this.state === 'playing' ? this.nextKeepaliveMs : Infinity;
    const timeout = this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    for (const p of this.pending) t = Math.min(t, p.sentAt + timeout);
    return t;
  }

  /** Begins (or, after a redirect, begins again) with OPTIONS on a fresh connection. */
  start(nowMs: number): void {
    if (this.state !== 'idle' && this.state !== 'redirect') return;
    this.resetSession();
    this.state = 'options';
    this.request('OPTIONS', this.url, [], nowMs);
  }

  /** Starts over on a fresh connection with another transport (e.g. TCP after UDP got no packets). */
  restartWithTransport(transport: 'tcp' | 'udp', nowMs: number): void {
    if (transport === 'udp' && this.opts.udpPorts === undefined) throw new TypeError('UDP transport needs udpPorts');
    this.transport = transport;
    this.state = 'idle';
    this.start(nowMs);
  }

  /** Bytes read from the TCP connection. */
  receive(bytes: Uint8Array, nowMs: number): void {
    if (this.state === 'failed' || this.state === 'closed' || this.state === 'idle') return;
    this.now = nowMs;
    this.stats.bytesIn += bytes.length;
    if (!this.reader.push(bytes)) this.fail(`unreadable RTSP stream: ${this.reader.errorDetail}`);
  }

  /** Request timeouts and keepalive. */
  tick(nowMs: number): void {
    if (this.state === 'failed' || this.state === 'closed' || this.state === 'idle' || this.state === 'redirect') return;
    const timeout = this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    for (const p of this.pending) {
      if (nowMs - p.sentAt < timeout) continue;
      this.pending.splice(this.pending.indexOf(p), 1);
      if (this.isKeepalive(p)) this.emitError(false, `no reply to keepalive ${p.method} within ${timeout} ms`);
      else return this.fail(`no reply to ${p.method} within ${timeout} ms`);
      break; // the array changed; the rest are checked on the next tick
    }
    if (this.state === 'playing' && nowMs >= this.nextKeepaliveMs) {
      this.nextKeepaliveMs = nowMs + this.keepaliveIntervalMs();
      if (!this.pending.some((p) => this.isKeepalive(p))) {
        const method = this.publicMethods.has('GET_PARAMETER') ? 'GET_PARAMETER' : 'OPTIONS';
        this.request(method, this.aggregateUrl(), [], nowMs);
      }
    }
  }

  /** The adapter saw the connection close. */
  connectionLost(nowMs: number): void {
    this.now = nowMs;
    if (this.state === 'failed' || this.state === 'closed' || this.state === 'redirect' || this.state === 'idle') return;
    this.fail(`connection closed by the server during ${this.state}`);
  }

  /** TEARDOWN (when a session exists), then `closed`. The adapter writes the bytes and closes. */
  stop(nowMs: number): void {
    if (this.state === 'closed') return;
    if (this.session !== null && this.state !== 'failed' && this.state !== 'redirect') this.request('TEARDOWN', this.aggregateUrl(), [], nowMs);
    this.state = 'closed';
    this.pending.length = 0;
    this.out.push(CLOSED);
  }

  /** Queues an RTCP packet (e.g. a receiver report) on a TCP track's RTCP channel; false when there is none. */
  sendRtcp(track: number, packet: Uint8Array): boolean {
    const ch = this.playing[track]?.interleaved?.[1];
    if (ch === undefined || this.state !== 'playing' || packet.length > 0xffff) return false;
    this.out.push({ kind: 'send', bytes: encodeInterleaved(ch, packet) });
    return true;
  }

  private newReader(): RtspReader {
    return new RtspReader({
      onInterleaved: (channel, data) => {
        this.stats.interleavedFrames++;
        const m = this.channelMap[channel]!;
        if (m < 0) this.stats.unknownChannelFrames++;
        else this.opts.onInterleaved?.(m >> 1, (m & 1) === 1, data);
      },
      onMessage: (m) => this.onMessage(m),
    });
  }

  private resetSession(): void {
    this.pending.length = 0;
    this.session = null;
    this.tracks = [];
    this.playing = [];
    this.setupIndex = 0;
    this.sdp = null;
    this.channelMap.fill(-1);
    this.nextKeepaliveMs = Infinity;
    this.reader = this.newReader(); // a new connection: no leftover bytes
    this.auth = null; // and a new challenge: nonces are per connection on many cameras
    this.authRetries = 0;
    this.staleRetries = 0;
  }

  private keepaliveIntervalMs(): number {
    return ((this.session?.timeoutS ?? this.opts.sessionTimeoutDefault ?? DEFAULT_SESSION_TIMEOUT_S) * 1000) / 2;
  }

  private isKeepalive(p: Pending): boolean {
    return this.state === 'playing' && (p.method === 'GET_PARAMETER' || p.method === 'OPTIONS');
  }

  private aggregateUrl(): string {
    return this.absolute(resolveControlUrl(this.baseUrl || this.url, this.sdp?.control ?? null));
  }

  private absolute(u: string): string {
    return parseRtspUrl(u)?.requestUrl ?? u;
  }

  private request(method: string, uri: string, headers: [string, string][], nowMs: number): void {
    if (this.pending.length >= MAX_PENDING) return this.fail(`more than ${MAX_PENDING} requests unanswered`);
    const cseq = ++this.cseq;
    const all: [string, string][] = [...headers];
    if (this.opts.userAgent) all.push(['User-Agent', this.opts.userAgent]);
    if (this.session !== null) all.push(['Session', this.session.id]);
    if (this.auth !== null) all.push(['Authorization', this.auth.authorization(method, uri)]);
    let bytes: Uint8Array;
    try {
      bytes = serializeRequest({ method, uri, cseq, headers: all });
    } catch (e) {
      return this.fail(`cannot write ${method}: ${(e as Error).message}`);
    }
    this.pending.push({ cseq, method, uri, headers, sentAt: nowMs, authorized: this.auth !== null });
    this.out.push({ kind: 'send', bytes });
  }

  private emitError(fatal: boolean, message: string, status?: number): void {
    this.out.push(status === undefined ? { kind: 'error', fatal, message } : { kind: 'error', fatal, message, status });
  }

  private fail(message: string, status?: number): void {
    if (this.state === 'failed' || this.state === 'closed') return;
    this.state = 'failed';
    this.pending.length = 0;
    this.emitError(true, message, status);
  }

  private onMessage(m: RtspMessage): void {
    if (this.state === 'failed' || this.state === 'closed' || this.state === 'redirect') return;
    const cseqText = getHeader(m, 'cseq') ?? '';
    const cseq = /^\d{1,9}$/.test(cseqText) ? Number(cseqText) : -1;
    if (m.kind === 'request') {
      // RFC 2326 §10: servers may send OPTIONS/GET_PARAMETER/SET_PARAMETER (keepalive) and others
      const ok = m.method === 'OPTIONS' || m.method === 'GET_PARAMETER' || m.method === 'SET_PARAMETER';
      this.out.push({ kind: 'send', bytes: serializeResponse(ok ? 200 : 501, ok ? 'OK' : 'Not Implemented', Math.max(cseq, 0)) });
      return;
    }
    const i = this.pending.findIndex((p) => p.cseq === cseq);
    if (i < 0) return this.emitError(false, `unexpected response ${m.status} with CSeq ${JSON.stringify(cseqText.slice(0, 16))}`, m.status);
    const p = this.pending.splice(i, 1)[0]!;
    if (m.status === 401 && p.method !== 'TEARDOWN') return this.onUnauthorized(p, m);
    this.authRetries = 0;
    this.staleRetries = 0;
    if (m.status >= 300 && m.status < 400 && this.state !== 'playing' && p.method !== 'TEARDOWN') return this.onRedirect(m);
    if (this.state === 'playing' || p.method === 'TEARDOWN') return this.onPlayingReply(p, m);
    switch (p.method) {
      case 'OPTIONS': return this.onOptions(m);
      case 'DESCRIBE': return this.onDescribe(p, m);
      case 'SETUP': return this.onSetup(m);
      case 'PLAY': return this.onPlay(m);
      default: return this.emitError(false, `unexpected reply ${m.status} to ${p.method}`, m.status);
    }
  }

  private onUnauthorized(p: Pending, m: RtspMessage): void {
    const challenges = parseChallenges(getHeaders(m, 'www-authenticate'));
    const ch = chooseChallenge(challenges);
    if (this.creds === null) return this.fail(`${p.method} ${p.uri}: the camera requires authentication (401) and no username/password is configured`, 401);
    if (ch === null) {
      const offered = challenges.map((c) => c.scheme).join(', ') || 'none';
      return this.fail(`${p.method}: no supported authentication scheme in 401 (offered: ${offered})`, 401);
    }
    const stale = (ch.params.stale ?? '').toLowerCase() === 'true';
    if (stale && this.auth?.scheme === 'digest' && ch.scheme === 'digest' && this.staleRetries < MAX_STALE_RETRIES) {
      this.staleRetries++;
      this.auth.update(ch); // RFC 7616 §3.3: stale nonce, same credentials
    } else if (p.authorized && this.authRetries > 0) {
      // credentials were sent right after a fresh challenge and refused again
      const realm = ch.params.realm === undefined ? '' : ` for realm "${ch.params.realm}"`;
      return this.fail(`authentication failed${realm}: wrong username or password for user "${this.creds.username}" (401 to ${p.method} after sending credentials)`, 401);
    } else {
      // the first challenge, or a camera that rotated its nonce mid-session without stale=true: one retry
      this.auth = new Authenticator(ch, this.creds, this.opts.cnonce);
      this.authRetries++;
    }
    this.request(p.method, p.uri, p.headers, this.now);
  }

  private onRedirect(m: RtspMessage): void {
    const loc = getHeader(m, 'location');
    const target = loc === undefined ? null : parseRtspUrl(loc);
    if (target === null) return this.fail(`redirect ${m.status} without a usable Location (${JSON.stringify(loc?.slice(0, 100) ?? null)})`, m.status);
    if (++this.redirects > MAX_REDIRECTS) return this.fail(`more than ${MAX_REDIRECTS} redirects (last to ${target.requestUrl})`, m.status);
    if (target.username !== undefined && this.opts.username === undefined) {
      this.creds = { username: target.username, password: target.password ?? '' };
    }
    this.url = target.requestUrl;
    this.host = target.host;
    this.port = target.port;
    this.state = 'redirect';
    this.pending.length = 0;
    this.out.push({ kind: 'redirect', url: this.url });
  }

  private onOptions(m: RtspMessage): void {
    // Some cameras answer OPTIONS with an error yet serve DESCRIBE: carry on either way.
    if (m.status === 200) this.publicMethods = parsePublic(getHeader(m, 'public'));
    this.state = 'describe';
    this.request('DESCRIBE', this.url, [['Accept', 'application/sdp']], this.now);
  }

  private onDescribe(p: Pending, m: RtspMessage): void {
    if (m.status !== 200) return this.fail(`DESCRIBE ${p.uri} failed: ${m.status} ${m.reason}`, m.status);
    const type = getHeader(m, 'content-type');
    if (type !== undefined && !/^application\/sdp\b/i.test(type)) return this.fail(`DESCRIBE returned ${type}, not application/sdp`);
    const sdpText = utf8.decode(m.body);
    let sdp: SessionDescription;
    try {
      sdp = parseSdp(sdpText);
    } catch (e) {
      return this.fail(`DESCRIBE returned an unreadable SDP: ${(e as Error).message}`);
    }
    // RFC 2326 §C.1.1: Content-Base, else Content-Location, else the request URL
    const base = getHeader(m, 'content-base') ?? getHeader(m, 'content-location') ?? p.uri;
    this.baseUrl = this.absolute(base);
    this.sdp = sdp;
    const { tracks, skipped } = chooseTracks(sdp, this.opts.audio ?? true);
    if (tracks.length === 0) return this.fail(`no supported track in the SDP (${skipped.join('; ') || 'no media'})`);
    this.tracks = tracks.map((t, index) => {
      const tr: RtspTrack = { ...t, index, media: sdp.media[t.mediaIndex]!, controlUrl: this.absolute(resolveControlUrl(this.baseUrl, sdp.media[t.mediaIndex]!.control)) };
      if (this.transport === 'tcp') tr.interleaved = [2 * index, 2 * index + 1];
      return tr;
    });
    this.out.push({ kind: 'described', sdp, sdpText, baseUrl: this.baseUrl, tracks: this.tracks, skipped });
    this.state = 'setup';
    this.setupNext();
  }

  private setupNext(): void {
    const t = this.tracks[this.setupIndex];
    if (t === undefined) {
      if (this.playing.length === 0) return this.fail('no track could be set up');
      this.state = 'play';
      this.request('PLAY', this.aggregateUrl(), [['Range', 'npt=0.000-']], this.now);
      return;
    }
    let transport: string;
    if (this.transport === 'tcp') transport = `RTP/AVP/TCP;unicast;interleaved=${t.interleaved![0]}-${t.interleaved![1]}`;
    else {
      const ports = this.opts.udpPorts!(t.index);
      transport = `RTP/AVP;unicast;client_port=${ports.rtp}-${ports.rtcp}`;
    }
    this.request('SETUP', t.controlUrl, [['Transport', transport]], this.now);
  }

  private onSetup(m: RtspMessage): void {
    const t = this.tracks[this.setupIndex]!;
    if (m.status !== 200) {
      if (m.status === 454 || m.status === 461 || t.kind === 'video' || this.setupIndex === 0) {
        const why = m.status === 461 ? ` (the camera does not offer RTP over ${this.transport.toUpperCase()})` : '';
        return this.fail(`SETUP ${t.controlUrl} failed: ${m.status} ${m.reason}${why}`, m.status);
      }
      this.emitError(false, `SETUP of ${t.kind} track ${t.controlUrl} failed (${m.status} ${m.reason}); continuing without it`, m.status);
      this.setupIndex++;
      return this.setupNext();
    }
    const sessionText = getHeader(m, 'session');
    const s = sessionText === undefined ? null : parseSession(sessionText);
    if (s === null) return this.fail(`SETUP reply without a usable Session header (${JSON.stringify(sessionText?.slice(0, 64) ?? null)})`);
    if (this.session === null) this.session = { id: s.id, timeoutS: s.timeoutS ?? this.opts.sessionTimeoutDefault ?? DEFAULT_SESSION_TIMEOUT_S };
    const tr = parseTransport(getHeader(m, 'transport') ?? '');
    const pt: PlayingTrack = { index: t.index };
    if (tr !== null) {
      if (tr.serverPorts) pt.serverPorts = tr.serverPorts;
      if (tr.ssrc !== undefined) pt.ssrc = tr.ssrc;
      if (tr.source !== undefined) pt.source = tr.source;
    }
    if (this.transport === 'tcp') {
      if (tr !== null && tr.lower === 'udp' && tr.serverPorts !== undefined) {
        return this.fail(`SETUP asked for RTP over TCP and the camera answered with UDP (${getHeader(m, 'transport')})`);
      }
      const ch = tr?.interleaved ?? t.interleaved!; // the server may move the channels (§12.39)
      if (this.channelMap[ch[0]]! >= 0 || this.channelMap[ch[1]]! >= 0) return this.fail(`SETUP reply reuses interleaved channel ${ch[0]}-${ch[1]}`);
      this.channelMap[ch[0]] = t.index * 2;
      this.channelMap[ch[1]] = t.index * 2 + 1;
      pt.interleaved = ch;
    }
    this.playing[t.index] = pt;
    this.setupIndex++;
    this.setupNext();
  }

  private onPlay(m: RtspMessage): void {
    if (m.status !== 200) return this.fail(`PLAY ${this.aggregateUrl()} failed: ${m.status} ${m.reason}`, m.status);
    const rtpInfo = parseRtpInfo(getHeader(m, 'rtp-info') ?? '');
    const tracks = this.playing.filter((x) => x !== undefined);
    rtpInfo.forEach((e, i) => {
      const byUrl = this.tracks.find((t) => t.controlUrl === e.url || (e.url !== '' && (t.controlUrl.endsWith(e.url) || e.url.endsWith(t.media.control ?? '\0'))));
      const pt = byUrl !== undefined ? this.playing[byUrl.index] : tracks[i];
      if (pt === undefined) return;
      if (e.seq !== undefined) pt.seq = e.seq;
      if (e.rtptime !== undefined) pt.rtptime = e.rtptime;
    });
    this.state = 'playing';
    this.nextKeepaliveMs = this.now + this.keepaliveIntervalMs();
    const session = this.session!;
    this.out.push({ kind: 'playing', transport: this.transport, tracks, rtpInfo, sessionId: session.id, sessionTimeoutS: session.timeoutS });
  }

  private onPlayingReply(p: Pending, m: RtspMessage): void {
    if (m.status === 200 || p.method === 'TEARDOWN') return;
    if (m.status === 454) return this.fail(`the camera dropped the session (454 Session Not Found to ${p.method})`, 454);
    if (p.method === 'GET_PARAMETER') this.publicMethods.delete('GET_PARAMETER'); // use OPTIONS from now on
    this.emitError(false, `keepalive ${p.method} answered ${m.status} ${m.reason}`, m.status);
  }
}

const EMPTY_EVENTS: readonly RtspEvent[] = Object.freeze([]);
const CLOSED: RtspEvent = Object.freeze({ kind: 'closed' as const });
