// Reader for recorded fragmented MP4: the track table of an init segment and the sample table
// of one moof+mdat, plus the re-mux step that copies recorded samples into a FragmentBuilder
// (playback at speed, keyframe-only streams, exports with rewritten timestamps).
import type { FragmentBuilder } from './fmp4-fragment.ts';
import { BOX_OK, BoxCursor, findBox, fourcc, newBoxHeader, readBoxHeader } from './mp4-box.ts';
import type { BoxHeader } from './mp4-box.ts';
import { ParseError, type AccessUnit, type TrackInfo } from './types.ts';
import { applyTrexDefaults } from './fmp4-scan.ts';

/** Tracks in one init: our recorder writes video (+ audio); more is not a recording of ours. */
export const MAX_READ_TRACKS = 8;
/** Samples in one fragment, all tracks: 60 s at 240 fps plus audio; more is corruption. */
export const MAX_READ_SAMPLES = 1 << 16;
/** NAL units in one video sample: a slice-per-row 4K picture has ~70; 1024 is corruption. */
export const MAX_SAMPLE_NALUS = 1024;

const T = {
  moov: fourcc('moov'), trak: fourcc('trak'), tkhd: fourcc('tkhd'), mdia: fourcc('mdia'), mdhd: fourcc('mdhd'),
  hdlr: fourcc('hdlr'), minf: fourcc('minf'), stbl: fourcc('stbl'), stsd: fourcc('stsd'), mvex: fourcc('mvex'),
  trex: fourcc('trex'), moof: fourcc('moof'), mfhd: fourcc('mfhd'), traf: fourcc('traf'), tfhd: fourcc('tfhd'),
  tfdt: fourcc('tfdt'), trun: fourcc('trun'), mdat: fourcc('mdat'), vide: fourcc('vide'),
};
const NON_SYNC = 0x00010000; // ISO/IEC 14496-12 §8.8.3.1 sample_is_non_sync_sample

export interface InitTrack {
  trackId: number;
  video: boolean;
  timescale: number;
  defaultDuration: number;
  defaultSize: number;
  defaultFlags: number;
  /** The stsd box (codec and its parameters): equal bytes mean the same decoder set-up. */
  stsd: Uint8Array;
}

export interface InitInfo {
  tracks: InitTrack[];
  /** Offset just past the moov. */
  end: number;
}

export interface RecordedSample {
  /** Offset of the sample's bytes in the buffer given to readFragment. */
  offset: number;
  size: number;
  duration: number;
  /** Composition offset (pts - dts), ticks. */
  cts: number;
  sync: boolean;
}

export interface RecordedTrackRun {
  /** Index of the track in the init (moov order). */
  track: number;
  /** tfdt of the first sample (track ticks). */
  baseDts: number;
  samples: RecordedSample[];
}

export interface RecordedFragment {
  sequenceNumber: number;
  /** moof + mdat bytes. */
  size: number;
  /** One entry per track that has samples here, in traf order. */
  runs: RecordedTrackRun[];
}

/** ISO/IEC 14496-12 §8.2-8.8: the tracks of a moov found at the top level of `init`. Throws ParseError. */
export function readInit(init: Uint8Array): InitInfo {
  const h = newBoxHeader();
  let pos = 0;
  while (pos < init.length) {
    if (readBoxHeader(init, pos, init.length, h) !== BOX_OK) throw new ParseError('no complete moov', pos);
    if (h.type === T.moov) return { tracks: readMoov(init, h), end: h.end };
    pos = h.end;
  }
  throw new ParseError('no moov', pos);
}

function readMoov(b: Uint8Array, moov: BoxHeader): InitTrack[] {
  const tracks: InitTrack[] = [];
  const h = newBoxHeader(), sub = newBoxHeader(), box = newBoxHeader();
  const need = (ok: boolean, what: string, at: number) => { if (!ok) throw new ParseError(`no ${what}`, at); };
  for (let pos = moov.body; pos < moov.end; pos = h.end) {
    if (readBoxHeader(b, pos, moov.end, h) !== BOX_OK) throw new ParseError('bad box in moov', pos);
    if (h.type !== T.trak) continue;
    if (tracks.length >= MAX_READ_TRACKS) throw new ParseError(`more than ${MAX_READ_TRACKS} tracks`, h.start);
    need(findBox(b, h.body, h.end, T.tkhd, sub), 'tkhd', h.start);
    let c = new BoxCursor(b, sub.body, sub.end);
    const tkhdVersion = c.u8();
    c.skip(3 + (tkhdVersion === 1 ? 16 : 8)); // §8.3.2 flags, creation + modification time
    const trackId = c.u32();
    need(findBox(b, h.body, h.end, T.mdia, sub), 'mdia', h.start);
    const mdiaBody = sub.body, mdiaEnd = sub.end;
    need(findBox(b, mdiaBody, mdiaEnd, T.mdhd, box), 'mdhd', mdiaBody);
    c = new BoxCursor(b, box.body, box.end);
    const mdhdVersion = c.u8();
    c.skip(3 + (mdhdVersion === 1 ? 16 : 8)); // §8.4.2
    const timescale = c.u32();
    if (timescale === 0) throw new ParseError('timescale 0', box.body);
    need(findBox(b, mdiaBody, mdiaEnd, T.hdlr, box), 'hdlr', mdiaBody);
    c = new BoxCursor(b, box.body, box.end);
    c.skip(8); // §8.4.3 version, flags, pre_defined
    const video = c.u32() === T.vide;
    need(findBox(b, mdiaBody, mdiaEnd, T.minf, sub), 'minf', mdiaBody);
    need(findBox(b, sub.body, sub.end, T.stbl, sub), 'stbl', sub.body);
    need(findBox(b, sub.body, sub.end, T.stsd, sub), 'stsd', sub.body);
    tracks.push({ trackId, video, timescale, defaultDuration: 0, defaultSize: 0, defaultFlags: 0, stsd: b.subarray(sub.start, sub.end) });
  }
  if (tracks.length === 0) throw new ParseError('moov without tracks', moov.start);
  applyTrexDefaults(b, moov, tracks);
  return tracks;
}

/** True when two inits describe the same tracks with the same decoder set-up (one init serves both). */
export function sameTracks(a: InitInfo, b: InitInfo): boolean {
  if (a.tracks.length !== b.tracks.length) return false;
  for (let i = 0; i < a.tracks.length; i++) {
    const x = a.tracks[i]!, y = b.tracks[i]!;
    if (x.trackId !== y.trackId || x.video !== y.video || x.timescale !== y.timescale || x.stsd.length !== y.stsd.length) return false;
    for (let k = 0; k < x.stsd.length; k++) if (x.stsd[k] !== y.stsd[k]) return false;
  }
  return true;
}

/**
 * §8.8.4-8.8.12: the samples of the moof at `buf[0]` and the mdat right after it.
 * `fileOffset` is where buf[0] sits in its file (for tfhd base_data_offset). With `headerOnly`,
 * buf may end anywhere after the mdat header: sample extents are checked against the mdat the
 * header announces, and the caller must not read sample bytes. Throws ParseError.
 */
export function readFragment(buf: Uint8Array, init: InitInfo, fileOffset = 0, headerOnly = false): RecordedFragment {
  const moof = newBoxHeader(), mdat = newBoxHeader();
  if (readBoxHeader(buf, 0, buf.length, moof) !== BOX_OK || moof.type !== T.moof) throw new ParseError('no moof', 0);
  let mdatBody: number, mdatEnd: number;
  if (readBoxHeader(buf, moof.end, buf.length, mdat) === BOX_OK) {
    if (mdat.type !== T.mdat) throw new ParseError('moof not followed by mdat', moof.end);
    mdatBody = mdat.body; mdatEnd = mdat.end;
  } else {
    // Partial: only acceptable in headerOnly mode, and the header itself must be there.
    if (!headerOnly || moof.end + 8 > buf.length) throw new ParseError('mdat cut', moof.end);
    const c = new BoxCursor(buf, moof.end, moof.end + 8);
    const size = c.u32();
    if (c.u32() !== T.mdat || size < 8) throw new ParseError('moof not followed by mdat', moof.end);
    mdatBody = moof.end + 8; mdatEnd = moof.end + size;
  }
  const out: RecordedFragment = { sequenceNumber: 0, size: mdatEnd, runs: [] };
  const h = newBoxHeader(), sub = newBoxHeader();
  if (!findBox(buf, moof.body, moof.end, T.mfhd, h)) throw new ParseError('no mfhd', moof.body);
  const mf = new BoxCursor(buf, h.body, h.end);
  mf.skip(4);
  out.sequenceNumber = mf.u32();
  let total = 0;
  let prevTrafEnd = moof.start; // §8.8.7: without a base offset, later trafs follow the previous one's data
  for (let pos = moof.body; pos < moof.end; pos = h.end) {
    if (readBoxHeader(buf, pos, moof.end, h) !== BOX_OK) throw new ParseError('bad box in moof', pos);
    if (h.type !== T.traf) continue;
    if (!findBox(buf, h.body, h.end, T.tfhd, sub)) throw new ParseError('no tfhd', h.body);
    let c = new BoxCursor(buf, sub.body, sub.end);
    const tfFlags = c.u32() & 0xffffff;
    const id = c.u32();
    const ti = init.tracks.findIndex((t) => t.trackId === id);
    if (ti < 0) throw new ParseError(`traf for unknown track ${id}`, sub.body);
    const tr = init.tracks[ti]!;
    let base = tfFlags & 0x020000 ? moof.start : prevTrafEnd; // default-base-is-moof
    if (tfFlags & 0x1) base = c.u64() - fileOffset;
    if (tfFlags & 0x2) c.skip(4); // sample_description_index
    const defDur = tfFlags & 0x8 ? c.u32() : tr.defaultDuration;
    const defSize = tfFlags & 0x10 ? c.u32() : tr.defaultSize;
    const defFlags = tfFlags & 0x20 ? c.u32() : tr.defaultFlags;
    if (!findBox(buf, h.body, h.end, T.tfdt, sub)) throw new ParseError('no tfdt', h.body); // we never write without one
    c = new BoxCursor(buf, sub.body, sub.end);
    const baseDts = c.u8() === 1 ? (c.skip(3), c.u64()) : (c.skip(3), c.u32());
    const run: RecordedTrackRun = { track: ti, baseDts, samples: [] };
    let dataPos = base;
    let firstTrun = true;
    for (let tp = h.body; tp < h.end; tp = sub.end) {
      if (readBoxHeader(buf, tp, h.end, sub) !== BOX_OK) throw new ParseError('bad box in traf', tp);
      if (sub.type !== T.trun) continue;
      c = new BoxCursor(buf, sub.body, sub.end);
      const version = c.u8();
      const trFlags = c.u24();
      const count = c.u32();
      if (total + count > MAX_READ_SAMPLES) throw new ParseError(`more than ${MAX_READ_SAMPLES} samples`, sub.body);
      total += count;
      if (trFlags & 0x1) dataPos = base + c.i32();
      else if (firstTrun) dataPos = base;
      firstTrun = false;
      const firstFlags = trFlags & 0x4 ? c.u32() : -1;
      const per = 4 * (((trFlags >> 8) & 1) + ((trFlags >> 9) & 1) + ((trFlags >> 10) & 1) + ((trFlags >> 11) & 1));
      c.need(per * count);
      for (let i = 0; i < count; i++) {
        const duration = trFlags & 0x100 ? c.u32() : defDur;
        const size = trFlags & 0x200 ? c.u32() : defSize;
        let flags = trFlags & 0x400 ? c.u32() : defFlags;
        const cts = trFlags & 0x800 ? (version === 0 ? c.u32() : c.i32()) : 0;
        if (cts > 0x7fffffff) throw new ParseError(`composition offset ${cts} beyond 2^31`, c.pos - 4);
        if (i === 0 && firstFlags >= 0) flags = firstFlags;
        if (dataPos < mdatBody || dataPos + size > mdatEnd) throw new ParseError(`sample of ${size} bytes outside mdat`, dataPos);
        run.samples.push({ offset: dataPos, size, duration, cts, sync: (flags & NON_SYNC) === 0 });
        dataPos += size;
      }
    }
    prevTrafEnd = dataPos;
    if (run.samples.length > 0) out.runs.push(run);
  }
  return out;
}

/** Sum of sample durations of a run (track ticks). */
export function runDuration(r: RecordedTrackRun): number {
  let d = 0;
  for (const s of r.samples) d += s.duration;
  return d;
}

/**
 * Minimal TrackInfo values for a FragmentBuilder re-muxing recorded samples: the builder only
 * reads `kind`, and the output keeps the recorded init (with its real codec set-up).
 */
export function remuxTracks(init: InitInfo): TrackInfo[] {
  return init.tracks.map((t): TrackInfo =>
    t.video
      ? { kind: 'video', codec: 'h264', timescale: t.timescale, width: 0, height: 0, fps: 0, config: new Uint8Array(0), codecString: '' }
      : { kind: 'audio', codec: 'aac', timescale: t.timescale, sampleRate: t.timescale, channels: 0, config: new Uint8Array(0), codecString: '' },
  );
}

/** A reusable AccessUnit for addRecordedSample (its nalus array is refilled per call). */
export const newRemuxUnit = (): AccessUnit => ({ nalus: [], bytes: 0, keyframe: false, dts: 0, pts: 0 });

/**
 * Adds one recorded sample (bytes at `s.offset` in `data`) to track `track` of `b` with
 * `duration` ticks. Video samples are split at their 4-byte NAL lengths (the length size our
 * recorder declares in avcC/hvcC, media/h264-config.ts), since the builder writes the lengths
 * itself. Returns false, adding nothing, for a sample whose lengths do not add up or that the
 * builder refuses (fragment full).
 */
export function addRecordedSample(b: FragmentBuilder, track: number, video: boolean, data: Uint8Array, s: RecordedSample, duration: number, unit: AccessUnit): boolean {
  const bytes = data.subarray(s.offset, s.offset + s.size);
  if (bytes.length !== s.size) return false;
  unit.nalus.length = 0;
  if (video) {
    for (let p = 0; p < bytes.length;) {
      if (p + 4 > bytes.length || unit.nalus.length >= MAX_SAMPLE_NALUS) return false;
      const n = ((bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0;
      if (n === 0 || p + 4 + n > bytes.length) return false;
      unit.nalus.push(bytes.subarray(p + 4, p + 4 + n));
      p += 4 + n;
    }
    unit.bytes = bytes.length - 4 * unit.nalus.length;
  } else {
    unit.nalus.push(bytes);
    unit.bytes = bytes.length;
  }
  unit.keyframe = s.sync;
  unit.dts = 0;
  unit.pts = s.cts;
  return b.addSample(track, unit, duration);
}
