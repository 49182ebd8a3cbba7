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
// One handle owns an io_uring, a pool of 4 KiB-aligned write blocks and two threads. JS
// takes a free block, fills it in place through an ArrayBuffer over the pool's memory, and
// hands it back with a file offset: the threads write it as it is, in batches, and the
// block is free again once the kernel is done with it. Nothing is copied for the disk.
// Errors tied to a file throw an Error whose `code` is the errno name (see WriterErrorInfo).

/** Opaque handle from writerCreate(); closed files and threads are released when collected. */
export interface WriterHandle {
  readonly __fluxWriter: never;
}

export interface WriterOptions {
  /** Open files with O_DIRECT (per file fallback to buffered I/O where refused). Default true. */
  readonly directIo?: boolean;
  /** Block bytes, rounded up to 4096 (4096 .. 16 MiB): what one write carries. Default 64 KiB. */
  readonly blockBytes?: number;
  /** Blocks in the pool (2 .. 1048576), allocated on first use. Default 2048. */
  readonly poolBlocks?: number;
  /** Blocks handed over are given to the kernel at most this long after (1 .. 10000). Default 100. */
  readonly batchIntervalMs?: number;
  /** Queued writes that trigger a submission before the interval ends (1 .. 4096). Default 32. */
  readonly batchSize?: number;
  /** Submission queue entries (8 .. 4096). Default 256. */
  readonly ringEntries?: number;
  /**
   * Reserve file space this many bytes ahead of the writes with fallocate (rounded up to
   * 4096; 0 = never, the default). Writes below the file's size take the kernel's fast path
   * (no exclusive inode lock, no io_uring worker thread); files are cut to their final size
   * at close, and a crash leaves zeros after the last fragment.
   */
  readonly preallocBytes?: number;
}

export interface OpenedFile {
  /** File id for writerWrite/writerClose (an integer below 2^53). */
  readonly id: number;
  /** O_DIRECT is in use for this file. */
  readonly direct: boolean;
  /** Why O_DIRECT was wanted but not used (tmpfs, EINVAL from the filesystem). */
  readonly fallback?: string;
}

/** What a thrown writer Error carries beyond `message`, and what writerPoll() returns. */
export interface WriterErrorInfo {
  /** errno name: "ENOSPC", "EIO", "EBADF" (closed or unknown file), "EINVAL" (misuse), ... */
  readonly code: string;
  readonly errno: number;
  /** "open" | "write" | "drop" | "truncate" | "fdatasync" */
  readonly op: string;
  readonly path: string;
  /** File offset of the failed operation. */
  readonly offset: number;
  /** Bytes of the file that are intact: whole fragments up to the last header written. */
  readonly size: number;
  readonly message: string;
}

export interface WriterStats {
  readonly openFiles: number;
  readonly closingFiles: number;
  readonly inflight: number;
  readonly queued: number;
  /** Blocks lent to JS or waiting for the disk. */
  readonly blocksInUse: number;
  /** Blocks allocated so far (memory: blocksAllocated x blockBytes). */
  readonly blocksAllocated: number;
  readonly writes: number;
  readonly bytesWritten: number;
  /** io_uring_enter calls that submitted writes. */
  readonly submits: number;
  readonly fsyncs: number;
  /** fallocate calls that reserved space. */
  readonly preallocs: number;
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

/** Lends JS a free block: its index, or -1 when every block is out (the disk is behind). */
export declare function writerTake(w: WriterHandle): number;

/**
 * An ArrayBuffer over block `block`'s memory (blockBytes long), to fill in place. Make it
 * once per index and keep it: the memory stays valid as long as the ArrayBuffer does. Touch
 * it only between writerTake() and handing the block back.
 * @throws Error (code "ERR_OUT_OF_RANGE") for an index never taken.
 */
export declare function writerBlock(w: WriterHandle, block: number): ArrayBuffer;

/**
 * Hands block `block` back to be written: its first `length` bytes at file `offset` (with
 * O_DIRECT both multiples of 4096). The block is the writer's from now on, even when this
 * throws. `commitEnd` > 0 marks a fragment header: it is written only after every write of
 * the file handed over before it has completed, and once it has, the file is whole up to
 * `commitEnd`.
 * @throws Error with WriterErrorInfo fields: EBADF (closed or unknown file), EINVAL (a block
 *   JS does not hold, a bad length, unaligned O_DIRECT), or the file's write error (every
 *   write after a failed one throws it).
 */
export declare function writerWrite(w: WriterHandle, id: number, block: number, offset: number, length: number, commitEnd?: number): void;

/** Gives back a taken block that will not be written. @throws Error (EINVAL) for a block JS does not hold. */
export declare function writerDrop(w: WriterHandle, block: number): void;

/**
 * Once every write handed over has completed: cuts the file to `size` (default, and always
 * after an error: its intact size), fdatasyncs when `sync`, closes; all off the JS thread.
 * A second close is a no-op.
 * @throws Error with WriterErrorInfo fields when the file had a write error not yet reported
 *   (the file is closed anyway, cut to its intact size).
 */
export declare function writerClose(w: WriterHandle, id: number, sync?: boolean, size?: number): void;

/** Errors found after their file was closed (last writes, truncate, fdatasync), or null. */
export declare function writerPoll(w: WriterHandle): WriterErrorInfo[] | null;

/** Closed files whose last writes, truncate, fdatasync and close have not completed yet. */
export declare function writerPending(w: WriterHandle): number;

export declare function writerStats(w: WriterHandle): WriterStats;

/** Closes every open file at its intact size (no fdatasync) once written and stops the threads; `wait` blocks until then. */
export declare function writerShutdown(w: WriterHandle, wait?: boolean): void;
