// The segment-file writer interface the per-stream pipeline writes through, and the
// portable implementation (positional writev per fragment, no addon needed). The native
// implementation (io_uring, O_DIRECT) is workers/writer-native.ts.
import { close, closeSync, fdatasync, ftruncateSync, mkdirSync, openSync, writevSync } from 'node:fs';
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
  /** Bytes accepted so far (the next append's file offset). */
  readonly size: number;
  /**
   * Appends the parts in order. The parts are views the caller reuses after this returns,
   * so an implementation must consume (write or copy) them before returning.
   */
  append(parts: readonly Uint8Array[], count?: number): void;
  /**
   * Flushes, optionally fdatasyncs, closes. Idempotent. The native writer finishes this off
   * the JS thread after returning (see SegmentWriter.drain); a failure it finds then goes to
   * the writer's onError.
   */
  close(sync: boolean): void;
}

export interface SegmentWriter {
  readonly kind: 'portable' | 'native';
  open(absPath: string): SegmentFile;
  /** Resolves once every file closed so far is written, truncated, synced and closed. */
  drain(): Promise<void>;
}

/** Plain positional writes: one writev per appended fragment (parts are never copied). */
export class PortableWriter implements SegmentWriter {
  readonly kind = 'portable' as const;
  /** Closes whose fdatasync is still running (off this thread, in libuv's pool). */
  readonly #closing = new Set<Promise<void>>();
  readonly #onError: (err: SegmentWriteError) => void;

  /** `onError` hears of a failed fdatasync/close, which happens after close() returned. */
  constructor(onError: (err: SegmentWriteError) => void = () => {}) {
    this.#onError = onError;
  }

  open(absPath: string): SegmentFile {
    mkdirSync(dirname(absPath), { recursive: true });
    return new PortableFile(absPath, openSync(absPath, 'w', 0o644), (p) => {
      this.#closing.add(p);
      void p.finally(() => this.#closing.delete(p));
    }, this.#onError);
  }

  /** Resolves when every close so far has been synced and closed. Writes are synchronous. */
  async drain(): Promise<void> {
    while (this.#closing.size > 0) await Promise.all(this.#closing);
  }
}

class PortableFile implements SegmentFile {
  size = 0;
  #fd: number;
  #closed = false;
  /** Reused argument array for writevSync; avoids an allocation per fragment. */
  #iov: Uint8Array[] = [];

  #track: (p: Promise<void>) => void;
  #onError: (err: SegmentWriteError) => void;

  constructor(
    readonly path: string,
    fd: number,
    track: (p: Promise<void>) => void,
    onError: (err: SegmentWriteError) => void,
  ) {
    this.#fd = fd;
    this.#track = track;
    this.#onError = onError;
  }

  append(parts: readonly Uint8Array[], count = parts.length): void {
    if (this.#closed) throw new SegmentWriteError(this.path, this.size, { cause: 'file is closed' });
    let want = 0;
    this.#iov.length = 0;
    for (let i = 0; i < count; i++) {
      const p = parts[i]!;
      if (p.length === 0) continue;
      this.#iov.push(p);
      want += p.length;
    }
    let done = 0;
    try {
      while (done < want) {
        // A short write is legal; retry with the remainder (rare: regular files on local disks).
        const n = writevSync(this.#fd, done === 0 ? this.#iov : remainder(this.#iov, done), this.size + done);
        if (n <= 0) throw new Error(`writev returned ${n}`);
        done += n;
      }
    } catch (cause) {
      // Keep the file consistent: cut back to the last complete append.
      try {
        ftruncateSync(this.#fd, this.size);
      } catch {
        /* the write error is the one to report */
      }
      throw new SegmentWriteError(this.path, this.size, { cause });
    }
    this.size += want;
  }

  /**
   * Closes the file. With `sync`, fdatasync runs in libuv's thread pool and the descriptor
   * closes after it: a slow disk (or a stalled NAS) must not stall this worker's ingest.
   */
  close(sync: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    const fd = this.#fd;
    if (!sync) {
      closeSync(fd);
      return;
    }
    this.#track(
      new Promise<void>((resolve) => {
        fdatasync(fd, (syncErr) => {
          close(fd, (closeErr) => {
            const err = syncErr ?? closeErr;
            if (err) this.#onError(new SegmentWriteError(this.path, this.size, { cause: err }));
            resolve();
          });
        });
      }),
    );
  }
}

/** The views left after skipping `skip` bytes of `parts` (slow path after a short write). */
function remainder(parts: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    if (skip >= p.length) {
      skip -= p.length;
      continue;
    }
    out.push(skip > 0 ? p.subarray(skip) : p);
    skip = 0;
  }
  return out;
}
