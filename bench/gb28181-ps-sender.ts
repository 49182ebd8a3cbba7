// The media half of the GB28181 device simulator: loops an Annex-B clip at real-time pace
// as MPEG-PS (media/ps-mux.ts, the way GB devices write it) over RTP to the platform's
// port: UDP datagrams, or RFC 4571 framing on a TCP connection the sender opens (the
// platform's port is passive).
import { pathToFileURL } from 'node:url';
import type { Socket, udp } from 'bun';
import { loadClip, type FileClip } from '../engine/file-source.ts';
import { findNal, type NalRange } from '../media/annexb.ts';
import { PsMuxer } from '../media/ps-mux.ts';
import { RTP_HEADER_BYTES, writeRtpHeader } from '../media/rtp.ts';
import { writeRfc4571Length } from '../media/rtp-framing.ts';
import { seiNal, wallUs, writeSeiTime } from './sim/sei.ts';

/** Whole RTP packet size limit: fits a 1500-byte MTU with IP/UDP headers and slack. */
export const MAX_RTP_PACKET = 1400;
/** Pacing timer; frames due are sent in a burst per tick. */
const TICK_MS = 10;
/** After a stall, frames sent at once at most; later ones are skipped (the clock moves on). */
const MAX_CATCH_UP_FRAMES = 25;
/** Unsent TCP bytes beyond which frames are skipped (a stalled platform must not grow us). */
const MAX_TCP_BACKLOG = 4 << 20;

export interface PsRtpSenderOptions {
  clipPath: string;
  codec: 'h264' | 'h265';
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
  ssrc: number;
  /** RTP payload type; 96 (dynamic, "PS/90000" in GB/T 28181 SDP) by default. */
  payloadType?: number;
  /** Frame rate when the clip does not signal one (makeClip clips do). */
  fps?: number;
  /** Also send G.711A audio (8 kHz mono, a quiet tone), one PES per video frame, as most GB cameras do. */
  audio?: boolean;
  /** Put the bench's SEI send-time NAL (bench/sim/sei.ts) before each picture's first slice, stamped as it is sent. */
  seiStamp?: boolean;
}

export interface PsRtpSender {
  stop(): Promise<void>;
  /** RTP packets and bytes (RTP headers included, framing excluded) sent so far. */
  packetsSent: number;
  bytesSent: number;
  /** Frames skipped because the sender fell behind (stall, TCP backlog). */
  framesSkipped: number;
  /** Pictures sent so far (the first one is a keyframe). */
  framesSent: number;
}

/** Clips by URL, shared by the senders of one process (read-only; a bench process runs 100+ senders of one clip). */
const clipCache = new Map<string, FileClip>();
/** Per clip URL: every access unit with the SEI inserted, in one buffer; the time field is patched in place before muxing. */
const stampedCache = new Map<string, { bytes: Uint8Array; offset: Int32Array; length: Int32Array; seiAt: Int32Array }>();

function stampedClip(url: string, clip: FileClip) {
  const hit = stampedCache.get(url);
  if (hit !== undefined) return hit;
  const sei = seiNal(clip.codec);
  const ins = new Uint8Array(4 + sei.nal.length);
  ins.set([0, 0, 0, 1]);
  ins.set(sei.nal, 4);
  const h264 = clip.codec === 'h264';
  const bytes = new Uint8Array(clip.aus.reduce((a, u) => a + u.length, 0) + clip.aus.length * ins.length);
  const n = clip.aus.length;
  const offset = new Int32Array(n), length = new Int32Array(n), seiAt = new Int32Array(n);
  const nal: NalRange = { start: 0, end: 0 };
  let w = 0;
  clip.aus.forEach((u, k) => {
    const au = clip.bytes.subarray(u.offset, u.offset + u.length);
    let at = au.length; // no slice found: the SEI goes last (never happens with a real clip)
    for (let p = 0; (p = findNal(au, p, nal)) >= 0; ) {
      const t = h264 ? au[nal.start]! & 0x1f : (au[nal.start]! >> 1) & 0x3f;
      if (h264 ? t >= 1 && t <= 5 : t < 32) { at = nal.start - 3; if (at > 0 && au[at - 1] === 0) at--; break; }
    }
    offset[k] = w;
    bytes.set(au.subarray(0, at), w);
    bytes.set(ins, w + at);
    seiAt[k] = w + at + 4 + sei.timeOffset;
    bytes.set(au.subarray(at), w + at + ins.length);
    length[k] = au.length + ins.length;
    w += length[k]!;
  });
  const r = { bytes, offset, length, seiAt };
  stampedCache.set(url, r);
  return r;
}

export async function startPsRtpSender(o: PsRtpSenderOptions): Promise<PsRtpSender> {
  const url = `${pathToFileURL(o.clipPath).href}?codec=${o.codec}${o.fps ? `&fps=${o.fps}` : ''}`;
  let clip = clipCache.get(url);
  if (clip === undefined) { clip = loadClip(url); clipCache.set(url, clip); }
  const stamped = o.seiStamp ? stampedClip(url, clip) : null;
  const pt = o.payloadType ?? 96;
  const ssrc = o.ssrc >>> 0;
  const mux = new PsMuxer({ codec: clip.codec, audio: o.audio ?? false });
  // A-law of a quiet 400 Hz tone: one frame's worth per video frame (8000 / fps samples).
  const audioFrame = new Uint8Array(Math.round(8000 / clip.fps));
  for (let i = 0; i < audioFrame.length; i++) audioFrame[i] = linearToAlaw(Math.round(2000 * Math.sin((2 * Math.PI * 400 * i) / 8000)));
  const ticksPerFrame = 90_000 / clip.fps;
  const frameMs = 1000 / clip.fps;
  const packet = new Uint8Array(2 + MAX_RTP_PACKET); // 2 bytes for the RFC 4571 length
  let seq = (Math.random() * 0x10000) | 0;
  const ts0 = (Math.random() * 0x1_0000_0000) >>> 0;

  let udpSock: udp.Socket<'uint8array'> | null = null;
  let tcp: Socket<undefined> | null = null;
  const backlog: Uint8Array[] = [];
  let backlogBytes = 0;
  const flush = () => {
    while (tcp !== null && backlog.length > 0) {
      const head = backlog[0]!;
      const n = tcp.write(head);
      backlogBytes -= n;
      if (n < head.length) {
        backlog[0] = head.subarray(n);
        return;
      }
      backlog.shift();
    }
  };
  if (o.transport === 'udp') {
    // The platform closing its port (BYE, DELETE) comes back as ICMP unreachable: ECONNREFUSED on a later
    // send or receive. A device keeps going until its BYE arrives, so both are ignored, never fatal.
    udpSock = await Bun.udpSocket({ hostname: '0.0.0.0', socket: { error() {} } });
  } else {
    tcp = await Bun.connect({ hostname: o.host, port: o.port, socket: { data() {}, drain: () => flush(), close() { tcp = null; } } });
  }

  const sender: PsRtpSender = { packetsSent: 0, bytesSent: 0, framesSkipped: 0, framesSent: 0, stop: async () => {} };
  const sendPacket = (len: number) => {
    sender.packetsSent++;
    sender.bytesSent += len;
    if (udpSock !== null) {
      try {
        udpSock.send(packet.subarray(2, 2 + len), o.port, o.host);
      } catch { /* ECONNREFUSED after the platform closed the port: see above */ }
      return;
    }
    writeRfc4571Length(packet, 0, len);
    const framed = packet.slice(0, 2 + len);
    if (backlog.length === 0 && tcp !== null) {
      const n = tcp.write(framed);
      if (n === framed.length) return;
      backlog.push(framed.subarray(n));
      backlogBytes += framed.length - n;
      return;
    }
    backlog.push(framed);
    backlogBytes += framed.length;
  };

  /** One picture: PS bytes cut into RTP payloads; the marker bit ends the picture. */
  const sendFrame = (i: number) => {
    const k = i % clip.aus.length;
    const au = clip.aus[k]!;
    const cts = new DataView(clip.parts[k]![0].buffer, clip.parts[k]![0].byteOffset, 4).getInt32(0, true);
    const dts = i * ticksPerFrame;
    let bytes: Uint8Array;
    if (stamped !== null) {
      writeSeiTime(stamped.bytes, stamped.seiAt[k]!, wallUs()); // shared buffer: muxed (copied) at once below
      bytes = stamped.bytes.subarray(stamped.offset[k]!, stamped.offset[k]! + stamped.length[k]!);
    } else bytes = clip.bytes.subarray(au.offset, au.offset + au.length);
    const ps = mux.video(bytes, Math.round(dts + cts), Math.round(dts), au.keyframe);
    sender.framesSent++;
    sendPs(ps, (ts0 + Math.round(dts + cts)) >>> 0);
    if (o.audio) sendPs(mux.audio(audioFrame, Math.round(dts)), (ts0 + Math.round(dts)) >>> 0);
  };

  /** PS bytes cut into RTP payloads; the marker bit ends the picture (or audio frame). */
  const sendPs = (ps: Uint8Array, rtpTs: number) => {
    const room = MAX_RTP_PACKET - RTP_HEADER_BYTES;
    for (let at = 0; at < ps.length; at += room) {
      const n = Math.min(room, ps.length - at);
      writeRtpHeader(packet, 2, at + n >= ps.length, pt, seq, rtpTs, ssrc);
      seq = (seq + 1) & 0xffff;
      packet.set(ps.subarray(at, at + n), 2 + RTP_HEADER_BYTES);
      sendPacket(RTP_HEADER_BYTES + n);
    }
  };

  const start = performance.now();
  let next = 0;
  let waitKey = false;
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - start) / frameMs) + 1;
    if (due - next > MAX_CATCH_UP_FRAMES) {
      // Skip ahead to the next keyframe of the loop so the picture stays decodable.
      let j = due - 1;
      while (!clip.aus[j % clip.aus.length]!.keyframe) j++;
      sender.framesSkipped += j - next;
      next = j;
    }
    for (; next < due; next++) {
      if (backlogBytes > MAX_TCP_BACKLOG) waitKey = true;
      if (waitKey && !clip.aus[next % clip.aus.length]!.keyframe) {
        sender.framesSkipped++; // resume at a keyframe: what follows a gap would not decode
        continue;
      }
      waitKey = false;
      sendFrame(next);
    }
    if (tcp !== null) flush();
  }, TICK_MS);

  sender.stop = async () => {
    clearInterval(timer);
    udpSock?.close();
    udpSock = null;
    const t = tcp;
    tcp = null;
    t?.end();
  };
  return sender;
}

/** ITU-T G.711 A-law encoding of one 16-bit sample (segment + 4-bit mantissa, even bits inverted). */
function linearToAlaw(sample: number): number {
  const sign = sample >= 0 ? 0x80 : 0;
  let v = Math.min(32767, Math.abs(sample)) >> 3; // 13-bit magnitude
  let seg = 0;
  while (v >= 32 && seg < 7) {
    v >>= 1;
    seg++;
  }
  const mantissa = seg === 0 ? v >> 1 : v & 0x0f;
  return ((sign | (seg << 4) | mantissa) ^ 0x55) & 0xff;
}
