// The RTMP ingest adapter: a Bun TCP listener binding each connection to an RtmpServerSession,
// with publish authorization, one publisher per stream id, back-pressured replies, shared
// timers, and each accepted publish's audio/video tags handed to the engine as FLV tags.
import type { Socket, TCPSocketListener } from 'bun';
import { amfObject, encodeAmf0 } from '../protocols/rtmp/amf0.ts';
import { writeMessage } from '../protocols/rtmp/chunk.ts';
import { type AuthorizeResult, OUT_CHUNK_SIZE, type RtmpMediaKind, RtmpServerSession } from '../protocols/rtmp/session.ts';
import { constantTimeEqual } from '../media/bytes.ts';
import { isValidStreamId } from './config-schema.ts';
import { log } from './log.ts';

export interface RtmpPublishTarget {
  /**
   * One FLV tag: `header` is the 11-byte tag header (type 8/9, 24-bit size, timestamp low 24
   * bits + extended byte, stream id 0), `body` the tag body. Both are views valid only during
   * the call (copy them, e.g. with StreamHandle.writeParts). `keyframe`: a video tag carrying
   * a key picture (not a sequence header). false = not taken (ring full); the server counts it.
   */
  writeTag(header: Uint8Array, body: Uint8Array, keyframe: boolean): boolean;
}

export type RtmpRefusalCode = 'NetStream.Publish.BadName' | 'NetStream.Publish.Unauthorized' | 'NetStream.Publish.BadConnection';
export type RtmpAuthorizeResult = { ok: true } | { ok: false; code: RtmpRefusalCode; description: string };

export interface RtmpServerOptions {
  host: string;
  port: number;
  /** Decides a publish: the stream id is the last path part of app/streamKey (rtmp://host/live/pub1?key=S -> "pub1"). */
  authorize(streamId: string, query: URLSearchParams): RtmpAuthorizeResult;
  /** A publish was accepted: resolve with where its tags go (the engine adds the stream to a media worker). Rejecting closes the connection with an error status. */
  onPublish(streamId: string, info: { remote: string; app: string }): Promise<RtmpPublishTarget>;
  /**
   * The publisher went away or unpublished (the engine closes the segment). Called exactly once
   * per onPublish call, always after the promise onPublish returned has settled (also when it
   * rejected), so the engine never sees an unpublish overtake its own start-up.
   */
  onUnpublish(streamId: string, reason: string): void;
  /** Connections beyond this are closed at once (default MAX_CONNECTIONS). */
  maxConnections?: number;
  /** Shared timer period (default TICK_MS). */
  tickMs?: number;
  /** Session timeout overrides (tests); defaults are the session's constants. */
  handshakeTimeoutMs?: number;
  publishTimeoutMs?: number;
  idleTimeoutMs?: number;
}

/** One publish as the server sees it, for the API and metrics. */
export interface RtmpPublishStats {
  remote: string;
  app: string;
  /** 'starting' until onPublish resolves, then 'live'. */
  state: 'starting' | 'live';
  startedMs: number;
  bytesIn: number;
  /** Audio/video tags handed to writeTag. */
  tags: number;
  /** Tags writeTag refused (ring full). */
  refused: number;
  /** Tags dropped while onPublish was pending (no target yet). */
  droppedBeforeTarget: number;
}

/** Server-wide counters. */
export interface RtmpServerCounters {
  connections: number;
  accepted: number;
  /** Connections closed at once because MAX_CONNECTIONS were open. */
  overLimit: number;
  publishesRefused: number;
  /** Connections the session closed for bad input or a timeout. */
  sessionErrors: number;
  /** Clients closed because they did not read our replies. */
  slowClients: number;
}

/**
 * Open connections: a node takes 100+ cameras; each connection costs a session (~20 KB plus
 * chunk reassembly, itself capped at 16 MB) so 1024 bounds memory against a connection flood.
 */
export const MAX_CONNECTIONS = 1024;
/**
 * onPublish calls in flight (each is a media-worker add-stream round trip, normally ~ms).
 * 64 absorbs every camera of a node reconnecting at once; more means the engine is stuck.
 */
export const MAX_PENDING_PUBLISHES = 64;
/**
 * Unsent reply bytes per connection. We only send handshake (3 KB), command replies and an
 * ack per 2.5 MB received, so a client that lets 256 KiB pile up does not read at all.
 */
export const MAX_QUEUE_BYTES = 256 << 10;
/** After a refusal or timeout the socket is ended once the queue drains; a client that does not read within this is cut. */
export const END_GRACE_MS = 2_000;
/** How long a connection whose stream could not start stays open so the client reads the error status. */
export const LINGER_MS = 3_000;
/** One shared timer ticks every session (timeouts are seconds; one tick per second suffices). */
export const TICK_MS = 1_000;
/** The message stream id of the first createStream: what FFmpeg, OBS and librtmp publish on. */
const PUBLISH_MSG_STREAM = 1;
const CSID_STATUS = 5, MSG_COMMAND_AMF0 = 20;
const TAG_AUDIO = 8, TAG_VIDEO = 9;
const FLV_TAG_HEADER_BYTES = 11;
/**
 * Media kept while onPublish is pending (copies; start-up only). Setting a stream up on a busy
 * engine takes longer than a publisher waits before sending, and without this the first GOP
 * (up to 2 s) of every publish was lost. 2 MiB is 4 s at 4 Mbit/s.
 */
export const EARLY_MAX_BYTES = 2 << 20;

/** One accepted publish; lives from the session's publish() until onUnpublish ran. */
class Publication {
  target: RtmpPublishTarget | null = null;
  settled = false;
  /** Why it ended, once it did (the session unpublished or the connection went away). */
  endReason: string | null = null;
  unpublished = false;
  /** Sequence headers (avcC/hvcC, AudioSpecificConfig) that came before the target: replayed to it. */
  seqVideo: { body: Uint8Array } | null = null;
  seqAudio: { body: Uint8Array } | null = null;
  /** Audio/video tags that came before the target (see EARLY_MAX_BYTES): replayed in order. */
  early: { kind: 'video' | 'audio'; ts: number; body: Uint8Array }[] = [];
  earlyBytes = 0;
  readonly stats: RtmpPublishStats;
  constructor(readonly streamId: string, readonly conn: Conn, app: string, nowMs: number) {
    this.stats = { remote: conn.remote, app, state: 'starting', startedMs: nowMs, bytesIn: 0, tags: 0, refused: 0, droppedBeforeTarget: 0 };
  }
}

interface Conn {
  socket: Socket<Conn>;
  session: RtmpServerSession;
  remote: string;
  queue: Uint8Array[];
  queueBytes: number;
  /** ms when the session asked to close (the socket ends once the queue drains); 0 = open. */
  endingAt: number;
  closed: boolean;
  /** Set by a fatal session error or by the adapter before it closes the session. */
  closeReason: string | null;
  /** ms after which a connection refused after Publish.Start is ended; 0 = not lingering. */
  lingerUntil: number;
  pub: Publication | null;
  /** The 11-byte FLV tag header, rebuilt in place for every tag. */
  readonly header: Uint8Array;
}

export class RtmpServer {
  readonly counters: RtmpServerCounters = { connections: 0, accepted: 0, overLimit: 0, publishesRefused: 0, sessionErrors: 0, slowClients: 0 };
  #o: RtmpServerOptions;
  #listener: TCPSocketListener<Conn>;
  #conns = new Set<Conn>();
  /** stream id -> its publication, from acceptance until onUnpublish (the id stays reserved meanwhile). */
  #pubs = new Map<string, Publication>();
  #pending = 0;
  #settling = new Set<Promise<unknown>>();
  #timer: ReturnType<typeof setInterval>;
  #errorsThisTick = 0;
  #lastError = '';
  #stopped = false;

  private constructor(o: RtmpServerOptions) {
    this.#o = o;
    this.#listener = Bun.listen<Conn>({
      hostname: o.host,
      port: o.port,
      socket: {
        open: (s) => this.#open(s),
        data: (s, bytes) => this.#data(s.data, bytes),
        drain: (s) => this.#flush(s.data),
        close: (s) => this.#gone(s.data, 'connection closed by the peer'),
        error: (s, err) => this.#gone(s.data, `socket error: ${err.message}`),
      },
    });
    this.#timer = setInterval(() => this.#tick(), o.tickMs ?? TICK_MS);
  }

  /** Binds host:port (throws if it cannot) and starts the shared timer. */
  static start(o: RtmpServerOptions): RtmpServer {
    return new RtmpServer(o);
  }

  get port(): number {
    return this.#listener.port;
  }

  /** Open connections (publishing or not). */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** The current publish of `streamId`, or null when nobody publishes it. */
  stats(streamId: string): RtmpPublishStats | null {
    const p = this.#pubs.get(streamId);
    if (p === undefined || p.endReason !== null) return null;
    p.stats.bytesIn = p.conn.session.stats.bytesIn;
    return p.stats;
  }

  /** Ends the publish of `streamId` (e.g. the stream was deleted); false if none. */
  disconnect(streamId: string, reason: string): boolean {
    const p = this.#pubs.get(streamId);
    if (p === undefined || p.conn.closed) return false;
    this.#terminate(p.conn, reason);
    return true;
  }

  /** Closes the listener and every connection; resolves once every onUnpublish has run. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      clearInterval(this.#timer);
      this.#listener.stop(true);
      for (const c of [...this.#conns]) this.#terminate(c, 'server stopping');
    }
    while (this.#settling.size > 0) await Promise.allSettled([...this.#settling]);
  }

  #open(s: Socket<Conn>): void {
    const now = Date.now();
    const c: Conn = {
      socket: s, session: null as unknown as RtmpServerSession, remote: `${s.remoteAddress}:${s.remotePort}`,
      queue: [], queueBytes: 0, endingAt: 0, closed: false, closeReason: null, lingerUntil: 0, pub: null, header: new Uint8Array(FLV_TAG_HEADER_BYTES),
    };
    s.data = c;
    if (this.#stopped || this.#conns.size >= (this.#o.maxConnections ?? MAX_CONNECTIONS)) {
      this.counters.overLimit++;
      c.closed = true;
      s.terminate();
      return;
    }
    this.counters.connections++;
    this.#conns.add(c);
    c.session = new RtmpServerSession({
      nowMs: now,
      authorize: (app, name, query) => this.#authorize(c, app, name, query),
      send: (b) => this.#send(c, b),
      publish: (app, _key, streamId) => this.#published(c, app, streamId),
      media: (kind, ts, body) => this.#media(c, kind, ts, body),
      unpublish: () => this.#unpublished(c),
      error: (fatal, message) => {
        if (!fatal) return;
        c.closeReason ??= message;
        this.counters.sessionErrors++;
        this.#errorsThisTick++;
        this.#lastError = `${c.remote}: ${message}`;
      },
      close: () => this.#end(c),
      ...(this.#o.handshakeTimeoutMs !== undefined && { handshakeTimeoutMs: this.#o.handshakeTimeoutMs }),
      ...(this.#o.publishTimeoutMs !== undefined && { publishTimeoutMs: this.#o.publishTimeoutMs }),
      ...(this.#o.idleTimeoutMs !== undefined && { idleTimeoutMs: this.#o.idleTimeoutMs }),
    });
  }

  #data(c: Conn, bytes: Uint8Array): void {
    if (c.closed || c.endingAt !== 0) return;
    try {
      c.session.receive(bytes, Date.now());
    } catch (err) {
      // A bug (ours or a target's), not bad input: the session reports that as values.
      log.error(`rtmp ${c.remote}: ${(err as Error).stack ?? err}`);
      this.#terminate(c, `internal error: ${(err as Error).message}`);
    }
  }

  #authorize(c: Conn, app: string, name: string, query: URLSearchParams): AuthorizeResult {
    const path = `${app}/${name}`;
    const id = path.slice(path.lastIndexOf('/') + 1);
    const refuse = (code: RtmpRefusalCode, description: string): AuthorizeResult => {
      this.counters.publishesRefused++;
      log.info(`rtmp ${c.remote}: publish of ${JSON.stringify(path)} refused: ${code}: ${description}`);
      return { ok: false, code, description };
    };
    if (!isValidStreamId(id)) return refuse('NetStream.Publish.BadName', `invalid stream id ${JSON.stringify(id)}`);
    const other = this.#pubs.get(id);
    if (other !== undefined) return refuse('NetStream.Publish.BadName', `stream ${id} is already being published (from ${other.conn.remote})`);
    if (this.#pending >= MAX_PENDING_PUBLISHES) return refuse('NetStream.Publish.BadConnection', 'server busy: too many publishes starting; retry');
    let verdict: RtmpAuthorizeResult;
    try {
      verdict = this.#o.authorize(id, query);
    } catch (err) {
      log.error(`rtmp: authorize(${id}) threw: ${(err as Error).message}`);
      verdict = { ok: false, code: 'NetStream.Publish.BadConnection', description: 'internal error' };
    }
    if (!verdict.ok) return refuse(verdict.code, verdict.description);
    return { ok: true, streamId: id };
  }

  // The session accepted (Publish.Start sent): reserve the id and ask the engine for a target.
  #published(c: Conn, app: string, streamId: string): void {
    const p = new Publication(streamId, c, app, Date.now());
    c.pub = p;
    this.#pubs.set(streamId, p);
    this.#pending++;
    this.counters.accepted++;
    log.info(`rtmp ${c.remote}: publishing ${streamId} (app ${JSON.stringify(app)})`);
    let started: Promise<RtmpPublishTarget>;
    try {
      started = this.#o.onPublish(streamId, { remote: c.remote, app });
    } catch (err) {
      started = Promise.reject(err as Error);
    }
    const settled = started.then(
      (target) => {
        this.#settle(p);
        if (p.endReason === null) {
          p.target = target;
          p.stats.state = 'live';
        } else this.#finish(p);
      },
      (err: Error) => {
        this.#settle(p);
        if (p.endReason === null) {
          // FFmpeg reads what the server sent only every 10 packets it writes: closing now would
          // give it a broken pipe instead of our status, so the connection lingers (media ignored).
          const why = `could not start stream ${streamId}: ${err.message}`;
          this.#send(c, statusMessage('error', 'NetStream.Publish.BadConnection', why));
          c.pub = null;
          p.endReason = why;
          c.lingerUntil = Date.now() + LINGER_MS;
        }
        this.#finish(p);
      },
    );
    this.#settling.add(settled);
    void settled.finally(() => this.#settling.delete(settled));
  }

  #settle(p: Publication): void {
    p.settled = true;
    this.#pending--;
  }

  // Hot path: one call per audio/video message. No allocation: the header buffer is reused.
  #media(c: Conn, kind: RtmpMediaKind, ts: number, body: Uint8Array): void {
    const p = c.pub;
    if (p === null || kind === 'data') return; // script data (onMetaData) is not recorded
    const target = p.target;
    if (target !== null) {
      if (p.seqVideo !== null || p.seqAudio !== null || p.early.length > 0) this.#replay(c, p, target, ts);
      return this.#write(c, p, target, kind, ts, body);
    }
    // Kept (copied: only until the target arrives) to be replayed when it does.
    if (kind === 'video' && isVideoSequenceHeader(body)) p.seqVideo = { body: body.slice() };
    else if (kind === 'audio' && isAacConfig(body)) p.seqAudio = { body: body.slice() };
    else if (p.earlyBytes + body.length <= EARLY_MAX_BYTES) {
      p.early.push({ kind, ts, body: body.slice() });
      p.earlyBytes += body.length;
    } else p.stats.droppedBeforeTarget++;
  }

  /**
   * Encoders send their configuration once, first; without it nothing after decodes. It goes
   * out before the first tag the target gets, stamped with that tag's time (the first kept
   * tag's, else the current one's): a sequence header's own (older) time would shift where the
   * worker anchors the publisher's clock. Then the tags kept while the target was pending.
   */
  #replay(c: Conn, p: Publication, target: RtmpPublishTarget, ts: number): void {
    const first = p.early[0]?.ts ?? ts;
    if (p.seqVideo !== null) this.#write(c, p, target, 'video', first, p.seqVideo.body);
    if (p.seqAudio !== null) this.#write(c, p, target, 'audio', first, p.seqAudio.body);
    p.seqVideo = p.seqAudio = null;
    const early = p.early;
    p.early = [];
    p.earlyBytes = 0;
    for (const e of early) this.#write(c, p, target, e.kind, e.ts, e.body);
  }

  #write(c: Conn, p: Publication, target: RtmpPublishTarget, kind: 'video' | 'audio', ts: number, body: Uint8Array): void {
    const h = c.header;
    const size = body.length;
    const t = ts >>> 0; // FLV keeps 32 bits: low 24 then the extended byte
    h[0] = kind === 'video' ? TAG_VIDEO : TAG_AUDIO;
    h[1] = size >>> 16;
    h[2] = (size >>> 8) & 0xff;
    h[3] = size & 0xff;
    h[4] = (t >>> 16) & 0xff;
    h[5] = (t >>> 8) & 0xff;
    h[6] = t & 0xff;
    h[7] = t >>> 24;
    p.stats.tags++;
    if (!target.writeTag(h, body, kind === 'video' && isKeyPicture(body))) p.stats.refused++;
  }

  #unpublished(c: Conn): void {
    const p = c.pub;
    if (p === null) return;
    c.pub = null;
    p.endReason = c.closeReason ?? 'unpublished by the client';
    if (p.settled) this.#finish(p);
    // else: onUnpublish runs when onPublish settles (see #published)
  }

  #finish(p: Publication): void {
    if (p.unpublished) return;
    p.unpublished = true;
    if (this.#pubs.get(p.streamId) === p) this.#pubs.delete(p.streamId);
    const s = p.stats;
    log.info(`rtmp ${s.remote}: ${p.streamId} ended (${p.endReason}); ${s.tags} tags, ${s.refused} refused by a full ring, ${s.droppedBeforeTarget} before start`);
    try {
      this.#o.onUnpublish(p.streamId, p.endReason ?? 'ended');
    } catch (err) {
      log.error(`rtmp: onUnpublish(${p.streamId}) threw: ${(err as Error).message}`);
    }
  }

  /** Writes what the socket takes now, queues the rest (the session hands over owned buffers). */
  #send(c: Conn, b: Uint8Array): void {
    if (c.closed) return;
    if (c.queue.length === 0) {
      const n = Math.max(0, c.socket.write(b));
      if (n === b.length) return;
      b = b.subarray(n);
    }
    c.queue.push(b);
    c.queueBytes += b.length;
    if (c.queueBytes > MAX_QUEUE_BYTES) {
      this.counters.slowClients++;
      this.#terminate(c, `client does not read: ${c.queueBytes} reply bytes queued`);
    }
  }

  #flush(c: Conn): void {
    while (c.queue.length > 0 && !c.closed) {
      const b = c.queue[0]!;
      const n = Math.max(0, c.socket.write(b));
      c.queueBytes -= n;
      if (n < b.length) {
        c.queue[0] = b.subarray(n);
        return;
      }
      c.queue.shift();
    }
    if (c.endingAt !== 0 && !c.closed) c.socket.end();
  }

  /** The session is done: end gracefully once our last bytes (e.g. an error status) are out. */
  #end(c: Conn): void {
    if (c.closed || c.endingAt !== 0) return;
    c.endingAt = Date.now();
    if (c.queue.length === 0) c.socket.end();
  }

  /** Cuts the connection now (no flush); the close handler may or may not follow. */
  #terminate(c: Conn, reason: string): void {
    if (c.closed) return;
    c.closeReason ??= reason;
    c.socket.terminate();
    this.#gone(c, reason);
  }

  #gone(c: Conn, reason: string): void {
    if (c.closed) return;
    c.closed = true;
    c.closeReason ??= reason;
    c.queue.length = 0;
    c.queueBytes = 0;
    this.#conns.delete(c);
    c.session.close(); // ends a publish (-> #unpublished)
  }

  #tick(): void {
    const now = Date.now();
    for (const c of this.#conns) {
      if (c.endingAt !== 0) {
        if (now - c.endingAt >= END_GRACE_MS) this.#terminate(c, 'did not close after the session ended');
      } else if (c.lingerUntil !== 0 && now >= c.lingerUntil) this.#end(c);
      else c.session.tick(now);
    }
    // Bad clients are reported at most once per tick (STYLE 5), not once per connection.
    if (this.#errorsThisTick > 0) {
      log.warn(`rtmp: ${this.#errorsThisTick} connection(s) closed for bad input or timeouts, last: ${this.#lastError}`);
      this.#errorsThisTick = 0;
    }
  }
}

/**
 * A video tag carrying a key picture: frame type 1 (key) or 4 (generated key) and a coded
 * frame, not a sequence header or end. FLV Annex E.4.3.1 / Enhanced RTMP ExVideoTagHeader.
 */
export function isKeyPicture(body: Uint8Array): boolean {
  if (body.length < 2) return false;
  const b0 = body[0]!;
  if (b0 & 0x80) {
    const frameType = (b0 >> 4) & 7, packetType = b0 & 0x0f;
    return (frameType === 1 || frameType === 4) && (packetType === 1 || packetType === 3); // CodedFrames, CodedFramesX
  }
  const frameType = b0 >> 4;
  return (frameType === 1 || frameType === 4) && body[1] === 1; // AVCPacketType 1: NALUs
}

/** AVC/legacy-HEVC packet type 0 or Enhanced RTMP SequenceStart: the decoder configuration record. */
function isVideoSequenceHeader(body: Uint8Array): boolean {
  if (body.length < 2) return false;
  const b0 = body[0]!;
  return b0 & 0x80 ? (b0 & 0x0f) === 0 : body[1] === 0;
}

/** FLV Annex E.4.2.1: SoundFormat 10 (AAC), AACPacketType 0 (AudioSpecificConfig). */
const isAacConfig = (body: Uint8Array): boolean => body.length >= 2 && body[0]! >> 4 === 10 && body[1] === 0;

/** An onStatus on the publishing message stream, sent when the engine could not start the stream. */
function statusMessage(level: string, code: string, description: string): Uint8Array {
  const body = encodeAmf0(['onStatus', 0, null, amfObject({ level, code, description })]);
  return writeMessage(OUT_CHUNK_SIZE, CSID_STATUS, MSG_COMMAND_AMF0, PUBLISH_MSG_STREAM, 0, body);
}

/** What a publish must satisfy, from [rtmp] and the stream's own config. */
export interface PublishPolicy {
  /** [rtmp] publish_key: "" = none. */
  publishKey: string;
  /** [rtmp] allow_any: publishes to unknown stream ids are accepted. */
  allowAny: boolean;
}

/**
 * The engine's authorize(): a configured stream must be an rtmp one; an unknown id needs
 * allow_any; the key is the stream's own publish_key if set (even ""), else the global one.
 */
export function decidePublish(
  streamId: string,
  query: URLSearchParams,
  policy: PublishPolicy,
  stream: { protocol: string; publish_key?: string | undefined } | undefined,
): RtmpAuthorizeResult {
  if (stream === undefined && !policy.allowAny) {
    return { ok: false, code: 'NetStream.Publish.BadName', description: `unknown stream ${streamId}` };
  }
  if (stream !== undefined && stream.protocol !== 'rtmp') {
    return { ok: false, code: 'NetStream.Publish.BadName', description: `stream ${streamId} is not an RTMP stream (${stream.protocol})` };
  }
  const key = stream?.publish_key ?? policy.publishKey;
  if (key !== '' && !sameKey(query.get('key') ?? '', key)) {
    return { ok: false, code: 'NetStream.Publish.Unauthorized', description: `wrong or missing key for stream ${streamId}` };
  }
  return { ok: true };
}

const enc = new TextEncoder();

/** Constant-time comparison, so the key cannot be guessed byte by byte from reply timing. */
function sameKey(given: string, want: string): boolean {
  const a = enc.encode(given), b = enc.encode(want);
  return constantTimeEqual(a, b);
}
