// The segment-file writer interface the per-stream pipeline writes through (blocks filled in
// place and handed over with their file offset, see media/fmp4-stream.ts), and the portable
// implementation (a positional write per block, no addon needed). The native implementation
// (io_uring, O_DIRECT, no copy) is workers/writer-native.ts.
import { close, closeSync, fdatasync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export class SegmentWriteError extends Error {
  override name = 'SegmentWriteError';
  /** errno name of the cause when known: 'ENOSPC', 'EIO', 'EBADF', 'ENOBUFS', ... */
  readonly code: string | undefined;
  constructor(
    readonly path: string,
    readonly offset: number,
    options?: { cause?: unknown },
  ) {
    super(`writing ${path} at offset ${offset} failed: ${String((options?.cause as Error)?.message ?? options?.cause)}`, options);
    const code = (options?.cause as { code?: unknown } | undefined)?.code;
    this.code = typeof code === 'string' ? code : undefined;
  }
}

export interface SegmentFile {
  readonly path: string;
  /**
   * Writes the first `len` bytes of `block` (from the writer's take()) at file `offset`;
   * the block is the writer's from now on, even when this throws. `commitEnd` > 0 marks a
   * fragment header: it lands after every write of the file handed over before it, and then
   * the file is whole up to `commitEnd` (see media/fmp4-stream.ts BlockSink).
   * @throws SegmentWriteError (the file's write error: every later write throws it too).
   */
  writeBlock(block: Uint8Array, offset: number, len: number, commitEnd: number): void;
  /**
   * Once its writes are done: cuts the file to `size` (its committed end), fdatasyncs when
   * `sync`, closes. Idempotent. The native writer finishes this off the JS thread (see
   * SegmentWriter.drain); a failure it finds then goes to the writer's onError.
   */
  close(sync: boolean, size: number): void;
}

/** A segment-file writer: the block source (media/fmp4-stream.ts BlockSink) and the files. */
export interface SegmentWriter {
  readonly kind: 'portable' | 'native';
  /** Bytes of a block from take(); a multiple of `align`. */
  readonly blockBytes: number;
  /** Offsets and lengths of block writes are multiples of this. */
  readonly align: number;
  open(absPath: string): SegmentFile;
  /** A free block to fill, or null when none is free (the disk is behind). */
  take(): Uint8Array | null;
  /** Gives back a taken block that will not be written. */
  drop(block: Uint8Array): void;
  /** Resolves once every file closed so far is written, truncated, synced and closed. */
  drain(): Promise<void>;
}

/** Block geometry and the staging budget (see chooseWriter in writer-native.ts). */
export interface BlockGeometry {
  blockBytes: number;
  align: number;
  /** Blocks that may be out at once (lent to the pipeline or being written). */
  poolBlocks: number;
}

/** A block written with positional writes, no addon needed; write size = block size. */
export const DEFAULT_GEOMETRY: BlockGeometry = { blockBytes: 64 << 10, align: 4096, poolBlocks: 2048 };
/** Idle blocks the portable writer keeps for reuse; more go to the GC. */
const MAX_IDLE_BLOCKS = 256;

/**
 * Plain positional writes: each block is written (pwrite) when it is handed over, on this
 * thread, so headers land after their data by construction. The fallback where the addon
 * or io_uring is missing.
 */
export class PortableWriter implements SegmentWriter {
  readonly kind = 'portable' as const;
  readonly blockBytes: number;
  readonly align: number;
  readonly #poolBlocks: number;
  #out = 0;
  readonly #idle: Uint8Array[] = [];
  /** Closes whose fdatasync is still running (off this thread, in libuv's pool). */
  readonly #closing = new Set<Promise<void>>();
  readonly #onError: (err: SegmentWriteError) => void;

  /** `onError` hears of a failed fdatasync/close, which happens after close() returned. */
  constructor(onError: (err: SegmentWriteError) => void = () => {}, geometry: BlockGeometry = DEFAULT_GEOMETRY) {
    if (!(geometry.align >= 1 && geometry.blockBytes % geometry.align === 0 && geometry.blockBytes > 0)) {
      throw new RangeError(`block of ${geometry.blockBytes} bytes with alignment ${geometry.align}`);
    }
    this.#onError = onError;
    this.blockBytes = geometry.blockBytes;
    this.align = geometry.align;
    this.#poolBlocks = geometry.poolBlocks;
  }

  open(absPath: string): SegmentFile {
    mkdirSync(dirname(absPath), { recursive: true });
    return new PortableFile(absPath, openSync(absPath, 'w', 0o644), this, (p) => {
      this.#closing.add(p);
      void p.finally(() => this.#closing.delete(p));
    }, this.#onError);
  }

  take(): Uint8Array | null {
    if (this.#out >= this.#poolBlocks) return null;
    this.#out++;
    return this.#idle.pop() ?? new Uint8Array(this.blockBytes);
  }

  drop(block: Uint8Array): void {
    this.#out--;
    if (this.#idle.length < MAX_IDLE_BLOCKS && block.length === this.blockBytes) this.#idle.push(block);
  }

  /** Resolves when every close so far has been synced and closed. Writes are synchronous. */
  async drain(): Promise<void> {
    while (this.#closing.size > 0) await Promise.all(this.#closing);
  }
}

class PortableFile implements SegmentFile {
  #fd: number;
  #closed = false;
  /** Whole fragments up to here; the furthest byte written; the first write error. */
  #committed = 0;
  #maxEnd = 0;
  #error: SegmentWriteError | null = null;
  readonly #w: PortableWriter;
  readonly #track: (p: Promise<void>) => void;
  readonly #onError: (err: SegmentWriteError) => void;

  constructor(
    readonly path: string,
    fd: number,
    w: PortableWriter,
    track: (p: Promise<void>) => void,
    onError: (err: SegmentWriteError) => void,
  ) {
    this.#fd = fd;
    this.#w = w;
    this.#track = track;
    this.#onError = onError;
  }

  writeBlock(block: Uint8Array, offset: number, len: number, commitEnd: number): void {
    try {
      if (this.#closed) throw new SegmentWriteError(this.path, offset, { cause: Object.assign(new Error('file is closed'), { code: 'EBADF' }) });
      if (this.#error !== null) throw this.#error;
      let done = 0;
      try {
        while (done < len) {
          // A short write is legal; retry with the remainder (rare: regular files on local disks).
          const n = writeSync(this.#fd, block, done, len - done, offset + done);
          if (n <= 0) throw new Error(`write returned ${n}`);
          done += n;
        }
      } catch (cause) {
        this.#error = new SegmentWriteError(this.path, offset + done, { cause });
        throw this.#error;
      }
      this.#maxEnd = Math.max(this.#maxEnd, offset + len);
      if (commitEnd > 0) this.#committed = Math.max(this.#committed, commitEnd);
    } finally {
      this.#w.drop(block);
    }
  }

  /**
   * Closes the file, cut to `size` (after a write error: to its last whole fragment). With
   * `sync`, fdatasync runs in libuv's thread pool and the descriptor closes after it: a slow
   * disk (or a stalled NAS) must not stall this worker's ingest.
   */
  close(sync: boolean, size: number): void {
    if (this.#closed) return;
    this.#closed = true;
    const fd = this.#fd;
    const target = this.#error !== null ? this.#committed : size;
    try {
      if (this.#maxEnd > target) ftruncateSync(fd, target);
    } catch (cause) {
      this.#onError(new SegmentWriteError(this.path, target, { cause }));
    }
    if (!sync) {
      closeSync(fd);
      return;
    }
    this.#track(
      new Promise<void>((resolve) => {
        fdatasync(fd, (syncErr) => {
          close(fd, (closeErr) => {
            const err = syncErr ?? closeErr;
            if (err) this.#onError(new SegmentWriteError(this.path, target, { cause: err }));
            resolve();
          });
        });
      }),
    );
  }
}
