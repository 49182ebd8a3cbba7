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
