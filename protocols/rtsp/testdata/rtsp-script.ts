// Test helpers for the RTSP client: a scripted camera that reads the client's requests and answers
// with hand-written responses, and SDP bodies modelled on real cameras.
import { RtspClient, type RtspClientOptions, type RtspEvent } from '../client.ts';
import { getHeader, RtspReader, type RtspMessage } from '../message.ts';

const enc = new TextEncoder();

/** An RTSP response as a camera would write it. */
export function response(status: number, cseq: number | string, headers: [string, string][] = [], body = '', reason = REASONS[status] ?? 'Status'): Uint8Array {
  let s = `RTSP/1.0 ${status} ${reason}\r\nCSeq: ${cseq}\r\n`;
  for (const [k, v] of headers) s += `${k}: ${v}\r\n`;
  const b = enc.encode(body);
  if (b.length > 0) s += `Content-Length: ${b.length}\r\n`;
  s += '\r\n';
  const h = enc.encode(s);
  const out = new Uint8Array(h.length + b.length);
  out.set(h);
  out.set(b, h.length);
  return out;
}

const REASONS: Record<number, string> = {
  200: 'OK', 301: 'Moved Permanently', 302: 'Moved Temporarily', 401: 'Unauthorized', 404: 'Not Found',
  454: 'Session Not Found', 461: 'Unsupported Transport', 501: 'Not Implemented',
};

/** `$ channel len data` */
export function frame(channel: number, data: number[] | Uint8Array): Uint8Array {
  const d = data instanceof Uint8Array ? data : new Uint8Array(data);
  const out = new Uint8Array(4 + d.length);
  out.set([0x24, channel, d.length >> 8, d.length & 0xff]);
  out.set(d, 4);
  return out;
}

export const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

export interface Packet {
  track: number;
  rtcp: boolean;
  data: Uint8Array;
}

/** A client wired to a fake camera: requests parsed, events and interleaved packets collected. */
export class ScriptedCamera {
  readonly requests: RtspMessage[] = [];
  readonly events: RtspEvent[] = [];
  readonly packets: Packet[] = [];
  /** Every byte the camera "sent", in order (the fuzz tests replay and mutate it). */
  readonly transcript: Uint8Array[] = [];
  readonly client: RtspClient;
  now = 1_000;
  private reader = new RtspReader({ onMessage: (m) => this.requests.push(m), onInterleaved: () => {} });

  constructor(opts: Partial<RtspClientOptions> = {}) {
    this.client = new RtspClient({
      url: 'rtsp://cam.local/live',
      transport: 'tcp',
      ...opts,
      onInterleaved: (track, rtcp, data) => this.packets.push({ track, rtcp, data: data.slice() }),
    });
  }

  /** Moves the client's output: requests to the camera's reader, events to `events`. */
  pump(): void {
    for (const e of this.client.drain()) {
      if (e.kind === 'send') this.reader.push(e.bytes);
      else this.events.push(e);
    }
  }

  start(): this {
    this.client.start(this.now);
    this.pump();
    return this;
  }

  /** The latest request the client sent. */
  get last(): RtspMessage {
    const r = this.requests.at(-1);
    if (r === undefined) throw new Error('no request yet');
    return r;
  }

  header(name: string, m: RtspMessage = this.last): string | undefined {
    return getHeader(m, name);
  }

  /** Feeds raw bytes from the camera. */
  send(bytes: Uint8Array): this {
    this.transcript.push(bytes);
    this.client.receive(bytes, this.now);
    this.pump();
    return this;
  }

  /** Answers the latest request. */
  reply(status: number, headers: [string, string][] = [], body = ''): this {
    return this.send(response(status, this.header('cseq') ?? '0', headers, body));
  }

  tick(ms: number): this {
    this.now = ms;
    this.client.tick(ms);
    this.pump();
    return this;
  }

  ofKind<K extends RtspEvent['kind']>(kind: K): Extract<RtspEvent, { kind: K }>[] {
    return this.events.filter((e): e is Extract<RtspEvent, { kind: K }> => e.kind === kind);
  }
}

/** gst-rtsp-server's DESCRIBE body for H.264 + AAC (captured from test/peers/rtsp-camera.py). */
export const SDP_H264_AAC = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=Session streamed with GStreamer', 'i=rtsp-server', 't=0 0',
  'a=tool:GStreamer', 'a=type:broadcast', 'a=control:*', 'a=range:npt=now-',
  'm=video 0 RTP/AVP 96', 'c=IN IP4 0.0.0.0', 'a=rtpmap:96 H264/90000',
  'a=fmtp:96 packetization-mode=1;profile-level-id=42c00d;sprop-parameter-sets=Z0LADZZWCg/QgAAAAwCAAAAeR4oVUA==,aMuMsg==',
  'a=control:stream=0',
  'm=audio 0 RTP/AVP 97', 'c=IN IP4 0.0.0.0', 'a=rtpmap:97 MPEG4-GENERIC/16000/1',
  'a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1408;sizelength=13;indexlength=3;indexdeltalength=3',
  'a=control:stream=1', '',
].join('\r\n');

/** A typical camera's body: relative trackID controls, an ONVIF metadata track, no session control. */
export const SDP_CAMERA = [
  'v=0', 'o=- 1 1 IN IP4 192.168.1.64', 's=Media Presentation', 't=0 0',
  'm=video 0 RTP/AVP 96', 'a=rtpmap:96 H265/90000', 'a=control:trackID=1',
  'm=audio 0 RTP/AVP 8', 'a=rtpmap:8 PCMA/8000', 'a=control:trackID=2',
  'm=application 0 RTP/AVP 107', 'a=rtpmap:107 vnd.onvif.metadata/90000', 'a=control:trackID=3', '',
].join('\r\n');

/**
 * Runs OPTIONS, DESCRIBE, SETUP per track and PLAY with plain answers (no auth).
 * Returns the camera in state 'playing'.
 */
export function playToEnd(cam: ScriptedCamera, o: { sdp?: string; timeout?: string; base?: string; publicMethods?: string } = {}): ScriptedCamera {
  cam.reply(200, [['Public', o.publicMethods ?? 'OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER']]);
  cam.reply(200, [['Content-Type', 'application/sdp'], ['Content-Base', o.base ?? 'rtsp://cam.local/live/']], o.sdp ?? SDP_H264_AAC);
  for (let i = 0; cam.last.method === 'SETUP'; i++) {
    const t = cam.header('transport')!;
    const answer = t.includes('TCP') ? `${t};ssrc=0000ABC${i}` : `${t};server_port=${6000 + 2 * i}-${6001 + 2 * i};ssrc=1234567${i}`;
    cam.reply(200, [['Session', `S3SS10N${o.timeout === undefined ? '' : `;timeout=${o.timeout}`}`], ['Transport', answer]]);
  }
  cam.reply(200, [['Session', 'S3SS10N'], ['RTP-Info', 'url=rtsp://cam.local/live/stream=0;seq=100;rtptime=9000,url=rtsp://cam.local/live/stream=1;seq=7;rtptime=16000']]);
  return cam;
}
