// The one written contract of the flux-native addon's JS surface (native/src/lib.rs exports it).
// native/native.test.ts checks every `export declare function` here against the loaded .node,
// so add a function here in the same change that exports it from Rust.

/** What the kernel offers the segment writer, probed once at start-up per target directory. */
export interface ProbeResult {
  /** A small ring could be created with io_uring_setup(2) and closed again. */
  readonly ioUring: boolean;
  /** Why not, e.g. "io_uring_setup failed: Operation not permitted (os error 1) (see ...)". */
  readonly ioUringError?: string;
  /**
   * One 4096-byte aligned block could be written with O_DIRECT to a fresh temp file in the
   * directory (then unlinked), and the directory is not tmpfs (which accepts O_DIRECT since
   * Linux 6.6 but still serves it from the page cache).
   */
  readonly directIo: boolean;
  /** Why not: open/write errno text, or the tmpfs verdict. */
  readonly directIoError?: string;
  /** uname(2) release of the running kernel, e.g. "6.8.0-45-generic"; "unknown" if uname fails. */
  readonly kernel: string;
}

/** The crate version (CARGO_PKG_VERSION of native/Cargo.toml), e.g. "0.1.0". */
export declare function version(): string;

/**
 * Probes io_uring and O_DIRECT support for recording into `path` (a directory). Never
 * throws for a kernel or filesystem failure: those come back as `*Error` strings.
 * @throws TypeError (code "ERR_INVALID_ARG_TYPE") when `path` is not a string, and
 *   (code "ERR_INVALID_ARG_VALUE") when it is 4096 bytes of UTF-8 or longer.
 */
export declare function probe(path: string): ProbeResult;

// ---- The segment writer (native/src/js_writer.rs) -------------------------------------
// One handle owns an io_uring, a pool of 4 KiB-aligned staging chunks and two threads.
// Appends copy into the pool and return at once; the threads write in batches. Errors tied
// to a file throw an Error whose `code` is the errno name (see WriterErrorInfo).

/** Opaque handle from writerCreate(); closed files and threads are released when collected. */
export interface WriterHandle {
  readonly __fluxWriter: never;
}

export interface WriterOptions {
  /** Open files with O_DIRECT (per file fallback to buffered I/O where refused). Default true. */
  readonly directIo?: boolean;
  /** Staging chunk bytes, rounded up to 4096 (4096 .. 16 MiB): the largest single write. Default 1 MiB. */
  readonly chunkBytes?: number;
  /** Chunks in the pool (2 .. 65536), allocated on first use. Default 64. */
  readonly poolChunks?: number;
  /** Appended bytes are handed to the kernel at most this long after (1 .. 10000). Default 100. */
  readonly batchIntervalMs?: number;
  /** Queued writes that trigger a submission before the interval ends (1 .. 4096). Default 32. */
  readonly batchSize?: number;
  /** Submission queue entries (8 .. 4096). Default 256. */
  readonly ringEntries?: number;
  /** How long an append waits for a free chunk when the disk is behind (0 .. 60000). Default 2000. */
  readonly stageWaitMs?: number;
}

export interface OpenedFile {
  /** File id for writerAppend/writerClose (an integer below 2^53). */
  readonly id: number;
  /** O_DIRECT is in use for this file. */
  readonly direct: boolean;
  /** Why O_DIRECT was wanted but not used (tmpfs, EINVAL from the filesystem). */
  readonly fallback?: string;
}

/** What a thrown writer Error carries beyond `message`, and what writerPoll() returns. */
export interface WriterErrorInfo {
  /** errno name: "ENOSPC", "EIO", "EBADF" (closed or unknown file), "ENOBUFS" (staging pool), ... */
  readonly code: string;
  readonly errno: number;
  /** "open" | "append" | "write" | "truncate" | "fdatasync" */
  readonly op: string;
  readonly path: string;
  /** File offset of the failed operation. */
  readonly offset: number;
  /** Bytes of the file that are intact: complete appends the disk acknowledged. */
  readonly size: number;
  readonly message: string;
}

export interface WriterStats {
  readonly openFiles: number;
  readonly closingFiles: number;
  readonly inflight: number;
  readonly queued: number;
  readonly chunksInUse: number;
  readonly writes: number;
  readonly bytesWritten: number;
  /** io_uring_enter calls that submitted writes. */
  readonly submits: number;
  readonly fsyncs: number;
  readonly errors: number;
  readonly fallbacks: number;
}

/**
 * Sets up a writer (io_uring, threads).
 * @throws Error (code "ERR_IO_URING") when io_uring cannot be set up; TypeError for bad options.
 */
export declare function writerCreate(options?: WriterOptions): WriterHandle;

/**
 * Creates or truncates `path` (its directory must exist). `directIo` overrides the option.
 * @throws Error with WriterErrorInfo fields (op "open") when open(2) fails.
 */
export declare function writerOpen(w: WriterHandle, path: string, directIo?: boolean): OpenedFile;

/**
 * Copies `parts[0..count)` (Uint8Array views, consumed before returning) to the end of the
 * file; returns the file's new size. All or nothing.
 * @throws Error with WriterErrorInfo fields: EBADF after close, ENOBUFS when the staging pool
 *   stays full for stageWaitMs or cannot hold the append, or the first write error of the file.
 */
export declare function writerAppend(w: WriterHandle, id: number, parts: readonly Uint8Array[], count?: number): number;

/**
 * Writes out the rest, then truncates to the real size, fdatasyncs when `sync`, closes, all
 * off the JS thread. A second close is a no-op.
 * @throws Error with WriterErrorInfo fields when the file had a write error not yet reported
 *   (the file is closed anyway, cut to its intact size).
 */
export declare function writerClose(w: WriterHandle, id: number, sync?: boolean): void;

/** Errors found after their file was closed (last write, truncate, fdatasync), or null. */
export declare function writerPoll(w: WriterHandle): WriterErrorInfo[] | null;

/** Closed files whose last writes, truncate, fdatasync and close have not completed yet. */
export declare function writerPending(w: WriterHandle): number;

export declare function writerStats(w: WriterHandle): WriterStats;

/** Closes every open file (no fdatasync) once written and stops the threads; `wait` blocks until then. */
export declare function writerShutdown(w: WriterHandle, wait?: boolean): void;
