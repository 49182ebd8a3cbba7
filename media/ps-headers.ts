// MPEG program stream header fields (ISO/IEC 13818-1 §2.5): stream types, 33-bit
// timestamps, the pack header's SCR and mux rate, and the program stream map. Pure readers
// over whole headers; the byte-stream state machine is media/ps.ts.
import { ByteReader } from './bits.ts';
import { type AudioCodec, ParseError, type VideoCodec } from './types.ts';

// Stream types (ISO/IEC 13818-1 Table 2-34; 0x90/0x91 are GB/T 28181-2016 Annex C).
export const STREAM_TYPE_AAC = 0x0f;
export const STREAM_TYPE_H264 = 0x1b;
export const STREAM_TYPE_H265 = 0x24;
export const STREAM_TYPE_G711A = 0x90;
export const STREAM_TYPE_G711U = 0x91;

/** Elementary streams of a PSM we remember (a GB stream has one video and one audio). */
export const MAX_PSM_STREAMS = 16;

export function videoCodecOf(streamType: number): VideoCodec | null {
  return streamType === STREAM_TYPE_H264 ? 'h264' : streamType === STREAM_TYPE_H265 ? 'h265' : null;
}

export function audioCodecOf(streamType: number): AudioCodec | null {
  return streamType === STREAM_TYPE_AAC ? 'aac' : streamType === STREAM_TYPE_G711A ? 'pcma' : streamType === STREAM_TYPE_G711U ? 'pcmu' : null;
}

/** A 33-bit PTS/DTS (or MPEG-1 SCR) in the 5-byte '00xx' + marker-bit layout (§2.4.3.7). */
export function readTimestamp(b: Uint8Array, at: number): number {
  const b0 = b[at]!, b2 = b[at + 2]!, b4 = b[at + 4]!;
  if ((b0 & 1) === 0 || (b2 & 1) === 0 || (b4 & 1) === 0) throw new ParseError('timestamp marker bits', at);
  const hi = (b0 >> 1) & 7;
  const lo = ((b[at + 1]! << 22) | ((b2 >> 1) << 15) | (b[at + 3]! << 7) | (b4 >> 1)) >>> 0;
  return hi * 2 ** 30 + lo;
}

/** Bytes of a pack header from its 5th byte: 14 (MPEG-2, plus stuffing) or 12 (MPEG-1); -1 if neither. */
export const packHeaderBytes = (b4: number): number => (b4 >> 6 === 1 ? 14 : b4 >> 4 === 2 ? 12 : -1);

/**
 * §2.5.3.3 pack_header (MPEG-2) or ISO/IEC 11172-1 §2.4.3.2 pack (MPEG-1), start code at 0:
 *   '01' SCR[32..30] 1 SCR[29..15] 1 SCR[14..0] 1 SCR_ext(9) 1 | program_mux_rate(22) 1 1 | rsvd(5) stuffing(3)
 *   '0010' SCR[32..30] 1 SCR[29..15] 1 SCR[14..0] 1 | 1 mux_rate(22) 1
 */
export function readPackHeader(h: Uint8Array, out: { scr: number; muxRate: number }): void {
  const b4 = h[4]!;
  if (b4 >> 6 === 1) {
    if ((b4 & 4) === 0 || (h[6]! & 4) === 0 || (h[8]! & 4) === 0 || (h[9]! & 1) === 0 || (h[12]! & 3) !== 3) {
      throw new ParseError('pack header marker bits', 4);
    }
    out.scr = ((b4 >> 3) & 7) * 2 ** 30 + (((b4 & 3) << 28) | (h[5]! << 20) | ((h[6]! >> 3) << 15) | ((h[6]! & 3) << 13) | (h[7]! << 5) | (h[8]! >> 3));
    out.muxRate = ((h[10]! << 14) | (h[11]! << 6) | (h[12]! >> 2)) * 50; // units of 50 bytes/s
  } else {
    out.scr = readTimestamp(h, 4);
    out.muxRate = (((h[9]! & 0x7f) << 15) | (h[10]! << 7) | (h[11]! >> 1)) * 50;
  }
}

/**
 * §2.5.4.1 program_stream_map (the whole packet, start code at 0): fills `types`
 * (stream_type per elementary_stream_id, 0 = not listed) and returns the entries listed.
 *   00 00 01 BC | length(16) | current_next(1) rsvd(2) version(5) | rsvd(7) 1 |
 *   program_stream_info_length(16) descriptors | elementary_stream_map_length(16) |
 *   { stream_type(8) elementary_stream_id(8) elementary_stream_info_length(16) descriptors }* | CRC_32
 * The CRC is not checked: devices get it wrong, and a wrong map shows up as undecodable media.
 */
export function readPsm(b: Uint8Array, types: Uint8Array): number {
  const r = new ByteReader(b, 6);
  r.u8('current_next_indicator, version');
  r.u8('marker');
  r.skip(r.u16('program_stream_info_length'), 'program stream descriptors');
  const mapLen = r.u16('elementary_stream_map_length');
  if (mapLen + 4 > r.remaining) throw new ParseError(`elementary_stream_map_length ${mapLen} > ${r.remaining - 4}`, r.pos);
  const end = r.pos + mapLen;
  types.fill(0);
  let listed = 0;
  while (r.pos < end) {
    const type = r.u8('stream_type');
    const sid = r.u8('elementary_stream_id');
    r.skip(r.u16('elementary_stream_info_length'), 'elementary stream descriptors');
    if (r.pos > end) throw new ParseError('elementary stream entry past the map', r.pos);
    if (++listed <= MAX_PSM_STREAMS) types[sid] = type;
  }
  return listed;
}

/** Timestamps of one PES header (raw 33-bit values, NaN when absent) and its length. */
export interface PesHeader {
  pts: number;
  dts: number;
  /** Bytes from the start code to the payload. */
  headerBytes: number;
}

/**
 * §2.4.3.6 PES_packet header (MPEG-2), all 9 + header_data_length bytes in `h`:
 *   00 00 01 stream_id | length(16) | '10' scrambling(2) priority alignment copyright original |
 *   PTS_DTS_flags(2) ESCR ES_rate DSM_trick additional_copy CRC extension | header_data_length | PTS [DTS] ...
 */
export function readPesHeader(h: Uint8Array, out: PesHeader): void {
  const flags = h[7]! >> 6;
  out.headerBytes = 9 + h[8]!;
  out.pts = Number.NaN;
  out.dts = Number.NaN;
  if (flags === 2 || flags === 3) {
    if (h[8]! < (flags === 3 ? 10 : 5)) throw new ParseError('PES header too short for PTS/DTS', 8);
    out.pts = readTimestamp(h, 9);
    out.dts = flags === 3 ? readTimestamp(h, 14) : out.pts;
  } else if (flags === 1) {
    throw new ParseError('PTS_DTS_flags 01 is forbidden', 7);
  }
}

/** ISO/IEC 11172-1 §2.4.3.3 packet header (MPEG-1): stuffing, STD buffer, then PTS / PTS+DTS / 0x0F. */
export function readMpeg1PesHeader(h: Uint8Array, end: number, out: PesHeader): void {
  let p = 6;
  while (p < end && h[p] === 0xff && p < 6 + 16) p++;
  if (p < end && h[p]! >> 6 === 1) p += 2; // STD_buffer_scale, STD_buffer_size
  if (p >= end) throw new ParseError('MPEG-1 packet header cut', p);
  out.pts = Number.NaN;
  out.dts = Number.NaN;
  const top = h[p]! >> 4;
  if (top === 2 && p + 5 <= end) {
    out.pts = out.dts = readTimestamp(h, p);
    p += 5;
  } else if (top === 3 && p + 10 <= end) {
    out.pts = readTimestamp(h, p);
    out.dts = readTimestamp(h, p + 5);
    p += 10;
  } else if (h[p] === 0x0f) p += 1;
  else throw new ParseError('MPEG-1 packet header', p);
  out.headerBytes = p;
}
