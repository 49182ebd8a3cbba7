// The `file` source: an Annex-B H.264/H.265 file looped at real-time pace, timestamps
// continuing across loops. The file is read once; each frame is a view copied into the ring.
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { splitAnnexB } from '../media/annexb.ts';
import { splitAccessUnits } from '../media/annexb-au.ts';
import { videoTrackInfoH264 } from '../media/h264-config.ts';
import { videoTrackInfoH265 } from '../media/h265-config.ts';
import { presentationOffsets, PocCounter } from '../media/poc.ts';
import { VIDEO_TIMESCALE, type VideoCodec, type VideoTrackInfo } from '../media/types.ts';
import { ANNEXB_CTS_BYTES, FLAG_KEYFRAME, KIND_ANNEXB_AU } from '../workers/ring-format.ts';
import type { StreamHandle } from './media-pool.ts';

/** A looping demo/test clip is held in memory: refuse files that would not fit well. */
const MAX_FILE_BYTES = 512 << 20;
/** After an event-loop stall, send at most this many late frames at once, then skip ahead. */
const MAX_CATCH_UP_FRAMES = 50;

export class SourceError extends Error {
  override name = 'SourceError';
}

export interface FileClip {
  path: string;
  codec: VideoCodec;
  fps: number;
  track: VideoTrackInfo;
  bytes: Uint8Array;
  aus: { offset: number; length: number; keyframe: boolean }[];
  /** Per access unit, [composition-offset prefix, unit bytes] as the ring record's parts
   *  (made once, so pacing allocates nothing per frame). */
  parts: [Uint8Array, Uint8Array][];
  /** Pictures are stored out of presentation order (B-frames). */
  reordered: boolean;
}

/** Reads and indexes a clip named by a `file:///abs/path.h264[?fps=N][&codec=h265]` URL. */
export function loadClip(sourceUrl: string): FileClip {
  let url: URL;
  try {
    url = new URL(sourceUrl);
  } catch {
    throw new SourceError(`source_url ${JSON.stringify(sourceUrl)} is not a URL`);
  }
  if (url.protocol !== 'file:') throw new SourceError(`source_url ${sourceUrl}: the file source needs a file:// URL`);
  const path = fileURLToPath(url); // the query (?fps=) is not part of the path
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new SourceError(`cannot read ${path}: ${(err as Error).message}`);
  }
  if (size > MAX_FILE_BYTES) throw new SourceError(`${path} is ${size} bytes; the file source loops clips of at most ${MAX_FILE_BYTES}`);
  const bytes = new Uint8Array(readFileSync(path));
  const codec = pickCodec(url, path, bytes);
  const aus = splitAccessUnits(bytes, codec);
  if (!aus.some((a) => a.keyframe)) throw new SourceError(`${path}: no keyframe (IDR/IRAP) found in ${aus.length} access units`);
  const track = trackInfo(bytes, aus, codec, path);
  const fpsParam = url.searchParams.get('fps');
  const fps = fpsParam !== null ? Number(fpsParam) : track.fps;
  if (!(fps > 0 && fps <= 240)) {
    throw new SourceError(
      fpsParam !== null
        ? `source_url ${sourceUrl}: fps=${fpsParam} must be a number from 1 to 240`
        : `${path}: the stream does not signal its frame rate; add ?fps=N to source_url`,
    );
  }
  const offsets = presentationOrder(bytes, aus, codec);
  const cts = new Int32Array(aus.length);
  const parts = aus.map((a, i): [Uint8Array, Uint8Array] => {
    cts[i] = Math.round((offsets[i]! * VIDEO_TIMESCALE) / fps);
    return [new Uint8Array(cts.buffer, i * ANNEXB_CTS_BYTES, ANNEXB_CTS_BYTES), bytes.subarray(a.offset, a.offset + a.length)];
  });
  return { path, codec, fps, track, bytes, aus, parts, reordered: offsets.some((o) => o !== 0) };
}

/**
 * Frames each access unit is presented after its decode slot. Annex-B files carry no
 * timestamps, so with B-frames the order comes from the slice headers' picture order count.
 */
function presentationOrder(bytes: Uint8Array, aus: FileClip['aus'], codec: VideoCodec): Int32Array {
  const poc = new PocCounter(codec);
  const pocs: number[] = [];
  const periodStarts: boolean[] = [];
  const nalus: Uint8Array[] = [];
  for (const au of aus) {
    splitAnnexB(bytes.subarray(au.offset, au.offset + au.length), nalus);
    let value = -1;
    let periodStart = false;
    for (const n of nalus) {
      const t = codec === 'h264' ? n[0]! & 0x1f : (n[0]! >> 1) & 0x3f;
      const isPs = codec === 'h264' ? t === 7 || t === 8 : t >= 32 && t <= 34;
      const isVcl = codec === 'h264' ? t >= 1 && t <= 5 : t <= 31;
      if (isPs) {
        try {
          poc.parameterSet(n);
        } catch {
          /* trackInfo() already vetted the first parameter sets; a later bad one costs only the order */
        }
      } else if (isVcl) {
        periodStart = codec === 'h264' ? t === 5 : t >= 16 && t <= 20;
        value = poc.picture(n);
        break;
      }
    }
    pocs.push(value);
    periodStarts.push(periodStart);
  }
  return presentationOffsets(pocs, periodStarts);
}

function pickCodec(url: URL, path: string, bytes: Uint8Array): VideoCodec {
  const p = url.searchParams.get('codec');
  if (p === 'h264' || p === 'h265') return p;
  if (p !== null) throw new SourceError(`source_url: codec=${p} must be h264 or h265`);
  if (/\.(h265|265|hevc)$/i.test(path)) return 'h265';
  if (/\.(h264|264|avc)$/i.test(path)) return 'h264';
  // Sniff the first NAL unit: H.265 VPS/SPS/PPS/AUD/SEI headers have byte 2 == 1.
  const nalus: Uint8Array[] = [];
  splitAnnexB(bytes.subarray(0, 4096), nalus, 16);
  const n = nalus[0];
  if (n !== undefined && n.length > 1 && n[1] === 1 && [32, 33, 34, 35, 39].includes((n[0]! >> 1) & 0x3f)) return 'h265';
  return 'h264';
}

function trackInfo(bytes: Uint8Array, aus: FileClip['aus'], codec: VideoCodec, path: string): VideoTrackInfo {
  const vps: Uint8Array[] = [], sps: Uint8Array[] = [], pps: Uint8Array[] = [];
  const nalus: Uint8Array[] = [];
  for (const au of aus) {
    if (!au.keyframe) continue;
    splitAnnexB(bytes.subarray(au.offset, au.offset + au.length), nalus);
    for (const n of nalus) {
      const t = codec === 'h264' ? n[0]! & 0x1f : (n[0]! >> 1) & 0x3f;
      if (codec === 'h264' ? t === 7 : t === 33) sps.push(n);
      else if (codec === 'h264' ? t === 8 : t === 34) pps.push(n);
      else if (codec === 'h265' && t === 32) vps.push(n);
    }
    if (sps.length > 0 && pps.length > 0) break;
  }
  if (sps.length === 0 || pps.length === 0) throw new SourceError(`${path}: no SPS/PPS before the first keyframe`);
  try {
    return codec === 'h264' ? videoTrackInfoH264(sps, pps) : videoTrackInfoH265(vps, sps, pps);
  } catch (err) {
    throw new SourceError(`${path}: unusable parameter sets: ${(err as Error).message}`, { cause: err });
  }
}

/** Paces one clip into a stream's ring. Driven by `tick(nowMs)` from a shared timer. */
export class FileSource {
  #clip: FileClip;
  #h: StreamHandle;
  #startMs: number;
  /** Frames sent (or skipped) since start; the clip index is this modulo the clip length. */
  #frame = 0;
  #waitKeyframe = false;
  skippedFrames = 0;

  constructor(clip: FileClip, handle: StreamHandle, startMs: number) {
    this.#clip = clip;
    this.#h = handle;
    this.#startMs = startMs;
    // Start at the first keyframe, so the first frame sent is decodable.
    this.#frame = clip.aus.findIndex((a) => a.keyframe);
  }

  tick(nowMs: number): void {
    const clip = this.#clip;
    const due = Math.floor(((nowMs - this.#startMs) * clip.fps) / 1000) + 1;
    if (due - this.#frame > MAX_CATCH_UP_FRAMES) {
      // The event loop stalled: skip ahead rather than burst, and resume at a keyframe.
      this.skippedFrames += due - MAX_CATCH_UP_FRAMES - this.#frame;
      this.#frame = due - MAX_CATCH_UP_FRAMES;
      this.#waitKeyframe = true;
    }
    const n = clip.aus.length;
    while (this.#frame < due) {
      const i = this.#frame % n;
      const au = clip.aus[i]!;
      const ts = Math.round((this.#frame * VIDEO_TIMESCALE) / clip.fps) >>> 0;
      this.#frame++;
      if (this.#waitKeyframe && !au.keyframe) {
        this.skippedFrames++;
        continue;
      }
      if (this.#h.writeParts(KIND_ANNEXB_AU, au.keyframe ? FLAG_KEYFRAME : 0, ts, clip.parts[i]!)) this.#waitKeyframe = false;
      else this.#waitKeyframe = true; // ring full: counted by the handle; resume at a keyframe
    }
  }
}
