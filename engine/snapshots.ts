// Snapshots and keyframe JPEGs: the latest keyframe of a live stream decoded on demand, and
// one keyframe every [video.keyframe] interval_seconds stored under the SPEC layout
// (<base>/<stream>/keyframes/<YYYY-MM-DD>/<unix_ms>.jpg) and indexed. Decoding runs in a
// small, separate Piscina pool so it never competes with the media workers' ring draining;
// its thread keeps one ffmpeg per codec and picture size running while pictures are asked
// for (workers/frame-decoder.ts), so a snapshot costs a decode, not an ffmpeg start-up.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Piscina } from 'piscina';
import type { KeyframeData } from '../workers/control.ts';
import type { ThumbnailClose, ThumbnailTask } from '../workers/thumbnail-worker.ts';
import type { IndexDb } from './index-db.ts';
import { RateLimitedLog } from './log.ts';
import { findFfmpeg } from './tools.ts';
import { workerEntry } from './worker-entry.ts';

/** Snapshot widths a client may ask for. */
export const MAX_SNAPSHOT_WIDTH = 3840;
/** Decodes waiting at most; keyframe JPEGs are skipped (counted) beyond this, never queued up. */
const MAX_QUEUED = 32;
const JPEG_QUALITY = 80;
/** Keyframe JPEGs are thumbnails: decoding stays full size, the stored file is this wide. */
const KEYFRAME_JPEG_WIDTH = 640;
/**
 * The pool's thread stays this long after its last picture: longer than the decoders'
 * DECODER_IDLE_MS, so they have ended their ffmpeg before the thread goes.
 */
const POOL_IDLE_MS = 60_000;

export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

export class Snapshots {
  #pool: Piscina | null = null;
  /** Loading piscina and creating the pool, on the first picture (piscina is not a start-up import). */
  #creating: Promise<Piscina> | null = null;
  #closed = false;
  #ffmpeg: string | null;
  #index: IndexDb;
  #basePath: string;
  #warn = new RateLimitedLog(10_000);
  /** Periodic keyframe JPEGs written, skipped because the pool was behind, failed to decode or write. */
  stored = 0;
  skipped = 0;
  failed = 0;

  constructor(index: IndexDb, basePath: string) {
    this.#index = index;
    this.#basePath = basePath;
    this.#ffmpeg = findFfmpeg();
  }

  #getPool(): Promise<Piscina> {
    if (this.#pool !== null) return Promise.resolve(this.#pool);
    this.#creating ??= import('piscina').then(({ Piscina }) => {
      if (this.#closed) throw new SnapshotError('snapshots are shut down');
      this.#pool = new Piscina({
        filename: workerEntry('thumbnail-worker'),
        minThreads: 0,
        maxThreads: 1,
        idleTimeout: POOL_IDLE_MS,
        maxQueue: MAX_QUEUED,
      });
      return this.#pool;
    });
    return this.#creating;
  }

  async #run(k: KeyframeData, outWidth: number): Promise<Uint8Array> {
    if (this.#ffmpeg === null) throw new SnapshotError('snapshots need ffmpeg (install it or set FLUX_FFMPEG)');
    const pool = await this.#getPool();
    const task: ThumbnailTask = { ffmpeg: this.#ffmpeg, codec: k.codec, width: k.width, height: k.height, data: k.data, outWidth, quality: JPEG_QUALITY };
    return (await pool.run(task)) as Uint8Array;
  }

  /** JPEG of a keyframe, `width` wide (0 = its own size). */
  jpeg(k: KeyframeData, width: number): Promise<Uint8Array> {
    return this.#run(k, Math.min(width, k.width));
  }

  /** A periodic keyframe: stored and indexed, or skipped (counted) when the pool is behind. */
  store(streamId: string, k: KeyframeData): void {
    if (this.#pool !== null && this.#pool.queueSize >= MAX_QUEUED / 2) {
      this.skipped++;
      return;
    }
    const day = new Date(k.wallMs).toISOString().slice(0, 10);
    const rel = `${streamId}/keyframes/${day}/${k.wallMs}.jpg`;
    this.#run(k, Math.min(KEYFRAME_JPEG_WIDTH, k.width))
      .then((jpeg) => {
        const abs = join(this.#basePath, rel);
        mkdirSync(dirname(abs), { recursive: true });
        writeFileSync(abs, jpeg);
        this.stored++;
        return this.#index.putKeyframe(streamId, k.wallMs, { path: rel, bytes: jpeg.length });
      })
      .catch((e: Error) => {
        this.failed++;
        this.#warn.warn(`keyframe:${streamId}`, `stream ${streamId}: keyframe JPEG failed: ${e.message}`);
      });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#creating?.catch(() => {});
    if (this.#pool !== null && this.#pool.threads.length > 0) {
      const close: ThumbnailClose = { close: true };
      await this.#pool.run(close).catch(() => {});
    }
    await this.#pool?.destroy().catch(() => {});
    this.#pool = null;
  }
}

