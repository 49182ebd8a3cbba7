// Prometheus metrics (prom-client): per-stream ingest counters, per-worker ring fill, writer
// kind and queue depth, disk space, and the process defaults (memory, CPU, event-loop lag).
import { statfsSync } from 'node:fs';
import type { Registry } from 'prom-client';
import type { Engine, StreamEntry } from '../engine/engine.ts';

type StreamCounter = 'bytes' | 'frames' | 'dropped' | 'ringDrops' | 'lost' | 'reconnects' | 'resyncs' | 'ssrcMismatches';

/** A counter field a source may not have yet (RTSP fills lostPackets/reconnects when it lands). */
function optionalCount(e: StreamEntry, key: string): number {
  const own = (e as unknown as Record<string, unknown>)[key];
  if (typeof own === 'number') return own;
  const v = (e.handle?.counters as unknown as Record<string, unknown> | undefined)?.[key];
  return typeof v === 'number' ? v : 0;
}

export class Metrics {
  /** prom-client's text exposition format (its Registry.PROMETHEUS_CONTENT_TYPE). */
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  readonly #engine: Engine;
  readonly #viewers = new Map<string, number>();
  /** Built on the first scrape: importing prom-client costs ~18 ms, a fifth of start-up. */
  #registry: Promise<Registry> | null = null;

  constructor(engine: Engine) {
    this.#engine = engine;
  }

  /** The registry with every metric; process metrics (event-loop lag) sample from the first scrape on. */
  async #build(): Promise<Registry> {
    const { collectDefaultMetrics, Counter, Gauge, Registry } = await import('prom-client');
    const engine = this.#engine;
    const register = new Registry();
    collectDefaultMetrics({ register });
    const streams = () => [...engine.streams.values()];
    const counter = (name: string, help: string, pick: (e: StreamEntry) => number) =>
      new Counter({
        name, help, labelNames: ['stream'], registers: [register],
        collect() {
          this.reset();
          for (const e of streams()) this.inc({ stream: e.config.stream_id }, pick(e));
        },
      });
    const gauge = (name: string, help: string, pick: (e: StreamEntry) => number) =>
      new Gauge({
        name, help, labelNames: ['stream'], registers: [register],
        collect() {
          this.reset();
          for (const e of streams()) this.set({ stream: e.config.stream_id }, pick(e));
        },
      });
    const c = (e: StreamEntry) => e.handle?.counters;
    const picks: Record<StreamCounter, [string, string, (e: StreamEntry) => number]> = {
      bytes: ['flux_stream_bytes_total', 'Media bytes received per stream', (e) => c(e)?.bytesIn ?? 0],
      frames: ['flux_stream_frames_total', 'Access units received per stream', (e) => c(e)?.frames ?? 0],
      dropped: ['flux_stream_dropped_frames_total', 'Frames dropped in the pipeline per stream', (e) => c(e)?.droppedFrames ?? 0],
      ringDrops: ['flux_stream_ring_drops_total', 'Records dropped because the worker ring was full', (e) => c(e)?.ringDrops ?? 0],
      lost: ['flux_stream_lost_packets_total', 'RTP packets lost per stream (0 for file sources)', (e) => optionalCount(e, 'lostPackets')],
      reconnects: ['flux_stream_reconnects_total', 'Source reconnects per stream', (e) => optionalCount(e, 'reconnects')],
      resyncs: ['flux_stream_resyncs_total', 'Times the container demuxer (MPEG-PS of GB28181) lost sync per stream', (e) => c(e)?.resyncs ?? 0],
      ssrcMismatches: ['flux_stream_ssrc_mismatches_total', 'RTP packets dropped for an unexpected SSRC per stream (GB28181)', (e) => e.gbMedia?.ssrcMismatches ?? 0],
    };
    for (const [name, help, pick] of Object.values(picks)) counter(name, help, pick);
    gauge('flux_stream_fps', 'Frames per second per stream, over the last stats interval (~1 s)', (e) => c(e)?.fps ?? 0);
    gauge('flux_stream_bitrate_bps', 'Input bitrate per stream, bits per second', (e) => (c(e)?.bytesPerSec ?? 0) * 8);
    gauge('flux_stream_viewers', 'Live preview viewers per stream', (e) => this.#viewers.get(e.config.stream_id) ?? engine.live.viewerCount(e.config.stream_id));
    gauge('flux_stream_up', '1 when the stream is live, 0 otherwise', (e) => (e.state === 'live' ? 1 : 0));
    new Gauge({
      name: 'flux_worker_ring_fill_ratio', help: 'Fill of each media worker input ring (0..1)', labelNames: ['worker'], registers: [register],
      collect() {
        this.reset();
        for (const w of engine.pool.workerLoads()) this.set({ worker: String(w.index) }, w.ringFill);
      },
    });
    new Gauge({
      name: 'flux_worker_streams', help: 'Streams placed on each media worker', labelNames: ['worker'], registers: [register],
      collect() {
        this.reset();
        for (const w of engine.pool.workerLoads()) this.set({ worker: String(w.index) }, w.streams);
      },
    });
    new Gauge({
      name: 'flux_writer_info', help: 'Segment writer in use (1 for the active kind)', labelNames: ['kind'], registers: [register],
      collect() {
        this.reset();
        this.set({ kind: engine.writerKind }, 1);
      },
    });
    new Gauge({
      name: 'flux_write_queue_depth', help: 'Writes staged or in flight in the segment writers (0 for the portable writer, which writes inline)', registers: [register],
      collect() {
        this.set(engine.pool.workerLoads().reduce((a, w) => a + w.writeQueue, 0));
      },
    });
    new Gauge({
      name: 'flux_disk_bytes', help: 'Space of the filesystem holding base_path', labelNames: ['kind'], registers: [register],
      collect() {
        const d = diskSpace(engine.basePath);
        if (d === null) return;
        this.set({ kind: 'total' }, d.total);
        this.set({ kind: 'free' }, d.free);
      },
    });
    return register;
  }

  /** Overrides the viewer count of a stream (default: engine.live.viewerCount); n <= 0 clears the override. */
  setViewers(streamId: string, n: number): void {
    if (n > 0) this.#viewers.set(streamId, n);
    else this.#viewers.delete(streamId);
  }

  /** A stream's frames per second over the worker's last stats interval (0 before the first). */
  fps(streamId: string): number {
    return this.#engine.streams.get(streamId)?.handle?.counters.fps ?? 0;
  }

  async text(): Promise<string> {
    this.#registry ??= this.#build();
    return (await this.#registry).metrics();
  }
}

/** statfs of the filesystem holding `path` (free = available to unprivileged users); null if it fails. */
export function diskSpace(path: string): { total: number; free: number } | null {
  try {
    const s = statfsSync(path);
    return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
  } catch {
    return null;
  }
}
