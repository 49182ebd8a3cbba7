// The orchestrator: opens the index, repairs what a crash left open, starts the media
// pool, runs the configured streams and the retention job, and serves the HTTP app.
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { Config, StreamConfig } from './config.ts';
import { FileSource, loadClip, SourceError } from './file-source.ts';
import { RtspSource } from './rtsp-source.ts';
import { startRtmpIngest } from './rtmp-ingest.ts';
import type { RtmpServer } from './rtmp-server.ts';
import type { GbPlatform } from './gb28181-platform.ts';
import { GbMediaServer, type GbMediaCounters } from './gb28181-media.ts';
import { IndexDb } from './index-db.ts';
import { log } from './log.ts';
import { SocketPoller } from './socket-poller.ts';
import { LiveHub } from './live.ts';
import { Snapshots } from './snapshots.ts';
import { MediaPool, WORKER_STREAMS, type StreamHandle } from './media-pool.ts';
import { recoverOpenSegments } from './recovery.ts';
import { startRetention, type RetentionHandle } from './retention.ts';
import { loadNative } from '../native/index.ts';
import { GcPacer } from './gc-pacer.ts';
import { chooseWriter } from '../workers/writer-native.ts';
import type { KeyframeEvent, SegmentClosed, SegmentOpened, StreamProblem } from '../workers/control.ts';

/** File sources are paced by one shared timer; 10 ms keeps 25-60 fps frames on time. */
const PACE_INTERVAL_MS = 10;
const DAY_MS = 86_400_000;

export type StreamState = 'connecting' | 'live' | 'retrying' | 'stopped';

export interface StreamEntry {
  config: StreamConfig;
  origin: 'config' | 'api';
  state: StreamState;
  error: string | null;
  handle: StreamHandle | null;
  source: FileSource | null;
  rtsp: RtspSource | null;
  /** Times the source had to reconnect (RTSP). */
  reconnects: number;
  /** Packet counters of a GB28181 media session (engine/gb28181-media.ts). */
  gbMedia?: GbMediaCounters;
}

/**
 * The config's RTSP cameras connect START_BATCH at a time, START_BATCH_GAP_MS apart: cameras
 * send a keyframe when they start playing, so 400 connecting at once put ~80 MB into the
 * workers' rings within a second, while their code is still cold, and 38,000 frames were
 * dropped there (bench sweep, 400 cameras: all of them in the first second). 400 cameras
 * are all connecting within 1.25 s.
 */
const START_BATCH = 32;
const START_BATCH_GAP_MS = 100;

export class EngineError extends Error {
  override name = 'EngineError';
}

/**
 * Media workers when the config says 0: one to start with, more as streams are added (see
 * MediaPool's WORKER_STREAMS / WORKER_BYTES_PER_SEC), at most one per core. The main thread
 * owns every socket and does about 40 % of the per-byte work itself (socket reads, RTSP
 * framing, ring writes), so up to ~128 cameras one worker beside it is cheaper (2 cores, 100
 * cameras of 4 Mbit/s: 23-24 % of a core and 172-178 MB against 25-26 % and 188-191 MB for
 * two: one VM, ring and block pool fewer); beyond that one worker's ring no longer absorbs
 * its stalls (200 cameras on one lost 207 frames in 30 s, 400 lost 7 %; on two, none).
 */
export function workerCounts(configured: number, streams: number, cores: number = availableParallelism()): { initial: number; max: number } {
  if (configured > 0) return { initial: configured, max: configured };
  const max = Math.max(1, cores);
  // The config's streams all start at once: their workers must be up before their bytes
  // arrive (a worker started mid-way, 200 ms of module loading, overflowed its ring with the
  // 270 streams placed on it meanwhile). Streams added later come one at a time.
  return { initial: Math.min(max, Math.max(1, Math.ceil(streams / WORKER_STREAMS))), max };
}

export class Engine {
  readonly config: Config;
  readonly basePath: string;
  readonly index: IndexDb;
  readonly pool: MediaPool;
  readonly live: LiveHub;
  readonly snapshots: Snapshots;
  /** GB28181 media receiver: RTP/PS ports of live sessions (engine/gb28181-media.ts). */
  readonly gbMedia: GbMediaServer;
  /** The RTMP publish server, when [video.protocols] rtmp is on. */
  rtmp: RtmpServer | null = null;
  /** The GB28181 platform (SIP server + media sessions), when enabled (engine/gb28181-platform.ts). */
  gb28181: GbPlatform | null = null;
  readonly writerKind: 'portable' | 'native';
  /** The writer in use and why, as logged at start-up. */
  readonly writerReason: string;
  readonly nativeStatus: string;
  readonly streams = new Map<string, StreamEntry>();
  readonly startedAt = Date.now();
  #pacer: ReturnType<typeof setInterval>;
  /** Asks for a collection every few MB of ingest (engine/gc-pacer.ts). */
  readonly gcPacer: GcPacer;
  /** Reads RTSP/TCP cameras nobody watches live on a timer ([rtsp] read_interval_ms; null = off). */
  readonly socketPoller: SocketPoller | null;
  #retention: RetentionHandle;
  #stopping: Promise<void> | null = null;

  private constructor(config: Config, basePath: string, index: IndexDb, allowFaults: boolean) {
    this.config = config;
    this.basePath = basePath;
    this.index = index;
    const native = loadNative();
    const probe = native.addon?.probe(basePath) ?? null;
    const perf = config.video.storage.performance;
    const workers = workerCounts(perf.worker_count, config.video.streams.length);
    // Chosen once at start-up: native (io_uring) when configured and available, else portable.
    const choice = chooseWriter(perf, native, probe, workers.max);
    this.writerKind = choice.kind;
    this.writerReason = choice.reason;
    this.nativeStatus = native.addon && probe
      ? `native addon ${native.addon.version()} loaded (${describeProbe(probe)})`
      : `native addon unavailable: ${native.reason}`;
    this.pool = MediaPool.start({
      workers: workers.initial,
      maxWorkers: workers.max,
      ringBytes: perf.ring_size_mb << 20,
      basePath,
      segmentDurationMs: config.video.storage.segment_duration * 1000,
      fragmentDurationMs: config.video.storage.fragment_duration_ms,
      writer: this.writerKind,
      writerOptions: choice.options,
      allowFaults,
      onEvent: (ev) => this.#onEvent(ev),
      onFragment: (h, flags, ts, payload) => this.live.onFragment(h, flags, ts, payload),
      onWorkerLost: (_i, ids) => {
        recoverOpenSegments(this.index, this.basePath, new Set(ids)).catch((e: Error) =>
          log.error(`repairing segments after a worker loss failed: ${e.message}`),
        );
      },
    });
    this.live = new LiveHub(this.pool);
    this.snapshots = new Snapshots(index, basePath);
    this.gbMedia = new GbMediaServer(this); // opens no socket until a live session asks
    this.#pacer = setInterval(() => this.#pace(), PACE_INTERVAL_MS);
    this.gcPacer = new GcPacer({ rate: () => this.pool.ingestBytesPerSec(), budgetBytes: perf.gc_budget_mb << 20 });
    if (perf.gc_budget_mb > 0) this.gcPacer.start();
    this.socketPoller = config.rtsp.read_interval_ms > 0 ? new SocketPoller(config.rtsp.read_interval_ms) : null;
    const storage = config.video.storage;
    this.#retention = startRetention({
      index,
      basePath,
      retentionMs: storage.retention_days * DAY_MS,
      keyframeRetentionMs: config.video.keyframe.retention_days * DAY_MS,
      intervalMs: Math.max(1000, Math.min(600_000, Math.round((storage.retention_days * DAY_MS) / 100))),
      onResult: (r) => {
        if (r.segmentsDeleted + r.keyframesDeleted + r.errors > 0) {
          log.info(
            `retention: deleted ${r.segmentsDeleted} segments (${(r.bytesFreed / 1e6).toFixed(1)} MB), ` +
              `${r.keyframesDeleted} keyframes, ${r.errors} errors`,
          );
        }
      },
      onError: (e) => log.error(`retention run failed: ${(e as Error).message}`),
    });
  }

  /** Opens everything in order; the config must already be validated and preflighted. */
  static async start(config: Config, opts: { allowFaults?: boolean } = {}): Promise<Engine> {
    const basePath = resolve(config.video.storage.base_path);
    const indexPath = resolve(config.video.storage.index_path || join(basePath, 'index'));
    mkdirSync(basePath, { recursive: true });
    mkdirSync(indexPath, { recursive: true });
    const index = IndexDb.open(indexPath);
    const repaired = await recoverOpenSegments(index, basePath);
    if (repaired > 0) log.info(`recovery: ${repaired} interrupted segments repaired`);
    const engine = new Engine(config, basePath, index, opts.allowFaults ?? false);
    log.info(`storage ${basePath}, index ${indexPath}, ${engine.pool.workerCount} media workers, writer ${engine.writerKind}`);
    log.info(engine.nativeStatus);
    log.info(engine.writerReason);
    if (config.video.protocols.rtmp) {
      try {
        engine.rtmp = startRtmpIngest(engine);
        log.info(`RTMP publishing on ${config.rtmp.host}:${engine.rtmp.port}`);
      } catch (err) {
        await engine.stop();
        throw new EngineError(`cannot listen for RTMP on ${config.rtmp.host}:${config.rtmp.port}: ${(err as Error).message}`);
      }
    }
    if (config.video.gb28181.enabled || config.video.protocols.gb28181) {
      try {
        // Imported only when enabled: SIP and the MANSCDP XML stack cost ~15 ms of start-up.
        const { startGb28181 } = await import('./gb28181-platform.ts');
        engine.gb28181 = await startGb28181(engine);
      } catch (err) {
        await engine.stop();
        const g = config.video.gb28181;
        throw new EngineError(`cannot listen for GB28181 SIP on ${g.local_ip}:${g.local_port}: ${(err as Error).message}`);
      }
    }
    let n = 0;
    for (const s of config.video.streams) await engine.addStream(s, 'config', s.protocol === 'rtsp' ? Math.floor(n++ / START_BATCH) * START_BATCH_GAP_MS : 0);
    await engine.restoreApiStreams();
    return engine;
  }

  /**
   * Starts a stream; a source that cannot start leaves the stream `stopped` with its error.
   * `startDelayMs`: an RTSP camera connects that much later.
   */
  async addStream(cfg: StreamConfig, origin: 'config' | 'api', startDelayMs = 0): Promise<StreamEntry> {
    if (this.streams.has(cfg.stream_id)) throw new EngineError(`stream ${cfg.stream_id} exists`);
    const entry: StreamEntry = { config: cfg, origin, state: 'connecting', error: null, handle: null, source: null, rtsp: null, reconnects: 0 };
    this.streams.set(cfg.stream_id, entry);
    if (cfg.protocol === 'rtsp') {
      this.#startRtsp(entry, startDelayMs);
      return entry;
    }
    if (cfg.protocol === 'rtmp') {
      if (this.rtmp === null) {
        entry.state = 'stopped';
        entry.error = 'RTMP is switched off ([video.protocols] rtmp = false)';
      }
      return entry; // 'connecting' until a publisher arrives (engine/rtmp-ingest.ts)
    }
    if (cfg.protocol === 'gb28181') {
      // A GB28181 channel becomes a stream through the live route (gbMedia.open), not here.
      entry.state = 'stopped';
      entry.error = 'GB28181 streams are started by POST /api/video/gb28181/devices/{device_id}/channels/{channel_id}/live';
      log.warn(`stream ${cfg.stream_id}: ${entry.error}`);
      return entry;
    }
    if (cfg.protocol !== 'file') {
      entry.state = 'stopped';
      entry.error = `protocol ${cfg.protocol} is not supported by this build yet`;
      log.warn(`stream ${cfg.stream_id}: ${entry.error}`);
      return entry;
    }
    try {
      if (cfg.source_url === undefined) throw new SourceError('a file stream needs source_url');
      const clip = loadClip(cfg.source_url);
      const startMs = Date.now();
      entry.handle = await this.pool.addStream({
        streamId: cfg.stream_id,
        input: { kind: 'annexb', codec: clip.codec },
        record: cfg.record,
        wallBaseMs: startMs,
        firstSegmentNumber: this.nextSegmentNumber(cfg.stream_id),
        keyframeIntervalMs: this.keyframeIntervalMs,
        bitrateHint: Math.round((clip.bytes.length / Math.max(1, clip.aus.length)) * clip.fps),
      });
      entry.source = new FileSource(clip, entry.handle, startMs);
      entry.state = 'live';
      log.info(`stream ${cfg.stream_id}: ${clip.codec} ${clip.track.width}x${clip.track.height} @ ${clip.fps} fps from ${clip.path}`);
    } catch (err) {
      entry.state = 'stopped';
      entry.error = (err as Error).message;
      log.error(`stream ${cfg.stream_id}: ${entry.error}`);
      if (!(err instanceof SourceError)) throw err;
    }
    return entry;
  }

  /** Restarts the streams created over the API (index `streams` records with origin 'api');
   *  a config.toml stream of the same id wins. One stream that cannot start never stops the rest. */
  async restoreApiStreams(): Promise<number> {
    let n = 0;
    for (const r of this.index.listStreams()) {
      if (r.origin !== 'api') continue;
      if (this.streams.has(r.stream_id)) {
        log.warn(`stream ${r.stream_id} is defined in config.toml and over the API; the config.toml one runs`);
        continue;
      }
      const cfg: StreamConfig = { stream_id: r.stream_id, protocol: r.protocol, record: r.record };
      if (r.source_url !== '') cfg.source_url = r.source_url;
      if (r.publish_key !== undefined) cfg.publish_key = r.publish_key;
      await this.addStream(cfg, 'api').then(() => n++, (e: Error) => log.error(`stream ${r.stream_id}: restore failed: ${e.message}`));
    }
    if (n > 0) log.info(`restored ${n} streams created over the API`);
    return n;
  }

  #startRtsp(entry: StreamEntry, startDelayMs = 0): void {
    const cfg = entry.config;
    entry.rtsp = new RtspSource({
      startDelayMs,
      streamId: cfg.stream_id,
      url: cfg.source_url!,
      record: cfg.record,
      pool: this.pool,
      keyframeIntervalMs: this.keyframeIntervalMs,
      nextSegmentNumber: () => this.nextSegmentNumber(cfg.stream_id),
      udpPorts: { min: this.config.rtsp.udp_port_min, max: this.config.rtsp.udp_port_max },
      ...(this.socketPoller !== null ? { poller: this.socketPoller } : {}),
      onState: (state, error) => {
        entry.state = state;
        if (error !== null || state === 'live') entry.error = error;
        entry.reconnects = entry.rtsp?.reconnects ?? entry.reconnects;
      },
      onHandle: (h) => {
        if (h === null && entry.handle !== null) this.live.closeStream(cfg.stream_id);
        entry.handle = h;
      },
    });
  }

  /** Periodic keyframe events for keyframe JPEGs (0 when disabled). */
  get keyframeIntervalMs(): number {
    return this.config.video.keyframe.enabled ? this.config.video.keyframe.interval_seconds * 1000 : 0;
  }

  async removeStream(streamId: string): Promise<boolean> {
    const entry = this.streams.get(streamId);
    if (entry === undefined) return false;
    if (entry.rtsp !== null) await entry.rtsp.stop();
    if (entry.config.protocol === 'rtmp') this.rtmp?.disconnect(streamId, 'stream removed');
    if (entry.config.protocol === 'gb28181') this.gbMedia.streamRemoved(streamId);
    entry.source = null; // stop pacing before the worker drains and closes the segment
    entry.state = 'stopped';
    this.live.closeStream(streamId);
    if (entry.handle !== null) await this.pool.removeStream(entry.handle);
    entry.handle = null;
    this.streams.delete(streamId);
    await this.index.flushed();
    return true;
  }

  /** Stops ingest, closes every open segment, flushes the index. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearInterval(this.#pacer);
      this.gcPacer.stop();
      this.socketPoller?.stop();
      for (const e of this.streams.values()) e.source = null;
      await Promise.all([...this.streams.values()].map((e) => e.rtsp?.stop()));
      await this.rtmp?.stop();
      await this.gb28181?.stop();
      await this.gbMedia.stopAll();
      await this.#retention.stop();
      await this.pool.close();
      await this.snapshots.close();
      for (const e of this.streams.values()) e.state = 'stopped';
      await this.index.flushed();
      await this.index.close();
    })();
    return this.#stopping;
  }

  #pace(): void {
    const now = Date.now();
    for (const e of this.streams.values()) e.source?.tick(now);
  }

  nextSegmentNumber(streamId: string): number {
    const stats = this.index.streamStats(streamId);
    if (stats.lastEndMs === null) return 1;
    const last = this.index.querySegments(streamId, stats.lastEndMs - 1, stats.lastEndMs).at(-1);
    return (last?.segment_number ?? stats.count) + 1;
  }

  #onEvent(ev: SegmentOpened | SegmentClosed | StreamProblem | KeyframeEvent): void {
    const fail = (e: Error) => log.error(`index update for ${ev.streamId} failed: ${e.message}`);
    switch (ev.type) {
      case 'segment-open':
        this.index
          .openSegment({
            stream_id: ev.streamId,
            start_ms: ev.startMs,
            path: ev.path,
            codecs: ev.codecs,
            width: ev.width,
            height: ev.height,
            segment_number: ev.segmentNumber,
          })
          .catch(fail);
        return;
      case 'segment-close':
        this.index
          .closeSegment(ev.streamId, ev.startMs, {
            end_ms: ev.endMs,
            bytes: ev.bytes,
            fragments: { times: ev.fragmentMs.map((t) => t - ev.startMs), offsets: ev.fragmentOffsets },
          })
          .catch(fail);
        return;
      case 'keyframe':
        return this.snapshots.store(ev.streamId, ev);
      case 'stream-error': {
        const e = this.streams.get(ev.streamId);
        if (e !== undefined) e.error = ev.message;
        log.warn(`stream ${ev.streamId}: ${ev.message}`);
        return;
      }
    }
  }
}

function describeProbe(p: { ioUring: boolean; directIo: boolean; kernel: string; ioUringError?: string; directIoError?: string }): string {
  return `kernel ${p.kernel}, io_uring ${p.ioUring ? 'yes' : `no (${p.ioUringError})`}, O_DIRECT ${p.directIo ? 'yes' : `no (${p.directIoError})`}`;
}
