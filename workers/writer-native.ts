// The native segment writer (SegmentWriter over the flux-native addon: io_uring, O_DIRECT,
// batched submission), the start-up choice between it and the portable writer, and the
// factory media workers call.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadNative, type FluxNative, type NativeLoad, type ProbeResult, type WriterErrorInfo, type WriterHandle, type WriterStats } from '../native/index.ts';
import { PortableWriter, SegmentWriteError, type SegmentFile, type SegmentWriter } from './writer.ts';

/** Directories known to exist; cleared when this large (one per stream and hour). */
const MAX_KNOWN_DIRS = 4096;
/** How often drain() looks at the addon's pending count. */
const DRAIN_POLL_MS = 5;
/** Staging chunk: the largest single write; a 4 Mbit/s, 1 s fragment goes out as one. */
const CHUNK_BYTES = 1 << 20;

export interface NativeWriterOptions {
  directIo: boolean;
  chunkBytes?: number;
  poolChunks?: number;
  batchIntervalMs?: number;
  batchSize?: number;
  ringEntries?: number;
  stageWaitMs?: number;
  /** Failures found after a file was closed (last write, truncate, fdatasync). */
  onError?(err: SegmentWriteError): void;
  /** A file that could not use O_DIRECT; called once per distinct reason. */
  onFallback?(path: string, reason: string): void;
  /** The addon to use (tests); loaded with loadNative() otherwise. */
  addon?: FluxNative;
}

function infoOf(err: unknown): Partial<WriterErrorInfo> {
  return typeof err === 'object' && err !== null ? (err as Partial<WriterErrorInfo>) : {};
}

export class NativeWriter implements SegmentWriter {
  readonly kind = 'native' as const;
  readonly directIo: boolean;
  readonly #addon: FluxNative;
  readonly #h: WriterHandle;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #dirs = new Set<string>();
  readonly #fallbacks = new Set<string>();
  readonly #o: NativeWriterOptions;

  /** @throws Error when the addon is missing or io_uring cannot be set up. */
  constructor(o: NativeWriterOptions) {
    const load: NativeLoad = o.addon ? { addon: o.addon, path: '', reason: null } : loadNative();
    if (load.addon === null) throw new Error(`native writer unavailable: ${load.reason}`);
    this.#addon = load.addon;
    this.#o = o;
    this.directIo = o.directIo;
    const { onError: _e, onFallback: _f, addon: _a, ...addonOptions } = o;
    this.#h = this.#addon.writerCreate(addonOptions);
    // Completion reports are polled (see native/src/js_writer.rs for why not callbacks).
    this.#timer = setInterval(() => this.poll(), o.batchIntervalMs ?? 100);
    this.#timer.unref?.();
    // process.exit() runs no N-API cleanup hook: hand the kernel what is still staged.
    process.on('exit', this.#onExit);
  }

  readonly #onExit = (): void => {
    try {
      this.#addon.writerShutdown(this.#h, true);
    } catch {
      /* exiting anyway */
    }
  };

  open(absPath: string): SegmentFile {
    const dir = dirname(absPath);
    if (!this.#dirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      if (this.#dirs.size >= MAX_KNOWN_DIRS) this.#dirs.clear();
      this.#dirs.add(dir);
    }
    let opened;
    try {
      opened = this.#addon.writerOpen(this.#h, absPath, this.directIo);
    } catch (cause) {
      this.#dirs.delete(dir); // it may have been removed (retention) since
      throw new SegmentWriteError(absPath, 0, { cause });
    }
    if (opened.fallback !== undefined && !this.#fallbacks.has(opened.fallback)) {
      this.#fallbacks.add(opened.fallback);
      this.#o.onFallback?.(absPath, opened.fallback);
    }
    return new NativeFile(absPath, opened.id, opened.direct, this.#addon, this.#h);
  }

  /** Hands errors found after close to onError; the timer calls it every batch interval. */
  poll(): void {
    const events = this.#addon.writerPoll(this.#h);
    if (events === null) return;
    for (const e of events) {
      const err = new SegmentWriteError(e.path, e.offset, { cause: Object.assign(new Error(e.message), e) });
      if (this.#o.onError) this.#o.onError(err);
      else console.error(err.message);
    }
  }

  drain(): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = () => {
        this.poll();
        if (this.#addon.writerPending(this.#h) === 0) resolve();
        else setTimeout(check, DRAIN_POLL_MS);
      };
      check();
    });
  }

  stats(): WriterStats {
    return this.#addon.writerStats(this.#h);
  }

  /** Closes what is still open (no fdatasync), waits for the disk, stops the addon's threads. */
  async shutdown(): Promise<void> {
    this.#addon.writerShutdown(this.#h, false);
    await this.drain();
    this.#addon.writerShutdown(this.#h, true);
    clearInterval(this.#timer);
    process.off('exit', this.#onExit);
    this.poll();
  }
}

class NativeFile implements SegmentFile {
  size = 0;
  #closed = false;

  constructor(
    readonly path: string,
    readonly id: number,
    readonly direct: boolean,
    private readonly addon: FluxNative,
    private readonly h: WriterHandle,
  ) {}

  append(parts: readonly Uint8Array[], count = parts.length): void {
    if (this.#closed) {
      throw new SegmentWriteError(this.path, this.size, { cause: Object.assign(new Error('file is closed'), { code: 'EBADF' }) });
    }
    try {
      this.size = this.addon.writerAppend(this.h, this.id, parts, count);
    } catch (cause) {
      this.#failed(cause);
    }
  }

  close(sync: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.addon.writerClose(this.h, this.id, sync);
    } catch (cause) {
      this.#failed(cause);
    }
  }

  #failed(cause: unknown): never {
    const info = infoOf(cause);
    // The file keeps only complete appends the disk acknowledged: that is its size now.
    if (typeof info.size === 'number') this.size = info.size;
    throw new SegmentWriteError(this.path, typeof info.offset === 'number' ? info.offset : this.size, { cause });
  }
}

/** The storage settings the writer choice reads (engine config [video.storage.performance]). */
export interface WriterConfig {
  use_io_uring: boolean;
  use_direct_io: boolean;
  buffer_pool_size: number;
  buffer_size_mb: number;
  batch_size: number;
  batch_interval_ms: number;
}

export interface WriterChoice {
  kind: 'native' | 'portable';
  directIo: boolean;
  /** One line for the log: the writer in use and why. */
  reason: string;
  /** Settings for NativeWriter in each media worker. */
  options: WriterSettings;
}

/** The plain (cloneable) part of NativeWriterOptions, sent to media workers in WorkerInit. */
export type WriterSettings = Omit<NativeWriterOptions, 'onError' | 'onFallback' | 'addon'>;

/**
 * Picks the writer at start-up: native when the config asks for io_uring, the addon loaded
 * and the probe created a ring; O_DIRECT when the config asks and the probe wrote a block.
 */
export function chooseWriter(cfg: WriterConfig, native: NativeLoad, probe: ProbeResult | null, workers: number): WriterChoice {
  const poolBytes = (cfg.buffer_pool_size * cfg.buffer_size_mb * 2 ** 20) / Math.max(1, workers);
  const options = {
    directIo: false,
    chunkBytes: CHUNK_BYTES,
    poolChunks: Math.max(16, Math.floor(poolBytes / CHUNK_BYTES)),
    batchIntervalMs: cfg.batch_interval_ms,
    batchSize: cfg.batch_size,
  };
  const portable = (why: string): WriterChoice => ({ kind: 'portable', directIo: false, reason: `writer portable: ${why}`, options });
  if (!cfg.use_io_uring) return portable('use_io_uring = false in the config');
  if (native.addon === null) return portable(`native addon unavailable: ${native.reason}`);
  if (probe === null || !probe.ioUring) return portable(`io_uring unavailable: ${probe?.ioUringError ?? 'not probed'}`);
  const directIo = cfg.use_direct_io && probe.directIo;
  const direct = !cfg.use_direct_io
    ? 'O_DIRECT off (use_direct_io = false)'
    : probe.directIo
      ? 'O_DIRECT on'
      : `O_DIRECT off (${probe.directIoError ?? 'probe failed'})`;
  return {
    kind: 'native',
    directIo,
    reason: `writer native: io_uring, ${direct}, kernel ${probe.kernel}`,
    options: { ...options, directIo },
  };
}

/**
 * The writer a media worker records through: native when the engine chose it and it can be
 * set up here, else portable (reported through `problem`).
 */
export function createSegmentWriter(
  kind: 'native' | 'portable',
  writerOptions: WriterSettings | undefined,
  problem: (message: string) => void,
  onError: (err: SegmentWriteError) => void,
): SegmentWriter {
  if (kind !== 'native') return new PortableWriter(onError);
  const options: NativeWriterOptions = { directIo: true, ...writerOptions };
  try {
    return new NativeWriter({
      ...options,
      onError,
      onFallback: (path, reason) => problem(`O_DIRECT not used for ${path} (and others like it): ${reason}`),
    });
  } catch (err) {
    problem(`native writer failed in this worker, recording with the portable writer: ${(err as Error).message}`);
    return new PortableWriter(onError);
  }
}
