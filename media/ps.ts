// MPEG-2 program stream demuxer (ISO/IEC 13818-1 §2.5): pack headers, system header,
// program stream map and PES packets from a byte stream cut anywhere (RTP payloads of
// GB28181), into video access units and audio frames with unwrapped 90 kHz times.
//
// The stream is consumed byte-exactly with a small state machine, so a packet may span
// any number of push() calls. Headers are collected into one scratch buffer; PES payload
// bytes go straight to the elementary-stream assemblers (one copy). Anything that is not
// where a packet should start makes the demuxer resynchronise at the next pack header
// (00 00 01 BA), counted; loss reported by the caller does the same via lost().
//
// Pack header (§2.5.3.3, MPEG-2; MPEG-1 ISO/IEC 11172-1 packs are 12 bytes, '0010' prefix):
//   00 00 01 BA | 01 SCR[32..30] 1 SCR[29..15] 1 SCR[14..0] 1 SCR_ext(9) 1 |
//   program_mux_rate(22) 1 1 | reserved(5) pack_stuffing_length(3) | stuffing...
// Other packets (§2.5.3.5 system header, §2.5.4 PSM, §2.4.3.6 PES):
//   00 00 01 stream_id | length(16) | body (length bytes)
// PES header (MPEG-2): '10' scrambling(2) priority alignment copyright original |
//   PTS_DTS_flags(2) ESCR ES_rate DSM_trick additional_copy CRC extension | header_data_length | ...
import { audioCodecOf, packHeaderBytes, readMpeg1PesHeader, readPackHeader, readPesHeader, readPsm, videoCodecOf, type PesHeader } from './ps-headers.ts';
import { PsAudioAssembler, type PsAudioSink } from './ps-audio.ts';
import { probeVideoCodec, PsVideoAssembler, type PsVideoSink } from './ps-video.ts';
import { type AudioCodec, ParseError, type VideoCodec } from './types.ts';

export type { PsAudioFrame } from './ps-audio.ts';
export { STREAM_TYPE_AAC, STREAM_TYPE_G711A, STREAM_TYPE_G711U, STREAM_TYPE_H264, STREAM_TYPE_H265 } from './ps-headers.ts';

const PACK = 0xba, END = 0xb9, SYSTEM = 0xbb, PSM = 0xbc, PADDING = 0xbe;
/** Stream ids whose PES packets have no optional header (§2.4.3.7 Table 2-22 list). */
const noPesHeader = (sid: number): boolean =>
  sid === PSM || sid === PADDING || sid === 0xbf || sid === 0xf0 || sid === 0xf1 || sid === 0xff || sid === 0xf2 || sid === 0xf8;
const isVideoId = (sid: number): boolean => sid >= 0xe0 && sid <= 0xef;
const isAudioId = (sid: number): boolean => sid >= 0xc0 && sid <= 0xdf;

/** Largest packet body collected whole (system header, PSM): the u16 length allows 65535. */
const MAX_COLLECT = 6 + 0xffff;
/** PES header bytes: 9 fixed + header_data_length (u8) at most. */
const MAX_PES_HEADER = 9 + 0xff;
/** MPEG-1 PES header: up to 16 stuffing bytes, STD buffer (2), PTS+DTS (10). */
const MPEG1_PEEK = 28;
/** Bytes of one stream probed for its codec before giving up on it (no PSM). */
const MAX_PROBE_BYTES = 256 << 10;

export type PsResyncReason = 'bad-start-code' | 'bad-pack-header' | 'bad-pes-header' | 'bad-psm' | 'loss';

export interface PsCounters {
  packs: number;
  pesPackets: number;
  psms: number;
  /** Times the demuxer lost sync and scanned for the next pack header. */
  resyncs: number;
  lastResync: PsResyncReason | null;
  /** Bytes skipped while looking for a pack header. */
  skippedBytes: number;
  /** PES packets of streams not decoded (a second video, private data, unknown codecs). */
  ignoredPes: number;
  /** System clock reference of the latest pack (27 MHz base / 300 = 90 kHz ticks, 33 bits). */
  scr: number;
  /** program_mux_rate of the latest pack, bytes/s (units of 50 bytes/s). */
  muxRate: number;
}

export interface PsSink extends PsVideoSink, PsAudioSink {
  /** The codec of the video or audio stream became known or changed (PSM or probing). */
  codec(kind: 'video' | 'audio', codec: VideoCodec | AudioCodec): void;
}

const ST_SYNC = 0, ST_NEXT = 1, ST_HEADER = 2, ST_PAYLOAD = 3, ST_SKIP = 4;
// What the header bytes collected so far are for.
const PH_PACK = 0, PH_LEN = 1, PH_PES = 2, PH_PES1 = 3, PH_BODY = 4;

const TWO33 = 2 ** 33;

export class PsDemuxer {
  readonly counters: PsCounters = {
    packs: 0, pesPackets: 0, psms: 0, resyncs: 0, lastResync: null, skippedBytes: 0, ignoredPes: 0, scr: 0, muxRate: 0,
  };
  #sink: PsSink;
  #state = ST_SYNC;
  #zeros = 0;
  #prefix = false;
  /** Header scratch: PES headers fit; grown (to at most MAX_COLLECT) for a large PSM. */
  #hdr = new Uint8Array(MAX_PES_HEADER);
  #have = 0;
  #need = 0;
  #phase = PH_PACK;
  #left = 0;
  #sid = 0;
  /** Stream type per stream id from the latest PSM (0 = not listed). */
  #types = new Uint8Array(256);
  #hasPsm = false;
  #videoId = -1;
  #audioId = -1;
  #video: PsVideoAssembler | null = null;
  #audio: PsAudioAssembler | null = null;
  /** Bytes of the video stream held for probing (no PSM yet). */
  #probe: Uint8Array | null = null;
  #probeLen = 0;
  #probePts = Number.NaN;
  #probeDts = Number.NaN;
  /** Where the current PES payload goes: 1 video, 2 audio, 3 video probe, 0 nowhere. */
  #target = 0;
  // 33-bit PTS/DTS unwrap (STYLE 9), shared by all streams (one clock), seeded by the first.
  #tsPrev = -1;
  #tsExt = 0;
  #pesHeader: PesHeader = { pts: Number.NaN, dts: Number.NaN, headerBytes: 0 };

  constructor(sink: PsSink) {
    this.#sink = sink;
  }

  get videoCodec(): VideoCodec | null {
    return this.#video?.codec ?? null;
  }

  get audioCodec(): AudioCodec | null {
    return this.#audio?.codec ?? null;
  }

  /** Video units dropped (partial after loss, over a cap, waiting for a keyframe) by the current assembler. */
  get droppedUnits(): number {
    return this.#video?.counters.droppedUnits ?? 0;
  }

  /** Consumes bytes of the program stream (any cut); `b` may be released after the call. */
  push(b: Uint8Array): void {
    let i = 0;
    const n = b.length;
    while (i < n) {
      switch (this.#state) {
        case ST_SYNC:
        case ST_NEXT:
          i = this.#findStart(b, i);
          break;
        case ST_HEADER: {
          const k = Math.min(this.#need - this.#have, n - i);
          this.#hdr.set(b.subarray(i, i + k), this.#have);
          this.#have += k;
          i += k;
          if (this.#have === this.#need) this.#header();
          break;
        }
        case ST_PAYLOAD: {
          const k = Math.min(this.#left, n - i);
          this.#payload(b.subarray(i, i + k));
          this.#left -= k;
          i += k;
          if (this.#left === 0) this.#endPes();
          break;
        }
        default: {
          const k = Math.min(this.#left, n - i);
          this.#left -= k;
          i += k;
          if (this.#left === 0) this.#state = ST_NEXT;
        }
      }
    }
  }

  /** The caller saw packets missing (RTP sequence gap): drop partial units, resync. */
  lost(): void {
    this.#resync('loss');
  }

  /** End of the stream: completes the unit in progress. */
  flush(): void {
    this.#video?.flush();
  }

  /** Scans for 00 00 01 xx: any packet start in ST_NEXT (zero stuffing allowed), a pack header in ST_SYNC. */
  #findStart(b: Uint8Array, i: number): number {
    const n = b.length;
    const sync = this.#state === ST_SYNC;
    for (; i < n; i++) {
      const x = b[i]!;
      if (this.#prefix) {
        this.#prefix = false;
        if (sync && x !== PACK) {
          this.counters.skippedBytes += 4;
          this.#zeros = x === 0 ? 1 : 0;
          continue;
        }
        if (x < END) {
          this.#resync('bad-start-code');
          return i + 1;
        }
        this.#begin(x);
        return i + 1;
      }
      if (x === 0) this.#zeros++;
      else if (x === 1 && this.#zeros >= 2) {
        this.#zeros = 0;
        this.#prefix = true;
      } else {
        const z = this.#zeros;
        this.#zeros = 0;
        if (sync) this.counters.skippedBytes += z + 1;
        else {
          this.#resync('bad-start-code');
          return i + 1;
        }
      }
    }
    return i;
  }

  #resync(reason: PsResyncReason): void {
    this.counters.resyncs++;
    this.counters.lastResync = reason;
    this.#state = ST_SYNC;
    this.#zeros = 0;
    this.#prefix = false;
    this.#target = 0;
    this.#probeLen = 0;
    this.#video?.reset();
    this.#audio?.reset();
  }

  #begin(code: number): void {
    this.#hdr[0] = 0;
    this.#hdr[1] = 0;
    this.#hdr[2] = 1;
    this.#hdr[3] = code;
    this.#have = 4;
    this.#sid = code;
    if (code === END) {
      this.#state = ST_NEXT;
      return;
    }
    this.#state = ST_HEADER;
    this.#phase = code === PACK ? PH_PACK : PH_LEN;
    this.#need = code === PACK ? 5 : 6;
  }

  /** The bytes asked for are in #hdr: parse, or ask for more. */
  #header(): void {
    const h = this.#hdr;
    try {
      switch (this.#phase) {
        case PH_PACK:
          return this.#pack();
        case PH_LEN: {
          const len = (h[4]! << 8) | h[5]!;
          const sid = this.#sid;
          if (sid === SYSTEM || sid === PSM) {
            this.#phase = PH_BODY;
            this.#need = 6 + len; // <= MAX_COLLECT: the length is a u16
            if (this.#need > this.#hdr.length) {
              const grown = new Uint8Array(Math.min(MAX_COLLECT, Math.max(this.#need, 2 * this.#hdr.length)));
              grown.set(this.#hdr.subarray(0, this.#have));
              this.#hdr = grown;
            }
            if (len === 0) this.#body();
            return;
          }
          const media = sid === this.#videoId || sid === this.#audioId || (this.#videoId < 0 && isVideoId(sid)) || (this.#audioId < 0 && isAudioId(sid));
          if (!media || noPesHeader(sid)) {
            if (sid !== PADDING) this.counters.ignoredPes++;
            return this.#skip(len);
          }
          this.#left = len; // bytes after the length field
          if (len < 3) throw new ParseError(`PES packet of ${len} bytes`, 4);
          this.#phase = PH_PES;
          this.#need = 9;
          return;
        }
        case PH_PES:
          return this.#pes();
        case PH_PES1:
          return this.#pes1();
        default:
          return this.#body();
      }
    } catch (err) {
      if (!(err instanceof ParseError)) throw err;
      this.#resync(this.#phase === PH_PACK ? 'bad-pack-header' : this.#phase === PH_BODY ? 'bad-psm' : 'bad-pes-header');
    }
  }

  #skip(len: number): void {
    this.#left = len;
    this.#state = len > 0 ? ST_SKIP : ST_NEXT;
  }

  /** Pack header: 5 bytes tell MPEG-2 from MPEG-1, then its length, then the stuffing. */
  #pack(): void {
    const h = this.#hdr;
    if (this.#have === 5) {
      this.#need = packHeaderBytes(h[4]!);
      if (this.#need < 0) throw new ParseError('pack header marker bits', 4);
      return;
    }
    if (this.#have === 14 && h[4]! >> 6 === 1 && (h[13]! & 7) > 0) {
      this.#need = 14 + (h[13]! & 7); // pack_stuffing_length
      return;
    }
    readPackHeader(h, this.counters);
    this.counters.packs++;
    this.#state = ST_NEXT;
  }

  /** System header (§2.5.3.5) and PSM (§2.5.4.1), collected whole. */
  #body(): void {
    this.#state = ST_NEXT;
    // The system header only bounds rates and buffers; nothing in it changes the demux.
    if (this.#sid !== PSM) return;
    const types = this.#types;
    readPsm(this.#hdr.subarray(0, this.#need), types);
    this.counters.psms++;
    // Codecs by the map: the first video and audio stream with a type we decode. A map that
    // lists none of those leaves the codecs to probing, as if there were no map.
    for (let sid = 0xc0; sid <= 0xef; sid++) {
      const v = videoCodecOf(types[sid]!);
      if (v !== null && isVideoId(sid) && (this.#videoId < 0 || this.#videoId === sid)) this.#setVideo(sid, v);
      const a = audioCodecOf(types[sid]!);
      if (a !== null && isAudioId(sid) && (this.#audioId < 0 || this.#audioId === sid)) this.#setAudio(sid, a);
    }
    if (this.#videoId >= 0 || this.#audioId >= 0) this.#hasPsm = true;
  }

  #setVideo(sid: number, codec: VideoCodec): void {
    this.#videoId = sid;
    if (this.#video?.codec === codec) return;
    this.#video?.flush(); // the old codec's last picture is complete: the map starts the new one
    this.#video = new PsVideoAssembler(codec, this.#sink); // codec change: a new unit assembler
    this.#sink.codec('video', codec);
  }

  #setAudio(sid: number, codec: AudioCodec): void {
    this.#audioId = sid;
    if (this.#audio?.codec === codec) return;
    this.#audio = new PsAudioAssembler(codec, this.#sink);
    this.#sink.codec('audio', codec);
  }

  /** MPEG-2 PES header (§2.4.3.6): 9 bytes, then header_data_length more. */
  #pes(): void {
    const h = this.#hdr;
    if (h[6]! >> 6 !== 2) {
      // ISO/IEC 11172-1 §2.4.3.3 packet header (MPEG-1 system stream): variable, so peek.
      this.#phase = PH_PES1;
      this.#need = 6 + Math.min(this.#left, MPEG1_PEEK);
      if (this.#have >= this.#need) this.#pes1();
      return;
    }
    const hdrLen = 9 + h[8]!;
    if (this.#have < hdrLen) {
      if (hdrLen - 6 > this.#left) throw new ParseError(`PES header_data_length ${h[8]} > packet`, 8);
      this.#need = hdrLen;
      return;
    }
    const r = this.#pesHeader;
    readPesHeader(h, r);
    this.#startPayload(r.headerBytes, this.#unwrap(r.pts), this.#unwrap(r.dts));
  }

  #pes1(): void {
    const h = this.#hdr;
    const end = this.#have;
    const r = this.#pesHeader;
    readMpeg1PesHeader(h, end, r);
    const p = r.headerBytes;
    this.#startPayload(p, this.#unwrap(r.pts), this.#unwrap(r.dts));
    // Bytes peeked past the header belong to the payload.
    if (end > p) {
      this.#payload(h.subarray(p, end));
      this.#left -= end - p;
      if (this.#left === 0) this.#endPes();
    }
  }

  /** Header parsed (`hdrLen` bytes from the start code): the payload follows. */
  #startPayload(hdrLen: number, pts: number, dts: number): void {
    this.counters.pesPackets++;
    this.#left -= Math.min(this.#have, hdrLen) - 6;
    const sid = this.#sid;
    this.#state = this.#left > 0 ? ST_PAYLOAD : ST_NEXT;
    if (sid === this.#videoId && this.#video !== null) {
      this.#target = 1;
      if (!Number.isNaN(pts)) this.#video.mark(pts, dts);
    } else if (sid === this.#audioId && this.#audio !== null) {
      this.#target = 2;
      this.#audio.begin(pts);
    } else if (isVideoId(sid) && this.#videoId < 0 && !this.#hasPsm) {
      this.#target = 3;
      if (this.#probeLen === 0 || Number.isNaN(this.#probePts)) {
        this.#probePts = pts;
        this.#probeDts = dts;
      }
      this.#probe ??= new Uint8Array(MAX_PROBE_BYTES);
    } else if (isAudioId(sid) && this.#audioId < 0 && !this.#hasPsm) {
      // No map: GB/T 28181 cameras without a PSM send G.711A; ADTS announces itself.
      this.#target = 4;
      this.#probePts = pts;
    } else {
      this.#target = 0;
      this.counters.ignoredPes++;
    }
    if (this.#state === ST_NEXT) this.#endPes();
  }

  #payload(v: Uint8Array): void {
    switch (this.#target) {
      case 1:
        return this.#video!.write(v);
      case 2:
        return this.#audio!.write(v);
      case 3:
        return this.#probeVideo(v);
      case 4:
        this.#setAudio(this.#sid, v.length >= 2 && v[0] === 0xff && (v[1]! & 0xf6) === 0xf0 ? 'aac' : 'pcma');
        this.#target = 2;
        this.#audio!.begin(this.#probePts);
        return this.#audio!.write(v);
    }
  }

  #endPes(): void {
    if (this.#target === 2) this.#audio!.end();
    this.#target = 0;
    this.#state = ST_NEXT;
  }

  /** No PSM: hold the first video bytes until their NAL headers name the codec. */
  #probeVideo(v: Uint8Array): void {
    const p = this.#probe!;
    if (this.#probeLen + v.length > p.length) {
      this.#probeLen = 0; // nothing recognisable in 256 KiB: start over (counted as ignored)
      this.counters.ignoredPes++;
      return;
    }
    p.set(v, this.#probeLen);
    this.#probeLen += v.length;
    const codec = probeVideoCodec(p, this.#probeLen);
    if (codec === null) return;
    this.#setVideo(this.#sid, codec);
    const held = p.subarray(0, this.#probeLen);
    this.#probeLen = 0;
    this.#probe = null;
    this.#target = 1;
    if (!Number.isNaN(this.#probePts)) this.#video!.mark(this.#probePts, this.#probeDts);
    this.#video!.write(held);
  }

  /** Extends a 33-bit timestamp; NaN (absent) stays NaN. */
  #unwrap(ts: number): number {
    if (Number.isNaN(ts)) return ts;
    if (this.#tsPrev < 0) {
      this.#tsPrev = ts;
      this.#tsExt = ts;
      return ts;
    }
    let d = ts - this.#tsPrev;
    if (d >= TWO33 / 2) d -= TWO33;
    else if (d < -TWO33 / 2) d += TWO33;
    this.#tsPrev = ts;
    this.#tsExt += d;
    return this.#tsExt;
  }
}

