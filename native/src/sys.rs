//! Hand-declared Linux kernel structs, constants and glibc functions the addon uses.
//!
//! No `libc` crate: each layout is copied from the kernel UAPI or glibc header named beside
//! it, and the tests at the bottom pin sizes and offsets so a typo cannot go unnoticed.

use std::ffi::{c_char, c_int, c_long, c_void};

/// include/uapi/linux/io_uring.h `struct io_sqring_offsets` (40 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IoSqringOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub flags: u32,
    pub dropped: u32,
    pub array: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

/// include/uapi/linux/io_uring.h `struct io_cqring_offsets` (40 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IoCqringOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub overflow: u32,
    pub cqes: u32,
    pub flags: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

/// include/uapi/linux/io_uring.h `struct io_uring_params` (120 bytes): passed to
/// io_uring_setup(2), which fills in everything after `flags`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IoUringParams {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub flags: u32,
    pub sq_thread_cpu: u32,
    pub sq_thread_idle: u32,
    pub features: u32,
    pub wq_fd: u32,
    pub resv: [u32; 3],
    pub sq_off: IoSqringOffsets,
    pub cq_off: IoCqringOffsets,
}

/// io_uring_setup(2) syscall number: 425 on x86_64 and in the generic table (aarch64).
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub const SYS_IO_URING_SETUP: Option<c_long> = Some(425);
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
pub const SYS_IO_URING_SETUP: Option<c_long> = None;

/// `O_DIRECT` differs per architecture (asm-generic/fcntl.h vs arch/arm64 fcntl.h).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub const O_DIRECT: Option<i32> = Some(0o40000);
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub const O_DIRECT: Option<i32> = Some(0o200000);
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
pub const O_DIRECT: Option<i32> = None;

/// include/uapi/linux/magic.h: tmpfs accepts O_DIRECT since Linux 6.6 but still serves
/// it from the page cache, so it is no direct-I/O target.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// glibc sys/utsname.h `struct utsname` on Linux: six fields of `_UTSNAME_LENGTH` (65).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UtsName {
    pub sysname: [c_char; 65],
    pub nodename: [c_char; 65],
    pub release: [c_char; 65],
    pub version: [c_char; 65],
    pub machine: [c_char; 65],
    pub domainname: [c_char; 65],
}

/// glibc bits/statfs.h `struct statfs` on 64-bit Linux (x86_64, aarch64): 120 bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct StatFs {
    pub f_type: i64,
    pub f_bsize: i64,
    pub f_blocks: u64,
    pub f_bfree: u64,
    pub f_bavail: u64,
    pub f_files: u64,
    pub f_ffree: u64,
    pub f_fsid: [i32; 2],
    pub f_namelen: i64,
    pub f_frsize: i64,
    pub f_flags: i64,
    pub f_spare: [i64; 4],
}

// SAFETY: glibc's prototypes from unistd.h, sys/utsname.h, sys/vfs.h, sys/mman.h and fcntl.h.
unsafe extern "C" {
    pub fn syscall(num: c_long, ...) -> c_long;
    pub fn uname(buf: *mut UtsName) -> c_int;
    pub fn fstatfs(fd: c_int, buf: *mut StatFs) -> c_int;
    pub fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: i64,
    ) -> *mut c_void;
    pub fn munmap(addr: *mut c_void, len: usize) -> c_int;
    /// fcntl.h: reserve `len` bytes at `offset` (mode 0: the file's size grows to cover them).
    pub fn fallocate(fd: c_int, mode: c_int, offset: i64, len: i64) -> c_int;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn io_uring_params_matches_the_kernel_layout() {
        assert_eq!(size_of::<IoUringParams>(), 120);
        assert_eq!(align_of::<IoUringParams>(), 8);
        assert_eq!(offset_of!(IoUringParams, sq_entries), 0);
        assert_eq!(offset_of!(IoUringParams, cq_entries), 4);
        assert_eq!(offset_of!(IoUringParams, flags), 8);
        assert_eq!(offset_of!(IoUringParams, sq_thread_cpu), 12);
        assert_eq!(offset_of!(IoUringParams, sq_thread_idle), 16);
        assert_eq!(offset_of!(IoUringParams, features), 20);
        assert_eq!(offset_of!(IoUringParams, wq_fd), 24);
        assert_eq!(offset_of!(IoUringParams, resv), 28);
        assert_eq!(offset_of!(IoUringParams, sq_off), 40);
        assert_eq!(offset_of!(IoUringParams, cq_off), 80);
    }

    #[test]
    fn ring_offsets_match_the_kernel_layout() {
        assert_eq!(size_of::<IoSqringOffsets>(), 40);
        assert_eq!(offset_of!(IoSqringOffsets, array), 24);
        assert_eq!(offset_of!(IoSqringOffsets, user_addr), 32);
        assert_eq!(size_of::<IoCqringOffsets>(), 40);
        assert_eq!(offset_of!(IoCqringOffsets, cqes), 20);
        assert_eq!(offset_of!(IoCqringOffsets, user_addr), 32);
    }

    #[test]
    fn utsname_and_statfs_match_glibc() {
        assert_eq!(size_of::<UtsName>(), 6 * 65);
        assert_eq!(offset_of!(UtsName, release), 2 * 65);
        assert_eq!(size_of::<StatFs>(), 120);
        assert_eq!(offset_of!(StatFs, f_type), 0);
        assert_eq!(offset_of!(StatFs, f_fsid), 56);
        assert_eq!(offset_of!(StatFs, f_spare), 88);
    }
}
