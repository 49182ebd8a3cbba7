// MPEG-2 program stream muxer the way GB28181 devices write it (GB/T 28181-2016 Annex C):
// a pack header per picture, a system header and a program stream map before each
// keyframe, and the picture in PES packets of at most 65535 bytes, the first with PTS/DTS.
// For the device simulator and tests (allocates its output buffer once, grows it as needed).
import { STREAM_TYPE_G711A, STREAM_TYPE_H264, STREAM_TYPE_H265 } from './ps.ts';
import type { VideoCodec } from './types.ts';

export const PS_VIDEO_STREAM_ID = 0xe0;
export const PS_AUDIO_STREAM_ID = 0xc0;
/** PES_packet_length is a u16: header flags (3) + PTS/DTS (10) + payload fit in 65535. */
const MAX_PES_PAYLOAD = 0xffff - 3 - 10;
/** Private data as a device might add it (bytes that look like nothing in particular). */
const PRIVATE_DATA = new Uint8Array([0x0f, 0x80, 0x10, 0x00, 0x00, 0x01, 0x65, 0x00]);
/** program_mux_rate in units of 50 bytes/s: 20 Mbit/s, far above a camera's rate. */
const MUX_RATE = 50_000;

// ISO/IEC 13818-1 Annex A CRC-32 (poly 0x04C11DB7, MSB first, no reflection, init all ones).
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x8000_0000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32Mpeg(b: Uint8Array): number {
  let crc = 0xffff_ffff;
  for (let i = 0; i < b.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ b[i]!) & 0xff]!) >>> 0;
  return crc >>> 0;
}

/** 5-byte PTS/DTS field (§2.4.3.7) with the 4-bit prefix `tag`. */
function writeTimestamp(b: Uint8Array, at: number, tag: number, ts: number): void {
  const hi = Math.floor(ts / 2 ** 30) & 7;
  const lo = ts % 2 ** 30;
  b[at] = (tag << 4) | (hi << 1) | 1;
  b[at + 1] = (lo >>> 22) & 0xff;
  b[at + 2] = (((lo >>> 15) & 0x7f) << 1) | 1;
  b[at + 3] = (lo >>> 7) & 0xff;
  b[at + 4] = ((lo & 0x7f) << 1) | 1;
}

export interface PsMuxOptions {
  codec: VideoCodec;
  /** Lists a G.711A audio stream (0xC0) in the PSM, as most GB cameras do. */
  audio?: boolean;
  /** Repeat the PTS/DTS on every PES of a split picture (some devices do; the demuxer must not split the picture). */
  stampEveryPes?: boolean;
  /** A private_stream_1 (0xBD) PES before each picture, as Hikvision devices add (ignored by readers). */
  privateData?: boolean;
}

export class PsMuxer {
  #codec: VideoCodec;
  #audio: boolean;
  #stampEvery: boolean;
  #private: boolean;
  #out = new Uint8Array(256 << 10);
  #len = 0;

  constructor(o: PsMuxOptions) {
    this.#codec = o.codec;
    this.#audio = o.audio ?? false;
    this.#stampEvery = o.stampEveryPes ?? false;
    this.#private = o.privateData ?? false;
  }

  /**
   * One picture (Annex-B bytes, start codes included) as program-stream bytes; `pts`/`dts`
   * in 90 kHz ticks (taken modulo 2^33). The result is a view valid until the next call.
   */
  video(au: Uint8Array, pts: number, dts: number, keyframe: boolean): Uint8Array {
    const pes = Math.max(1, Math.ceil(au.length / MAX_PES_PAYLOAD));
    this.#reserve(14 + (keyframe ? 18 + 32 : 0) + (this.#private ? 32 : 0) + au.length + pes * 19);
    this.#len = 0;
    pts = ((pts % 2 ** 33) + 2 ** 33) % 2 ** 33;
    dts = ((dts % 2 ** 33) + 2 ** 33) % 2 ** 33;
    this.#pack(dts);
    if (keyframe) {
      this.#systemHeader();
      this.#psm();
    }
    if (this.#private) this.#pes(0xbd, PRIVATE_DATA, -1, -1);
    for (let at = 0, first = true; first || at < au.length; first = false) {
      const n = Math.min(MAX_PES_PAYLOAD, au.length - at);
      const stamp = first || this.#stampEvery;
      this.#pes(PS_VIDEO_STREAM_ID, au.subarray(at, at + n), stamp ? pts : -1, stamp && dts !== pts ? dts : -1);
      at += n;
    }
    return this.#out.subarray(0, this.#len);
  }

  /** One G.711A frame as a pack + PES (the PSM must list audio: `audio: true`). */
  audio(frame: Uint8Array, pts: number): Uint8Array {
    this.#reserve(14 + 14 + frame.length);
    this.#len = 0;
    pts = ((pts % 2 ** 33) + 2 ** 33) % 2 ** 33;
    this.#pack(pts);
    this.#pes(PS_AUDIO_STREAM_ID, frame, pts, -1);
    return this.#out.subarray(0, this.#len);
  }

  #reserve(n: number): void {
    if (this.#out.length < n) this.#out = new Uint8Array(n * 2);
  }

  /** §2.5.3.3 pack header, SCR = `scr` (base; extension 0), no stuffing. */
  #pack(scr: number): void {
    const b = this.#out;
    const p = this.#len;
    const hi = Math.floor(scr / 2 ** 30) & 7;
    const lo = scr % 2 ** 30;
    b.set([0, 0, 1, 0xba], p);
    b[p + 4] = 0x40 | (hi << 3) | 0x04 | ((lo >>> 28) & 3);
    b[p + 5] = (lo >>> 20) & 0xff;
    b[p + 6] = (((lo >>> 15) & 0x1f) << 3) | 0x04 | ((lo >>> 13) & 3);
    b[p + 7] = (lo >>> 5) & 0xff;
    b[p + 8] = ((lo & 0x1f) << 3) | 0x04; // SCR_ext[8..7] = 0
    b[p + 9] = 0x01; // SCR_ext[6..0] = 0, marker
    b[p + 10] = (MUX_RATE >>> 14) & 0xff;
    b[p + 11] = (MUX_RATE >>> 6) & 0xff;
    b[p + 12] = ((MUX_RATE & 0x3f) << 2) | 3;
    b[p + 13] = 0xf8; // reserved, pack_stuffing_length 0
    this.#len += 14;
  }

  /** §2.5.3.5 system header: one video and (optionally) one audio stream. */
  #systemHeader(): void {
    const b = this.#out;
    const p = this.#len;
    const streams = this.#audio ? 2 : 1;
    const len = 6 + 3 * streams;
    b.set([0, 0, 1, 0xbb, len >> 8, len & 0xff], p);
    b[p + 6] = 0x80 | ((MUX_RATE >>> 15) & 0x7f); // marker, rate_bound[21..15]
    b[p + 7] = (MUX_RATE >>> 7) & 0xff;
    b[p + 8] = ((MUX_RATE & 0x7f) << 1) | 1;
    b[p + 9] = ((this.#audio ? 1 : 0) << 2) | 0; // audio_bound(6), fixed 0, CSPS 0
    b[p + 10] = 0xe1; // system_audio_lock, system_video_lock, marker, video_bound 1
    b[p + 11] = 0x7f; // packet_rate_restriction 0, reserved
    let q = p + 12;
    b.set([PS_VIDEO_STREAM_ID, 0xe0, 0x80], q); // '11' P-STD scale 1, size 128 x 1024 bytes
    q += 3;
    if (this.#audio) b.set([PS_AUDIO_STREAM_ID, 0xc0, 0x20], q); // scale 0, 32 x 128 bytes
    this.#len += 6 + len;
  }

  /** §2.5.4.1 program stream map with CRC. */
  #psm(): void {
    const b = this.#out;
    const p = this.#len;
    const entries = this.#audio ? 2 : 1;
    const mapLen = 4 * entries;
    const len = 6 + mapLen + 4; // flags(2) + info length(2) + map length(2) + map + CRC
    b.set([0, 0, 1, 0xbc, len >> 8, len & 0xff, 0x80 | 0x20 /* current_next, version 0 */, 0x01, 0, 0, mapLen >> 8, mapLen & 0xff], p);
    let q = p + 12;
    b.set([this.#codec === 'h264' ? STREAM_TYPE_H264 : STREAM_TYPE_H265, PS_VIDEO_STREAM_ID, 0, 0], q);
    q += 4;
    if (this.#audio) {
      b.set([STREAM_TYPE_G711A, PS_AUDIO_STREAM_ID, 0, 0], q);
      q += 4;
    }
    const crc = crc32Mpeg(b.subarray(p, q));
    b[q] = crc >>> 24;
    b[q + 1] = (crc >>> 16) & 0xff;
    b[q + 2] = (crc >>> 8) & 0xff;
    b[q + 3] = crc & 0xff;
    this.#len = q + 4;
  }

  /** §2.4.3.6 PES packet; pts/dts < 0 = absent. */
  #pes(sid: number, payload: Uint8Array, pts: number, dts: number): void {
    const b = this.#out;
    const p = this.#len;
    const hdrData = pts < 0 ? 0 : dts < 0 ? 5 : 10;
    const len = 3 + hdrData + payload.length;
    b.set([0, 0, 1, sid, len >> 8, len & 0xff, 0x80 | (pts >= 0 ? 0x04 : 0) /* data_alignment on the first */, pts < 0 ? 0 : dts < 0 ? 0x80 : 0xc0, hdrData], p);
    if (pts >= 0) writeTimestamp(b, p + 9, dts < 0 ? 2 : 3, pts);
    if (dts >= 0) writeTimestamp(b, p + 14, 1, dts);
    b.set(payload, p + 9 + hdrData);
    this.#len = p + 9 + hdrData + payload.length;
  }
}
