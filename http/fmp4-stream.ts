// One continuous fragmented MP4 over a range of recorded segments (playback and export): one
// init, then the recorded fragments re-muxed with decode times rewritten onto one timeline,
// optionally keyframes only, produced one fragment at a time so memory stays bounded.
import { open } from 'node:fs/promises';
import type { Engine } from '../engine/engine.ts';
import { log } from '../engine/log.ts';
import { FragmentBuilder } from '../media/fmp4-fragment.ts';
import { addRecordedSample, newRemuxUnit, readFragment, remuxTracks, runDuration, sameTracks, type InitInfo, type RecordedFragment, type RecordedSample } from '../media/fmp4-read.ts';
import { ParseError } from '../media/types.ts';
import { conflict, notFound } from './errors.ts';
import { fragmentAt, fragmentRange, GAP_TOLERANCE_MS, playableSegments, readAt, recordingGaps, type PlaySegment, type RecordingFiles } from './recording-files.ts';

export interface StreamPlan {
  streamId: string;
  segments: PlaySegment[];
  init: Uint8Array;
  info: InitInfo;
  /** Fragment of segments[0] to start at: the keyframe at or before the requested start. */
  firstFragment: number;
  /** Wall ms of that keyframe. */
  startMs: number;
  endMs: number;
  /** Unrecorded stretches inside [start, end) from the index (edges included). */
  gaps: Array<[number, number]>;
  /** Set when the codec set-up changes inside the range and the plan stops there. */
  cutAtMs: number | null;
}

/**
 * Chooses the segments of [start, end). Where the decoder set-up changes (different stsd), a
 * single init cannot describe what follows: `onChange: 'cut'` ends the plan there (cutAtMs),
 * `'refuse'` answers 409 naming the time, so the client can ask for the two halves.
 */
export async function planStream(engine: Engine, files: RecordingFiles, streamId: string, start: number, end: number, onChange: 'cut' | 'refuse'): Promise<StreamPlan> {
  const all = playableSegments(engine.index, engine.basePath, streamId, start, end);
  if (all.length === 0) throw notFound(`nothing recorded for ${streamId} between ${new Date(start).toISOString()} and ${new Date(end).toISOString()}`);
  const first = await files.init(all[0]!);
  const segments = [all[0]!];
  let cutAtMs: number | null = null;
  for (const s of all.slice(1)) {
    if (!sameTracks(first.info, (await files.init(s)).info)) {
      cutAtMs = s.rec.start_ms;
      if (onChange === 'refuse') {
        throw conflict(`the codec parameters change at ${new Date(cutAtMs).toISOString()} (${cutAtMs}); export [start, ${cutAtMs}) and [${cutAtMs}, end) separately`);
      }
      break;
    }
    segments.push(s);
  }
  const s0 = segments[0]!;
  const flags = await files.keyframes(s0);
  let firstFragment = 0;
  for (let i = fragmentAt(s0, start); i >= 0; i--) if (flags[i]) { firstFragment = i; break; }
  const endMs = cutAtMs ?? end;
  return {
    streamId, segments, init: first.bytes, info: first.info, firstFragment,
    startMs: Math.max(s0.rec.start_ms + s0.times[firstFragment]!, 0), endMs,
    gaps: recordingGaps(engine.index, streamId, start, endMs),
    cutAtMs,
  };
}

export interface StreamOptions {
  /** Only video sync samples, each lasting until the next one. */
  keyframesOnly: boolean;
  /** Keep unrecorded time as a jump in the timeline (export); otherwise close it up (playback). */
  keepGaps: boolean;
  /** Drop samples at or after plan.endMs (export); otherwise whole fragments starting before it are sent. */
  trimEnd: boolean;
}

export interface StreamChunk {
  bytes: Uint8Array;
  /** Output media time of the chunk's first sample, ms (0 for the init). */
  mediaMs: number;
  durationMs: number;
}

interface Pending { data: Uint8Array; sample: RecordedSample; dts: number }

/** Yields the init, then one re-muxed fragment at a time. A fragment that fails to parse is skipped and logged. */
export async function* fmp4Stream(plan: StreamPlan, o: StreamOptions): AsyncGenerator<StreamChunk> {
  yield { bytes: plan.init, mediaMs: 0, durationMs: 0 };
  const tracks = plan.info.tracks;
  const v = Math.max(0, tracks.findIndex((t) => t.video));
  const tsV = tracks[v]!.timescale;
  const builder = new FragmentBuilder(remuxTracks(plan.info));
  const unit = newRemuxUnit();
  let seq = 1;
  let shift = 0; // output dts = input dts + shift (video ticks)
  let prevInEnd = -1; // input dts just past the last video sample sent
  let outEnd = 0;
  let wallEnd = -1;
  let pending: Pending | null = null;

  const emit = (bases: number[], dur: number, mediaTicks: number): StreamChunk => {
    const bytes = Buffer.concat(builder.finish(bases));
    builder.release();
    seq++;
    return { bytes, mediaMs: (mediaTicks * 1000) / tsV, durationMs: (dur * 1000) / tsV };
  };
  const flushPending = (duration: number): StreamChunk => {
    const p = pending!;
    pending = null;
    builder.begin(seq);
    addRecordedSample(builder, v, true, p.data, p.sample, Math.max(1, duration), unit);
    return emit(tracks.map((_, i) => (i === v ? p.dts : 0)), duration, p.dts);
  };

  for (let si = 0; si < plan.segments.length; si++) {
    const seg = plan.segments[si]!;
    const fh = await open(seg.file, 'r');
    try {
      for (let i = si === 0 ? plan.firstFragment : 0; i < seg.offsets.length; i++) {
        const wall = seg.rec.start_ms + seg.times[i]!;
        if (wall >= plan.endMs) break;
        const [from, to] = fragmentRange(seg, i);
        let data: Uint8Array;
        let frag: RecordedFragment;
        try {
          data = await readAt(fh, from, to);
          frag = readFragment(data, plan.info, from);
        } catch (e) {
          if (!(e instanceof ParseError)) throw e;
          log.warn(`${plan.streamId}: skipping unreadable fragment ${i} of ${seg.rec.path}: ${e.message}`);
          continue;
        }
        const vr = frag.runs.find((r) => r.track === v);
        if (vr === undefined) continue;
        // Same recording run: keep the exact deltas. Otherwise join the timeline, keeping or closing the gap.
        if (vr.baseDts !== prevInEnd) {
          const gapMs = wallEnd < 0 ? 0 : wall - wallEnd;
          const gap = o.keepGaps && gapMs > GAP_TOLERANCE_MS ? Math.round((gapMs * tsV) / 1000) : 0;
          shift = (wallEnd < 0 ? 0 : outEnd + gap) - vr.baseDts;
        }
        const cut = o.trimEnd ? vr.baseDts + Math.ceil(((plan.endMs - wall) * tsV) / 1000) : Number.POSITIVE_INFINITY;
        let inEnd = vr.baseDts;
        if (o.keyframesOnly) {
          let dts = vr.baseDts;
          for (const s of vr.samples) {
            if (dts >= cut) break;
            if (s.sync) {
              if (pending !== null) yield flushPending(dts + shift - pending.dts);
              pending = { data, sample: s, dts: dts + shift };
            }
            dts += s.duration;
          }
          inEnd = Math.min(dts, vr.baseDts + runDuration(vr));
        } else {
          builder.begin(seq);
          const bases = tracks.map(() => 0);
          let added = 0;
          for (const r of frag.runs) {
            const tr = tracks[r.track]!;
            const k = tr.timescale / tsV;
            let dts = r.baseDts;
            const cutT = cut === Number.POSITIVE_INFINITY ? cut : Math.round(vr.baseDts * k) + Math.ceil(((plan.endMs - wall) * tr.timescale) / 1000);
            bases[r.track] = Math.max(0, r.baseDts + Math.round(shift * k));
            for (const s of r.samples) {
              if (dts >= cutT) break;
              if (addRecordedSample(builder, r.track, tr.video, data, s, s.duration, unit)) added++;
              dts += s.duration;
            }
            if (r.track === v) inEnd = dts;
          }
          if (added > 0) yield emit(bases, inEnd - vr.baseDts, vr.baseDts + shift);
        }
        prevInEnd = inEnd;
        outEnd = inEnd + shift;
        wallEnd = wall + ((inEnd - vr.baseDts) * 1000) / tsV;
        if (inEnd >= cut) break;
      }
    } finally {
      await fh.close();
    }
  }
  if (pending !== null) yield flushPending(Math.max(1, outEnd - (pending as Pending).dts));
}
