// Fragmented-MP4 init segment (ftyp + moov with empty sample tables and mvex), carrying the
// segment's identity in moov/udta/flxi, and the reader for that identity.
import { BoxCursor, BoxWriter, findBox, fourcc, newBoxHeader } from './mp4-box.ts';
import type { AudioTrackInfo, TrackInfo, VideoTrackInfo } from './types.ts';

/** Who wrote a segment file: lets the index be checked against and rebuilt from files. */
export interface InitMeta {
  streamId: string;
  segmentNumber: number;
  startUnixMs: number;
}

/** Custom box in moov/udta holding `InitMeta`. */
export const INIT_META_FOURCC = 'flxi';
/** Layout version of the flxi payload; bump when the layout changes. */
export const INIT_META_VERSION = 1;
/** Stream ids are config names, not content: 255 bytes is plenty and bounds the parse. */
export const MAX_STREAM_ID_BYTES = 255;
/** Our own files put moov within the first few KiB; do not walk further on a corrupt file. */
const MAX_INIT_SCAN_BYTES = 1 << 20;

const T = {
  ftyp: fourcc('ftyp'), moov: fourcc('moov'), mvhd: fourcc('mvhd'), trak: fourcc('trak'),
  tkhd: fourcc('tkhd'), mdia: fourcc('mdia'), mdhd: fourcc('mdhd'), hdlr: fourcc('hdlr'),
  minf: fourcc('minf'), vmhd: fourcc('vmhd'), smhd: fourcc('smhd'), dinf: fourcc('dinf'),
  dref: fourcc('dref'), url: fourcc('url '), stbl: fourcc('stbl'), stsd: fourcc('stsd'),
  stts: fourcc('stts'), stsc: fourcc('stsc'), stsz: fourcc('stsz'), stco: fourcc('stco'),
  mvex: fourcc('mvex'), trex: fourcc('trex'), udta: fourcc('udta'), flxi: fourcc(INIT_META_FOURCC),
  avc1: fourcc('avc1'), avcC: fourcc('avcC'), hvc1: fourcc('hvc1'), hvcC: fourcc('hvcC'),
  mp4a: fourcc('mp4a'), esds: fourcc('esds'), alaw: fourcc('alaw'), ulaw: fourcc('ulaw'),
  vide: fourcc('vide'), soun: fourcc('soun'),
};

/** Sample flags (§8.8.3.1): sample_depends_on=2 (independent), sync. */
export const SAMPLE_FLAGS_SYNC = 0x02000000;
/** sample_depends_on=1 (depends on others), sample_is_non_sync_sample=1. */
export const SAMPLE_FLAGS_NON_SYNC = 0x01010000;

// Identity matrix, §8.2.2 (16.16 except the last column, 2.30).
const MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];

/**
 * ftyp + moov for `tracks` (track id = index + 1), ready for moof+mdat fragments.
 * `meta` adds moov/udta/flxi with the segment identity. Allocates; call once per segment.
 */
export function initSegment(tracks: TrackInfo[], meta?: InitMeta): Uint8Array {
  const w = new BoxWriter(1024);
  const ftyp = w.open(T.ftyp);
  w.u32(fourcc('iso5'));
  w.u32(512);
  for (const b of ['iso5', 'iso6', 'mp41']) w.u32(fourcc(b));
  if (tracks.some((t) => t.codec === 'h264')) w.u32(T.avc1);
  if (tracks.some((t) => t.codec === 'h265')) w.u32(T.hvc1);
  w.close(ftyp);

  const moov = w.open(T.moov);
  mvhd(w, tracks.length + 1);
  for (let i = 0; i < tracks.length; i++) trak(w, tracks[i]!, i + 1);
  const mvex = w.open(T.mvex);
  for (let i = 0; i < tracks.length; i++) {
    const t = tracks[i]!;
    const trex = w.openFull(T.trex, 0, 0);
    w.u32(i + 1); // track_ID
    w.u32(1); // default_sample_description_index
    w.u32(0); // default_sample_duration
    w.u32(0); // default_sample_size
    w.u32(t.kind === 'audio' ? SAMPLE_FLAGS_SYNC : SAMPLE_FLAGS_NON_SYNC);
    w.close(trex);
  }
  w.close(mvex);
  if (meta) udta(w, meta);
  w.close(moov);
  return w.result().slice();
}

// §8.2.2 Movie header, version 0.
function mvhd(w: BoxWriter, nextTrackId: number): void {
  const at = w.openFull(T.mvhd, 0, 0);
  w.u32(0); // creation_time
  w.u32(0); // modification_time
  w.u32(1000); // timescale
  w.u32(0); // duration: unknown for fragmented files
  w.u32(0x00010000); // rate 1.0
  w.u16(0x0100); // volume 1.0
  w.zeros(10);
  for (const m of MATRIX) w.u32(m);
  w.zeros(24); // pre_defined
  w.u32(nextTrackId);
  w.close(at);
}

function trak(w: BoxWriter, t: TrackInfo, trackId: number): void {
  const trakAt = w.open(T.trak);
  // §8.3.2 Track header: flags enabled | in_movie | in_preview.
  const tkhd = w.openFull(T.tkhd, 0, 7);
  w.u32(0);
  w.u32(0);
  w.u32(trackId);
  w.u32(0); // reserved
  w.u32(0); // duration
  w.zeros(8);
  w.u16(0); // layer
  w.u16(0); // alternate_group
  w.u16(t.kind === 'audio' ? 0x0100 : 0);
  w.u16(0);
  for (const m of MATRIX) w.u32(m);
  w.u32(t.kind === 'video' ? t.width * 65536 : 0); // 16.16
  w.u32(t.kind === 'video' ? t.height * 65536 : 0);
  w.close(tkhd);

  const mdia = w.open(T.mdia);
  const mdhd = w.openFull(T.mdhd, 0, 0); // §8.4.2
  w.u32(0);
  w.u32(0);
  w.u32(t.timescale);
  w.u32(0);
  w.u16(0x55c4); // language 'und', ISO-639-2/T packed 5 bits each
  w.u16(0);
  w.close(mdhd);
  const hdlr = w.openFull(T.hdlr, 0, 0); // §8.4.3
  w.u32(0);
  w.u32(t.kind === 'video' ? T.vide : T.soun);
  w.zeros(12);
  for (const c of t.kind === 'video' ? 'VideoHandler' : 'SoundHandler') w.u8(c.charCodeAt(0));
  w.u8(0);
  w.close(hdlr);

  const minf = w.open(T.minf);
  if (t.kind === 'video') {
    const vmhd = w.openFull(T.vmhd, 0, 1); // §12.1.2
    w.zeros(8); // graphicsmode + opcolor
    w.close(vmhd);
  } else {
    const smhd = w.openFull(T.smhd, 0, 0); // §12.2.2
    w.u32(0); // balance + reserved
    w.close(smhd);
  }
  const dinf = w.open(T.dinf); // §8.7.1-2: media data in this file
  const dref = w.openFull(T.dref, 0, 0);
  w.u32(1);
  w.close(w.openFull(T.url, 0, 1));
  w.close(dref);
  w.close(dinf);

  const stbl = w.open(T.stbl);
  const stsd = w.openFull(T.stsd, 0, 0);
  w.u32(1);
  if (t.kind === 'video') videoEntry(w, t);
  else audioEntry(w, t, trackId);
  w.close(stsd);
  for (const type of [T.stts, T.stsc, T.stco]) {
    const at = w.openFull(type, 0, 0);
    w.u32(0); // entry_count
    w.close(at);
  }
  const stsz = w.openFull(T.stsz, 0, 0);
  w.u32(0); // sample_size
  w.u32(0); // sample_count
  w.close(stsz);
  w.close(stbl);
  w.close(minf);
  w.close(mdia);
  w.close(trakAt);
}

// §12.1.3 VisualSampleEntry; ISO/IEC 14496-15 §5.4.2 (avc1/avcC), §8.4.1 (hvc1/hvcC).
function videoEntry(w: BoxWriter, t: VideoTrackInfo): void {
  const at = w.open(t.codec === 'h264' ? T.avc1 : T.hvc1);
  w.zeros(6);
  w.u16(1); // data_reference_index
  w.zeros(16); // pre_defined, reserved, pre_defined[3]
  w.u16(t.width);
  w.u16(t.height);
  w.u32(0x00480000); // 72 dpi
  w.u32(0x00480000);
  w.u32(0);
  w.u16(1); // frame_count
  w.zeros(32); // compressorname
  w.u16(0x0018); // depth
  w.u16(0xffff); // pre_defined = -1
  const cfg = w.open(t.codec === 'h264' ? T.avcC : T.hvcC);
  w.bytes(t.config);
  w.close(cfg);
  w.close(at);
}

// §12.2.3 AudioSampleEntry; ISO/IEC 14496-14 §5.6 esds for AAC, 'alaw'/'ulaw' for G.711.
function audioEntry(w: BoxWriter, t: AudioTrackInfo, trackId: number): void {
  const at = w.open(t.codec === 'aac' ? T.mp4a : t.codec === 'pcma' ? T.alaw : T.ulaw);
  w.zeros(6);
  w.u16(1);
  w.zeros(8);
  w.u16(t.channels);
  w.u16(16); // samplesize
  w.u32(0); // pre_defined + reserved
  w.u32(t.sampleRate < 65536 ? t.sampleRate * 65536 : 0); // 16.16; 0 when it does not fit
  if (t.codec === 'aac') esds(w, t.config, trackId);
  w.close(at);
}

// ISO/IEC 14496-1 §7.2.6.5 ES_Descriptor > DecoderConfigDescriptor > DecoderSpecificInfo,
// SLConfigDescriptor. Descriptor sizes are < 128 here, so one length byte each.
function esds(w: BoxWriter, asc: Uint8Array, esId: number): void {
  const at = w.openFull(T.esds, 0, 0);
  const dsi = 2 + asc.length;
  const dcd = 2 + 13 + dsi;
  const es = 2 + 3 + dcd + 3;
  if (es - 2 > 127) throw new RangeError(`AudioSpecificConfig of ${asc.length} bytes too long`);
  w.u8(0x03); // ES_DescrTag
  w.u8(es - 2);
  w.u16(esId);
  w.u8(0); // no dependsOn, URL, OCR
  w.u8(0x04); // DecoderConfigDescrTag
  w.u8(dcd - 2);
  w.u8(0x40); // objectTypeIndication: Audio ISO/IEC 14496-3
  w.u8((5 << 2) | 1); // streamType audio, upStream 0, reserved 1
  w.u24(0); // bufferSizeDB
  w.u32(0); // maxBitrate
  w.u32(0); // avgBitrate
  w.u8(0x05); // DecSpecificInfoTag
  w.u8(asc.length);
  w.bytes(asc);
  w.u8(0x06); // SLConfigDescrTag
  w.u8(1);
  w.u8(2); // predefined: MP4
  w.close(at);
}

// udta/flxi full box, version INIT_META_VERSION:
//   u64 segmentNumber | u64 startUnixMs | u8 streamIdLength | streamId (UTF-8)
function udta(w: BoxWriter, meta: InitMeta): void {
  const id = new TextEncoder().encode(meta.streamId);
  if (id.length > MAX_STREAM_ID_BYTES) throw new RangeError(`stream id of ${id.length} bytes exceeds ${MAX_STREAM_ID_BYTES}`);
  if (!Number.isSafeInteger(meta.segmentNumber) || meta.segmentNumber < 0) throw new RangeError(`segment number ${meta.segmentNumber}`);
  if (!Number.isSafeInteger(meta.startUnixMs) || meta.startUnixMs < 0) throw new RangeError(`start ${meta.startUnixMs}`);
  const at = w.open(T.udta);
  const flxi = w.openFull(T.flxi, INIT_META_VERSION, 0);
  w.u64(meta.segmentNumber);
  w.u64(meta.startUnixMs);
  w.u8(id.length);
  w.bytes(id);
  w.close(flxi);
  w.close(at);
}

/**
 * The identity written by `initSegment(tracks, meta)`, read from a segment file (or its
 * head). Returns null when there is no moov/udta/flxi, it is cut, malformed, or of a
 * newer layout version. Never throws.
 */
export function readInitMeta(bytes: Uint8Array): InitMeta | null {
  const end = Math.min(bytes.length, MAX_INIT_SCAN_BYTES);
  const h = newBoxHeader();
  if (!findBox(bytes, 0, end, T.moov, h)) return null;
  if (!findBox(bytes, h.body, h.end, T.udta, h)) return null;
  if (!findBox(bytes, h.body, h.end, T.flxi, h)) return null;
  try {
    const c = new BoxCursor(bytes, h.body, h.end);
    if (c.u8() !== INIT_META_VERSION) return null;
    c.u24();
    const segmentNumber = c.u64();
    const startUnixMs = c.u64();
    const len = c.u8();
    const streamId = new TextDecoder('utf-8', { fatal: true }).decode(c.take(len));
    return { streamId, segmentNumber, startUnixMs };
  } catch {
    return null; // ParseError or invalid UTF-8: treat as absent
  }
}
