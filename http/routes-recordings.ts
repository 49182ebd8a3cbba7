// Recording routes: the segment and gap listing, segment bytes with Range requests, and the
// HLS playlists (media, I-frame, master) built from the index.
import { statSync } from 'node:fs';
import type { Context, Hono } from 'hono';
import type { Engine } from '../engine/engine.ts';
import type { SegmentRecord } from '../engine/index-db.ts';
import { sameTracks } from '../media/fmp4-read.ts';
import type { AppContext } from './app.ts';
import { HttpError, notFound } from './errors.ts';
import { iframePlaylist, masterPlaylist, mediaPlaylist, type HlsEntry } from './hls.ts';
import { numberParam, rangeParams, streamIdParam } from './params.ts';
import { fragmentAt, fragmentSpan, GAP_TOLERANCE_MS, playableSegments, recordingGaps, segmentFile, type PlaySegment, type RecordingFiles } from './recording-files.ts';

const HOUR_MS = 3_600_000;
/** Listing: segments per answer (page on with next_start); 10 000 one-minute segments is a week. */
const LIST_DEFAULT_LIMIT = 1000;
const LIST_MAX_LIMIT = 10_000;
/** Listing walks the index in windows of this size, so a huge range never builds a huge array. */
const LIST_WINDOW_MS = 6 * HOUR_MS;
/** Playlists: 6 h of 1 s fragments is ~22k entries (~1.5 MB of text). */
const PLAYLIST_MAX_SPAN_MS = 6 * HOUR_MS;
const MPEGURL = 'application/vnd.apple.mpegurl';

/** Unrecorded stretches of a range, as JSON pairs in a response header (ms). */
export function gapsHeader(gaps: ReadonlyArray<readonly [number, number]>): string {
  return JSON.stringify(gaps.slice(0, 200)); // bounded: a header is not a listing
}

export function requireStream(engine: Engine, id: string): void {
  if (!engine.streams.has(id) && engine.index.streamStats(id).count === 0) throw notFound(`no stream ${id}`);
}

const segmentUrl = (id: string, r: SegmentRecord) => `/api/video/recordings/${id}/segments/${r.start_ms}.mp4`;

export function recordingRoutes(app: Hono, { engine, files }: AppContext): void {
  app.get('/api/video/recordings/:id', (c) => {
    const id = streamIdParam(c);
    requireStream(engine, id);
    const now = Date.now();
    // The span is not capped: the walk is, by `limit` and in windows.
    const { start, end } = rangeParams(c, { defaultSpanMs: 24 * HOUR_MS, maxSpanMs: Number.MAX_SAFE_INTEGER, endsNow: true }, now);
    const limit = numberParam(c, 'limit', 1, LIST_MAX_LIMIT, LIST_DEFAULT_LIMIT);
    const stats = engine.index.streamStats(id);
    const from = Math.max(start, stats.firstStartMs ?? start);
    const segments: SegmentRecord[] = [];
    let covered = from;
    let truncated = false;
    for (let w = from; w < end && !truncated; w += LIST_WINDOW_MS) {
      const wEnd = Math.min(end, w + LIST_WINDOW_MS);
      for (const s of engine.index.querySegments(id, w, wEnd, now)) {
        if (segments.length > 0 && s.start_ms <= segments.at(-1)!.start_ms) continue; // seen in the previous window
        if (segments.length >= limit) { truncated = true; covered = s.start_ms; break; }
        segments.push(s);
      }
      if (!truncated) covered = wEnd;
    }
    const gaps = recordingGaps(engine.index, id, from, covered, now);
    return c.json({
      stream_id: id,
      start,
      end,
      segments: segments.map((s) => {
        const segEnd = s.state === 'open' ? Math.max(s.end_ms, now) : s.end_ms;
        return {
          start_ms: s.start_ms, end_ms: segEnd, duration_ms: segEnd - s.start_ms, bytes: s.bytes, codecs: s.codecs,
          width: s.width, height: s.height, state: s.state, url: s.state === 'open' ? null : segmentUrl(id, s),
        };
      }),
      gaps: gaps.map(([a, b]) => ({ start_ms: a, end_ms: b, duration_ms: b - a })),
      truncated,
      ...(truncated ? { next_start: covered } : {}),
    });
  });

  app.get('/api/video/recordings/:id/segments/:file', (c) => {
    const id = streamIdParam(c);
    const m = /^(\d{1,16})\.mp4$/.exec(c.req.param('file'));
    const rec = m ? engine.index.getSegment(id, Number(m[1])) : undefined;
    if (rec === undefined) throw notFound(`no segment ${c.req.param('file')} of ${id}`);
    return serveFile(c, segmentFile(engine.basePath, rec.path), rec.state !== 'open');
  });

  app.get('/api/video/recordings/:id/playlist.m3u8', async (c) => {
    const { entries, gaps, token } = await playlistEntries(c, engine, files, false);
    c.header('X-Flux-Gaps', gapsHeader(gaps));
    return c.body(mediaPlaylist(entries, (s) => `segments/${s.rec.start_ms}.mp4${token}`), 200, { 'Content-Type': MPEGURL, 'Cache-Control': 'no-store' });
  });

  app.get('/api/video/recordings/:id/iframes.m3u8', async (c) => {
    const { entries, gaps, token } = await playlistEntries(c, engine, files, true);
    c.header('X-Flux-Gaps', gapsHeader(gaps));
    return c.body(iframePlaylist(entries, (s) => `segments/${s.rec.start_ms}.mp4${token}`), 200, { 'Content-Type': MPEGURL, 'Cache-Control': 'no-store' });
  });

  app.get('/api/video/recordings/:id/master.m3u8', async (c) => {
    const { entries, start, end, token } = await playlistEntries(c, engine, files, true);
    let bytes = 0, keyBytes = 0, ms = 0;
    for (const e of entries) {
      for (let i = e.first; i <= e.last; i++) {
        const [a, b] = fragmentSpan(e.seg, i);
        const n = (i + 1 < e.seg.offsets.length ? e.seg.offsets[i + 1]! : e.seg.rec.bytes) - e.seg.offsets[i]!;
        bytes += n;
        if (e.keyframes?.[i]) keyBytes += n;
        ms += b - a;
      }
    }
    const q = `?start=${start}&end=${end}${token.replace('?', '&')}`;
    const last = entries.at(-1)!.seg.rec;
    const text = masterPlaylist({
      bandwidth: (bytes * 8000) / Math.max(1, ms), iframeBandwidth: (keyBytes * 8000) / Math.max(1, ms),
      width: last.width, height: last.height, media: `playlist.m3u8${q}`, iframes: `iframes.m3u8${q}`,
    });
    return c.body(text, 200, { 'Content-Type': MPEGURL, 'Cache-Control': 'no-store' });
  });
}

/** The playlist's segments and fragments for ?start=&end= (default: the last hour). */
async function playlistEntries(c: Context, engine: Engine, files: RecordingFiles, withKeyframes: boolean) {
  const id = streamIdParam(c);
  requireStream(engine, id);
  const { start, end } = rangeParams(c, { defaultSpanMs: HOUR_MS, maxSpanMs: PLAYLIST_MAX_SPAN_MS });
  const segs = playableSegments(engine.index, engine.basePath, id, start, end);
  const entries: HlsEntry[] = [];
  let prev: PlaySegment | null = null;
  for (const seg of segs) {
    let first = 0, last = seg.offsets.length - 1;
    while (first < last && fragmentSpan(seg, first)[1] <= start) first++;
    while (last > first && fragmentSpan(seg, last)[0] >= end) last--;
    const keyframes = withKeyframes || entries.length === 0 ? await files.keyframes(seg) : undefined;
    if (entries.length === 0 && keyframes) {
      // A player must start on a keyframe: back up to the one at or before start.
      let k = fragmentAt(seg, start);
      while (k > 0 && !keyframes[k]) k--;
      first = Math.min(first, k);
    }
    let discontinuity = false, gapBeforeMs = 0;
    if (prev !== null) {
      const moved = seg.rec.start_ms !== prev.rec.end_ms; // same recording run: the next segment starts where the last ended
      discontinuity = moved || !sameTracks((await files.init(prev)).info, (await files.init(seg)).info);
      const gap = seg.rec.start_ms - prev.rec.end_ms;
      gapBeforeMs = gap > GAP_TOLERANCE_MS ? gap : 0;
    }
    entries.push({ seg, first, last, discontinuity, gapBeforeMs, ...(keyframes ? { keyframes } : {}) });
    prev = seg;
  }
  if (entries.length === 0) throw notFound(`nothing recorded for ${id} between ${new Date(start).toISOString()} and ${new Date(end).toISOString()}`);
  const token = c.req.query('token');
  return {
    entries, start, end,
    gaps: recordingGaps(engine.index, id, start, end),
    token: token ? `?token=${encodeURIComponent(token)}` : '',
  };
}

/** RFC 9110 §14: one byte range (206), unsatisfiable (416), or the whole file (200). Sendfile-backed. */
function serveFile(c: Context, path: string, immutable: boolean): Response {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw notFound('the segment file is gone (retention or a manual delete)');
  }
  const headers: Record<string, string> = {
    'Content-Type': 'video/mp4',
    'Accept-Ranges': 'bytes',
    'Cache-Control': immutable ? 'private, max-age=86400, immutable' : 'no-store',
  };
  const file = Bun.file(path);
  const range = parseRange(c.req.header('range'), size);
  if (range === 'unsatisfiable') {
    throw new HttpError(416, `range not satisfiable: the file has ${size} bytes`, undefined, { 'Content-Range': `bytes */${size}` });
  }
  if (range === null) return new Response(file, { status: 200, headers: { ...headers, 'Content-Length': String(size) } });
  const [a, b] = range;
  return new Response(file.slice(a, b + 1), {
    status: 206,
    headers: { ...headers, 'Content-Range': `bytes ${a}-${b}/${size}`, 'Content-Length': String(b - a + 1) },
  });
}

/**
 * `bytes=a-b`, `bytes=a-`, `bytes=-n` -> inclusive [a, b]; null to serve the whole file (no
 * header, a malformed one, or several ranges: RFC 9110 §14.2 lets a server ignore those).
 */
export function parseRange(h: string | undefined, size: number): [number, number] | null | 'unsatisfiable' {
  if (h === undefined) return null;
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const a = Number(m[1]);
  const b = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < a) return null; // last < first: invalid, ignore
  if (a >= size) return 'unsatisfiable';
  return [a, b];
}
