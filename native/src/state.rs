//! The writer's data: options, errors, per-file state, the operation queue and the state
//! shared (under one mutex) by `append`/`close` on the JS thread and the two I/O threads.

use crate::pool::{Block, Pool};
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
pub(crate) const ENOBUFS: i32 = 105;
pub(crate) const ESHUTDOWN: i32 = 108;

#[derive(Debug, Clone)]
pub struct Options {
    /// Open files with O_DIRECT (each file falls back to buffered I/O where refused).
    pub direct_io: bool,
    /// Staging chunk size, a multiple of ALIGN: the largest single write.
    pub chunk_bytes: usize,
    /// Chunks in the pool: staging memory is `chunk_bytes * pool_chunks`, allocated lazily.
    pub pool_chunks: usize,
    /// Bytes appended are queued for the disk at most this long after they arrive.
    pub batch_interval: Duration,
    /// Queued writes that wake the submitter before the interval ends.
    pub batch_size: usize,
    pub ring_entries: u32,
    /// How long an append waits for a free chunk (the disk is behind) before ENOBUFS.
    pub stage_wait: Duration,
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
    pub chunks_in_use: u64,
    pub writes: u64,
    pub bytes_written: u64,
    pub submits: u64,
    pub fsyncs: u64,
    pub errors: u64,
    pub fallbacks: u64,
}

#[derive(Debug)]
pub(crate) struct Range {
    pub start: u64,
    pub end: u64,
    pub done: bool,
}

#[derive(Debug)]
pub(crate) struct Cur {
    pub chunk: u32,
    pub base: u64,
    pub fill: usize,
}

#[derive(Debug)]
pub(crate) struct FileState {
    pub generation: u32,
    pub path: String,
    pub file: File,
    pub direct: bool,
    /// Bytes accepted from JS.
    pub size: u64,
    /// File offset where the next chunk starts (with O_DIRECT: size rounded down to ALIGN).
    pub next_base: u64,
    pub cur: Option<Cur>,
    /// O_DIRECT only: the unaligned bytes after `next_base`, not yet queued.
    pub tail: Option<Block>,
    pub tail_len: usize,
    /// O_DIRECT only: the tail has bytes no write has carried yet.
    pub tail_dirty: bool,
    /// O_DIRECT only: a copy of the tail, padded, in flight as the file's provisional end
    /// (written, then the file cut to its real size), so a crash keeps whole fragments.
    pub tail_io: Option<Block>,
    /// That tail write (and its truncate) is in flight: this file's next writes wait in
    /// `deferred`, since they cover the same block and must land after it.
    pub tail_busy: bool,
    /// The queued tail write was handed to the kernel: later writes of the file wait.
    pub tail_inflight: bool,
    pub deferred: VecDeque<Op>,
    pub queued: u32,
    pub inflight: u32,
    pub ranges: VecDeque<Range>,
    /// Contiguous prefix of the file the disk has acknowledged.
    pub acked: u64,
    /// Ends of appends beyond `good`; `good` is the last append end within `acked`.
    pub bounds: VecDeque<u64>,
    pub good: u64,
    pub error: Option<(i32, u64, &'static str)>,
    pub delivered: bool,
    /// Size to cut the file to at finish, fixed when an error reached JS.
    pub truncate_to: Option<u64>,
    pub padded: bool,
    pub closing: Option<bool>,
    pub finish_queued: bool,
    /// An append is copying into this file's chunks without the lock: no flush meanwhile.
    pub busy: bool,
}

impl FileState {
    /// An append refused for this file (`errno`), reported at its current, intact size.
    pub fn append_error(&self, errno: i32) -> WriteError {
        WriteError {
            errno,
            op: "append",
            path: self.path.clone(),
            offset: self.size,
            size: self.size,
        }
    }

    pub fn advance_acked(&mut self) {
        while self.ranges.front().is_some_and(|r| r.done) {
            if let Some(r) = self.ranges.pop_front() {
                self.acked = r.end;
            }
        }
        if self.ranges.is_empty() && self.queued == 0 && self.cur.is_none() && self.tail_len == 0 {
            self.acked = self.acked.max(self.size);
        }
        while self.bounds.front().is_some_and(|&b| b <= self.acked) {
            self.good = self.bounds.pop_front().unwrap_or(self.good);
        }
    }

    pub fn error_for_js(&mut self) -> Option<WriteError> {
        let (errno, offset, op) = self.error?;
        self.advance_acked();
        let size = *self.truncate_to.get_or_insert(self.good);
        Some(WriteError {
            errno,
            op,
            path: self.path.clone(),
            offset,
            size,
        })
    }
}

#[derive(Debug)]
pub(crate) enum Buf {
    Chunk(u32),
    Tail,
    /// The provisional tail write; the file is cut to `size` when it completes.
    TailIo {
        size: u64,
    },
}

#[derive(Debug)]
pub(crate) enum Op {
    /// `len` bytes from `buf` at file offset `off`; `done` of them already written.
    Write {
        slot: u32,
        buf: Buf,
        off: u64,
        len: u32,
        done: u32,
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
    /// Submit now (a close, a flush for a waiting append, room freed in a blocked ring).
    pub urgent: bool,
    /// Flush every file's partial chunk on the next pass.
    pub flush_all: bool,
    pub blocked: bool,
    pub shutdown: bool,
    /// The submitter waits on `submit_cv` (a notify costs a futex syscall: only then).
    pub submitter_asleep: bool,
    /// Appends waiting on `space_cv` for chunks, and how many free chunks wake them.
    pub append_waiters: u32,
    pub append_need: usize,
    pub stats: Stats,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Wakes the submitter.
    pub submit_cv: Condvar,
    /// Wakes appends waiting for chunks and shutdown waiting for the threads.
    pub space_cv: Condvar,
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

    /// Wakes appends waiting for chunks, if any.
    pub fn wake_appends(&self, st: &State) {
        if st.append_waiters > 0 && (st.pool.available() >= st.append_need || st.shutdown) {
            self.space_cv.notify_all();
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state for shutdown.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
