//! A raw io_uring: io_uring_setup(2), the three mmaps (SQ ring, CQ ring, SQE array), a
//! submission side for one thread and a completion side for another.
//!
//! Layouts and constants are copied from include/uapi/linux/io_uring.h; the tests pin them.
//! The kernel allows one task submitting while another waits for completions on the same
//! ring (waiting takes no submission lock), which is how the writer uses it.

use crate::sys;
use std::ffi::{c_int, c_long, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

/// include/uapi/linux/io_uring.h `struct io_uring_sqe` (64 bytes), with the unions reduced
/// to the member this crate uses: `off`, `addr`, `op_flags` (rw_flags / fsync_flags).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    pub off: u64,
    pub addr: u64,
    pub len: u32,
    pub op_flags: u32,
    pub user_data: u64,
    pub buf_index: u16,
    pub personality: u16,
    pub splice_fd_in: i32,
    pub addr3: u64,
    pub pad2: u64,
}

/// include/uapi/linux/io_uring.h `struct io_uring_cqe` (16 bytes, without CQE32).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Cqe {
    pub user_data: u64,
    pub res: i32,
    pub flags: u32,
}

pub const OP_NOP: u8 = 0;
pub const OP_FSYNC: u8 = 3;
/// IORING_OP_WRITE (Linux 5.6): a positional write(2) of one buffer.
pub const OP_WRITE: u8 = 23;
pub const FSYNC_DATASYNC: u32 = 1;

const ENTER_GETEVENTS: u32 = 1;
const SETUP_CQSIZE: u32 = 1 << 3;
const FEAT_SINGLE_MMAP: u32 = 1;
const OFF_SQ_RING: i64 = 0;
const OFF_CQ_RING: i64 = 0x800_0000;
const OFF_SQES: i64 = 0x1000_0000;

/// io_uring_enter(2): 426 on x86_64 and in the generic table (aarch64).
const SYS_IO_URING_ENTER: c_long = 426;

const PROT_READ_WRITE: c_int = 0x1 | 0x2;
const MAP_SHARED_POPULATE: c_int = 0x01 | 0x8000;

/// One shared mapping, unmapped on drop.
#[derive(Debug)]
struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    fn new(fd: c_int, len: usize, off: i64) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the ring fd at the kernel-defined offset; the
        // kernel validates `len` and `off` against the ring it created.
        let p = unsafe {
            sys::mmap(
                ptr::null_mut(),
                len,
                PROT_READ_WRITE,
                MAP_SHARED_POPULATE,
                fd,
                off,
            )
        };
        if p as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { ptr: p.cast(), len })
    }

    /// # Safety
    /// `off + size_of::<T>()` must lie inside the mapping and be aligned for `T`.
    unsafe fn at<T>(&self, off: u32) -> *mut T {
        // SAFETY: the caller guarantees the offset is inside the mapping.
        unsafe { self.ptr.add(off as usize).cast() }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped exactly once.
        unsafe { sys::munmap(self.ptr.cast::<c_void>(), self.len) };
    }
}

/// The ring fd and its mappings; shared by both halves, torn down when the last one drops.
#[derive(Debug)]
pub struct Ring {
    // Field order is drop order: unmap before the fd closes (either order is legal).
    sq_map: Map,
    cq_map: Option<Map>,
    sqe_map: Map,
    fd: OwnedFd,
    params: sys::IoUringParams,
}

// SAFETY: the mappings are shared memory accessed through atomics (heads/tails) and through
// entries owned by exactly one side (SQEs by the submitter, CQEs by the reaper).
unsafe impl Send for Ring {}
// SAFETY: as above; `&Ring` only hands out raw pointers that each side uses exclusively.
unsafe impl Sync for Ring {}

impl Ring {
    /// Sets up a ring with `entries` SQEs and `cq_entries` CQEs (both rounded up to powers of 2).
    pub fn new(entries: u32, cq_entries: u32) -> io::Result<Ring> {
        let Some(nr) = sys::SYS_IO_URING_SETUP else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring is not available on this platform",
            ));
        };
        let mut p = sys::IoUringParams {
            flags: SETUP_CQSIZE,
            cq_entries,
            ..Default::default()
        };
        // SAFETY: io_uring_setup reads and fills one `struct io_uring_params` (layout pinned in sys.rs).
        let ret = unsafe { sys::syscall(nr, entries as c_long, &mut p as *mut sys::IoUringParams) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = c_int::try_from(ret)
            .map_err(|_| io::Error::other("io_uring_setup returned a bad fd"))?;
        // SAFETY: a non-negative return is a new fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * size_of::<Cqe>();
        let single = p.features & FEAT_SINGLE_MMAP != 0;
        let sq_map = Map::new(
            raw,
            if single { sq_len.max(cq_len) } else { sq_len },
            OFF_SQ_RING,
        )?;
        let cq_map = if single {
            None
        } else {
            Some(Map::new(raw, cq_len, OFF_CQ_RING)?)
        };
        let sqe_map = Map::new(raw, p.sq_entries as usize * size_of::<Sqe>(), OFF_SQES)?;
        let ring = Ring {
            sq_map,
            cq_map,
            sqe_map,
            fd,
            params: p,
        };
        // Identity mapping of the indirection array: SQE slot i is array entry i, forever.
        for i in 0..p.sq_entries {
            // SAFETY: `array` has `sq_entries` u32 slots inside the SQ mapping; nothing
            // else touches them before the first submission.
            unsafe { *ring.sq_map.at::<u32>(p.sq_off.array).add(i as usize) = i };
        }
        Ok(ring)
    }

    fn cq_map(&self) -> &Map {
        self.cq_map.as_ref().unwrap_or(&self.sq_map)
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn sq_entries(&self) -> u32 {
        self.params.sq_entries
    }

    pub fn cq_entries(&self) -> u32 {
        self.params.cq_entries
    }

    fn enter(&self, to_submit: u32, min_complete: u32, flags: u32) -> io::Result<u32> {
        // SAFETY: io_uring_enter(fd, to_submit, min_complete, flags, NULL, 0): no sigmask.
        let r = unsafe {
            sys::syscall(
                SYS_IO_URING_ENTER,
                self.fd.as_raw_fd() as c_long,
                to_submit as c_long,
                min_complete as c_long,
                flags as c_long,
                ptr::null::<c_void>(),
                0 as c_long,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as u32)
        }
    }

    /// The submission side; exactly one may exist per ring (the caller keeps that promise).
    pub fn submitter(&self) -> Submitter<'_> {
        let o = self.params.sq_off;
        // SAFETY: the offsets come from the kernel and point inside the SQ mapping.
        unsafe {
            Submitter {
                ring: self,
                head: &*self.sq_map.at::<AtomicU32>(o.head),
                tail: &*self.sq_map.at::<AtomicU32>(o.tail),
                mask: *self.sq_map.at::<u32>(o.ring_mask),
                sqes: self.sqe_map.ptr.cast(),
                pending: 0,
            }
        }
    }

    /// The completion side; exactly one may exist per ring (the caller keeps that promise).
    pub fn completer(&self) -> Completer<'_> {
        let o = self.params.cq_off;
        let m = self.cq_map();
        // SAFETY: the offsets come from the kernel and point inside the CQ mapping.
        unsafe {
            Completer {
                ring: self,
                head: &*m.at::<AtomicU32>(o.head),
                tail: &*m.at::<AtomicU32>(o.tail),
                mask: *m.at::<u32>(o.ring_mask),
                cqes: m.at::<Cqe>(o.cqes),
            }
        }
    }
}

#[derive(Debug)]
pub struct Submitter<'r> {
    ring: &'r Ring,
    head: &'r AtomicU32,
    tail: &'r AtomicU32,
    mask: u32,
    sqes: *mut Sqe,
    /// SQEs queued since the last submit.
    pending: u32,
}

impl Submitter<'_> {
    /// Free SQ slots.
    pub fn space(&self) -> u32 {
        let used = self
            .tail
            .load(Ordering::Relaxed)
            .wrapping_sub(self.head.load(Ordering::Acquire));
        self.ring.params.sq_entries - used
    }

    /// Queues one SQE; false when the SQ is full (submit first).
    pub fn push(&mut self, sqe: &Sqe) -> bool {
        if self.space() == 0 {
            return false;
        }
        let tail = self.tail.load(Ordering::Relaxed);
        // SAFETY: slot `tail & mask` is free (the kernel consumed it: head has passed it)
        // and only this submitter writes SQEs.
        unsafe { self.sqes.add((tail & self.mask) as usize).write(*sqe) };
        // Release: the kernel must see the SQE before the new tail.
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        self.pending += 1;
        true
    }

    /// Hands every queued SQE to the kernel with one io_uring_enter(2).
    pub fn submit(&mut self) -> io::Result<u32> {
        let mut done = 0;
        while self.pending > 0 {
            match self.ring.enter(self.pending, 0, 0) {
                Ok(n) => {
                    self.pending -= n.min(self.pending);
                    done += n;
                    if n == 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

#[derive(Debug)]
pub struct Completer<'r> {
    ring: &'r Ring,
    head: &'r AtomicU32,
    tail: &'r AtomicU32,
    mask: u32,
    cqes: *const Cqe,
}

impl Completer<'_> {
    /// Blocks until at least `min` completions are ready (EINTR is retried).
    pub fn wait(&self, min: u32) -> io::Result<()> {
        loop {
            match self.ring.enter(0, min, ENTER_GETEVENTS) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Calls `f` for every ready completion, then frees their slots; returns how many.
    pub fn reap(&mut self, mut f: impl FnMut(Cqe)) -> u32 {
        let head = self.head.load(Ordering::Relaxed);
        // Acquire: CQE contents are visible once the kernel's tail store is.
        let tail = self.tail.load(Ordering::Acquire);
        let mut h = head;
        while h != tail {
            // SAFETY: entries between head and tail are filled by the kernel and not reused
            // until head moves past them.
            f(unsafe { self.cqes.add((h & self.mask) as usize).read() });
            h = h.wrapping_add(1);
        }
        self.head.store(h, Ordering::Release);
        tail.wrapping_sub(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn sqe_and_cqe_match_the_kernel_layout() {
        assert_eq!(size_of::<Sqe>(), 64);
        assert_eq!(offset_of!(Sqe, opcode), 0);
        assert_eq!(offset_of!(Sqe, flags), 1);
        assert_eq!(offset_of!(Sqe, ioprio), 2);
        assert_eq!(offset_of!(Sqe, fd), 4);
        assert_eq!(offset_of!(Sqe, off), 8);
        assert_eq!(offset_of!(Sqe, addr), 16);
        assert_eq!(offset_of!(Sqe, len), 24);
        assert_eq!(offset_of!(Sqe, op_flags), 28);
        assert_eq!(offset_of!(Sqe, user_data), 32);
        assert_eq!(offset_of!(Sqe, buf_index), 40);
        assert_eq!(offset_of!(Sqe, personality), 42);
        assert_eq!(offset_of!(Sqe, splice_fd_in), 44);
        assert_eq!(offset_of!(Sqe, addr3), 48);
        assert_eq!(size_of::<Cqe>(), 16);
        assert_eq!(offset_of!(Cqe, user_data), 0);
        assert_eq!(offset_of!(Cqe, res), 8);
        assert_eq!(offset_of!(Cqe, flags), 12);
    }

    #[test]
    fn a_nop_round_trips_through_the_ring() {
        let ring = match Ring::new(8, 16) {
            Ok(r) => r,
            Err(e) => return eprintln!("io_uring unavailable, skipped: {e}"),
        };
        assert!(ring.cq_entries() >= 16);
        let mut sq = ring.submitter();
        let mut cq = ring.completer();
        for i in 0..3 {
            assert!(sq.push(&Sqe {
                opcode: OP_NOP,
                user_data: 100 + i,
                ..Default::default()
            }));
        }
        assert_eq!(sq.submit().expect("submit"), 3);
        let mut seen = Vec::new();
        while seen.len() < 3 {
            cq.wait(1).expect("wait");
            cq.reap(|c| seen.push((c.user_data, c.res)));
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![(100, 0), (101, 0), (102, 0)]);
    }

    #[test]
    fn a_full_submission_queue_refuses_more() {
        let Ok(ring) = Ring::new(4, 8) else { return };
        let mut sq = ring.submitter();
        let n = ring.sq_entries();
        for _ in 0..n {
            assert!(sq.push(&Sqe::default()));
        }
        assert!(!sq.push(&Sqe::default()));
        assert_eq!(sq.submit().expect("submit"), n);
        let mut cq = ring.completer();
        let mut got = 0;
        while got < n {
            cq.wait(1).expect("wait");
            got += cq.reap(|_| {});
        }
        assert_eq!(sq.space(), n);
    }
}
