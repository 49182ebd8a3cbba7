//! The writer's data: options, errors, per-file state, the operation queue and the state
//! shared (under one mutex) by `write`/`close` on the JS thread and the two I/O threads.

use crate::pool::Pool;
use crate::uring::Ring;
use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub(crate) const ENOENT: i32 = 2;
pub(crate) const EIO: i32 = 5;
pub(crate) const EBADF: i32 = 9;
pub(crate) const EINVAL: i32 = 22;
pub(crate) const EMFILE: i32 = 24;
pub(crate) const ESHUTDOWN: i32 = 108;

#[derive(Debug, Clone)]
pub struct Options {
    /// Open files with O_DIRECT (each file falls back to buffered I/O where refused).
    pub direct_io: bool,
    /// Write block size, a multiple of ALIGN: what JS fills and one write carries.
    pub block_bytes: usize,
    /// Blocks in the pool: staging memory is at most `block_bytes * pool_blocks`, allocated lazily.
    pub pool_blocks: usize,
    /// Blocks handed over are queued for the disk at most this long after they arrive.
    pub batch_interval: Duration,
    /// Queued writes that wake the submitter before the interval ends.
    pub batch_size: usize,
    pub ring_entries: u32,
    /// Reserve file space this far ahead of the writes (fallocate), 0 = never: appending
    /// O_DIRECT writes that stay below the file's size take the kernel's fast path instead
    /// of its exclusive inode lock and a worker thread.
    pub prealloc_bytes: u64,
}

/// An error tied to one file, for JS: errno (0 for none), its name, where, and how many
/// bytes of the file are intact (complete appends the disk acknowledged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteError {
    pub errno: i32,
    pub op: &'static str,
    pub path: String,
    pub offset: u64,
    pub size: u64,
}

impl WriteError {
    pub fn code(&self) -> &'static str {
        errno_name(self.errno)
    }
    #[cfg_attr(test, allow(dead_code))] // used by js_writer.rs, left out of `cargo test`
    pub fn message(&self) -> String {
        let why = std::io::Error::from_raw_os_error(self.errno);
        format!("{} {} at offset {}: {why}", self.op, self.path, self.offset)
    }
}

pub fn errno_name(e: i32) -> &'static str {
    match e {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        9 => "EBADF",
        13 => "EACCES",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        36 => "ENAMETOOLONG",
        105 => "ENOBUFS",
        108 => "ESHUTDOWN",
        122 => "EDQUOT",
        _ => "EUNKNOWN",
    }
}

#[derive(Debug)]
pub struct Opened {
    pub id: u64,
    pub direct: bool,
    /// Why O_DIRECT was wanted but not used for this file.
    #[cfg_attr(test, allow(dead_code))]
    pub fallback: Option<String>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub open_files: u64,
    pub closing_files: u64,
    pub inflight: u64,
    pub queued: u64,
    pub blocks_in_use: u64,
    pub blocks_allocated: u64,
    pub writes: u64,
    pub bytes_written: u64,
    pub submits: u64,
    pub fsyncs: u64,
    pub preallocs: u64,
    pub errors: u64,
    pub fallbacks: u64,
}

/// How JS closed a file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closing {
    pub sync: bool,
    /// The file's final size (its committed end); None: whatever is committed.
    pub size: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct FileState {
    pub generation: u32,
    pub path: String,
    pub file: File,
    pub direct: bool,
    /// Writes queued but not handed to the kernel, and in the kernel.
    pub queued: u32,
    pub inflight: u32,
    /// The `seq` of each write in the kernel (a few at a time per file).
    pub inflight_seqs: Vec<u64>,
    /// Fragment headers waiting for this file's earlier writes to complete (in order).
    pub deferred: VecDeque<Op>,
    /// Whole fragments are on disk up to here (the end of the last header written).
    pub good: u64,
    /// End of the furthest write handed over.
    pub max_end: u64,
    /// Space reserved with fallocate up to here (the file's size while it grows).
    pub allocated: u64,
    /// fallocate is tried for this file (off after it failed once).
    pub prealloc: bool,
    pub error: Option<(i32, u64, &'static str)>,
    /// Writes are numbered in the order JS handed them over; after a failed write, the writes
    /// handed over later are dropped, the earlier ones (and headers they complete) still go.
    pub next_seq: u64,
    pub fail_seq: u64,
    /// The first error has been thrown to JS.
    pub delivered: bool,
    pub closing: Option<Closing>,
    pub finish_queued: bool,
}

impl FileState {
    /// A write handed over before `seq` is still in the kernel (a header must wait).
    pub fn earlier_in_flight(&self, seq: u64) -> bool {
        self.inflight_seqs.iter().any(|&s| s < seq)
    }

    /// A write handed over after the file's failed write: it will not be written.
    pub fn dropped(&self, seq: u64) -> bool {
        self.error.is_some() && seq > self.fail_seq
    }

    /// An error for JS about this file, reported at its intact (committed) size.
    pub fn error_at(&self, errno: i32, op: &'static str, offset: u64) -> WriteError {
        WriteError {
            errno,
            op,
            path: self.path.clone(),
            offset,
            size: self.good,
        }
    }

    pub fn error_for_js(&self) -> Option<WriteError> {
        let (errno, offset, op) = self.error?;
        Some(self.error_at(errno, op, offset))
    }
}

#[derive(Debug)]
pub(crate) enum Op {
    /// `len` bytes of `block` to file offset `off`, `done` of them already written. A
    /// fragment header has `commit` > 0: it waits for the file's earlier writes, and once
    /// written the file is whole up to `commit`.
    Write {
        slot: u32,
        block: u32,
        off: u64,
        len: u32,
        done: u32,
        commit: u64,
        seq: u64,
    },
    Finish {
        slot: u32,
    },
    Fsync {
        slot: u32,
    },
}

#[derive(Debug)]
pub(crate) struct State {
    pub files: Vec<Option<FileState>>,
    pub gens: Vec<u32>,
    pub free_slots: Vec<u32>,
    pub pool: Pool,
    pub queue: VecDeque<Op>,
    pub inflight: Vec<Option<Op>>,
    pub inflight_free: Vec<u32>,
    pub inflight_count: u32,
    pub events: Vec<WriteError>,
    /// Submit now (a close, a released header, room freed in a blocked ring).
    pub urgent: bool,
    pub blocked: bool,
    pub shutdown: bool,
    /// The submitter waits on `submit_cv` (a notify costs a futex syscall: only then).
    pub submitter_asleep: bool,
    pub stats: Stats,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Wakes the submitter.
    pub submit_cv: Condvar,
    pub ring: Ring,
    pub opts: Options,
}

impl Shared {
    /// Wakes the submitter if it sleeps.
    pub fn wake_submitter(&self, st: &State) {
        if st.submitter_asleep {
            self.submit_cv.notify_one();
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state for shutdown.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
