// Playback routes: an fMP4 stream paced at `speed` (keyframes only above 4x) and the export of
// a range as one MP4 download. Both are pulled one fragment at a time: a slow client holds
// back the reading, never a growing buffer.
import type { Context, Hono } from 'hono';
import { log } from '../engine/log.ts';
import type { AppContext } from './app.ts';
import { fmp4Stream, planStream, type StreamChunk, type StreamOptions, type StreamPlan } from './fmp4-stream.ts';
import { numberParam, rangeParams, streamIdParam } from './params.ts';
import { gapsHeader, requireStream } from './routes-recordings.ts';

const HOUR_MS = 3_600_000;
export const MIN_SPEED = 0.5;
export const MAX_SPEED = 16;
/** Above this speed only keyframes are sent (decoding every frame at 8x-16x is the client's bottleneck). */
export const KEYFRAMES_ONLY_ABOVE = 4;
/** A paced stream runs this far (wall time) ahead of the pace, so the player's buffer never runs dry. */
const PLAYBACK_LEAD_MS = 500;
/** Playback is paced, so long ranges cost little; 24 h bounds the plan. */
const PLAYBACK_MAX_SPAN_MS = 24 * HOUR_MS;
/** Export files: 6 h at 4 Mbit/s is ~11 GB; longer exports are split by the client. */
const EXPORT_MAX_SPAN_MS = 6 * HOUR_MS;

function planHeaders(plan: StreamPlan): Record<string, string> {
  const h: Record<string, string> = {
    'Content-Type': 'video/mp4',
    'Cache-Control': 'no-store',
    'X-Flux-Start-Ms': String(plan.startMs),
    'X-Flux-End-Ms': String(plan.endMs),
    'X-Flux-Gaps': gapsHeader(plan.gaps),
  };
  if (plan.cutAtMs !== null) h['X-Flux-Cut-At-Ms'] = String(plan.cutAtMs);
  return h;
}

/** A pull-driven body over the chunk generator; `pace` may delay each chunk. Cancel closes the files. */
function body(plan: StreamPlan, o: StreamOptions, pace: (chunk: StreamChunk) => Promise<void>): ReadableStream<Uint8Array> {
  const gen = fmp4Stream(plan, o);
  let cancelled = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(ctrl) {
        try {
          const r = await gen.next();
          if (cancelled) return;
          if (r.done) return ctrl.close();
          await pace(r.value);
          if (!cancelled) ctrl.enqueue(r.value.bytes);
        } catch (e) {
          log.error(`${plan.streamId}: streaming recordings failed: ${(e as Error).message}`);
          ctrl.error(e);
        }
      },
      async cancel() {
        cancelled = true;
        await gen.return(undefined);
      },
    },
    { highWaterMark: 1 }, // one fragment queued: back-pressure reaches the file reads
  );
}

export function playbackRoutes(app: Hono, { engine, files }: AppContext): void {
  app.get('/api/video/recordings/:id/playback', async (c: Context) => {
    const id = streamIdParam(c);
    requireStream(engine, id);
    const { start, end } = rangeParams(c, { defaultSpanMs: HOUR_MS, maxSpanMs: PLAYBACK_MAX_SPAN_MS, requireStart: true });
    const speed = numberParam(c, 'speed', MIN_SPEED, MAX_SPEED, 1);
    const plan = await planStream(engine, files, id, start, end, 'cut');
    const keyframesOnly = speed > KEYFRAMES_ONLY_ABOVE;
    let t0 = -1;
    const pace = async (chunk: StreamChunk) => {
      const now = performance.now();
      if (t0 < 0) t0 = now;
      const due = t0 + chunk.mediaMs / speed - PLAYBACK_LEAD_MS;
      if (due > now) await Bun.sleep(due - now);
    };
    const headers = { ...planHeaders(plan), 'X-Flux-Speed': String(speed), 'X-Flux-Keyframes-Only': String(keyframesOnly) };
    return new Response(body(plan, { keyframesOnly, keepGaps: false, trimEnd: false }, pace), { status: 200, headers });
  });

  app.get('/api/video/recordings/:id/export', async (c: Context) => {
    const id = streamIdParam(c);
    requireStream(engine, id);
    const { start, end } = rangeParams(c, { defaultSpanMs: HOUR_MS, maxSpanMs: EXPORT_MAX_SPAN_MS, requireStart: true, requireEnd: true });
    const plan = await planStream(engine, files, id, start, end, 'refuse');
    const stamp = new Date(plan.startMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    const headers = { ...planHeaders(plan), 'Content-Disposition': `attachment; filename="${id}-${stamp}.mp4"` };
    return new Response(body(plan, { keyframesOnly: false, keepGaps: true, trimEnd: true }, async () => {}), { status: 200, headers });
  });
}
