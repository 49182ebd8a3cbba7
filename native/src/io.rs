//! The writer's two background threads and the bookkeeping they share with `append`:
//! the submitter turns queued operations into SQEs (one io_uring_enter for a whole batch,
//! many files at once) and finishes closed files; the reaper blocks on the completion queue
//! and settles each write (chunk back to the pool, acknowledged prefix, errors).
//! Nothing here touches JS; JS learns results by polling (see lib.rs).

use crate::pool::{ALIGN, Block, Pool};
use crate::state::{Buf, Cur, EIO, FileState, Op, Range, Shared, State};
use crate::uring::{self, Cqe, Sqe};
use std::collections::VecDeque;
use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// user_data of the NOP that tells the reaper to stop.
const WAKE: u64 = u64::MAX;
/// Pause before retrying a refused io_uring_enter (EAGAIN/EBUSY: kernel short of memory).
const RETRY_PAUSE: Duration = Duration::from_millis(1);

pub(crate) fn spawn(sh: &Arc<Shared>) -> std::io::Result<Vec<JoinHandle<()>>> {
    let a = Arc::clone(sh);
    let s = thread::Builder::new()
        .name("flux-uring-submit".into())
        .spawn(move || submitter(&a))?;
    let b = Arc::clone(sh);
    match thread::Builder::new()
        .name("flux-uring-reap".into())
        .spawn(move || reaper(&b))
    {
        Ok(r) => Ok(vec![s, r]),
        Err(e) => {
            sh.lock().shutdown = true;
            sh.submit_cv.notify_one();
            let _ = s.join();
            Err(e)
        }
    }
}

/// A fresh chunk for a file, led by its O_DIRECT tail bytes. The caller reserved it.
pub(crate) fn start_chunk(
    tail: Option<&Block>,
    tail_len: &mut usize,
    base: u64,
    pool: &mut Pool,
) -> Cur {
    let chunk = pool
        .take()
        .unwrap_or_else(|| unreachable!("append reserves its chunks"));
    let mut fill = 0;
    if let Some(t) = tail
        && *tail_len > 0
    {
        // SAFETY: the tail block holds ALIGN bytes and the chunk at least ALIGN; both are
        // owned by this file right now (the tail is never in flight while appends go on).
        unsafe { std::ptr::copy_nonoverlapping(t.ptr(), pool.ptr(chunk), *tail_len) };
        fill = *tail_len;
        *tail_len = 0;
    }
    Cur { chunk, base, fill }
}

pub(crate) fn push_write(
    f: &mut FileState,
    queue: &mut VecDeque<Op>,
    slot: u32,
    buf: Buf,
    off: u64,
    len: usize,
    real: usize,
) {
    queue.push_back(Op::Write {
        slot,
        buf,
        off,
        len: len as u32,
        done: 0,
    });
    f.queued += 1;
    f.ranges.push_back(Range {
        start: off,
        end: off + real as u64,
        done: false,
    });
}

/// Queues the filled part of the file's chunk. Not `last`: with O_DIRECT only whole blocks,
/// the rest moves to the tail block. `last`: everything, padded to a block with O_DIRECT.
/// Queues the provisional end of an O_DIRECT file: its tail, padded, then (on completion)
/// a cut to the real size. Bytes appended are then on their way to disk within the batch
/// interval even when they end mid-block, and a crash leaves whole fragments.
fn queue_tail(f: &mut FileState, slot: u32, queue: &mut VecDeque<Op>) {
    if f.tail_busy || !f.tail_dirty || f.tail_len == 0 {
        return;
    }
    let (Some(t), Some(io)) = (&f.tail, &f.tail_io) else {
        return;
    };
    // SAFETY: both blocks hold ALIGN bytes and `tail_len < ALIGN`; `tail_io` is not in
    // flight (`tail_busy` is false).
    unsafe {
        std::ptr::copy_nonoverlapping(t.ptr(), io.ptr(), f.tail_len);
        std::ptr::write_bytes(io.ptr().add(f.tail_len), 0, ALIGN - f.tail_len);
    }
    let size = f.next_base + f.tail_len as u64;
    queue.push_back(Op::Write {
        slot,
        buf: Buf::TailIo { size },
        off: f.next_base,
        len: ALIGN as u32,
        done: 0,
    });
    f.queued += 1;
    f.tail_busy = true;
    f.tail_dirty = false;
}

/// The provisional tail write is over (done or dropped): release the writes it held back.
fn tail_done(f: &mut FileState, queue: &mut VecDeque<Op>) {
    f.tail_busy = false;
    f.tail_inflight = false;
    while let Some(op) = f.deferred.pop_back() {
        queue.push_front(op);
    }
}

fn flush_file(f: &mut FileState, slot: u32, pool: &mut Pool, queue: &mut VecDeque<Op>, last: bool) {
    let Some(c) = f.cur.take() else {
        if !last && f.direct {
            queue_tail(f, slot, queue);
        }
        if last && f.tail_len > 0 {
            if let Some(t) = &f.tail {
                // SAFETY: the tail block holds ALIGN bytes; zero the padding after the data.
                unsafe { std::ptr::write_bytes(t.ptr().add(f.tail_len), 0, ALIGN - f.tail_len) };
            }
            let (base, n) = (f.next_base, f.tail_len);
            f.tail_len = 0;
            f.padded = true;
            push_write(f, queue, slot, Buf::Tail, base, ALIGN, n);
        }
        return;
    };
    let p = pool.ptr(c.chunk);
    if !f.direct || last {
        let len = if f.direct {
            c.fill.next_multiple_of(ALIGN)
        } else {
            c.fill
        };
        if len == 0 {
            return pool.give(c.chunk);
        }
        // SAFETY: `len <= chunk size` (a multiple of ALIGN); the padding is this file's.
        unsafe { std::ptr::write_bytes(p.add(c.fill), 0, len - c.fill) };
        f.padded |= len != c.fill;
        f.next_base = c.base + c.fill as u64;
        return push_write(f, queue, slot, Buf::Chunk(c.chunk), c.base, len, c.fill);
    }
    let aligned = c.fill & !(ALIGN - 1);
    let rest = c.fill - aligned;
    if let Some(t) = &f.tail {
        // SAFETY: `rest < ALIGN` bytes from inside the chunk into the ALIGN-byte tail block.
        unsafe { std::ptr::copy_nonoverlapping(p.add(aligned), t.ptr(), rest) };
    }
    f.tail_len = rest;
    f.tail_dirty = rest > 0;
    f.next_base = c.base + aligned as u64;
    if aligned == 0 {
        pool.give(c.chunk);
    } else {
        push_write(
            f,
            queue,
            slot,
            Buf::Chunk(c.chunk),
            c.base,
            aligned,
            aligned,
        );
    }
    queue_tail(f, slot, queue);
}

/// JS closed the file (or the writer shuts down): queue its last bytes, then its finish.
pub(crate) fn begin_close(st: &mut State, slot: u32, sync: bool) {
    let State {
        files,
        pool,
        queue,
        stats,
        ..
    } = st;
    let Some(f) = files.get_mut(slot as usize).and_then(Option::as_mut) else {
        return;
    };
    f.closing = Some(sync);
    stats.open_files -= 1;
    stats.closing_files += 1;
    if f.error.is_none() {
        flush_file(f, slot, pool, queue, true);
    } else if let Some(c) = f.cur.take() {
        pool.give(c.chunk); // bytes after a failed write are not kept
    }
    maybe_finish(st, slot);
}

fn maybe_finish(st: &mut State, slot: u32) {
    let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) else {
        return;
    };
    if f.closing.is_some() && !f.finish_queued && f.queued == 0 && f.inflight == 0 {
        f.finish_queued = true;
        st.queue.push_back(Op::Finish { slot });
        st.urgent = true;
    }
}

fn fail(f: &mut FileState, errno: i32, offset: u64, op: &'static str, st_errors: &mut u64) {
    *st_errors += 1;
    if f.error.is_none() {
        f.error = Some((errno, offset, op));
    }
}

/// Every write completed: cut to the real size (O_DIRECT padding, or the intact prefix
/// after an error), then fdatasync or close.
fn finish(st: &mut State, slot: u32) {
    let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) else {
        return;
    };
    f.advance_acked();
    let target = if f.error.is_some() {
        Some(*f.truncate_to.get_or_insert(f.good))
    } else if f.padded {
        Some(f.size)
    } else {
        None
    };
    if let Some(t) = target
        && let Err(e) = f.file.set_len(t)
    {
        fail(
            f,
            e.raw_os_error().unwrap_or(EIO),
            t,
            "truncate",
            &mut st.stats.errors,
        );
    }
    if f.closing == Some(true) && f.error.is_none() {
        st.queue.push_front(Op::Fsync { slot });
    } else {
        complete_close(st, slot);
    }
}

fn complete_close(st: &mut State, slot: u32) {
    let Some(mut f) = st.files.get_mut(slot as usize).and_then(Option::take) else {
        return;
    };
    st.free_slots.push(slot);
    st.stats.closing_files -= 1;
    if !f.delivered
        && let Some(e) = f.error_for_js()
    {
        st.events.push(e);
    }
    drop(f); // closes the fd
}

fn release(pool: &mut Pool, buf: &Buf) {
    if let Buf::Chunk(id) = buf {
        pool.give(*id);
    }
}

fn sqe_for(st: &State, op: &Op, user_data: u64) -> Option<Sqe> {
    match op {
        Op::Write {
            slot,
            buf,
            off,
            len,
            done,
        } => {
            let f = st.files.get(*slot as usize)?.as_ref()?;
            let base = match buf {
                Buf::Chunk(id) => st.pool.ptr(*id),
                Buf::Tail => f.tail.as_ref()?.ptr(),
                Buf::TailIo { .. } => f.tail_io.as_ref()?.ptr(),
            };
            Some(Sqe {
                opcode: uring::OP_WRITE,
                fd: f.file.as_raw_fd(),
                off: off + u64::from(*done),
                // SAFETY (for the kernel's use): the buffer stays out of the pool until this
                // write's completion is reaped, so the kernel never reads freed memory.
                addr: base as u64 + u64::from(*done),
                len: len - done,
                user_data,
                ..Sqe::default()
            })
        }
        Op::Fsync { slot } => {
            let f = st.files.get(*slot as usize)?.as_ref()?;
            Some(Sqe {
                opcode: uring::OP_FSYNC,
                fd: f.file.as_raw_fd(),
                op_flags: uring::FSYNC_DATASYNC,
                user_data,
                ..Sqe::default()
            })
        }
        Op::Finish { .. } => None,
    }
}

fn submitter(sh: &Shared) {
    let mut sq = sh.ring.submitter();
    let cap = sh.ring.cq_entries();
    let mut next_tick = Instant::now() + sh.opts.batch_interval;
    let mut closed_all = false;
    let mut g = sh.lock();
    loop {
        loop {
            let now = Instant::now();
            let batch_ready = g.queue.len() >= sh.opts.batch_size && g.inflight_count < cap;
            if g.urgent || (g.shutdown && !closed_all) || batch_ready || now >= next_tick {
                break;
            }
            g.submitter_asleep = true;
            g = sh
                .submit_cv
                .wait_timeout(g, next_tick - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            g.submitter_asleep = false;
        }
        g.urgent = false;
        let now = Instant::now();
        let tick = now >= next_tick;
        if tick {
            next_tick = now + sh.opts.batch_interval;
        }
        if g.shutdown && !closed_all {
            closed_all = true;
            for slot in 0..g.files.len() as u32 {
                if g.files[slot as usize]
                    .as_ref()
                    .is_some_and(|f| f.closing.is_none() && !f.busy)
                {
                    begin_close(&mut g, slot, false);
                }
            }
        } else if tick || g.flush_all {
            g.flush_all = false;
            let State {
                files, pool, queue, ..
            } = &mut *g;
            for (slot, f) in files.iter_mut().enumerate() {
                if let Some(f) = f.as_mut()
                    && f.closing.is_none()
                    && f.error.is_none()
                    && !f.busy
                {
                    flush_file(f, slot as u32, pool, queue, false);
                }
            }
            // Chunks holding less than a block went straight back: wake waiting appends.
            sh.wake_appends(&g);
        }
        let mut pushed = 0;
        while g.inflight_count < cap && sq.space() > 0 {
            let Some(op) = g.queue.pop_front() else { break };
            let st = &mut *g;
            match op {
                Op::Finish { slot } => finish(st, slot),
                Op::Write { slot, ref buf, .. }
                    if st.files[slot as usize]
                        .as_ref()
                        .is_none_or(|f| f.error.is_some()) =>
                {
                    release(&mut st.pool, buf);
                    if let Some(f) = st.files[slot as usize].as_mut() {
                        f.queued -= 1;
                        if let Buf::TailIo { .. } = buf {
                            tail_done(f, &mut st.queue);
                        }
                    }
                    maybe_finish(st, slot);
                }
                Op::Write { slot, ref buf, .. }
                    if !matches!(buf, Buf::TailIo { .. })
                        && st.files[slot as usize]
                            .as_ref()
                            .is_some_and(|f| f.tail_inflight) =>
                {
                    if let Some(f) = st.files[slot as usize].as_mut() {
                        f.deferred.push_back(op);
                    }
                }
                op => {
                    let ud = st.inflight_free.pop().unwrap_or_else(|| {
                        st.inflight.push(None);
                        (st.inflight.len() - 1) as u32
                    });
                    let Some(sqe) = sqe_for(st, &op, u64::from(ud)) else {
                        st.inflight_free.push(ud);
                        continue;
                    };
                    if let Op::Write { slot, ref buf, .. } = op
                        && let Some(f) = st.files[slot as usize].as_mut()
                    {
                        f.queued -= 1;
                        f.inflight += 1;
                        f.tail_inflight |= matches!(buf, Buf::TailIo { .. });
                    }
                    st.inflight[ud as usize] = Some(op);
                    st.inflight_count += 1;
                    sq.push(&sqe);
                    pushed += 1;
                }
            }
        }
        g.blocked = !g.queue.is_empty();
        if pushed > 0 {
            drop(g);
            let r = sq.submit();
            g = sh.lock();
            g.stats.submits += 1;
            if r.is_err() {
                g.urgent = true;
                drop(g);
                thread::sleep(RETRY_PAUSE);
                g = sh.lock();
            }
        }
        if g.shutdown
            && g.files.iter().all(Option::is_none)
            && g.queue.is_empty()
            && g.inflight_count == 0
        {
            drop(g);
            let _ = sq.push(&Sqe {
                opcode: uring::OP_NOP,
                user_data: WAKE,
                ..Sqe::default()
            });
            let _ = sq.submit();
            break;
        }
    }
    sh.space_cv.notify_all();
}

/// A provisional tail write landed: the file (slot, fd) is cut to `size` outside the lock
/// (ftruncate can wait for the journal), then the writes it held back go.
struct Cut {
    slot: u32,
    fd: RawFd,
    size: u64,
}

fn complete(st: &mut State, c: Cqe, cuts: &mut Vec<Cut>) {
    let ud = c.user_data as usize;
    let Some(op) = st.inflight.get_mut(ud).and_then(Option::take) else {
        return;
    };
    st.inflight_free.push(ud as u32);
    st.inflight_count -= 1;
    match op {
        Op::Write {
            slot,
            buf,
            off,
            len,
            done,
        } => {
            let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) else {
                return release(&mut st.pool, &buf);
            };
            if let Buf::TailIo { size } = buf {
                if c.res < 0 || c.res as u32 != len {
                    let errno = if c.res < 0 { -c.res } else { EIO };
                    fail(f, errno, off, "write", &mut st.stats.errors);
                    f.inflight -= 1;
                    tail_done(f, &mut st.queue);
                    st.urgent = true;
                    return maybe_finish(st, slot);
                }
                // Still counted in flight, so the file cannot finish (and close its fd)
                // before the cut.
                st.stats.writes += 1;
                return cuts.push(Cut {
                    slot,
                    fd: f.file.as_raw_fd(),
                    size,
                });
            }
            f.inflight -= 1;
            if c.res < 0 {
                fail(
                    f,
                    -c.res,
                    off + u64::from(done),
                    "write",
                    &mut st.stats.errors,
                );
            } else {
                let done = done + c.res as u32;
                if done < len {
                    // A short write: legal, rare. Resubmit the rest unless it breaks alignment.
                    if c.res == 0 || (f.direct && done as usize % ALIGN != 0) {
                        fail(f, EIO, off + u64::from(done), "write", &mut st.stats.errors);
                    } else {
                        f.queued += 1;
                        st.queue.push_front(Op::Write {
                            slot,
                            buf,
                            off,
                            len,
                            done,
                        });
                        st.urgent = true;
                        return;
                    }
                } else {
                    st.stats.writes += 1;
                    st.stats.bytes_written += u64::from(len);
                    if let Some(r) = f.ranges.iter_mut().find(|r| r.start == off && !r.done) {
                        r.done = true;
                    }
                    f.advance_acked();
                }
            }
            release(&mut st.pool, &buf);
            maybe_finish(st, slot);
        }
        Op::Fsync { slot } => {
            st.stats.fsyncs += 1;
            if let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut)
                && c.res < 0
            {
                let size = f.size;
                fail(f, -c.res, size, "fdatasync", &mut st.stats.errors);
            }
            complete_close(st, slot);
        }
        Op::Finish { .. } => {}
    }
}

fn reaper(sh: &Shared) {
    let mut cq = sh.ring.completer();
    let mut cuts = Vec::new();
    loop {
        if let Err(e) = cq.wait(1)
            && !matches!(e.raw_os_error(), Some(11 | 16))
        {
            break; // EBADF/EFAULT: the ring is unusable; nothing more will complete
        }
        let mut g = sh.lock();
        let mut stop = false;
        cq.reap(|c| {
            if c.user_data == WAKE {
                stop = true
            } else {
                complete(&mut g, c, &mut cuts)
            }
        });
        if !cuts.is_empty() {
            drop(g);
            let done: Vec<(u32, Option<i32>, u64)> = cuts
                .drain(..)
                .map(|c| {
                    // SAFETY: the fd stays open: its file counts this write in flight, and
                    // files close only after every in-flight operation has settled.
                    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(c.fd) });
                    let r = file
                        .set_len(c.size)
                        .err()
                        .map(|e| e.raw_os_error().unwrap_or(EIO));
                    (c.slot, r, c.size)
                })
                .collect();
            g = sh.lock();
            for (slot, errno, size) in done {
                let st = &mut *g;
                if let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) {
                    f.inflight -= 1;
                    if let Some(e) = errno {
                        fail(f, e, size, "truncate", &mut st.stats.errors);
                    }
                    tail_done(f, &mut st.queue);
                    st.urgent = true;
                }
                maybe_finish(st, slot);
            }
        }
        if g.blocked || g.urgent || g.shutdown {
            g.urgent = true;
            sh.wake_submitter(&g);
        }
        sh.wake_appends(&g);
        drop(g);
        if stop {
            break;
        }
    }
}
