// HLS VOD playlists (RFC 8216) over recorded segments: byte ranges into the segment files,
// one EXT-X-MAP per file, discontinuities where recording stopped or the codec set-up changed,
// an I-frame playlist for fast speeds, and a master playlist tying both together.
import { fragmentRange, type PlaySegment } from './recording-files.ts';

export interface HlsEntry {
  seg: PlaySegment;
  /** First and last (inclusive) fragment of the segment in the playlist. */
  first: number;
  last: number;
  /** Timestamps restart or the decoder set-up changes here (RFC 8216 §4.3.2.3). */
  discontinuity: boolean;
  /** Unrecorded wall time before this entry (ms; 0 when contiguous). */
  gapBeforeMs: number;
  /** Per fragment of seg: starts with a keyframe (needed for the I-frame playlist only). */
  keyframes?: boolean[];
}

const iso = (ms: number) => new Date(ms).toISOString();
const secs = (ms: number) => (Math.max(1, ms) / 1000).toFixed(3);

function fragmentMs(s: PlaySegment, i: number): number {
  return (i + 1 < s.times.length ? s.times[i + 1]! : s.rec.end_ms - s.rec.start_ms) - s.times[i]!;
}

function header(maxMs: number, iframes: boolean): string[] {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', `#EXT-X-TARGETDURATION:${Math.max(1, Math.ceil(maxMs / 1000))}`, '#EXT-X-MEDIA-SEQUENCE:0', '#EXT-X-PLAYLIST-TYPE:VOD'];
  if (iframes) lines.push('#EXT-X-I-FRAMES-ONLY');
  return lines;
}

function entryHead(e: HlsEntry, uri: string, atMs: number): string[] {
  const lines: string[] = [];
  if (e.gapBeforeMs > 0) lines.push(`# gap: ${iso(atMs - e.gapBeforeMs)} to ${iso(atMs)} not recorded (${secs(e.gapBeforeMs)} s)`);
  if (e.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
  lines.push(`#EXT-X-MAP:URI="${uri}",BYTERANGE="${e.seg.offsets[0]!}@0"`);
  lines.push(`#EXT-X-PROGRAM-DATE-TIME:${iso(atMs)}`);
  return lines;
}

/** RFC 8216 §4.3: one EXTINF + EXT-X-BYTERANGE per fragment. `uriOf` names a segment's file URL. */
export function mediaPlaylist(entries: readonly HlsEntry[], uriOf: (s: PlaySegment) => string): string {
  let maxMs = 0;
  const body: string[] = [];
  for (const e of entries) {
    const uri = uriOf(e.seg);
    body.push(...entryHead(e, uri, e.seg.rec.start_ms + e.seg.times[e.first]!));
    for (let i = e.first; i <= e.last; i++) {
      const d = fragmentMs(e.seg, i);
      if (d > maxMs) maxMs = d;
      const [from, to] = fragmentRange(e.seg, i);
      body.push(`#EXTINF:${secs(d)},`, `#EXT-X-BYTERANGE:${to - from}@${from}`, uri);
    }
  }
  return [...header(maxMs, false), ...body, '#EXT-X-ENDLIST', ''].join('\n');
}

/**
 * RFC 8216 §4.3.3.6 I-frame playlist: one entry per fragment that starts with a keyframe
 * (the recorder cuts a fragment at every keyframe, so it holds one I-frame and the frames up to
 * the next cut); its EXTINF spans until the next keyframe. The byte range is that whole fragment.
 */
export function iframePlaylist(entries: readonly HlsEntry[], uriOf: (s: PlaySegment) => string): string {
  let maxMs = 0;
  const body: string[] = [];
  for (const e of entries) {
    const flags = e.keyframes ?? [];
    const uri = uriOf(e.seg);
    let headDone = false;
    for (let i = e.first; i <= e.last; i++) {
      if (!flags[i]) continue;
      let d = fragmentMs(e.seg, i);
      for (let j = i + 1; j <= e.last && !flags[j]; j++) d += fragmentMs(e.seg, j);
      if (!headDone) {
        body.push(...entryHead(e, uri, e.seg.rec.start_ms + e.seg.times[i]!));
        headDone = true;
      }
      if (d > maxMs) maxMs = d;
      const [from, to] = fragmentRange(e.seg, i);
      body.push(`#EXTINF:${secs(d)},`, `#EXT-X-BYTERANGE:${to - from}@${from}`, uri);
    }
  }
  return [...header(maxMs, true), ...body, '#EXT-X-ENDLIST', ''].join('\n');
}

/** RFC 8216 §4.3.4.2-3: the media playlist and its I-frame playlist as one variant. */
export function masterPlaylist(o: { bandwidth: number; iframeBandwidth: number; width: number; height: number; media: string; iframes: string }): string {
  const res = o.width > 0 && o.height > 0 ? `,RESOLUTION=${o.width}x${o.height}` : '';
  return [
    '#EXTM3U',
    '#EXT-X-VERSION:7',
    `#EXT-X-STREAM-INF:BANDWIDTH=${Math.max(1, Math.round(o.bandwidth))}${res}`,
    o.media,
    `#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=${Math.max(1, Math.round(o.iframeBandwidth))}${res},URI="${o.iframes}"`,
    '',
  ].join('\n');
}
