// Scanner for recorded fragmented-MP4 segment files: finds the init segment and every complete
// moof+mdat pair with its timing, stopping cleanly at a cut or corrupt tail (crash recovery).
import { BOX_OK, BoxCursor, findBox, fourcc, newBoxHeader, readBoxHeader } from './mp4-box.ts';
import type { BoxHeader } from './mp4-box.ts';
import { ParseError } from './types.ts';

export interface ScannedTrack {
  trackId: number;
  /** hdlr handler_type: 'vide', 'soun', or whatever the file says. */
  handler: string;
  timescale: number;
}

export interface ScannedFragment {
  /** Byte offset of the moof. */
  offset: number;
  /** moof + mdat bytes. */
  size: number;
  sequenceNumber: number;
  /** Per track (moov order): tfdt baseMediaDecodeTime, or -1 when the track has no samples here. */
  firstTrackBaseDts: number[];
  /** Per track: sum of sample durations (track ticks). */
  durations: number[];
  sampleCounts: number[];
  /** First video sample is a sync sample (true for audio-only files; false if the fragment has no video). */
  keyframe: boolean;
}

export interface ScanResult {
  /** Offset after the moov; 0 if no complete moov was found. */
  initEnd: number;
  tracks: ScannedTrack[];
  fragments: ScannedFragment[];
  /** Offset after the last complete moof+mdat (initEnd if none). Truncating here leaves a playable file. */
  validEnd: number;
  /**
   * The scan stopped before the end of the input: at a partial or corrupt box, or after
   * MAX_SCAN_FRAGMENTS fragments. Complete unknown boxes after the last fragment do not count.
   */
  truncated: boolean;
  /** Per track: decode time just past the last sample (base + durations), or -1 if none. */
  trackEnds: number[];
}

/** A one-hour segment with a fragment per frame at 60 fps is 216 000; beyond that, stop. */
export const MAX_SCAN_FRAGMENTS = 1 << 18;
/** Movies with more tracks than this are not ours; extra tracks are ignored. */
export const MAX_SCAN_TRACKS = 16;
/** Samples of one trun: 10 min at 240 fps; a larger count is corruption. */
const MAX_TRUN_SAMPLES = 1 << 17;

const T = {
  moov: fourcc('moov'), trak: fourcc('trak'), tkhd: fourcc('tkhd'), mdia: fourcc('mdia'),
  mdhd: fourcc('mdhd'), hdlr: fourcc('hdlr'), mvex: fourcc('mvex'), trex: fourcc('trex'),
  moof: fourcc('moof'), mfhd: fourcc('mfhd'), traf: fourcc('traf'), tfhd: fourcc('tfhd'),
  tfdt: fourcc('tfdt'), trun: fourcc('trun'), mdat: fourcc('mdat'), vide: fourcc('vide'),
};

/** Track state the fragments refer to: ids, trex defaults. */
interface Track extends ScannedTrack {
  video: boolean;
  defaultDuration: number;
  defaultSize: number;
  defaultFlags: number;
}

const NON_SYNC = 0x00010000; // §8.8.3.1 sample_is_non_sync_sample

/**
 * Walk the top-level boxes of `file` (ISO/IEC 14496-12 §4.2, §8.8). Unknown boxes (ftyp,
 * styp, free, sidx, …) are skipped; a moof must be followed by its mdat. Stops at the
 * first partial or corrupt box and reports what was complete before it. Never throws.
 */
export function scanFragments(file: Uint8Array): ScanResult {
  const res: ScanResult = { initEnd: 0, tracks: [], fragments: [], validEnd: 0, truncated: false, trackEnds: [] };
  let tracks: Track[] | null = null;
  const h = newBoxHeader();
  const m = newBoxHeader();
  const len = file.length;
  let pos = 0;
  while (pos < len) {
    if (readBoxHeader(file, pos, len, h) !== BOX_OK) break;
    if (h.type === T.moov) {
      tracks = parseMoov(file, h);
      if (!tracks) break;
      res.tracks = tracks.map((t) => ({ trackId: t.trackId, handler: t.handler, timescale: t.timescale }));
      res.trackEnds = tracks.map(() => -1);
      res.initEnd = res.validEnd = h.end;
    } else if (h.type === T.moof) {
      if (!tracks || res.fragments.length >= MAX_SCAN_FRAGMENTS) break;
      if (readBoxHeader(file, h.end, len, m) !== BOX_OK || m.type !== T.mdat) break;
      const frag = parseMoof(file, h, m, tracks, res.trackEnds);
      if (!frag) break;
      res.fragments.push(frag);
      for (let t = 0; t < tracks.length; t++) {
        const base = frag.firstTrackBaseDts[t]!;
        if (base >= 0) res.trackEnds[t] = base + frag.durations[t]!;
      }
      res.validEnd = m.end;
      pos = m.end;
      continue;
    }
    pos = h.end;
  }
  res.truncated = pos < len;
  return res;
}

function parseMoov(b: Uint8Array, moov: BoxHeader): Track[] | null {
  const tracks: Track[] = [];
  const h = newBoxHeader();
  const sub = newBoxHeader();
  try {
    let pos = moov.body;
    while (pos < moov.end) {
      if (readBoxHeader(b, pos, moov.end, h) !== BOX_OK) return null;
      pos = h.end;
      if (h.type !== T.trak || tracks.length >= MAX_SCAN_TRACKS) continue;
      if (!findBox(b, h.body, h.end, T.tkhd, sub)) return null;
      let c = new BoxCursor(b, sub.body, sub.end);
      let v = c.u8();
      c.skip(3 + (v === 1 ? 16 : 8)); // flags, creation + modification time
      const trackId = c.u32();
      if (!findBox(b, h.body, h.end, T.mdia, sub)) return null;
      const mdiaBody = sub.body, mdiaEnd = sub.end;
      if (!findBox(b, mdiaBody, mdiaEnd, T.mdhd, sub)) return null;
      c = new BoxCursor(b, sub.body, sub.end);
      v = c.u8();
      c.skip(3 + (v === 1 ? 16 : 8));
      const timescale = c.u32();
      if (!findBox(b, mdiaBody, mdiaEnd, T.hdlr, sub)) return null;
      c = new BoxCursor(b, sub.body, sub.end);
      c.skip(8); // version, flags, pre_defined
      const handlerType = c.u32();
      const handler = String.fromCharCode(handlerType >>> 24, (handlerType >>> 16) & 0xff, (handlerType >>> 8) & 0xff, handlerType & 0xff);
      if (timescale === 0) return null;
      tracks.push({ trackId, handler, timescale, video: handlerType === T.vide, defaultDuration: 0, defaultSize: 0, defaultFlags: 0 });
    }
    applyTrexDefaults(b, moov, tracks);
    return tracks;
  } catch {
    return null; // ParseError: a field ran past its box
  }
}

/** Track fields that trex boxes give defaults for. */
export interface TrexDefaults {
  trackId: number;
  defaultDuration: number;
  defaultSize: number;
  defaultFlags: number;
}

/**
 * ISO/IEC 14496-12 §8.8.3 trex: the defaults a tfhd/trun may leave out, from the moov's mvex,
 * written into the matching tracks. Throws ParseError for a corrupt mvex.
 */
export function applyTrexDefaults(b: Uint8Array, moov: BoxHeader, tracks: TrexDefaults[]): void {
  const h = newBoxHeader();
  const sub = newBoxHeader();
  if (!findBox(b, moov.body, moov.end, T.mvex, h)) return;
  for (let pos = h.body; pos < h.end; pos = sub.end) {
    if (readBoxHeader(b, pos, h.end, sub) !== BOX_OK) throw new ParseError('bad box in mvex', pos);
    if (sub.type !== T.trex) continue;
    const c = new BoxCursor(b, sub.body, sub.end);
    c.skip(4); // version and flags
    const id = c.u32();
    const t = tracks.find((x) => x.trackId === id);
    c.skip(4); // default_sample_description_index
    const d = c.u32(), sz = c.u32(), f = c.u32();
    if (t) {
      t.defaultDuration = d;
      t.defaultSize = sz;
      t.defaultFlags = f;
    }
  }
}

/** One moof (+ its mdat) summarised per track; null when inconsistent. */
function parseMoof(b: Uint8Array, moof: BoxHeader, mdat: BoxHeader, tracks: Track[], ends: number[]): ScannedFragment | null {
  const n = tracks.length;
  const frag: ScannedFragment = {
    offset: moof.start,
    size: mdat.end - moof.start,
    sequenceNumber: 0,
    firstTrackBaseDts: new Array<number>(n).fill(-1),
    durations: new Array<number>(n).fill(0),
    sampleCounts: new Array<number>(n).fill(0),
    keyframe: !tracks.some((t) => t.video),
  };
  const h = newBoxHeader();
  const sub = newBoxHeader();
  let firstVideoSeen = false;
  let dataBytes = 0;
  try {
    if (!findBox(b, moof.body, moof.end, T.mfhd, h)) return null;
    const mf = new BoxCursor(b, h.body, h.end);
    mf.skip(4);
    frag.sequenceNumber = mf.u32();
    let pos = moof.body;
    while (pos < moof.end) {
      if (readBoxHeader(b, pos, moof.end, h) !== BOX_OK) return null;
      pos = h.end;
      if (h.type !== T.traf) continue;
      // §8.8.7 tfhd
      if (!findBox(b, h.body, h.end, T.tfhd, sub)) return null;
      let c = new BoxCursor(b, sub.body, sub.end);
      const tfFlags = c.u32() & 0xffffff;
      const id = c.u32();
      const idx = tracks.findIndex((t) => t.trackId === id);
      if (idx < 0) continue; // a track the moov does not declare: ignore its traf
      const tr = tracks[idx]!;
      const hasBaseOffset = (tfFlags & 0x1) !== 0;
      if (hasBaseOffset) c.u64();
      if (tfFlags & 0x2) c.skip(4);
      const defDur = tfFlags & 0x8 ? c.u32() : tr.defaultDuration;
      const defSize = tfFlags & 0x10 ? c.u32() : tr.defaultSize;
      const defFlags = tfFlags & 0x20 ? c.u32() : tr.defaultFlags;
      const moofRelative = !hasBaseOffset; // default-base-is-moof, or first traf without base: both moof
      // §8.8.12 tfdt; absent: continue from the track's previous end.
      let base = ends[idx]! >= 0 ? ends[idx]! : 0;
      if (findBox(b, h.body, h.end, T.tfdt, sub)) {
        c = new BoxCursor(b, sub.body, sub.end);
        const v = c.u8();
        c.skip(3);
        base = v === 1 ? c.u64() : c.u32();
      }
      // §8.8.8 trun (one or more)
      let tp = h.body;
      while (tp < h.end) {
        if (readBoxHeader(b, tp, h.end, sub) !== BOX_OK) return null;
        tp = sub.end;
        if (sub.type !== T.trun) continue;
        c = new BoxCursor(b, sub.body, sub.end);
        const trFlags = c.u32() & 0xffffff;
        const count = c.u32();
        if (count > MAX_TRUN_SAMPLES) return null;
        const dataOffset = trFlags & 0x1 ? c.i32() : -1;
        const firstFlags = trFlags & 0x4 ? c.u32() : -1;
        const hasDur = (trFlags & 0x100) !== 0, hasSize = (trFlags & 0x200) !== 0;
        const hasFlags = (trFlags & 0x400) !== 0, hasCts = (trFlags & 0x800) !== 0;
        const per = 4 * (+hasDur + +hasSize + +hasFlags + +hasCts);
        c.need(per * count);
        let dur = 0, bytes = 0, first = -1;
        if (per === 0) {
          dur = count * defDur;
          bytes = count * defSize;
          first = firstFlags >= 0 ? firstFlags : defFlags;
        } else {
          for (let i = 0; i < count; i++) {
            dur += hasDur ? c.u32() : defDur;
            bytes += hasSize ? c.u32() : defSize;
            const f = hasFlags ? c.u32() : defFlags;
            if (hasCts) c.skip(4);
            if (i === 0) first = firstFlags >= 0 ? firstFlags : f;
          }
        }
        if (moofRelative && dataOffset >= 0) {
          const at = moof.start + dataOffset;
          if (at < mdat.body || at + bytes > mdat.end) return null;
        }
        dataBytes += bytes;
        if (count === 0) continue;
        if (frag.sampleCounts[idx] === 0) frag.firstTrackBaseDts[idx] = base;
        frag.sampleCounts[idx]! += count;
        frag.durations[idx]! += dur;
        if (tr.video && !firstVideoSeen) {
          firstVideoSeen = true;
          frag.keyframe = (first & NON_SYNC) === 0;
        }
      }
    }
    if (dataBytes > mdat.end - mdat.body) return null;
    return frag;
  } catch {
    return null; // ParseError: a field ran past its box
  }
}
