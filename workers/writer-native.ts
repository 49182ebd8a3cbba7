// The native segment writer (SegmentWriter over the flux-native addon: blocks of its pool
// filled in place and written by io_uring, O_DIRECT, batched submission), the start-up choice
// between it and the portable writer, and the factory media workers call.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadNative, type FluxNative, type NativeLoad, type ProbeResult, type WriterErrorInfo, type WriterHandle, type WriterStats } from '../native/index.ts';
import { DEFAULT_GEOMETRY, PortableWriter, SegmentWriteError, type BlockGeometry, type SegmentFile, type SegmentWriter } from './writer.ts';

/** Directories known to exist; cleared when this large (one per stream and hour). */
const MAX_KNOWN_DIRS = 4096;
/** How often drain() looks at the addon's pending count. */
const DRAIN_POLL_MS = 5;
/**
 * Write block: what a stream holds while it fills one, and what one write carries. A
 * 4 Mbit/s camera fills one every 0.13 s, eight writes a second; each stream keeps one
 * resident. At 100 such cameras (alternating runs, space reserved ahead so a write is cheap):
 * 128 KiB blocks 171-174 MB RSS, 64 KiB 149-157 MB, 32 KiB 152-156 MB, CPU alike within
 * noise (22-26 % of a core).
 */
export const WRITE_BLOCK_BYTES = 64 << 10;

export interface NativeWriterOptions {
  directIo: boolean;
  blockBytes?: number;
  poolBlocks?: number;
  batchIntervalMs?: number;
  batchSize?: number;
  ringEntries?: number;
  preallocBytes?: number;
  /** Alignment of fragments (write_alignment); O_DIRECT needs a multiple of 4096. */
  align?: number;
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
  readonly blockBytes: number;
  readonly align: number;
  readonly #addon: FluxNative;
  readonly #h: WriterHandle;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #dirs = new Set<string>();
  readonly #fallbacks = new Set<string>();
  readonly #o: NativeWriterOptions;
  /** A view per block index (made once: the memory is the pool's), and back. */
  readonly #views: Uint8Array[] = [];
  readonly #index = new Map<Uint8Array, number>();

  /** @throws Error when the addon is missing or io_uring cannot be set up. */
  constructor(o: NativeWriterOptions) {
    const load: NativeLoad = o.addon ? { addon: o.addon, path: '', reason: null } : loadNative();
    if (load.addon === null) throw new Error(`native writer unavailable: ${load.reason}`);
    this.#addon = load.addon;
    this.#o = o;
    this.directIo = o.directIo;
    this.blockBytes = o.blockBytes ?? WRITE_BLOCK_BYTES;
    this.align = o.align ?? 4096;
    if (this.blockBytes % 4096 !== 0 || this.blockBytes % this.align !== 0) {
      throw new RangeError(`block of ${this.blockBytes} bytes: a multiple of 4096 and of the alignment ${this.align}`);
    }
    const { onError: _e, onFallback: _f, addon: _a, align: _al, ...addonOptions } = o;
    this.#h = this.#addon.writerCreate({ ...addonOptions, blockBytes: this.blockBytes });
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
    return new NativeFile(absPath, opened.id, this);
  }

  take(): Uint8Array | null {
    const i = this.#addon.writerTake(this.#h);
    if (i < 0) return null;
    let v = this.#views[i];
    if (v === undefined) {
      v = new Uint8Array(this.#addon.writerBlock(this.#h, i));
      this.#views[i] = v;
      this.#index.set(v, i);
    }
    return v;
  }

  drop(block: Uint8Array): void {
    this.#addon.writerDrop(this.#h, this.#indexOf(block));
  }

  /** Hands a block to the addon for `fileId` (NativeFile.writeBlock). */
  write(fileId: number, block: Uint8Array, offset: number, len: number, commitEnd: number): void {
    this.#addon.writerWrite(this.#h, fileId, this.#indexOf(block), offset, len, commitEnd);
  }

  close(fileId: number, sync: boolean, size: number): void {
    this.#addon.writerClose(this.#h, fileId, sync, size);
  }

  #indexOf(block: Uint8Array): number {
    const i = this.#index.get(block);
    if (i === undefined) throw new RangeError('not a block of this writer');
    return i;
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
  #closed = false;

  constructor(
    readonly path: string,
    readonly id: number,
    private readonly w: NativeWriter,
  ) {}

  writeBlock(block: Uint8Array, offset: number, len: number, commitEnd: number): void {
    try {
      this.w.write(this.id, block, offset, len, commitEnd);
    } catch (cause) {
      this.#failed(cause, offset);
    }
  }

  close(sync: boolean, size: number): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.w.close(this.id, sync, size);
    } catch (cause) {
      this.#failed(cause, size);
    }
  }

  #failed(cause: unknown, at: number): never {
    const info = infoOf(cause);
    throw new SegmentWriteError(this.path, typeof info.offset === 'number' ? info.offset : at, { cause });
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
  write_alignment: number;
  preallocate_mb: number;
}

export interface WriterChoice {
  kind: 'native' | 'portable';
  directIo: boolean;
  /** One line for the log: the writer in use and why. */
  reason: string;
  /** Settings for the writer in each media worker. */
  options: WriterSettings;
}

/** The plain (cloneable) part of NativeWriterOptions, sent to media workers in WorkerInit. */
export type WriterSettings = Omit<NativeWriterOptions, 'onError' | 'onFallback' | 'addon'>;

/**
 * Picks the writer at start-up: native when the config asks for io_uring, the addon loaded
 * and the probe created a ring; O_DIRECT when the config asks, the probe wrote a block, and
 * the alignment is whole 4 KiB pages. The staging budget (buffer_pool_size x buffer_size_mb)
 * is split between the workers and bounds the blocks each may have out.
 */
export function chooseWriter(cfg: WriterConfig, native: NativeLoad, probe: ProbeResult | null, workers: number): WriterChoice {
  const align = cfg.write_alignment;
  const blockBytes = Math.ceil(Math.max(WRITE_BLOCK_BYTES, align) / align) * align;
  const poolBytes = (cfg.buffer_pool_size * cfg.buffer_size_mb * 2 ** 20) / Math.max(1, workers);
  const options = {
    directIo: false,
    blockBytes,
    align,
    poolBlocks: Math.max(16, Math.floor(poolBytes / blockBytes)),
    batchIntervalMs: cfg.batch_interval_ms,
    batchSize: cfg.batch_size,
    preallocBytes: cfg.preallocate_mb * 2 ** 20,
  };
  const portable = (why: string): WriterChoice => ({ kind: 'portable', directIo: false, reason: `writer portable: ${why}`, options });
  if (!cfg.use_io_uring) return portable('use_io_uring = false in the config');
  if (native.addon === null) return portable(`native addon unavailable: ${native.reason}`);
  if (probe === null || !probe.ioUring) return portable(`io_uring unavailable: ${probe?.ioUringError ?? 'not probed'}`);
  if (blockBytes % 4096 !== 0) return portable(`write_alignment = ${align} is not a multiple of 4096`);
  const directIo = cfg.use_direct_io && probe.directIo;
  const direct = !cfg.use_direct_io
    ? 'O_DIRECT off (use_direct_io = false)'
    : probe.directIo
      ? 'O_DIRECT on'
      : `O_DIRECT off (${probe.directIoError ?? 'probe failed'})`;
  const ahead = options.preallocBytes > 0 ? `, space reserved ${cfg.preallocate_mb} MiB ahead` : '';
  return {
    kind: 'native',
    directIo,
    reason: `writer native: io_uring, ${direct}, ${blockBytes >> 10} KiB blocks${ahead}, kernel ${probe.kernel}`,
    options: { ...options, directIo },
  };
}

/** Block geometry of writer settings, for the portable writer. */
function geometryOf(o: WriterSettings | undefined): BlockGeometry {
  return {
    blockBytes: o?.blockBytes ?? DEFAULT_GEOMETRY.blockBytes,
    align: o?.align ?? DEFAULT_GEOMETRY.align,
    poolBlocks: o?.poolBlocks ?? DEFAULT_GEOMETRY.poolBlocks,
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
  if (kind !== 'native') return new PortableWriter(onError, geometryOf(writerOptions));
  const options: NativeWriterOptions = { directIo: true, ...writerOptions };
  try {
    return new NativeWriter({
      ...options,
      onError,
      onFallback: (path, reason) => problem(`O_DIRECT not used for ${path} (and others like it): ${reason}`),
    });
  } catch (err) {
    problem(`native writer failed in this worker, recording with the portable writer: ${(err as Error).message}`);
    return new PortableWriter(onError, geometryOf(writerOptions));
  }
}
