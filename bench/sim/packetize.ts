// Pre-packetises a clip once into RTP over RTSP-interleaved frames (RFC 2326 §10.12), so the
// simulator's per-camera work is patching channel, sequence number, timestamp, SSRC and the
// SEI send time in place (RFC 3550 §5.1) and one write per frame.
import { readFileSync } from 'node:fs';
import { findNal, type NalRange } from '../../media/annexb.ts';
import { splitAccessUnits } from '../../media/annexb-au.ts';
import { audioSpecificConfig, newAdtsFrame, nextAdtsFrame, AAC_SAMPLES_PER_FRAME } from '../../media/aac.ts';
import type { Clip } from './clips.ts';
import { seiNal } from './sei.ts';

/** RTP payload bytes per packet: 1400 + 12 + IP/UDP headers fits a 1500-byte MTU. */
export const MAX_PAYLOAD = 1400;
export const PT_VIDEO = 96, PT_AUDIO = 97;
export const VIDEO_CLOCK = 90_000, AUDIO_CLOCK = 48_000;
const INTERLEAVED_HEADER = 4;

/** One video frame plus the audio frames due before the next one, as interleaved packets. */
export interface Frame {
  buf: Uint8Array;
  dv: DataView;
  /** Offset of each packet's '$' header in `buf`. */
  at: Int32Array;
  /** RTP payload+header length of each packet (the interleaved length field). */
  len: Int32Array;
  /** 0 video, 1 audio. */
  track: Uint8Array;
  /** RTP timestamp of each packet relative to the start of the clip, in its track's clock. */
  ts: Float64Array;
  /** Offset in `buf` of the SEI send-time field. */
  seiAt: number;
  keyframe: boolean;
  videoBytes: number;
}

export interface Packetized {
  codec: 'h264' | 'h265';
  fps: number;
  frames: Frame[];
  /** Clip length in each clock: the timestamp step per loop. */
  videoLoopTicks: number;
  audioLoopTicks: number;
  /** SDP fmtp values. */
  videoFmtp: string;
  audioConfigHex: string;
  width: number;
  height: number;
}

interface Pkt {
  track: number;
  ts: number;
  marker: boolean;
  pt: number;
  payload: Uint8Array[];
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/** Reads the clip and builds every frame's packets (allocates; done once per run). */
export function packetize(clip: Clip): Packetized {
  const video = new Uint8Array(readFileSync(clip.video));
  const audio = new Uint8Array(readFileSync(clip.audio));
  const aus = splitAccessUnits(video, clip.codec);
  const fps = clip.fps;
  const h264 = clip.codec === 'h264';
  const sei = seiNal(clip.codec);
  const isVcl = h264 ? (n: Uint8Array) => { const t = n[0]! & 0x1f; return t >= 1 && t <= 5; } : (n: Uint8Array) => ((n[0]! >> 1) & 0x3f) < 32;
  const params = new Map<number, Uint8Array>();
  // Audio frames (ADTS) and their times; those past the video's end are dropped so loops join.
  const aFrames: Uint8Array[] = [];
  const af = newAdtsFrame();
  let asc = '';
  for (let p = 0; nextAdtsFrame(audio, p, af, true); p = af.end) {
    if (asc === '') asc = Buffer.from(audioSpecificConfig(af.profile + 1, af.sampleRate, af.channelConfiguration)).toString('hex');
    aFrames.push(af.payload);
    if (af.end <= p) break;
  }
  const videoLoopTicks = (aus.length * VIDEO_CLOCK) / fps;
  const audioLoopTicks = (aus.length * AUDIO_CLOCK) / fps;
  const aCount = Math.min(aFrames.length, Math.floor(audioLoopTicks / AAC_SAMPLES_PER_FRAME));
  const frames: Frame[] = [];
  let nextAudio = 0;
  const nal: NalRange = { start: 0, end: 0 };
  for (let i = 0; i < aus.length; i++) {
    const r = aus[i]!;
    const au = video.subarray(r.offset, r.offset + r.length);
    const nalus: Uint8Array[] = [];
    let seiDone = false;
    for (let p = 0; (p = findNal(au, p, nal)) >= 0; ) {
      const n = au.subarray(nal.start, nal.end);
      if (n.length === 0) continue;
      if (!seiDone && isVcl(n)) { nalus.push(sei.nal); seiDone = true; }
      const type = h264 ? n[0]! & 0x1f : (n[0]! >> 1) & 0x3f;
      if ((h264 && (type === 7 || type === 8)) || (!h264 && type >= 32 && type <= 34)) if (!params.has(type)) params.set(type, n.slice());
      nalus.push(n);
    }
    const ts = (i * VIDEO_CLOCK) / fps;
    const pkts: Pkt[] = [];
    for (const n of nalus) packetizeNal(n, h264, ts, pkts);
    pkts[pkts.length - 1]!.marker = true;
    const frameEnd = ((i + 1) * AUDIO_CLOCK) / fps;
    while (nextAudio < aCount && nextAudio * AAC_SAMPLES_PER_FRAME < frameEnd) {
      const a = aFrames[nextAudio]!;
      // RFC 3640 §3.3.6 AAC-hbr: AU-headers-length 16 bits, one AU-header (13-bit size, 3-bit index).
      const hdr = Uint8Array.of(0x00, 0x10, (a.length >> 5) & 0xff, (a.length & 0x1f) << 3);
      pkts.push({ track: 1, ts: nextAudio * AAC_SAMPLES_PER_FRAME, marker: true, pt: PT_AUDIO, payload: [hdr, a] });
      nextAudio++;
    }
    frames.push(buildFrame(pkts, sei.nal, sei.timeOffset, r.keyframe));
  }
  const fmtp = h264
    ? `packetization-mode=1;profile-level-id=${Buffer.from(params.get(7)!.subarray(1, 4)).toString('hex')};sprop-parameter-sets=${b64(params.get(7)!)},${b64(params.get(8)!)}`
    : `sprop-vps=${b64(params.get(32)!)};sprop-sps=${b64(params.get(33)!)};sprop-pps=${b64(params.get(34)!)}`;
  return {
    codec: clip.codec, fps, frames, videoLoopTicks, audioLoopTicks, videoFmtp: fmtp, audioConfigHex: asc,
    width: clip.height === 720 ? 1280 : 1920, height: clip.height,
  };
}

/** RFC 6184 §5.6 single NAL / §5.8 FU-A; RFC 7798 §4.4.1 single NAL / §4.4.3 FU. */
function packetizeNal(n: Uint8Array, h264: boolean, ts: number, out: Pkt[]): void {
  if (n.length <= MAX_PAYLOAD) {
    out.push({ track: 0, ts, marker: false, pt: PT_VIDEO, payload: [n] });
    return;
  }
  const hb = h264 ? 1 : 2;
  const type = h264 ? n[0]! & 0x1f : (n[0]! >> 1) & 0x3f;
  const fuHdr = h264 ? [(n[0]! & 0xe0) | 28] : [(n[0]! & 0x81) | (49 << 1), n[1]!];
  const room = MAX_PAYLOAD - fuHdr.length - 1;
  for (let p = hb; p < n.length; p += room) {
    const end = Math.min(n.length, p + room);
    const fu = (p === hb ? 0x80 : 0) | (end === n.length ? 0x40 : 0) | type;
    out.push({ track: 0, ts, marker: false, pt: PT_VIDEO, payload: [Uint8Array.from([...fuHdr, fu]), n.subarray(p, end)] });
  }
}

function buildFrame(pkts: Pkt[], sei: Uint8Array, seiTimeOffset: number, keyframe: boolean): Frame {
  let total = 0;
  for (const p of pkts) total += INTERLEAVED_HEADER + 12 + p.payload.reduce((s, x) => s + x.length, 0);
  const buf = new Uint8Array(total);
  const dv = new DataView(buf.buffer);
  const at = new Int32Array(pkts.length), len = new Int32Array(pkts.length), ts = new Float64Array(pkts.length);
  const track = new Uint8Array(pkts.length);
  let o = 0, seiAt = -1, videoBytes = 0;
  pkts.forEach((p, i) => {
    const plen = 12 + p.payload.reduce((s, x) => s + x.length, 0);
    at[i] = o; len[i] = plen; ts[i] = p.ts; track[i] = p.track;
    buf[o] = 0x24; buf[o + 1] = p.track * 2; dv.setUint16(o + 2, plen);
    buf[o + 4] = 0x80; buf[o + 5] = (p.marker ? 0x80 : 0) | p.pt;
    let w = o + 16;
    for (const x of p.payload) {
      if (x === sei) seiAt = w + seiTimeOffset;
      buf.set(x, w);
      w += x.length;
    }
    if (p.track === 0) videoBytes += plen - 12;
    o = w;
  });
  return { buf, dv, at, len, track, ts, seiAt, keyframe, videoBytes };
}
