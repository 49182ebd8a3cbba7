//! Start-up probe of the kernel features the segment writer needs: io_uring, O_DIRECT on
//! the target directory, and the kernel release. Every failure becomes a message, never a
//! panic, so the engine can pick its fallback writer and log why.

use crate::sys;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ffi::{CStr, c_long};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// O_DIRECT needs buffer address, length and file offset aligned to the logical block
/// size; 4096 covers every disk we target (512e and 4Kn).
pub const DIRECT_IO_ALIGN: usize = 4096;

/// Entries of the throw-away ring: the smallest useful size, it is closed at once.
const PROBE_RING_ENTRIES: u32 = 4;

/// Attempts at a fresh temp-file name before giving up (names collide only by accident).
const PROBE_NAME_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub io_uring: Result<(), String>,
    pub direct_io: Result<(), String>,
    pub kernel: String,
}

pub fn run(dir: &Path) -> Report {
    Report {
        io_uring: probe_io_uring(),
        direct_io: probe_direct_io(dir),
        kernel: kernel_release(),
    }
}

/// Creates a small ring with io_uring_setup(2) and closes it again.
pub fn probe_io_uring() -> Result<(), String> {
    let Some(nr) = sys::SYS_IO_URING_SETUP else {
        return Err("io_uring probe is not implemented for this OS/architecture".into());
    };
    let mut params = sys::IoUringParams::default();
    // SAFETY: io_uring_setup(entries, params) reads and writes exactly one
    // `struct io_uring_params`, whose layout the tests in sys.rs pin to the kernel's.
    let ret = unsafe {
        sys::syscall(
            nr,
            PROBE_RING_ENTRIES as c_long,
            &mut params as *mut sys::IoUringParams,
        )
    };
    if ret < 0 {
        let err = io::Error::last_os_error();
        let hint = match err.raw_os_error() {
            Some(38) => " (kernel without io_uring, or blocked by seccomp)",
            Some(1) => " (see /proc/sys/kernel/io_uring_disabled, or seccomp)",
            _ => "",
        };
        return Err(format!("io_uring_setup failed: {err}{hint}"));
    }
    let Ok(fd) = i32::try_from(ret) else {
        return Err(format!("io_uring_setup returned an impossible fd {ret}"));
    };
    // SAFETY: a non-negative return is a new ring fd that nothing else owns; dropping
    // the OwnedFd closes it, which tears the ring down.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}

/// A zeroed heap buffer aligned for O_DIRECT, freed on drop.
struct AlignedBuf {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBuf {
    fn new(len: usize, align: usize) -> Result<Self, String> {
        let layout = Layout::from_size_align(len, align).map_err(|e| e.to_string())?;
        if layout.size() == 0 {
            return Err("empty aligned buffer".into());
        }
        // SAFETY: the layout has a non-zero size, checked above.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(format!("cannot allocate {len} aligned bytes"));
        }
        Ok(Self { ptr, layout })
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `layout.size()` initialised (zeroed) bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this very layout and is freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Unlinks the probe file when the probe ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

static PROBE_SEQ: AtomicU32 = AtomicU32::new(0);

fn create_probe_file(dir: &Path, o_direct: i32) -> Result<(File, RemoveOnDrop), String> {
    let pid = std::process::id();
    let mut last = String::new();
    for _ in 0..PROBE_NAME_ATTEMPTS {
        let seq = PROBE_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".flux-native-probe-{pid}-{seq}"));
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true) // O_CREAT | O_EXCL: never touch an existing file
            .mode(0o600)
            .custom_flags(o_direct)
            .open(&path);
        match opened {
            Ok(f) => return Ok((f, RemoveOnDrop(path))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e.to_string(),
            Err(e) => return Err(format!("open O_DIRECT in {}: {e}", dir.display())),
        }
    }
    Err(format!(
        "no free probe file name in {}: {last}",
        dir.display()
    ))
}

/// Writes one aligned block with O_DIRECT into a temp file in `dir`, then unlinks it.
pub fn probe_direct_io(dir: &Path) -> Result<(), String> {
    let Some(o_direct) = sys::O_DIRECT else {
        return Err("O_DIRECT probe is not implemented for this OS/architecture".into());
    };
    let buf = AlignedBuf::new(DIRECT_IO_ALIGN, DIRECT_IO_ALIGN)?;
    let (file, _guard) = create_probe_file(dir, o_direct)?;
    let written = file
        .write_at(buf.as_slice(), 0)
        .map_err(|e| format!("O_DIRECT write of {DIRECT_IO_ALIGN} bytes: {e}"))?;
    if written != DIRECT_IO_ALIGN {
        return Err(format!(
            "O_DIRECT write was short: {written} of {DIRECT_IO_ALIGN} bytes"
        ));
    }
    let mut fs = sys::StatFs::default();
    // SAFETY: `fs` is a writable `struct statfs` (layout pinned in sys.rs); the fd is open.
    if unsafe { sys::fstatfs(file.as_raw_fd(), &mut fs) } == 0 && fs.f_type == sys::TMPFS_MAGIC {
        return Err(format!(
            "{} is tmpfs: it accepts O_DIRECT but serves it from the page cache",
            dir.display()
        ));
    }
    Ok(())
}

/// The running kernel's release, e.g. "6.8.0-45-generic"; "unknown" if uname fails.
pub fn kernel_release() -> String {
    let mut uts = std::mem::MaybeUninit::<sys::UtsName>::zeroed();
    // SAFETY: uname fills one `struct utsname`, whose layout is pinned in sys.rs.
    if unsafe { sys::uname(uts.as_mut_ptr()) } != 0 {
        return "unknown".into();
    }
    // SAFETY: zero-initialised then filled by uname; an all-zero UtsName is valid too.
    let uts = unsafe { uts.assume_init() };
    let bytes: Vec<u8> = uts.release.iter().map(|&c| c as u8).collect();
    match CStr::from_bytes_until_nul(&bytes) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flux-native-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    #[test]
    fn kernel_release_looks_like_a_version() {
        let k = kernel_release();
        assert!(k.chars().next().is_some_and(|c| c.is_ascii_digit()), "{k}");
    }

    #[test]
    fn run_gathers_every_verdict_and_the_kernel() {
        let dir = scratch_dir("run");
        let r = run(&dir);
        std::fs::remove_dir(&dir).expect("remove dir");
        assert_eq!(r.kernel, kernel_release());
        assert_eq!(
            r.direct_io.is_ok(),
            probe_direct_io(&std::env::temp_dir()).is_ok()
        );
    }

    #[test]
    fn direct_io_probe_leaves_no_file_behind() {
        let dir = scratch_dir("leftover");
        let _ = probe_direct_io(&dir);
        let left = std::fs::read_dir(&dir).expect("read dir").count();
        std::fs::remove_dir(&dir).expect("remove dir");
        assert_eq!(left, 0);
    }

    #[test]
    fn direct_io_probe_reports_a_missing_directory() {
        let err = probe_direct_io(Path::new("/nonexistent/flux-native")).unwrap_err();
        assert!(err.contains("No such file"), "{err}");
    }

    #[test]
    fn io_uring_probe_returns_a_verdict_without_panicking() {
        if let Err(e) = probe_io_uring() {
            assert!(e.starts_with("io_uring"), "{e}");
        }
    }

    #[test]
    fn aligned_buffer_is_aligned() {
        let b = AlignedBuf::new(DIRECT_IO_ALIGN, DIRECT_IO_ALIGN).expect("alloc");
        assert_eq!(b.as_slice().as_ptr() as usize % DIRECT_IO_ALIGN, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
    }
}
