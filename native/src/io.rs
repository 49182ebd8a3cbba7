//! The writer's two background threads: the submitter turns queued writes into SQEs (one
//! io_uring_enter for a whole batch, many files at once), holds fragment headers until their
//! file's earlier writes have landed, reserves file space ahead of the writes and finishes
//! closed files; the reaper blocks on the completion queue and settles each write (block
//! back to the pool, committed end, errors). Nothing here touches JS; JS learns results by
//! polling (see js_writer.rs).

use crate::pool::ALIGN;
use crate::state::{Closing, EIO, Op, Shared, State};
use crate::sys;
use crate::uring::{self, Cqe, Sqe};
use std::os::fd::{AsRawFd, RawFd};
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

/// JS closed the file (or the writer shuts down): finish it once its writes are done.
pub(crate) fn begin_close(st: &mut State, slot: u32, how: Closing) {
    let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) else {
        return;
    };
    f.closing = Some(how);
    st.stats.open_files -= 1;
    st.stats.closing_files += 1;
    maybe_finish(st, slot);
}

fn maybe_finish(st: &mut State, slot: u32) {
    let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) else {
        return;
    };
    if f.closing.is_some()
        && !f.finish_queued
        && f.queued == 0
        && f.inflight == 0
        && f.deferred.is_empty()
    {
        f.finish_queued = true;
        st.queue.push_back(Op::Finish { slot });
        st.urgent = true;
    }
}

fn fail(st: &mut State, slot: u32, errno: i32, offset: u64, op: &'static str) {
    st.stats.errors += 1;
    if let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut)
        && f.error.is_none()
    {
        f.error = Some((errno, offset, op));
    }
}

/// Every write completed: cut to the final size (the committed end after an error; space
/// reserved ahead, or uncommitted writes), then fdatasync or close.
fn finish(st: &mut State, slot: u32) {
    let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) else {
        return;
    };
    let how = f.closing.unwrap_or(Closing {
        sync: false,
        size: None,
    });
    let target = if f.error.is_some() {
        f.good
    } else {
        how.size.unwrap_or(f.good)
    };
    let mut cut_error = None;
    if (f.allocated > target || f.max_end > target)
        && let Err(e) = f.file.set_len(target)
    {
        cut_error = Some(e.raw_os_error().unwrap_or(EIO));
    }
    let sync = how.sync && f.error.is_none();
    if let Some(e) = cut_error {
        fail(st, slot, e, target, "truncate");
    }
    if sync && cut_error.is_none() {
        st.queue.push_front(Op::Fsync { slot });
    } else {
        complete_close(st, slot);
    }
}

fn complete_close(st: &mut State, slot: u32) {
    let Some(f) = st.files.get_mut(slot as usize).and_then(Option::take) else {
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

/// A write of a file that has failed (or is gone) is dropped: its block goes back.
fn drop_write(st: &mut State, op: &Op) {
    if let Op::Write { slot, block, .. } = *op {
        st.pool.release(block);
        if let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) {
            f.queued -= 1;
        }
        maybe_finish(st, slot);
    }
}

fn sqe_for(st: &State, op: &Op, user_data: u64) -> Option<Sqe> {
    match *op {
        Op::Write {
            slot,
            block,
            off,
            len,
            done,
            ..
        } => {
            let f = st.files.get(slot as usize)?.as_ref()?;
            Some(Sqe {
                opcode: uring::OP_WRITE,
                fd: f.file.as_raw_fd(),
                off: off + u64::from(done),
                // SAFETY (for the kernel's use): the block stays with the writer (out of the
                // pool's free list, away from JS) until this write's completion is reaped.
                addr: st.pool.ptr(block) as u64 + u64::from(done),
                len: len - done,
                user_data,
                ..Sqe::default()
            })
        }
        Op::Fsync { slot } => {
            let f = st.files.get(slot as usize)?.as_ref()?;
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

/// Space to reserve for a file before a write ending at `end`: (fd, from, length).
fn prealloc_for(st: &mut State, slot: u32, end: u64, step: u64) -> Option<(RawFd, u64, u64)> {
    let f = st.files.get_mut(slot as usize)?.as_mut()?;
    // Reserve ahead: once the writes pass half a step before the end, another step.
    if !f.prealloc || step == 0 || end + step / 2 <= f.allocated {
        return None;
    }
    let from = f.allocated.max(end.saturating_sub(step / 2));
    let to = (end + step).next_multiple_of(step);
    f.allocated = to;
    Some((f.file.as_raw_fd(), from, to - from))
}

fn submitter(sh: &Shared) {
    let mut sq = sh.ring.submitter();
    let cap = sh.ring.cq_entries();
    let step = sh.opts.prealloc_bytes;
    let mut next_tick = Instant::now() + sh.opts.batch_interval;
    let mut closed_all = false;
    let mut reserve: Vec<(u32, RawFd, u64, u64)> = Vec::new();
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
        if now >= next_tick {
            next_tick = now + sh.opts.batch_interval;
        }
        if g.shutdown && !closed_all {
            closed_all = true;
            for slot in 0..g.files.len() as u32 {
                if g.files[slot as usize]
                    .as_ref()
                    .is_some_and(|f| f.closing.is_none())
                {
                    let how = Closing {
                        sync: false,
                        size: None,
                    };
                    begin_close(&mut g, slot, how);
                }
            }
        }
        let mut pushed = 0;
        while g.inflight_count < cap && sq.space() > 0 {
            let Some(op) = g.queue.pop_front() else { break };
            let st = &mut *g;
            match op {
                Op::Finish { slot } => finish(st, slot),
                Op::Write { slot, seq, .. }
                    if st.files[slot as usize]
                        .as_ref()
                        .is_none_or(|f| f.dropped(seq)) =>
                {
                    drop_write(st, &op);
                }
                Op::Write {
                    slot, commit, seq, ..
                } if commit > 0
                    && st.files[slot as usize]
                        .as_ref()
                        .is_some_and(|f| f.earlier_in_flight(seq)) =>
                {
                    // A header waits for its file's earlier writes (see writer.rs), in order:
                    // the next waiting one is looked at when one of them completes.
                    if let Some(f) = st.files[slot as usize].as_mut() {
                        f.queued -= 1;
                        // In handing-over order (a released header may come back here).
                        let at = f
                            .deferred
                            .partition_point(|d| matches!(*d, Op::Write { seq: s, .. } if s < seq));
                        f.deferred.insert(at, op);
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
                    if let Op::Write {
                        slot,
                        off,
                        len,
                        seq,
                        ..
                    } = op
                    {
                        if let Some(f) = st.files[slot as usize].as_mut() {
                            f.queued -= 1;
                            f.inflight += 1;
                            f.inflight_seqs.push(seq);
                        }
                        if let Some(r) = prealloc_for(st, slot, off + u64::from(len), step) {
                            reserve.push((slot, r.0, r.1, r.2));
                        }
                    }
                    st.inflight[ud as usize] = Some(op);
                    st.inflight_count += 1;
                    sq.push(&sqe);
                    pushed += 1;
                }
            }
        }
        g.blocked = !g.queue.is_empty();
        if pushed > 0 || !reserve.is_empty() {
            drop(g);
            let r = if pushed > 0 {
                sq.submit().map(|_| ())
            } else {
                Ok(())
            };
            // Reserve space outside the lock (a slow filesystem must not hold up JS). The
            // fds stay open: each file has a write in flight, and only this thread finishes
            // (and so closes) files. Racing the write is harmless: fallocate never changes
            // written data, it only allocates what is not yet allocated.
            let outcomes: Vec<(u32, i32)> = reserve
                .drain(..)
                .map(|(slot, fd, from, len)| {
                    // SAFETY: `fd` is open (see above); fallocate only reads its arguments.
                    let rc = unsafe { sys::fallocate(fd, 0, from as i64, len as i64) };
                    let errno = if rc == 0 {
                        0
                    } else {
                        std::io::Error::last_os_error()
                            .raw_os_error()
                            .unwrap_or(EIO)
                    };
                    (slot, errno)
                })
                .collect();
            g = sh.lock();
            for (slot, errno) in outcomes {
                g.stats.preallocs += u64::from(errno == 0);
                if errno != 0
                    && let Some(f) = g.files[slot as usize].as_mut()
                {
                    // ENOSPC, EOPNOTSUPP, ...: write without reserving (the writes report
                    // a real lack of space themselves).
                    f.prealloc = false;
                }
            }
            if pushed > 0 {
                g.stats.submits += 1;
            }
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
}

/// After a write of the file settled: headers handed over after a failed write are dropped
/// (their fragments are not whole); the first waiting one goes once no earlier write of its
/// file is in flight. Released to the queue's front, it is in the kernel before the next
/// waiting one is looked at, so headers go in order.
fn settle_deferred(st: &mut State, slot: u32) {
    let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) else {
        return;
    };
    let State { pool, queue, .. } = st;
    f.deferred.retain(|op| match *op {
        Op::Write { block, seq, .. } if f.error.is_some() && seq > f.fail_seq => {
            pool.release(block);
            false
        }
        _ => true,
    });
    let ready = match f.deferred.front() {
        Some(Op::Write { seq, .. }) => !f.earlier_in_flight(*seq),
        _ => false,
    };
    if ready && let Some(op) = f.deferred.pop_front() {
        f.queued += 1;
        queue.push_front(op);
        st.urgent = true;
    }
}

fn complete(st: &mut State, c: Cqe) {
    let ud = c.user_data as usize;
    let Some(op) = st.inflight.get_mut(ud).and_then(Option::take) else {
        return;
    };
    st.inflight_free.push(ud as u32);
    st.inflight_count -= 1;
    match op {
        Op::Write {
            slot,
            block,
            off,
            len,
            done,
            commit,
            seq,
        } => {
            let Some(f) = st.files.get_mut(slot as usize).and_then(Option::as_mut) else {
                return st.pool.release(block);
            };
            f.inflight -= 1;
            if let Some(k) = f.inflight_seqs.iter().position(|&s| s == seq) {
                f.inflight_seqs.swap_remove(k);
            }
            let direct = f.direct;
            let outcome = if c.res < 0 {
                Err((-c.res, off + u64::from(done)))
            } else {
                let done = done + c.res as u32;
                if done == len {
                    if commit > 0 {
                        f.good = f.good.max(commit);
                    }
                    Ok(())
                } else if c.res == 0 || (direct && done as usize % ALIGN != 0) {
                    Err((EIO, off + u64::from(done)))
                } else {
                    // A short write: legal, rare. Resubmit the rest.
                    f.queued += 1;
                    st.queue.push_front(Op::Write {
                        slot,
                        block,
                        off,
                        len,
                        done,
                        commit,
                        seq,
                    });
                    st.urgent = true;
                    return;
                }
            };
            match outcome {
                Ok(()) => {
                    st.stats.writes += 1;
                    st.stats.bytes_written += u64::from(len);
                }
                Err((errno, at)) => {
                    f.fail_seq = f.fail_seq.min(seq);
                    fail(st, slot, errno, at, "write");
                }
            }
            st.pool.release(block);
            settle_deferred(st, slot);
            maybe_finish(st, slot);
        }
        Op::Fsync { slot } => {
            st.stats.fsyncs += 1;
            if c.res < 0 {
                fail(st, slot, -c.res, 0, "fdatasync");
            }
            complete_close(st, slot);
        }
        Op::Finish { .. } => {}
    }
}

fn reaper(sh: &Shared) {
    let mut cq = sh.ring.completer();
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
                complete(&mut g, c)
            }
        });
        if g.blocked || g.urgent || g.shutdown {
            g.urgent = true;
            sh.wake_submitter(&g);
        }
        drop(g);
        if stop {
            break;
        }
    }
}
