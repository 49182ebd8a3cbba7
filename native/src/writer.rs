//! The segment writer: many open files written from a pool of 4 KiB-aligned blocks that JS
//! fills in place (no copy), by io_uring from two background threads (io.rs), so the JS
//! thread never copies for the disk and never waits for it.
//!
//! A block goes JS -> writer -> kernel -> pool: `take` lends JS a free block, `write` hands
//! it back with a file offset and length (whole aligned blocks with O_DIRECT), and once the
//! kernel has written it the block is free again. A write marked as a fragment header
//! (`commit` > 0) is held until every earlier write of its file has completed, so a crash
//! never leaves a header whose data is missing, and once it lands the file is whole up to
//! `commit`. `close` waits for the file's writes, cuts it to its final size (space reserved
//! ahead with fallocate, or uncommitted writes after an error), fdatasyncs if asked, and
//! closes the fd.

use crate::io;
use crate::pool::{ALIGN, Block, Owner, Pool};
use crate::state::{
    Closing, EBADF, EINVAL, EMFILE, ENOENT, ESHUTDOWN, FileState, Op, Shared, State,
};
pub use crate::state::{Opened, Options, Stats, WriteError};
use crate::sys;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// File ids carry the slot in the low bits and a generation above, so a stale id (a file
/// closed and its slot reused) is recognised. 2^20 slots and 32 generation bits keep ids
/// below 2^53, exact as JS numbers.
const SLOT_BITS: u32 = 20;
/// Most files one writer holds open at once (a worker records a few hundred streams).
pub const MAX_OPEN_FILES: usize = 1 << SLOT_BITS;

#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn slot_of(id: u64) -> (usize, u32) {
    (
        (id & ((1 << SLOT_BITS) - 1)) as usize,
        (id >> SLOT_BITS) as u32,
    )
}

/// A misuse of a block (not held by JS): a caller bug, reported as EINVAL.
fn block_error(op: &'static str, block: u32) -> WriteError {
    WriteError {
        errno: EINVAL,
        op,
        path: format!("block {block}"),
        offset: 0,
        size: 0,
    }
}

impl Writer {
    pub fn new(mut opts: Options) -> std::io::Result<Writer> {
        opts.block_bytes = opts.block_bytes.max(ALIGN).next_multiple_of(ALIGN);
        opts.pool_blocks = opts.pool_blocks.max(2);
        opts.batch_size = opts.batch_size.max(1);
        opts.prealloc_bytes = opts.prealloc_bytes.next_multiple_of(ALIGN as u64);
        let entries = opts.ring_entries.clamp(8, 4096);
        let ring = crate::uring::Ring::new(entries, entries * 2)?;
        let state = State {
            files: Vec::new(),
            gens: Vec::new(),
            free_slots: Vec::new(),
            pool: Pool::new(opts.block_bytes, opts.pool_blocks),
            queue: VecDeque::new(),
            inflight: Vec::new(),
            inflight_free: Vec::new(),
            inflight_count: 0,
            events: Vec::new(),
            urgent: false,
            blocked: false,
            shutdown: false,
            submitter_asleep: false,
            stats: Stats::default(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            submit_cv: Condvar::new(),
            ring,
            opts,
        });
        let threads = io::spawn(&shared)?;
        Ok(Writer {
            shared,
            threads: Mutex::new(threads),
        })
    }

    /// Creates (truncating) `path`; O_DIRECT per `direct` (default: the writer's option).
    pub fn open(&self, path: &str, direct: Option<bool>) -> Result<Opened, WriteError> {
        let want = direct.unwrap_or(self.shared.opts.direct_io) && sys::O_DIRECT.is_some();
        let fail = |errno| WriteError {
            errno,
            op: "open",
            path: path.to_string(),
            offset: 0,
            size: 0,
        };
        if self.shared.lock().shutdown {
            return Err(fail(ESHUTDOWN));
        }
        let mut fallback = None;
        let mut file = None;
        if want {
            match open_file(path, sys::O_DIRECT.unwrap_or(0)) {
                Ok(f) if is_tmpfs(&f) => {
                    fallback = Some("tmpfs serves O_DIRECT from the page cache".to_string());
                }
                Ok(f) => file = Some(f),
                Err(e) if e.raw_os_error() == Some(EINVAL) => {
                    fallback = Some("the filesystem refused O_DIRECT (EINVAL)".to_string());
                }
                Err(e) => return Err(fail(e.raw_os_error().unwrap_or(ENOENT))),
            }
        }
        let direct = file.is_some();
        let file = match file {
            Some(f) => f,
            None => open_file(path, 0).map_err(|e| fail(e.raw_os_error().unwrap_or(ENOENT)))?,
        };
        let mut g = self.shared.lock();
        let slot = match g.free_slots.pop() {
            Some(s) => s as usize,
            None if g.files.len() < MAX_OPEN_FILES => {
                g.files.push(None);
                g.gens.push(0);
                g.files.len() - 1
            }
            None => return Err(fail(EMFILE)),
        };
        let generation = g.gens[slot].wrapping_add(1);
        g.gens[slot] = generation;
        g.files[slot] = Some(FileState {
            generation,
            path: path.to_string(),
            file,
            direct,
            queued: 0,
            inflight: 0,
            inflight_seqs: Vec::new(),
            deferred: VecDeque::new(),
            good: 0,
            max_end: 0,
            allocated: 0,
            prealloc: self.shared.opts.prealloc_bytes > 0,
            error: None,
            next_seq: 0,
            fail_seq: u64::MAX,
            delivered: false,
            closing: None,
            finish_queued: false,
        });
        g.stats.open_files += 1;
        if fallback.is_some() {
            g.stats.fallbacks += 1;
        }
        Ok(Opened {
            id: (u64::from(generation) << SLOT_BITS) | slot as u64,
            direct,
            fallback,
        })
    }

    /// Lends JS a free block; None when all are out (the disk is behind) or memory ran out.
    pub fn take(&self) -> Option<u32> {
        self.shared.lock().pool.take()
    }

    /// The memory of a block (allocated by `take`), for a JS view.
    pub fn block(&self, id: u32) -> Option<Arc<Block>> {
        self.shared.lock().pool.shared(id)
    }

    /// JS gives back a block it will not write.
    pub fn drop_block(&self, id: u32) -> Result<(), WriteError> {
        if self.shared.lock().pool.hand_over(id, Owner::Free) {
            Ok(())
        } else {
            Err(block_error("drop", id))
        }
    }

    /// Queues `len` bytes of block `block` for file offset `off` (see the module comment for
    /// `commit`). The block is the writer's from now on, even when this fails: a file that
    /// is closed, unknown or had an error (reported once, then the write is dropped
    /// silently), or an unaligned O_DIRECT write.
    pub fn write(
        &self,
        id: u64,
        block: u32,
        off: u64,
        len: usize,
        commit: u64,
    ) -> Result<(), WriteError> {
        let (slot, generation) = slot_of(id);
        let sh = &*self.shared;
        let mut g = sh.lock();
        let st = &mut *g;
        if !st.pool.hand_over(block, Owner::Writer) {
            return Err(block_error("write", block));
        }
        let Some(f) = live(&mut st.files, slot, generation) else {
            st.pool.release(block);
            return Err(WriteError {
                errno: EBADF,
                op: "write",
                path: String::new(),
                offset: off,
                size: 0,
            });
        };
        let bad = if f.closing.is_some() {
            Some(EBADF)
        } else if len == 0
            || len > sh.opts.block_bytes
            || (f.direct && (off % ALIGN as u64 != 0 || len % ALIGN != 0))
        {
            Some(EINVAL)
        } else {
            None
        };
        let refused = match (bad, f.error_for_js()) {
            (Some(errno), _) => Some(f.error_at(errno, "write", off)),
            (None, Some(e)) => {
                f.delivered = true; // every write after an error throws it again
                Some(e)
            }
            (None, None) => None,
        };
        if let Some(e) = refused {
            st.pool.release(block);
            return Err(e);
        }
        f.max_end = f.max_end.max(off + len as u64);
        f.queued += 1;
        let seq = f.next_seq;
        f.next_seq += 1;
        st.queue.push_back(Op::Write {
            slot: slot as u32,
            block,
            off,
            len: len as u32,
            done: 0,
            commit,
            seq,
        });
        if st.queue.len() >= sh.opts.batch_size {
            sh.wake_submitter(st);
        }
        Ok(())
    }

    /// Queues the finish once the file's writes are done: cut to `size` (None: the committed
    /// end; after an error always the committed end), fdatasync when `sync`, close. A second
    /// close, or a close of an unknown id, does nothing. An error not yet reported is
    /// returned (the file is closed anyway); later ones arrive through `take_events`.
    pub fn close(&self, id: u64, sync: bool, size: Option<u64>) -> Result<(), WriteError> {
        let (slot, generation) = slot_of(id);
        let sh = &*self.shared;
        let mut g = sh.lock();
        let st = &mut *g;
        let Some(f) = live(&mut st.files, slot, generation) else {
            return Ok(());
        };
        if f.closing.is_some() {
            return Ok(());
        }
        let undelivered = if f.delivered { None } else { f.error_for_js() };
        f.delivered = true;
        io::begin_close(st, slot as u32, Closing { sync, size });
        st.urgent = true;
        sh.wake_submitter(st);
        undelivered.map_or(Ok(()), Err)
    }

    /// Errors found after JS closed the file (last writes, truncate, fdatasync).
    #[cfg_attr(test, allow(dead_code))]
    pub fn take_events(&self) -> Vec<WriteError> {
        let mut g = self.shared.lock();
        if g.events.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut g.events)
        }
    }

    pub fn stats(&self) -> Stats {
        let g = self.shared.lock();
        let mut s = g.stats;
        s.inflight = u64::from(g.inflight_count);
        s.queued = g.queue.len() as u64;
        s.blocks_in_use = g.pool.in_use() as u64;
        s.blocks_allocated = g.pool.allocated() as u64;
        s
    }

    /// Files closed by JS whose finish has not completed yet.
    pub fn pending(&self) -> u64 {
        self.shared.lock().stats.closing_files
    }

    /// Closes every open file (without fdatasync, at its committed end) once its writes are
    /// done, then stops the threads. With `wait`, returns after they stopped. Idempotent.
    pub fn shutdown(&self, wait: bool) {
        {
            let mut g = self.shared.lock();
            g.shutdown = true;
            g.urgent = true;
        }
        self.shared.submit_cv.notify_one();
        if wait {
            let threads =
                std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

pub(crate) fn live(
    files: &mut [Option<FileState>],
    slot: usize,
    generation: u32,
) -> Option<&mut FileState> {
    files
        .get_mut(slot)?
        .as_mut()
        .filter(|f| f.generation == generation)
}

fn open_file(path: &str, extra: i32) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(extra)
        .open(path)
}

fn is_tmpfs(f: &File) -> bool {
    let mut fs = sys::StatFs::default();
    // SAFETY: `fs` is a writable `struct statfs` (layout pinned in sys.rs); the fd is open.
    unsafe { sys::fstatfs(f.as_raw_fd(), &mut fs) == 0 && fs.f_type == sys::TMPFS_MAGIC }
}
