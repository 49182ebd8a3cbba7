//! The segment writer: many open files, appends copied once into 4 KiB-aligned chunks of a
//! fixed pool, written by io_uring from two background threads (io.rs), so the JS thread
//! only copies bytes and never waits for the disk.
//!
//! Per file, bytes flow: `append` copies into the file's current chunk; a full chunk is
//! queued at once; every `batch_interval` the submitter queues the filled part of every
//! current chunk (with O_DIRECT only whole 4 KiB blocks: the unaligned rest, < 4 KiB, moves
//! to the file's tail block and leads the next chunk). `close` queues the last bytes (with
//! O_DIRECT padded to a whole block) and, once every write has completed, truncates to the
//! real size, fdatasyncs if asked, and closes the fd. Each byte is written exactly once.

use crate::io;
use crate::pool::{ALIGN, Block, Pool};
use crate::state::{
    Buf, Cur, EBADF, EINVAL, EMFILE, ENOBUFS, ENOENT, ESHUTDOWN, FileState, Shared, State,
};
pub use crate::state::{Opened, Options, Stats, WriteError};
use crate::sys;
use crate::uring::Ring;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

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

impl Writer {
    pub fn new(mut opts: Options) -> std::io::Result<Writer> {
        opts.chunk_bytes = opts.chunk_bytes.max(ALIGN).next_multiple_of(ALIGN);
        opts.pool_chunks = opts.pool_chunks.max(2);
        opts.batch_size = opts.batch_size.max(1);
        let entries = opts.ring_entries.clamp(8, 4096);
        let ring = Ring::new(entries, entries * 2)?;
        let state = State {
            files: Vec::new(),
            gens: Vec::new(),
            free_slots: Vec::new(),
            pool: Pool::new(opts.chunk_bytes, opts.pool_chunks),
            queue: VecDeque::new(),
            inflight: Vec::new(),
            inflight_free: Vec::new(),
            inflight_count: 0,
            events: Vec::new(),
            urgent: false,
            flush_all: false,
            blocked: false,
            shutdown: false,
            submitter_asleep: false,
            append_waiters: 0,
            append_need: 0,
            stats: Stats::default(),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            submit_cv: Condvar::new(),
            space_cv: Condvar::new(),
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
        let tail = if direct {
            Some(Block::new(ALIGN).ok_or_else(|| fail(ENOBUFS))?)
        } else {
            None
        };
        let tail_io = if direct {
            Some(Block::new(ALIGN).ok_or_else(|| fail(ENOBUFS))?)
        } else {
            None
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
            size: 0,
            next_base: 0,
            cur: None,
            tail,
            tail_len: 0,
            tail_dirty: false,
            tail_io,
            tail_busy: false,
            tail_inflight: false,
            deferred: VecDeque::new(),
            queued: 0,
            inflight: 0,
            ranges: VecDeque::new(),
            acked: 0,
            bounds: VecDeque::new(),
            good: 0,
            error: None,
            delivered: false,
            truncate_to: None,
            padded: false,
            closing: None,
            finish_queued: false,
            busy: false,
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

    /// Copies `parts` (in order) into the file's staging chunks; returns the new size. All
    /// or nothing: on an error nothing of `parts` is kept.
    pub fn append(&self, id: u64, parts: &[&[u8]]) -> Result<u64, WriteError> {
        let (slot, generation) = slot_of(id);
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let sh = &*self.shared;
        let chunk = sh.opts.chunk_bytes;
        let mut g = sh.lock();
        let deadline = Instant::now() + sh.opts.stage_wait;
        let mut waited = false;
        loop {
            let st = &mut *g;
            let Some(f) = live(&mut st.files, slot, generation) else {
                return Err(WriteError {
                    errno: EBADF,
                    op: "append",
                    path: String::new(),
                    offset: 0,
                    size: 0,
                });
            };
            if f.closing.is_some() {
                return Err(f.append_error(EBADF));
            }
            if let Some(e) = f.error_for_js() {
                f.delivered = true;
                return Err(e);
            }
            if total == 0 {
                return Ok(f.size);
            }
            if f.cur.is_none()
                && f.tail_len + total < ALIGN
                && let Some(t) = &f.tail
            {
                // Less than a block in all (an init segment, say): the tail block takes it,
                // no chunk is held. It is written with the bytes that follow, or at close.
                for p in parts {
                    // SAFETY: `tail_len + total < ALIGN`, the tail block's size; the block is
                    // never in flight while the file is open.
                    unsafe {
                        std::ptr::copy_nonoverlapping(p.as_ptr(), t.ptr().add(f.tail_len), p.len())
                    };
                    f.tail_len += p.len();
                }
                f.tail_dirty = true;
                f.size += total as u64;
                f.bounds.push_back(f.size);
                return Ok(f.size);
            }
            let fill0 = f.cur.as_ref().map_or(f.tail_len, |c| c.fill);
            let need = (fill0 + total).div_ceil(chunk) - usize::from(f.cur.is_some());
            if need > st.pool.capacity() {
                return Err(f.append_error(ENOBUFS));
            }
            if st.pool.available() >= need {
                if !st.pool.reserve(need) {
                    return Err(f.append_error(ENOBUFS));
                }
                // Take the chunks now, copy without the lock (the submitter and reaper keep
                // running), then queue the full ones. `busy` keeps flushes off this file.
                let mut chunks = Vec::with_capacity(need + 1);
                let first = match f.cur.take() {
                    Some(c) => c,
                    None => {
                        io::start_chunk(f.tail.as_ref(), &mut f.tail_len, f.next_base, &mut st.pool)
                    }
                };
                chunks.push((first.chunk, st.pool.ptr(first.chunk)));
                let chunks_total = (first.fill + total).div_ceil(chunk);
                while chunks.len() < chunks_total {
                    let Some(id) = st.pool.take() else { break };
                    chunks.push((id, st.pool.ptr(id)));
                }
                f.busy = true;
                drop(g);
                let fill = copy_out_of_lock(&chunks, first.fill, chunk, parts);
                let mut g = sh.lock();
                let st = &mut *g;
                let Some(f) = st.files.get_mut(slot).and_then(Option::as_mut) else {
                    unreachable!("only this thread closes files, and shutdown skips busy ones")
                };
                f.busy = false;
                let mut base = first.base;
                let full = if fill == chunk {
                    chunks.len()
                } else {
                    chunks.len() - 1
                };
                for &(id, _) in &chunks[..full] {
                    io::push_write(
                        f,
                        &mut st.queue,
                        slot as u32,
                        Buf::Chunk(id),
                        base,
                        chunk,
                        chunk,
                    );
                    base += chunk as u64;
                }
                f.next_base = base;
                if full < chunks.len() {
                    f.cur = Some(Cur {
                        chunk: chunks[full].0,
                        base,
                        fill,
                    });
                }
                f.size += total as u64;
                f.bounds.push_back(f.size);
                let size = f.size;
                if st.shutdown {
                    io::begin_close(st, slot as u32, false); // shutdown passed this file by
                    st.urgent = true;
                    sh.wake_submitter(st);
                } else if st.queue.len() >= sh.opts.batch_size {
                    sh.wake_submitter(st);
                }
                return Ok(size);
            }
            // The disk is behind: flush what idles in chunks, wait for completions.
            let now = Instant::now();
            if now >= deadline || st.shutdown {
                return Err(f.append_error(ENOBUFS));
            }
            if !waited {
                // Once per wait: queue what idles in partial chunks so they come back.
                st.flush_all = true;
                st.urgent = true;
                sh.wake_submitter(st);
            }
            waited = true;
            // Woken when a quarter of the pool is free (not per chunk: no ping-pong).
            st.append_need = need.max(st.pool.capacity() / 4);
            st.append_waiters += 1;
            g = sh
                .space_cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            g.append_waiters -= 1;
        }
    }

    /// Queues the last bytes and the finish (truncate, fdatasync if `sync`, close). A second
    /// close, or a close of an unknown id, does nothing. An error not yet reported is returned
    /// (the file is closed anyway); later ones arrive through `take_events`.
    pub fn close(&self, id: u64, sync: bool) -> Result<(), WriteError> {
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
        io::begin_close(st, slot as u32, sync);
        st.urgent = true;
        sh.wake_submitter(st);
        undelivered.map_or(Ok(()), Err)
    }

    /// Errors found after JS closed the file (last write, truncate, fdatasync).
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
        s.chunks_in_use = g.pool.in_use() as u64;
        s
    }

    /// Files closed by JS whose finish has not completed yet.
    pub fn pending(&self) -> u64 {
        self.shared.lock().stats.closing_files
    }

    /// Closes every open file (without fdatasync) once its bytes are written, then stops
    /// the threads. With `wait`, returns after they stopped. Idempotent.
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

/// Copies `parts` into `chunks` (each `chunk` bytes), the first already holding `fill`
/// bytes; returns the fill of the last chunk. Runs without the writer's lock.
fn copy_out_of_lock(
    chunks: &[(u32, *mut u8)],
    mut fill: usize,
    chunk: usize,
    parts: &[&[u8]],
) -> usize {
    let mut k = 0;
    for part in parts {
        let mut src: &[u8] = part;
        while !src.is_empty() {
            if fill == chunk {
                k += 1;
                fill = 0;
            }
            let Some(&(_, dst)) = chunks.get(k) else {
                return fill;
            };
            let n = (chunk - fill).min(src.len());
            // SAFETY: each chunk holds `chunk` bytes and `fill + n <= chunk`; the chunks were
            // taken from the pool for this append (the file is `busy`), so nothing else
            // reads or writes them until they are queued.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.add(fill), n) };
            fill += n;
            src = &src[n..];
        }
    }
    fill
}
