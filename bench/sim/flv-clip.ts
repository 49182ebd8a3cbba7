// Pre-chunks a clip once into RTMP messages carrying FLV tag bodies (Adobe FLV spec v10.1
// Annex E.4: AVC NALU tags in AVCC with composition time 0, or Enhanced RTMP hvc1 coded
// frames; AAC raw frames), so a publisher's per-frame work is patching timestamps, message
// stream id and the SEI send time in place and one write (RTMP spec 1.0 §5.3.1 chunks).
import { readFileSync } from 'node:fs';
import { findNal, type NalRange } from '../../media/annexb.ts';
import { splitAccessUnits } from '../../media/annexb-au.ts';
import { AAC_SAMPLES_PER_FRAME, audioSpecificConfig, newAdtsFrame, nextAdtsFrame } from '../../media/aac.ts';
import { avcC } from '../../media/h264-config.ts';
import { hvcC } from '../../media/h265-config.ts';
import { writeMessage } from '../../protocols/rtmp/chunk.ts';
import type { Clip } from './clips.ts';
import { seiNal } from './sei.ts';

/** Our outgoing chunk size, announced with Set Chunk Size: what FFmpeg and OBS use. */
export const PUB_CHUNK_SIZE = 4096;
/** Chunk stream ids for audio and video (librtmp's choice: 4 and 6). */
export const CSID_AUDIO = 4, CSID_VIDEO = 6;
const MSG_AUDIO = 8, MSG_VIDEO = 9;
/** Type 0 header with a one-byte basic header: 1 + 11 bytes; the timestamp is bytes 1-3, the stream id bytes 8-11 (LE). */
const HEADER_BYTES = 12;
const AUDIO_CLOCK = 48_000;

/** One video frame plus the audio frames due before the next one, as RTMP chunks. */
export interface FlvFrame {
  buf: Uint8Array;
  /** Offset of each message's type 0 chunk header in `buf`. */
  at: Int32Array;
  /** Each message's timestamp relative to the clip's start, in ms (fractional; rounded when written). */
  ms: Float64Array;
  /** Offset in `buf` of the SEI send-time field. */
  seiAt: number;
  keyframe: boolean;
  videoBytes: number;
}

export interface FlvClip {
  codec: 'h264' | 'h265';
  fps: number;
  frames: FlvFrame[];
  /** Sequence headers (video then audio), timestamp 0. */
  headers: FlvFrame;
  /** Clip length in ms: the timestamp step per loop. */
  loopMs: number;
}

/** Reads the clip and builds every frame's messages (allocates; done once per run). */
export function flvClip(clip: Clip): FlvClip {
  const video = new Uint8Array(readFileSync(clip.video));
  const audio = new Uint8Array(readFileSync(clip.audio));
  const aus = splitAccessUnits(video, clip.codec);
  const h264 = clip.codec === 'h264';
  const sei = seiNal(clip.codec);
  const typeOf = (n: Uint8Array) => (h264 ? n[0]! & 0x1f : (n[0]! >> 1) & 0x3f);
  const isVcl = (t: number) => (h264 ? t >= 1 && t <= 5 : t < 32);
  const params = new Map<number, Uint8Array>();
  const aFrames: Uint8Array[] = [];
  const af = newAdtsFrame();
  let asc: Uint8Array | null = null;
  for (let p = 0; nextAdtsFrame(audio, p, af, true); p = af.end) {
    asc ??= audioSpecificConfig(af.profile + 1, af.sampleRate, af.channelConfiguration);
    aFrames.push(af.payload.slice());
    if (af.end <= p) break;
  }
  const loopMs = (aus.length * 1000) / clip.fps;
  const aCount = Math.min(aFrames.length, Math.floor((loopMs * AUDIO_CLOCK) / 1000 / AAC_SAMPLES_PER_FRAME));
  const nal: NalRange = { start: 0, end: 0 };
  const frames: FlvFrame[] = [];
  let nextAudio = 0;
  for (let i = 0; i < aus.length; i++) {
    const r = aus[i]!;
    const au = video.subarray(r.offset, r.offset + r.length);
    const nalus: Uint8Array[] = [];
    for (let p = 0; (p = findNal(au, p, nal)) >= 0; ) {
      const n = au.subarray(nal.start, nal.end);
      if (n.length === 0) continue;
      const t = typeOf(n);
      if (h264 ? t === 9 : t === 35) continue; // access unit delimiters are not carried in FLV
      if ((h264 && (t === 7 || t === 8)) || (!h264 && t >= 32 && t <= 34)) if (!params.has(t)) params.set(t, n.slice());
      if (isVcl(t) && !nalus.includes(sei.nal)) nalus.push(sei.nal);
      nalus.push(n);
    }
    const head = h264
      ? [r.keyframe ? 0x17 : 0x27, 0x01, 0, 0, 0] // E.4.3.1: frame type + codec 7, AVC NALU, composition time 0
      : [0x80 | ((r.keyframe ? 1 : 2) << 4) | 3, 0x68, 0x76, 0x63, 0x31]; // Enhanced RTMP CodedFramesX (cts 0), 'hvc1'
    const body = new Uint8Array(head.length + nalus.reduce((a, n) => a + 4 + n.length, 0));
    body.set(head);
    let w = head.length, seiBody = -1;
    for (const n of nalus) {
      new DataView(body.buffer).setUint32(w, n.length);
      if (n === sei.nal) seiBody = w + 4 + sei.timeOffset;
      body.set(n, w + 4);
      w += 4 + n.length;
    }
    // The time field sits in the first chunk (after the parameter sets), so chunk headers never split it.
    if (seiBody < 0 || seiBody + 8 > PUB_CHUNK_SIZE) throw new Error(`frame ${i}: SEI stamp at body offset ${seiBody} not in the first chunk`);
    const msgs: { csid: number; type: number; ms: number; body: Uint8Array }[] = [{ csid: CSID_VIDEO, type: MSG_VIDEO, ms: (i * 1000) / clip.fps, body }];
    const frameEndMs = ((i + 1) * 1000) / clip.fps;
    while (nextAudio < aCount && (nextAudio * AAC_SAMPLES_PER_FRAME * 1000) / AUDIO_CLOCK < frameEndMs) {
      const a = aFrames[nextAudio]!;
      const ab = new Uint8Array(2 + a.length);
      ab[0] = 0xaf; // E.4.2.1: AAC, 44 kHz / 16-bit / stereo flags (fixed for AAC), raw frame
      ab[1] = 0x01;
      ab.set(a, 2);
      msgs.push({ csid: CSID_AUDIO, type: MSG_AUDIO, ms: (nextAudio * AAC_SAMPLES_PER_FRAME * 1000) / AUDIO_CLOCK, body: ab });
      nextAudio++;
    }
    const f = build(msgs, r.keyframe);
    f.seiAt = f.at[0]! + HEADER_BYTES + seiBody;
    f.videoBytes = body.length;
    frames.push(f);
  }
  const vcfg = h264
    ? [0x17, 0x00, 0, 0, 0, ...avcC([params.get(7)!], [params.get(8)!])]
    : [0x80 | (1 << 4) | 0, 0x68, 0x76, 0x63, 0x31, ...hvcC([params.get(32)!], [params.get(33)!], [params.get(34)!])]; // SequenceStart
  if (asc === null) throw new Error(`${clip.audio}: no ADTS frame`);
  const headers = build([
    { csid: CSID_VIDEO, type: MSG_VIDEO, ms: 0, body: Uint8Array.from(vcfg) },
    { csid: CSID_AUDIO, type: MSG_AUDIO, ms: 0, body: Uint8Array.from([0xaf, 0x00, ...asc]) },
  ], true);
  return { codec: clip.codec, fps: clip.fps, frames, headers, loopMs };
}

function build(msgs: { csid: number; type: number; ms: number; body: Uint8Array }[], keyframe: boolean): FlvFrame {
  const parts = msgs.map((m) => writeMessage(PUB_CHUNK_SIZE, m.csid, m.type, 1, 0, m.body));
  const buf = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  const at = new Int32Array(parts.length), ms = new Float64Array(parts.length);
  let o = 0;
  parts.forEach((p, i) => { at[i] = o; ms[i] = msgs[i]!.ms; buf.set(p, o); o += p.length; });
  return { buf, at, ms, seiAt: -1, keyframe, videoBytes: 0 };
}

/** Patches a frame's messages for one publisher: absolute timestamps (ms, < 2^24: runs under 4.6 h) and message stream id. */
export function patchFrame(f: FlvFrame, baseMs: number, streamId: number): void {
  const b = f.buf;
  for (let i = 0; i < f.at.length; i++) {
    const p = f.at[i]!;
    const t = Math.round(baseMs + f.ms[i]!) % 0xffffff;
    b[p + 1] = t >> 16; b[p + 2] = (t >> 8) & 0xff; b[p + 3] = t & 0xff;
    b[p + 8] = streamId & 0xff; b[p + 9] = (streamId >>> 8) & 0xff; b[p + 10] = (streamId >>> 16) & 0xff; b[p + 11] = streamId >>> 24;
  }
}
