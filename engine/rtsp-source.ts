// The RTSP source: binds the sans-I/O RTSP client (protocols/rtsp) to a TCP connection
// (and UDP sockets when asked), feeds RTP into the stream's ring, answers with receiver
// reports, and reconnects with backoff. Each connection is a new pipeline, so a camera
// that comes back resumes recording in a new segment.
import type { Socket } from 'bun';
import { RtspClient } from '../protocols/rtsp/client.ts';
import type { RtspTrack } from '../protocols/rtsp/client-types.ts';
import { buildReceiverReport, parseRtcp, RtpReceiverStats } from '../media/rtcp.ts';
import { KIND_RTCP, KIND_RTP } from '../workers/ring-format.ts';
import type { RtpTrackSpec } from '../workers/control.ts';
import { log } from './log.ts';
import { pollerUnavailable, type PolledSocket, type SocketPoller } from './socket-poller.ts';
import type { MediaPool, StreamHandle, StreamSpec } from './media-pool.ts';

/** Reconnect pauses: 1 s, 2 s, 4 s ... with +-20 % jitter, capped. */
const BACKOFF_INITIAL_MS = 1000;
export const BACKOFF_MAX_MS = 30_000;
/** A session that stayed up this long resets the backoff. */
const BACKOFF_RESET_AFTER_MS = 30_000;
/** No RTP for this long while playing is a failure (the camera froze or the path broke). */
const NO_DATA_TIMEOUT_MS = 10_000;
/** No RTP over UDP this long after PLAY: a firewall or NAT eats it; retry over TCP. */
const UDP_FALLBACK_MS = 3_000;
/** No answer to connect/DESCRIBE/SETUP/PLAY within this long is a failure. */
const SETUP_TIMEOUT_MS = 10_000;
/** RFC 3550 §6.2: about every 5 s for one receiver. */
const RR_INTERVAL_MS = 5_000;
const TICK_MS = 250;
/**
 * RTP kept while the media pool is still adding the stream (PLAY can answer first: at
 * start-up with 100 cameras the pool's reply takes longer than SETUP+PLAY on a LAN). 2 MiB
 * is 4 s at 4 Mbit/s, more than the first GOP that would otherwise be lost.
 */
const EARLY_MAX_BYTES = 2 << 20;
/** Unsent bytes to the camera (requests, RTCP) before the connection is deemed stuck. */
const MAX_OUT_QUEUE_BYTES = 256 << 10;

/** Seconds from 1900 (NTP era 0) to 1970 (RFC 868). */
const NTP_UNIX_OFFSET_S = 2_208_988_800;

export type SourceState = 'connecting' | 'live' | 'retrying' | 'stopped';

export interface RtspSourceOptions {
  streamId: string;
  url: string;
  record: boolean;
  pool: MediaPool;
  keyframeIntervalMs: number;
  nextSegmentNumber(): number;
  /** Local UDP ports for RTP (even) and RTCP (odd, the next one), RFC 3550 §11 ([rtsp] config). */
  udpPorts: { min: number; max: number };
  /** Called on every state change and with each new (or gone) stream handle. */
  onState(state: SourceState, error: string | null): void;
  onHandle(h: StreamHandle | null): void;
  /** Wait this long before the first connection (the engine spreads a start of many cameras). */
  startDelayMs?: number;
  /**
   * Reads RTP over TCP that nobody watches live on a timer (engine/socket-poller.ts) instead of
   * as it arrives; absent = every byte as it arrives.
   */
  poller?: SocketPoller;
}

type UdpSock = import('bun').udp.Socket<'buffer'>;
export interface UdpPair {
  rtp: UdpSock;
  rtcp: UdpSock;
}

/** Splits `?transport=tcp|udp` (ours) from the camera URL. */
export function parseRtspSourceUrl(raw: string): { url: string; transport: 'tcp' | 'udp' } {
  const u = new URL(raw);
  const t = u.searchParams.get('transport');
  u.searchParams.delete('transport');
  if (t !== null && t !== 'tcp' && t !== 'udp') throw new Error(`transport=${t} must be tcp or udp`);
  return { url: u.href, transport: t ?? 'tcp' };
}

/** One connection attempt: client, sockets, the stream handle; torn down as a whole. */
class Attempt {
  client: RtspClient;
  socket: Socket<undefined> | null = null;
  out: Uint8Array[] = [];
  outBytes = 0;
  udp: UdpPair[] = [];
  serverRtcp: { host: string; port: number }[] = [];
  handle: StreamHandle | null = null;
  addingStream = false;
  /** RTP that arrived before the media pool acknowledged the stream (copies; see EARLY_MAX_BYTES). */
  early: { track: number; ts: number; data: Uint8Array }[] = [];
  earlyBytes = 0;
  earlyDropped = 0;
  wallBaseMs = 0;
  startedMs = Date.now();
  playingMs = 0;
  lastDataMs = 0;
  stats: (RtpReceiverStats | null)[] = [];
  tracks: RtspTrack[] = [];
  lastRrMs = 0;
  /** Per track, RTP-Info's rtptime (the same instant on every track), -1 when absent. */
  rtpInfo: number[] = [];
  rtpInfoSent = false;
  live = false;
  ended = false;
  /** The TCP socket as the poller reads it (null: UDP, no poller, or not playing yet). */
  polled: PolledSocket | null = null;
  /** The socket is in the poller now (paused on Bun's side). */
  pollerOwns = false;
  constructor(
    readonly url: string,
    readonly transport: 'tcp' | 'udp',
    client: RtspClient,
  ) {
    this.client = client;
  }
}

export class RtspSource {
  state: SourceState = 'connecting';
  reconnects = 0;
  #o: RtspSourceOptions;
  #url: string;
  #transport: 'tcp' | 'udp';
  #a: Attempt | null = null;
  #backoff = BACKOFF_INITIAL_MS;
  #timer: ReturnType<typeof setInterval>;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(o: RtspSourceOptions) {
    this.#o = o;
    const p = parseRtspSourceUrl(o.url);
    this.#url = p.url;
    this.#transport = p.transport;
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    const delay = o.startDelayMs ?? 0;
    if (delay > 0) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = null;
        void this.#connect(this.#url, this.#transport);
      }, delay);
    } else void this.#connect(this.#url, this.#transport);
  }

  /** How the camera's TCP socket is read now: on the poller's timer, or as bytes arrive. */
  get readMode(): 'polled' | 'event' {
    return this.#a?.pollerOwns === true ? 'polled' : 'event';
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    const a = this.#a;
    if (a !== null) {
      a.client.stop(Date.now());
      this.#pump(a);
      await this.#end(a, null);
    }
    this.#setState('stopped', null);
  }

  #setState(s: SourceState, error: string | null): void {
    this.state = s;
    this.#o.onState(s, error);
  }

  async #connect(url: string, transport: 'tcp' | 'udp'): Promise<void> {
    if (this.#stopped) return;
    this.#setState(this.reconnects === 0 ? 'connecting' : 'retrying', null);
    let udp: UdpPair[] = [];
    // The sockets exist before the attempt (SETUP names their ports): route through a holder.
    const holder: { a: Attempt | null } = { a: null };
    if (transport === 'udp') {
      try {
        for (let i = 0; i < 2; i++) {
          udp.push(await bindUdpPair(this.#o.udpPorts, (rtcp, data) => holder.a !== null && this.#onPacket(holder.a, i, rtcp, data)));
        }
      } catch (err) {
        for (const p of udp) (p.rtp.close(), p.rtcp.close());
        return this.#fail(null, `cannot bind UDP ports: ${(err as Error).message}`);
      }
    }
    const a: Attempt = new Attempt(
      url,
      transport,
      new RtspClient({
        url,
        transport,
        udpPorts: transport === 'udp' ? (i) => ({ rtp: udp[i]!.rtp.port, rtcp: udp[i]!.rtcp.port }) : undefined,
        userAgent: 'FLUX video',
        onInterleaved: (track, rtcp, data) => this.#onPacket(a, track, rtcp, data),
      }),
    );
    a.udp = udp;
    holder.a = a;
    this.#a = a;
    try {
      a.socket = await Bun.connect({
        hostname: a.client.host,
        port: a.client.port,
        socket: {
          data: (_s, data) => {
            a.client.receive(data, Date.now());
            this.#pump(a);
          },
          drain: () => this.#flush(a),
          close: () => void this.#fail(a, 'the camera closed the connection'),
          error: (_s, err) => void this.#fail(a, `connection error: ${err.message}`),
        },
      });
    } catch (err) {
      return this.#fail(a, `cannot connect to ${a.client.host}:${a.client.port}: ${(err as Error).message}`);
    }
    if (a.ended) return;
    a.client.start(Date.now());
    this.#pump(a);
  }

  /** Acts on the client's queued events. */
  #pump(a: Attempt): void {
    for (const ev of a.client.drain()) {
      if (a.ended) return;
      switch (ev.kind) {
        case 'send':
          this.#write(a, ev.bytes);
          break;
        case 'described':
          a.tracks = ev.tracks;
          this.#addStream(a, ev.sdpText, ev.tracks);
          if (ev.skipped.length > 0) log.info(`stream ${this.#o.streamId}: ${ev.skipped.join('; ')}`);
          break;
        case 'playing':
          a.playingMs = Date.now();
          this.#startPolling(a);
          a.lastDataMs = 0;
          a.rtpInfo = ev.tracks.map((t) => t.rtptime ?? -1);
          this.#sendRtpInfo(a);
          a.serverRtcp = ev.tracks.map((t) => ({ host: ev.tracks[0]?.source ?? a.client.host, port: t.serverPorts?.[1] ?? 0 }));
          break;
        case 'redirect':
          void this.#end(a, null).then(() => this.#connect(ev.url, a.transport));
          return;
        case 'error':
          if (ev.fatal && ev.status === 461 && a.transport === 'udp') {
            // 461 Unsupported Transport: the camera does not do UDP; TCP interleaved it must.
            log.warn(`stream ${this.#o.streamId}: the camera refuses RTP over UDP (461); switching to TCP`);
            this.#transport = 'tcp';
            void this.#end(a, null).then(() => this.#connect(a.url, 'tcp'));
            return;
          }
          if (ev.fatal) return void this.#fail(a, ev.message);
          log.warn(`stream ${this.#o.streamId}: ${ev.message}`);
          break;
        case 'closed':
          return void this.#fail(a, 'session closed');
      }
    }
  }

  #addStream(a: Attempt, sdp: string, tracks: RtspTrack[]): void {
    if (a.addingStream) return;
    a.addingStream = true;
    a.wallBaseMs = Date.now();
    a.stats = tracks.map((t) => new RtpReceiverStats((Math.random() * 0xffffffff) >>> 0, t.clockRate));
    const spec: StreamSpec = {
      streamId: this.#o.streamId,
      input: {
        kind: 'rtp',
        sdp,
        tracks: tracks.map((t): RtpTrackSpec => ({ mediaIndex: t.mediaIndex, payloadType: t.payloadType, transport: a.transport })),
      },
      record: this.#o.record,
      wallBaseMs: a.wallBaseMs,
      firstSegmentNumber: this.#o.nextSegmentNumber(),
      bitrateHint: 256_000,
      keyframeIntervalMs: this.#o.keyframeIntervalMs,
    };
    this.#o.pool.addStream(spec).then(
      (h) => {
        if (a.ended) {
          void this.#o.pool.removeStream(h);
          return;
        }
        a.handle = h;
        h.onPreviewChange = (on) => this.#setPolled(a, !on);
        this.#setPolled(a, !h.previewOn);
        this.#o.onHandle(h);
        this.#sendRtpInfo(a);
        for (const p of a.early) h.write(KIND_RTP, p.track, p.ts, p.data);
        if (a.earlyDropped > 0) log.warn(`stream ${this.#o.streamId}: ${a.earlyDropped} RTP packets dropped before the media pool took the stream`);
        a.early = [];
        a.earlyBytes = 0;
      },
      (err: Error) => void this.#fail(a, `media pool refused the stream: ${err.message}`),
    );
  }

  /**
   * After PLAY (the RTSP exchange itself is read as it arrives): the camera's TCP socket goes to
   * the poller unless somebody watches it live.
   */
  #startPolling(a: Attempt): void {
    const poller = this.#o.poller;
    if (poller === undefined || a.transport !== 'tcp' || a.socket === null || a.polled !== null) return;
    const fd = (a.socket as unknown as { fd?: number }).fd; // Bun's sockets carry it (not in the type declarations)
    if (typeof fd !== 'number' || fd < 0) return;
    a.polled = {
      fd,
      onData: (view) => {
        a.client.receive(view, Date.now());
        this.#pump(a);
      },
      onEnd: (error) => {
        a.pollerOwns = false;
        void this.#fail(a, error === null ? 'the camera closed the connection' : `connection error: ${error}`);
      },
    };
    this.#setPolled(a, !(a.handle?.previewOn ?? false));
  }

  /** Moves the socket to the poller (nobody watches) or back to Bun's event loop (a live viewer: read at once). */
  #setPolled(a: Attempt, on: boolean): void {
    const poller = this.#o.poller;
    if (poller === undefined || a.polled === null || a.socket === null || a.ended || on === a.pollerOwns) return;
    if (on) {
      a.socket.pause();
      if (!poller.add(a.polled)) {
        a.socket.resume();
        a.polled = null; // not on this system: stays on the event loop
        log.info(`stream ${this.#o.streamId}: reads not polled (${pollerUnavailable() ?? 'unavailable'})`);
        return;
      }
      a.pollerOwns = true;
    } else {
      poller.delete(a.polled);
      a.pollerOwns = false;
      a.socket.resume();
    }
  }

  /** Hot path: one RTP or RTCP packet (a view valid during this call only). */
  #onPacket(a: Attempt, track: number, rtcp: boolean, data: Uint8Array): void {
    if (a.ended) return;
    const now = Date.now();
    if (rtcp) return this.#onRtcp(a, track, data, now);
    if (data.length < 12) return;
    a.lastDataMs = now;
    if (!a.live && a.handle !== null) this.#live(a);
    const st = a.stats[track];
    if (st) st.onPacket((data[2]! << 8) | data[3]!, ((data[4]! << 24) | (data[5]! << 16) | (data[6]! << 8) | data[7]!) >>> 0, now);
    if (a.handle !== null) a.handle.write(KIND_RTP, track, (now - a.wallBaseMs) >>> 0, data);
    else if (a.earlyBytes + data.length <= EARLY_MAX_BYTES) {
      a.early.push({ track, ts: (now - a.wallBaseMs) >>> 0, data: data.slice() }); // start-up only: copies are fine
      a.earlyBytes += data.length;
    } else a.earlyDropped++;
  }

  #live(a: Attempt): void {
    a.live = true;
    this.#setState('live', null);
    log.info(`stream ${this.#o.streamId}: live over ${a.transport.toUpperCase()} (${a.tracks.map((t) => t.codec).join(' + ')})`);
  }

  /**
   * RTP-Info gives every track's RTP time at the same instant (the start of PLAY): the same
   * statement a sender report makes. Passing it on as one synthetic SR per track with a common
   * wall-clock time lets the worker align audio to video from the first frame, before the
   * camera's first real report (RFC 2326 §12.33, RFC 3550 §6.4.1).
   */
  #sendRtpInfo(a: Attempt): void {
    if (a.rtpInfoSent || a.handle === null || a.rtpInfo.length === 0 || a.rtpInfo.some((t) => t < 0)) return;
    a.rtpInfoSent = true;
    const now = Date.now();
    const ntpSeconds = Math.floor(now / 1000) + NTP_UNIX_OFFSET_S;
    const ntpFraction = Math.floor(((now % 1000) / 1000) * 0x100000000);
    a.rtpInfo.forEach((rtptime, track) => {
      const sr = new Uint8Array(28);
      const v = new DataView(sr.buffer);
      v.setUint8(0, 0x80); // V=2, no padding, no report blocks
      v.setUint8(1, 200); // SR
      v.setUint16(2, 6); // length in 32-bit words minus one
      v.setUint32(8, ntpSeconds >>> 0);
      v.setUint32(12, ntpFraction >>> 0);
      v.setUint32(16, rtptime >>> 0);
      a.handle!.write(KIND_RTCP, track, (now - a.wallBaseMs) >>> 0, sr);
    });
  }

  #onRtcp(a: Attempt, track: number, data: Uint8Array, now: number): void {
    a.handle?.write(KIND_RTCP, track, (now - a.wallBaseMs) >>> 0, data); // sender reports sync A/V in the worker
    try {
      for (const p of parseRtcp(data, false)) {
        if (p.type === 'sr') a.stats[track]?.onSenderReport(p.ntpSeconds, p.ntpFraction, now);
      }
    } catch {
      /* a malformed RTCP packet only costs its report */
    }
  }

  #tick(): void {
    const a = this.#a;
    if (a === null || a.ended) return;
    const now = Date.now();
    a.client.tick(now);
    this.#pump(a);
    if (a.ended) return;
    if (a.playingMs === 0) {
      if (now - a.startedMs > SETUP_TIMEOUT_MS) void this.#fail(a, `no PLAY within ${SETUP_TIMEOUT_MS / 1000} s`);
      return;
    }
    if (a.lastDataMs === 0 && a.transport === 'udp' && now - a.playingMs > UDP_FALLBACK_MS) {
      log.warn(`stream ${this.#o.streamId}: no RTP over UDP in ${UDP_FALLBACK_MS / 1000} s; switching to TCP`);
      this.#transport = 'tcp';
      void this.#end(a, null).then(() => this.#connect(a.url, 'tcp'));
      return;
    }
    const since = a.lastDataMs || a.playingMs;
    if (now - since > NO_DATA_TIMEOUT_MS) return void this.#fail(a, `no data for ${NO_DATA_TIMEOUT_MS / 1000} s`);
    if (now - a.lastRrMs >= RR_INTERVAL_MS && a.lastDataMs > 0) {
      a.lastRrMs = now;
      this.#sendReports(a, now);
    }
  }

  #sendReports(a: Attempt, now: number): void {
    a.stats.forEach((st, i) => {
      if (st === null) return;
      try {
        const rr = buildReceiverReport(st.ssrc, [st.reportBlock(now)], 'flux-video');
        if (a.transport === 'tcp') a.client.sendRtcp(i, rr);
        else if (a.serverRtcp[i]?.port) a.udp[i]?.rtcp.send(rr, a.serverRtcp[i]!.port, a.serverRtcp[i]!.host);
      } catch {
        /* no packets on that track yet */
      }
    });
    this.#pump(a);
  }

  #write(a: Attempt, bytes: Uint8Array): void {
    if (a.socket === null) {
      a.out.push(bytes);
      a.outBytes += bytes.length;
      return;
    }
    if (a.out.length === 0) {
      const n = a.socket.write(bytes);
      if (n === bytes.length) return;
      bytes = bytes.subarray(Math.max(0, n));
    }
    a.out.push(bytes);
    a.outBytes += bytes.length;
    if (a.outBytes > MAX_OUT_QUEUE_BYTES) void this.#fail(a, 'the camera does not read what we send');
  }

  #flush(a: Attempt): void {
    while (a.socket !== null && a.out.length > 0) {
      const b = a.out[0]!;
      const n = a.socket.write(b);
      a.outBytes -= Math.max(0, n);
      if (n < b.length) {
        a.out[0] = b.subarray(Math.max(0, n));
        return;
      }
      a.out.shift();
    }
  }

  /** Tears an attempt down: sockets, then the stream (its segment closes). */
  async #end(a: Attempt, _why: string | null): Promise<void> {
    if (a.ended) return;
    a.ended = true;
    if (a.polled !== null) {
      this.#o.poller?.delete(a.polled); // before the close: its descriptor number may be reused at once
      a.pollerOwns = false;
    }
    try {
      a.socket?.end();
    } catch {
      /* already closed */
    }
    for (const p of a.udp) {
      p.rtp.close();
      p.rtcp.close();
    }
    if (a.handle !== null) {
      const h = a.handle;
      a.handle = null;
      this.#o.onHandle(null);
      await this.#o.pool.removeStream(h).catch(() => {});
    }
  }

  async #fail(a: Attempt | null, why: string): Promise<void> {
    if (a !== null && (a.ended || this.#a !== a)) return;
    if (a !== null) {
      if (a.playingMs > 0 && Date.now() - a.playingMs > BACKOFF_RESET_AFTER_MS) this.#backoff = BACKOFF_INITIAL_MS;
      await this.#end(a, why);
    }
    if (this.#stopped) return;
    const pause = Math.round(this.#backoff * (0.8 + Math.random() * 0.4));
    this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
    this.reconnects++;
    log.warn(`stream ${this.#o.streamId}: ${why}; reconnecting in ${(pause / 1000).toFixed(1)} s`);
    this.#setState('retrying', why);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.#connect(this.#url, this.#transport);
    }, pause);
  }
}

/** ICMP errors (e.g. port unreachable after a receiver report to a camera whose RTCP port is
 *  closed) arrive on the socket; without a handler Bun raises them as uncaught errors that end
 *  the process. They are harmless here: the stream's own no-data timer judges the session. */
function onSocketError(): void {}

export async function bindUdpPair(range: { min: number; max: number }, onData: (rtcp: boolean, data: Uint8Array) => void): Promise<UdpPair> {
  const first = range.min + (range.min % 2); // RTP on an even port
  const pairs = Math.floor((range.max - first + 1) / 2);
  if (pairs < 1) throw new Error(`the range ${range.min}-${range.max} holds no even/odd port pair`);
  for (let i = 0; i < Math.min(50, pairs * 2); i++) {
    const port = first + 2 * Math.floor(Math.random() * pairs);
    let rtp: UdpPair['rtp'] | null = null;
    try {
      rtp = await Bun.udpSocket({ port, socket: { data: (_s, data) => onData(false, data), error: onSocketError } });
      const rtcp = await Bun.udpSocket({ port: port + 1, socket: { data: (_s, data) => onData(true, data), error: onSocketError } });
      return { rtp, rtcp };
    } catch {
      rtp?.close();
    }
  }
  throw new Error(`no free even/odd port pair in ${range.min}-${range.max}`);
}
