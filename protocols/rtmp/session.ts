// Server-side RTMP session: a sans-I/O state machine from the handshake through connect,
// createStream and publish to the stream of FLV tag bodies, with refusals, acks and timeouts.
//
// Adobe RTMP specification 1.0 §5.4 (protocol control), §6.2 (user control), §7.2
// (commands). The command replies follow what FFmpeg's rtmpproto.c and librtmp (OBS)
// expect of a server; a publish refused with an onStatus of level "error" makes FFmpeg
// fail with "Server error: <description>".
import { type AmfObject, type AmfValue, Amf0Reader, amfObject, decodeAmf0, encodeAmf0 } from './amf0.ts';
import { ChunkReader, READ_ERROR, READ_NEED_MORE, type RtmpMessage, writeMessage } from './chunk.ts';
import { cryptoRandom, HS_DONE, HS_ERROR, HS_NEED_MORE, HS_REPLY, ServerHandshake } from './handshake.ts';

/** A client that has not finished C0-C2 within this is dropped (garbage, port scans, stalls). */
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/** From connection start to an accepted publish: encoders publish within a second. */
export const PUBLISH_TIMEOUT_MS = 15_000;
/** No bytes at all for this long: a publisher sends media many times a second. */
export const IDLE_TIMEOUT_MS = 10_000;
/** Window we announce (§5.4.4) and ack by until the peer announces its own (FFmpeg and FMS use 2.5 MB). */
export const WINDOW_ACK_SIZE = 2_500_000;
/** Chunk size we send with (§5.4.1); FFmpeg and nginx-rtmp use 4096 as well. */
export const OUT_CHUNK_SIZE = 4096;
/** createStream calls per connection: a publisher needs one; bounds the id space. */
export const MAX_STREAMS_PER_CONNECTION = 8;

// §5.4, §6.2, §7.1 message type ids
const MSG_SET_CHUNK_SIZE = 1, MSG_ABORT = 2, MSG_ACK = 3, MSG_USER_CONTROL = 4, MSG_WINDOW_ACK_SIZE = 5;
const MSG_SET_PEER_BANDWIDTH = 6, MSG_AUDIO = 8, MSG_VIDEO = 9, MSG_DATA_AMF3 = 15, MSG_COMMAND_AMF3 = 17;
const MSG_DATA_AMF0 = 18, MSG_COMMAND_AMF0 = 20, MSG_AGGREGATE = 22;
// §6.2 user control event types
const UC_STREAM_BEGIN = 0, UC_PING_REQUEST = 6, UC_PING_RESPONSE = 7;
// Chunk stream ids we send on: protocol control, NetConnection commands, NetStream status.
const CSID_CONTROL = 2, CSID_COMMAND = 3, CSID_STATUS = 5;

export type RtmpMediaKind = 'video' | 'audio' | 'data';
export type AuthorizeResult = { ok: true; streamId: string } | { ok: false; code: string; description: string };

export interface RtmpSessionOptions {
  /** Decides a publish: `app` ("live"), `streamName` ("pub1"), the merged query (key=...). */
  authorize(app: string, streamName: string, query: URLSearchParams): AuthorizeResult;
  /** Bytes for the peer, in order; each buffer is new and owned by the callee. */
  send(bytes: Uint8Array): void;
  /** A publish was accepted (after NetStream.Publish.Start was sent). */
  publish?(app: string, streamKey: string, streamId: string): void;
  /**
   * One FLV tag body (audio 8, video 9, or script data with @setDataFrame stripped).
   * `timestampMs` is the RTMP timestamp unwrapped past 32 bits. `body` is a view valid only
   * until the next receive(): copy it (into the ring) before returning.
   */
  media(kind: RtmpMediaKind, timestampMs: number, body: Uint8Array): void;
  /** The accepted publish ended (deleteStream, FCUnpublish, close, error). */
  unpublish?(): void;
  /** Bad input; fatal ones are followed by close(). Rate-limit logging in the adapter. */
  error?(fatal: boolean, message: string): void;
  /** The session wants the connection closed (after sending any final bytes). */
  close(): void;
  /** Clock at construction (the connection start), ms. */
  nowMs?: number;
  /** S1 random filler; tests inject a deterministic one. */
  fillRandom?: (b: Uint8Array) => void;
  /** Overrides for the timeout constants (tests). */
  handshakeTimeoutMs?: number;
  publishTimeoutMs?: number;
  idleTimeoutMs?: number;
}

const enum State { Handshake, AwaitConnect, Connected, Publishing, Closed }

/** Counters for metrics and rate-limited logs. */
export interface RtmpSessionStats {
  bytesIn: number;
  messages: number;
  mediaMessages: number;
  /** Media or data before publish, unknown message types, unusable commands. */
  dropped: number;
  acksSent: number;
}

export class RtmpServerSession {
  private state = State.Handshake;
  private readonly hs: ServerHandshake;
  private readonly reader = new ChunkReader();
  private readonly startMs: number;
  private lastRecvMs: number;
  private peerWindow = 0;
  private lastAckAt = 0;
  private nextStreamId = 1;
  private tcUrlQuery = '';
  private readonly unwrapPrev = [0, 0, 0];
  private readonly unwrapExt = [0, 0, 0];
  private readonly unwrapSeen = [false, false, false];
  readonly stats: RtmpSessionStats = { bytesIn: 0, messages: 0, mediaMessages: 0, dropped: 0, acksSent: 0 };
  app = '';
  tcUrl = '';
  streamKey = '';
  streamId = '';

  constructor(private readonly o: RtmpSessionOptions) {
    this.startMs = o.nowMs ?? 0;
    this.lastRecvMs = this.startMs;
    this.hs = new ServerHandshake(0, o.fillRandom ?? cryptoRandom);
  }

  get closed(): boolean {
    return this.state === State.Closed;
  }

  /** Bytes held by chunk reassembly buffers (bounded by MAX_ASSEMBLY_BYTES). */
  get bufferedBytes(): number {
    return this.reader.assemblyBytes;
  }

  get publishing(): boolean {
    return this.state === State.Publishing;
  }

  /** Bytes from the socket. Views handed to media() die when this returns. */
  receive(bytes: Uint8Array, nowMs: number): void {
    if (this.state === State.Closed) return;
    this.lastRecvMs = nowMs;
    this.stats.bytesIn += bytes.length;
    let input = bytes;
    if (this.state === State.Handshake) {
      let p = 0;
      for (;;) {
        const step = this.hs.push(bytes, p);
        p = this.hs.consumed;
        if (step === HS_REPLY) this.o.send(this.hs.reply!);
        else if (step === HS_DONE) break;
        else if (step === HS_NEED_MORE) return;
        else if (step === HS_ERROR) return this.fatal(`handshake: ${this.hs.error}`);
      }
      this.state = State.AwaitConnect;
      input = p === 0 ? bytes : bytes.subarray(p);
    }
    const r = this.reader;
    r.push(input);
    while (!this.closed) {
      const step = r.next();
      if (step === READ_NEED_MORE) break;
      if (step === READ_ERROR) return this.fatal(`chunk stream: ${r.error}`);
      this.stats.messages++;
      this.onMessage(r.message);
    }
    this.maybeAck();
  }

  /** Timers: handshake, publish and idle timeouts close the session. */
  tick(nowMs: number): void {
    if (this.state === State.Closed) return;
    const hsMs = this.o.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    const pubMs = this.o.publishTimeoutMs ?? PUBLISH_TIMEOUT_MS;
    const idleMs = this.o.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    if (this.state === State.Handshake && nowMs - this.startMs >= hsMs) this.fatal(`handshake not complete after ${nowMs - this.startMs} ms`);
    else if (this.state !== State.Publishing && nowMs - this.startMs >= pubMs && this.streamKey === '') this.fatal(`no publish after ${nowMs - this.startMs} ms`);
    else if (nowMs - this.lastRecvMs >= idleMs) this.fatal(`nothing received for ${nowMs - this.lastRecvMs} ms`);
  }

  /** The connection is gone (closed by the adapter): ends a publish without calling close(). Idempotent. */
  close(): void {
    if (this.state === State.Closed) return;
    const wasPublishing = this.state === State.Publishing;
    this.state = State.Closed;
    if (wasPublishing) this.o.unpublish?.();
  }

  private fatal(message: string): void {
    if (this.state === State.Closed) return;
    this.o.error?.(true, message);
    this.close();
    this.o.close();
  }

  private onMessage(m: RtmpMessage): void {
    const b = m.payload;
    switch (m.typeId) {
      case MSG_AUDIO: return this.onMedia('audio', m.timestamp, b);
      case MSG_VIDEO: return this.onMedia('video', m.timestamp, b);
      case MSG_SET_CHUNK_SIZE:
        if (b.length < 4 || !this.reader.setChunkSize(u32(b, 0) & 0x7fffffff)) return this.fatal(`bad Set Chunk Size (${b.length} bytes)`);
        return;
      case MSG_ABORT:
        if (b.length >= 4) this.reader.abort(u32(b, 0));
        return;
      case MSG_WINDOW_ACK_SIZE:
        if (b.length >= 4) this.peerWindow = u32(b, 0);
        return;
      case MSG_USER_CONTROL: return this.onUserControl(b);
      case MSG_ACK: case MSG_SET_PEER_BANDWIDTH: return;
      case MSG_COMMAND_AMF0: return this.onCommand(b, m.streamId);
      case MSG_COMMAND_AMF3: return this.onCommand(b.subarray(1), m.streamId); // AMF3 command: format byte 0, then AMF0
      case MSG_DATA_AMF0: return this.onData(m.timestamp, b);
      case MSG_DATA_AMF3: return this.onData(m.timestamp, b.subarray(1));
      case MSG_AGGREGATE: return this.onAggregate(m.timestamp, b);
      default:
        this.stats.dropped++;
    }
  }

  private onMedia(kind: RtmpMediaKind, ts: number, body: Uint8Array): void {
    if (this.state !== State.Publishing) {
      this.stats.dropped++;
      return;
    }
    if (body.length === 0) return; // FFmpeg and OBS never send these; some cameras send empty keep-alive tags
    this.stats.mediaMessages++;
    this.o.media(kind, this.unwrap(kind === 'video' ? 0 : kind === 'audio' ? 1 : 2, ts), body);
  }

  private unwrap(k: number, ts: number): number {
    if (!this.unwrapSeen[k]) {
      this.unwrapSeen[k] = true;
      this.unwrapExt[k] = ts;
    } else this.unwrapExt[k] = this.unwrapExt[k]! + ((ts - this.unwrapPrev[k]!) | 0);
    this.unwrapPrev[k] = ts;
    return this.unwrapExt[k]!;
  }

  // §6.2: ping requests are answered with the same timestamp; other events need nothing.
  private onUserControl(b: Uint8Array): void {
    if (b.length < 6) return;
    const event = (b[0]! << 8) | b[1]!;
    if (event === UC_PING_REQUEST) this.sendUserControl(UC_PING_RESPONSE, u32(b, 2));
  }

  /** Script data: "@setDataFrame" is stripped so the body is a plain FLV SCRIPTDATA tag. */
  private onData(ts: number, b: Uint8Array): void {
    if (this.state !== State.Publishing) {
      this.stats.dropped++;
      return;
    }
    try {
      const r = new Amf0Reader(b);
      if (r.value() === '@setDataFrame') b = b.subarray(r.pos);
    } catch {
      this.o.error?.(false, 'data message without a name');
      this.stats.dropped++;
      return;
    }
    this.onMedia('data', ts, b);
  }

  // §7.1.6 aggregate: back-to-back FLV tags (type u8, size u24, ts u24+u8, stream u24, body, back-pointer u32).
  private onAggregate(ts: number, b: Uint8Array): void {
    let first = -1;
    for (let p = 0; p + 11 <= b.length; ) {
      const type = b[p]!;
      const size = (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!;
      const t = (((b[p + 7]! << 24) | (b[p + 4]! << 16) | (b[p + 5]! << 8) | b[p + 6]!) >>> 0);
      if (p + 11 + size > b.length) break;
      if (first < 0) first = t;
      const body = b.subarray(p + 11, p + 11 + size);
      const at = (ts + (t - first)) >>> 0;
      if (type === MSG_VIDEO) this.onMedia('video', at, body);
      else if (type === MSG_AUDIO) this.onMedia('audio', at, body);
      else if (type === MSG_DATA_AMF0) this.onData(at, body);
      p += 11 + size + 4;
    }
  }

  private onCommand(b: Uint8Array, msgStreamId: number): void {
    let v: AmfValue[];
    try {
      v = decodeAmf0(b);
    } catch (e) {
      return this.fatal(`command: ${(e as Error).message}`);
    }
    const name = v[0];
    const txn = typeof v[1] === 'number' ? v[1] : 0;
    if (typeof name !== 'string') return this.fatal('command without a name');
    switch (name) {
      case 'connect': return this.onConnect(txn, v[2]);
      case 'releaseStream': case 'FCPublish':
        if (this.state !== State.Connected && this.state !== State.Publishing) return this.outOfOrder(name);
        return this.result(txn, null, undefined);
      case 'createStream': return this.onCreateStream(txn);
      case 'publish': return this.onPublish(v[3], msgStreamId);
      case 'FCUnpublish': case 'deleteStream': case 'closeStream':
        if (this.state === State.Publishing) {
          this.state = State.Connected;
          this.o.unpublish?.();
        }
        return;
      case 'play': case 'play2':
        this.status(msgStreamId, 'error', 'NetStream.Play.Failed', 'this server only accepts publishing');
        return this.fatal('client tried to play');
      default:
        this.stats.dropped++; // _checkbw, getStreamLength, ...: nothing to answer
    }
  }

  private outOfOrder(name: string): void {
    this.fatal(`${name} before connect`);
  }

  // §7.2.1.1 connect -> Window Ack Size, Set Peer Bandwidth, Set Chunk Size, _result.
  private onConnect(txn: number, cmd: AmfValue): void {
    if (this.state !== State.AwaitConnect) return this.fatal('second connect');
    const obj = (cmd && typeof cmd === 'object' && !Array.isArray(cmd) && !(cmd instanceof Date) ? cmd : amfObject()) as AmfObject;
    const app = typeof obj.app === 'string' ? obj.app : '';
    this.tcUrl = typeof obj.tcUrl === 'string' ? obj.tcUrl : '';
    // Some clients put the key in the URL's app part ("live?key=...") and so in tcUrl too.
    const q = app.indexOf('?');
    this.app = (q >= 0 ? app.slice(0, q) : app).replace(/\/+$/, '');
    const tq = this.tcUrl.indexOf('?');
    this.tcUrlQuery = (tq >= 0 ? this.tcUrl.slice(tq + 1) : '') + (q >= 0 ? '&' + app.slice(q + 1) : '');
    this.state = State.Connected;
    this.sendControl(MSG_WINDOW_ACK_SIZE, u32be(WINDOW_ACK_SIZE));
    const bw = new Uint8Array(5);
    bw.set(u32be(WINDOW_ACK_SIZE));
    bw[4] = 2; // limit type dynamic
    this.sendControl(MSG_SET_PEER_BANDWIDTH, bw);
    this.sendControl(MSG_SET_CHUNK_SIZE, u32be(OUT_CHUNK_SIZE));
    this.outChunkSize = OUT_CHUNK_SIZE;
    const enc = typeof obj.objectEncoding === 'number' ? obj.objectEncoding : 0;
    this.result(txn, amfObject({ fmsVer: 'FMS/3,0,1,123', capabilities: 31 }),
      amfObject({ level: 'status', code: 'NetConnection.Connect.Success', description: 'Connection succeeded.', objectEncoding: enc }));
  }

  private onCreateStream(txn: number): void {
    if (this.state !== State.Connected && this.state !== State.Publishing) return this.outOfOrder('createStream');
    if (this.nextStreamId > MAX_STREAMS_PER_CONNECTION) return this.fatal(`more than ${MAX_STREAMS_PER_CONNECTION} createStream calls`);
    this.result(txn, null, this.nextStreamId++);
  }

  // §7.2.2.6 publish: authorize, then StreamBegin + onStatus Publish.Start, or an error status and close.
  private onPublish(nameValue: AmfValue, msgStreamId: number): void {
    if (this.state === State.Publishing) return this.refuse(msgStreamId, 'NetStream.Publish.BadName', 'already publishing on this connection');
    if (this.state !== State.Connected) return this.outOfOrder('publish');
    const full = typeof nameValue === 'string' ? nameValue : '';
    const q = full.indexOf('?');
    const name = q >= 0 ? full.slice(0, q) : full;
    const query = new URLSearchParams(this.tcUrlQuery);
    if (q >= 0) for (const [k, val] of new URLSearchParams(full.slice(q + 1))) query.set(k, val);
    if (name === '') return this.refuse(msgStreamId, 'NetStream.Publish.BadName', 'empty stream name');
    const verdict = this.o.authorize(this.app, name, query);
    if (!verdict.ok) return this.refuse(msgStreamId, verdict.code, verdict.description);
    this.streamKey = name;
    this.streamId = verdict.streamId;
    this.unwrapSeen.fill(false);
    this.sendUserControl(UC_STREAM_BEGIN, msgStreamId);
    this.status(msgStreamId, 'status', 'NetStream.Publish.Start', `${name} is now published.`);
    this.state = State.Publishing;
    this.o.publish?.(this.app, name, verdict.streamId);
  }

  private refuse(msgStreamId: number, code: string, description: string): void {
    this.status(msgStreamId, 'error', code, description);
    this.fatal(`publish refused: ${code}: ${description}`);
  }

  private outChunkSize = 128;

  private sendControl(type: number, payload: Uint8Array): void {
    this.o.send(writeMessage(this.outChunkSize, CSID_CONTROL, type, 0, 0, payload));
  }

  private sendUserControl(event: number, value: number): void {
    const b = new Uint8Array(6);
    b[1] = event;
    b.set(u32be(value), 2);
    this.sendControl(MSG_USER_CONTROL, b);
  }

  private result(txn: number, props: AmfValue, info: AmfValue): void {
    this.o.send(writeMessage(this.outChunkSize, CSID_COMMAND, MSG_COMMAND_AMF0, 0, 0, encodeAmf0(['_result', txn, props, info])));
  }

  private status(msgStreamId: number, level: string, code: string, description: string): void {
    const info = amfObject({ level, code, description });
    this.o.send(writeMessage(this.outChunkSize, CSID_STATUS, MSG_COMMAND_AMF0, msgStreamId, 0, encodeAmf0(['onStatus', 0, null, info])));
  }

  // §5.4.3: acknowledge once per window of received bytes (the peer's, else the one we announced).
  private maybeAck(): void {
    if (this.state === State.Closed || this.state === State.Handshake) return;
    const win = this.peerWindow > 0 ? this.peerWindow : WINDOW_ACK_SIZE;
    if (this.stats.bytesIn - this.lastAckAt < win) return;
    this.lastAckAt = this.stats.bytesIn;
    this.stats.acksSent++;
    this.sendControl(MSG_ACK, u32be(this.stats.bytesIn >>> 0));
  }
}

const u32 = (b: Uint8Array, p: number): number => ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;

function u32be(v: number): Uint8Array {
  const b = new Uint8Array(4);
  b[0] = v >>> 24;
  b[1] = (v >>> 16) & 0xff;
  b[2] = (v >>> 8) & 0xff;
  b[3] = v & 0xff;
  return b;
}
