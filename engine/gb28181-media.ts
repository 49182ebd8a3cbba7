// GB28181 media receiver: per live session, one UDP port or one passive TCP listener
// (RFC 4571 framing) from [video.gb28181] rtp_port_min..max, whose RTP packets (MPEG-PS
// payload, SSRC checked here) feed a media-worker stream with input 'ps-rtp'.
import type { Socket, TCPSocketListener } from 'bun';
import type { Engine, StreamEntry } from './engine.ts';
import { EngineError } from './engine.ts';
import { log } from './log.ts';
import type { StreamHandle } from './media-pool.ts';
import { newRtpView, readRtp } from '../media/rtp.ts';
import { Rfc4571Deframer } from '../media/rtp-framing.ts';
import { KIND_RTP } from '../workers/ring-format.ts';

/** A session with no packet for this long is idle (the device stopped or the path broke). */
export const GB_IDLE_MS = 10_000;
/** Problem summaries are logged at most this often per session (STYLE 5). */
const LOG_INTERVAL_MS = 1000;
/** TCP connections a passive port accepts at once: the device's, plus one reconnecting. */
const MAX_TCP_CONNECTIONS = 2;
/** Bytes/s placement hint until measured: a 2 Mbit/s D1/720p camera. */
const BITRATE_HINT = 250_000;

export interface GbMediaSession {
  streamId: string;
  port: number;
  transport: 'udp' | 'tcp';
  ssrc: number;
}

/** Main-thread counters of a session, shown in the stream's API view (StreamEntry.gbMedia). */
export interface GbMediaCounters {
  port: number;
  transport: 'udp' | 'tcp';
  ssrc: number;
  packets: number;
  bytes: number;
  /** Packets with another SSRC than the one offered in the INVITE (dropped). */
  ssrcMismatches: number;
  /** Datagrams/frames that were not RTP (dropped). */
  badPackets: number;
  /** Records the worker ring had no room for (also in the stream's ring_drops). */
  ringDrops: number;
}

interface Session {
  o: { streamId: string; ssrc: number; transport: 'udp' | 'tcp'; record?: boolean; onIdle?: () => void };
  entry: StreamEntry;
  counters: GbMediaCounters;
  handle: StreamHandle;
  wallBaseMs: number;
  udp: { close(): void } | null;
  tcp: TCPSocketListener<Rfc4571Deframer | undefined> | null;
  conns: Set<Socket<Rfc4571Deframer | undefined>>;
  lastPacketMs: number;
  idleFired: boolean;
  timer: ReturnType<typeof setInterval>;
  // Bounded-rate problem log: counts since the last line.
  logMismatch: number;
  logBad: number;
  lastSsrc: number;
  lastLogMs: number;
  loggedLost: number;
  loggedResyncs: number;
  closed: boolean;
}

export class GbMediaServer {
  #engine: Engine;
  #sessions = new Map<string, Session>();
  #ports = new Set<number>();
  #nextPort = -1;
  #rtp = newRtpView();
  #idleMs: number;

  /** `opts.idleMs`: silence before onIdle (GB_IDLE_MS; tests shorten it). */
  constructor(engine: Engine, opts: { idleMs?: number } = {}) {
    this.#engine = engine;
    this.#idleMs = opts.idleMs ?? GB_IDLE_MS;
  }

  /**
   * Opens a receiving UDP port or TCP passive listener (RFC 4571 2-byte length framing) from
   * [video.gb28181] rtp_port_min..rtp_port_max and registers an engine stream (protocol
   * 'gb28181', state connecting until the first valid packet, then live; no packet for 10 s
   * calls onIdle).
   */
  async open(o: { streamId: string; ssrc: number; transport: 'udp' | 'tcp'; record?: boolean; onIdle?: () => void }): Promise<GbMediaSession> {
    const engine = this.#engine;
    if (engine.streams.has(o.streamId)) throw new EngineError(`stream ${o.streamId} exists`);
    const ssrc = o.ssrc >>> 0;
    const entry: StreamEntry = {
      config: { stream_id: o.streamId, protocol: 'gb28181', record: o.record ?? true },
      origin: 'api', state: 'connecting', error: null, handle: null, source: null, rtsp: null, reconnects: 0,
    };
    engine.streams.set(o.streamId, entry); // claims the id synchronously
    let handle: StreamHandle;
    try {
      handle = await engine.pool.addStream({
        streamId: o.streamId,
        input: { kind: 'ps-rtp', transport: o.transport },
        record: entry.config.record,
        wallBaseMs: Date.now(),
        firstSegmentNumber: engine.nextSegmentNumber(o.streamId),
        bitrateHint: BITRATE_HINT,
        keyframeIntervalMs: engine.keyframeIntervalMs,
      });
    } catch (err) {
      engine.streams.delete(o.streamId);
      throw err;
    }
    entry.handle = handle;
    const counters: GbMediaCounters = { port: 0, transport: o.transport, ssrc, packets: 0, bytes: 0, ssrcMismatches: 0, badPackets: 0, ringDrops: 0 };
    entry.gbMedia = counters;
    const now = Date.now();
    const s: Session = {
      o: { ...o, ssrc }, entry, counters, handle, wallBaseMs: handle.spec.wallBaseMs, udp: null, tcp: null, conns: new Set(),
      lastPacketMs: now, idleFired: false, timer: setInterval(() => this.#tick(s), Math.min(LOG_INTERVAL_MS, this.#idleMs / 2)),
      logMismatch: 0, logBad: 0, lastSsrc: 0, lastLogMs: now, loggedLost: 0, loggedResyncs: 0, closed: false,
    };
    this.#sessions.set(o.streamId, s);
    try {
      counters.port = await this.#bind(s);
    } catch (err) {
      await this.close(o.streamId, 'no receive port');
      throw err;
    }
    log.info(`stream ${o.streamId}: GB28181 media on ${o.transport.toUpperCase()} port ${counters.port}, SSRC ${ssrc}`);
    return { streamId: o.streamId, port: counters.port, transport: o.transport, ssrc };
  }

  /** Closes the socket, the segment, and removes the stream. Idempotent. */
  async close(streamId: string, reason: string): Promise<void> {
    const s = this.#sessions.get(streamId);
    if (s === undefined) return;
    this.#release(s, reason);
    const engine = this.#engine;
    if (engine.streams.get(streamId) === s.entry) await engine.removeStream(streamId);
  }

  /**
   * Engine.removeStream of a GB28181 stream from outside (DELETE /api/video/streams/{id}):
   * closes its sockets, and calls onIdle so that the session's owner hangs up (BYE) too.
   */
  streamRemoved(streamId: string): void {
    const s = this.#sessions.get(streamId);
    if (s === undefined) return;
    this.#release(s, 'stream removed');
    try {
      s.o.onIdle?.();
    } catch (err) {
      log.error(`stream ${streamId}: onIdle failed: ${(err as Error).message}`);
    }
  }

  #release(s: Session, reason: string): void {
    if (s.closed) return;
    const streamId = s.o.streamId;
    s.closed = true;
    this.#sessions.delete(streamId);
    clearInterval(s.timer);
    this.#flushLog(s, Date.now());
    s.udp?.close();
    for (const c of s.conns) c.end();
    s.tcp?.stop(true);
    this.#ports.delete(s.counters.port);
    const c = s.counters;
    log.info(`stream ${streamId}: GB28181 media closed (${reason}): ${c.packets} packets, ${c.bytes} bytes, ${s.handle.counters.lostPackets} lost, ${c.ssrcMismatches} SSRC mismatches`);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#sessions.keys()].map((id) => this.close(id, 'engine stopping')));
  }

  /**
   * Accepts another SSRC from now on: the device's SDP answer may carry its own (`y=`) instead
   * of the one offered. False when there is no such session.
   */
  expectSsrc(streamId: string, ssrc: number): boolean {
    const s = this.#sessions.get(streamId);
    if (s === undefined) return false;
    s.o.ssrc = ssrc >>> 0;
    s.counters.ssrc = s.o.ssrc;
    return true;
  }

  /** The session's open port (tests and diagnostics). */
  session(streamId: string): GbMediaSession | null {
    const s = this.#sessions.get(streamId);
    return s ? { streamId, port: s.counters.port, transport: s.o.transport, ssrc: s.o.ssrc } : null;
  }

  /** Binds the next free port of the range (round robin, so a just-closed port rests). */
  async #bind(s: Session): Promise<number> {
    const g = this.#engine.config.video.gb28181;
    const min = g.rtp_port_min, max = g.rtp_port_max;
    const span = max - min + 1;
    if (this.#nextPort < min || this.#nextPort > max) this.#nextPort = min;
    const host = g.local_ip;
    for (let k = 0; k < span; k++) {
      const port = this.#nextPort;
      this.#nextPort = port === max ? min : port + 1;
      if (this.#ports.has(port)) continue;
      try {
        if (s.o.transport === 'udp') {
          s.udp = await Bun.udpSocket({ hostname: host, port, socket: { data: (_u, data) => this.#packet(s, data) } });
        } else {
          s.tcp = Bun.listen<Rfc4571Deframer | undefined>({
            hostname: host,
            port,
            socket: {
              open: (c) => this.#accept(s, c),
              data: (c, data) => c.data?.push(data),
              close: (c) => this.#hangUp(s, c, 'closed by the device'),
              error: (c, err) => this.#hangUp(s, c, err.message),
            },
          });
        }
        this.#ports.add(port);
        return port;
      } catch {
        /* in use by someone else: try the next */
      }
    }
    throw new EngineError(`no free port for GB28181 media in ${min}-${max} ([video.gb28181] rtp_port_min/rtp_port_max)`);
  }

  #accept(s: Session, c: Socket<Rfc4571Deframer | undefined>): void {
    if (s.closed || s.conns.size >= MAX_TCP_CONNECTIONS) {
      c.end();
      return;
    }
    c.data = new Rfc4571Deframer({ packet: (p) => this.#packet(s, p) });
    s.conns.add(c);
    log.info(`stream ${s.o.streamId}: GB28181 media TCP connection from ${c.remoteAddress}`);
  }

  #hangUp(s: Session, c: Socket<Rfc4571Deframer | undefined>, why: string): void {
    if (!s.conns.delete(c) || s.closed) return;
    log.info(`stream ${s.o.streamId}: GB28181 media TCP connection ${why}`);
  }

  /** One RTP packet (a view valid during the call): SSRC check, then into the worker's ring. */
  #packet(s: Session, p: Uint8Array): void {
    if (s.closed) return;
    const c = s.counters;
    c.packets++;
    c.bytes += p.length;
    if (!readRtp(p, this.#rtp)) {
      c.badPackets++;
      s.logBad++;
      return;
    }
    if (this.#rtp.ssrc !== s.o.ssrc) {
      c.ssrcMismatches++;
      s.logMismatch++;
      s.lastSsrc = this.#rtp.ssrc;
      return;
    }
    const now = Date.now();
    s.lastPacketMs = now;
    if (s.entry.state !== 'live') {
      s.entry.state = 'live';
      s.entry.error = null;
      s.idleFired = false;
    }
    if (!s.handle.write(KIND_RTP, 0, (now - s.wallBaseMs) >>> 0, p)) c.ringDrops++;
  }

  #tick(s: Session): void {
    const now = Date.now();
    this.#flushLog(s, now);
    if (!s.idleFired && now - s.lastPacketMs > this.#idleMs) {
      s.idleFired = true;
      s.entry.state = 'connecting';
      s.entry.error = `no media for ${Math.round((now - s.lastPacketMs) / 1000)} s`;
      log.warn(`stream ${s.o.streamId}: ${s.entry.error} on port ${s.counters.port}`);
      try {
        s.o.onIdle?.();
      } catch (err) {
        log.error(`stream ${s.o.streamId}: onIdle failed: ${(err as Error).message}`);
      }
    }
  }

  #flushLog(s: Session, now: number): void {
    const hc = s.handle.counters; // the worker's figures, updated once a second
    const lost = hc.lostPackets - s.loggedLost;
    const resyncs = hc.resyncs - s.loggedResyncs;
    if (s.logMismatch + s.logBad + Math.max(0, lost) + Math.max(0, resyncs) === 0) return;
    s.loggedLost = hc.lostPackets;
    s.loggedResyncs = hc.resyncs;
    const secs = Math.max(1, Math.round((now - s.lastLogMs) / 1000));
    const parts: string[] = [];
    if (lost > 0) parts.push(`${lost} RTP packets lost`);
    if (resyncs > 0) parts.push(`MPEG-PS resynchronised ${resyncs} times (partial pictures dropped, resumed at a keyframe)`);
    if (s.logMismatch > 0) parts.push(`${s.logMismatch} packets with SSRC ${s.lastSsrc} (expected ${s.o.ssrc}) dropped`);
    if (s.logBad > 0) parts.push(`${s.logBad} non-RTP packets dropped`);
    log.warn(`stream ${s.o.streamId}: ${parts.join(', ')} in ${secs} s`);
    s.logMismatch = 0;
    s.logBad = 0;
    s.lastLogMs = now;
  }
}
