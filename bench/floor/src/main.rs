//! The bench's floor recorder: per camera, RTSP DESCRIBE/SETUP/PLAY over TCP (RFC 2326,
//! interleaved), then every received byte is appended to one file with >= 1 MiB writes.
//! No parsing, no muxing, no index: the least CPU any recorder of these streams can spend.
//! `--mode epoll` (default): one thread reads every socket through epoll(7) after the
//! set-up, each socket with a 64 KiB low-water mark (SO_RCVLOWAT, `--lowat BYTES`, 0 = off):
//! the kernel wakes it once per 64 KiB instead of per few KB, as the engine does for streams
//! nobody watches live, so the floor stays the least a recorder can spend;
//! `--mode threads`: a blocking thread per camera (costlier past ~200 cameras:
//! one wake-up and context switch per frame per camera).
//!
//! Usage: flux-bench-floor --url rtsp://127.0.0.1:8554/cam --cameras N --out DIR [--mode epoll|threads] [--lowat BYTES]
//! (cameras are <url>1 ... <url>N). It stops when stdin closes or gets a line, flushes
//! and prints one line per camera: `camK bytes`.

use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// Bytes collected before one write(2): large writes are the cheapest way to the page cache.
const WRITE_BYTES: usize = 1 << 20;
/// Largest RTSP response we accept (headers + SDP).
const MAX_RESPONSE: usize = 64 << 10;
/// How often a blocked read wakes to look at the stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").expect("--url rtsp://host:port/cam");
    let cameras: usize = arg(&args, "--cameras")
        .and_then(|s| s.parse().ok())
        .expect("--cameras N");
    let out = PathBuf::from(arg(&args, "--out").expect("--out DIR"));
    std::fs::create_dir_all(&out).expect("create --out");
    let stop = Arc::new(AtomicBool::new(false));
    if arg(&args, "--mode").as_deref() != Some("threads") {
        let s2 = stop.clone();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            s2.store(true, Ordering::Relaxed);
        });
        let lowat: i32 = arg(&args, "--lowat")
            .and_then(|s| s.parse().ok())
            .unwrap_or(64 << 10);
        return epoll::run(&url, cameras, &out, &stop, lowat);
    }
    let mut threads = Vec::with_capacity(cameras);
    for k in 1..=cameras {
        let (url, out, stop) = (
            format!("{url}{k}"),
            out.join(format!("cam{k}.rtp")),
            stop.clone(),
        );
        let t = thread::Builder::new().stack_size(256 << 10).spawn(move || {
            match record(&url, &out, &stop) {
                Ok(n) => (k, n, String::new()),
                Err(e) => (k, 0, e.to_string()),
            }
        });
        threads.push(t.expect("spawn"));
    }
    // Stop on a line or EOF on stdin (the bench closes it).
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let (k, n, err) = t.join().unwrap_or((0, 0, "panicked".into()));
        if err.is_empty() {
            println!("cam{k} {n}");
        } else {
            println!("cam{k} {n} error: {err}");
        }
    }
}

struct Conn {
    s: TcpStream,
    cseq: u32,
    /// Bytes read past the last response (media after PLAY).
    rest: Vec<u8>,
}

impl Conn {
    fn request(
        &mut self,
        method: &str,
        url: &str,
        extra: &str,
    ) -> std::io::Result<(String, String)> {
        self.cseq += 1;
        let req = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: flux-bench-floor\r\n{extra}\r\n",
            self.cseq
        );
        self.s.write_all(req.as_bytes())?;
        let mut buf = std::mem::take(&mut self.rest);
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len = header(&head, "content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    self.rest = buf[end + 4 + len..].to_vec();
                    if !head.starts_with("RTSP/1.0 200") {
                        return Err(std::io::Error::other(format!(
                            "{method}: {}",
                            head.lines().next().unwrap_or("")
                        )));
                    }
                    return Ok((head, body));
                }
            }
            if buf.len() > MAX_RESPONSE {
                return Err(std::io::Error::other("response too large"));
            }
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other("closed during setup"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Connects and plays one camera; returns the socket and the media bytes already read.
fn setup(url: &str) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let hostport = url
        .strip_prefix("rtsp://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| std::io::Error::other("bad url"))?;
    let mut c = Conn {
        s: TcpStream::connect(hostport)?,
        cseq: 0,
        rest: Vec::new(),
    };
    let (head, sdp) = c.request("DESCRIBE", url, "Accept: application/sdp\r\n")?;
    let base = header(&head, "content-base").unwrap_or_else(|| format!("{url}/"));
    let mut session = String::new();
    let controls: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=control:"))
        .filter(|c| *c != "*")
        .map(str::to_string)
        .collect();
    for (i, ctl) in controls.iter().enumerate() {
        let track = if ctl.starts_with("rtsp://") {
            ctl.clone()
        } else {
            format!(
                "{}{ctl}",
                if base.ends_with('/') {
                    base.clone()
                } else {
                    format!("{base}/")
                }
            )
        };
        let sess = if session.is_empty() {
            String::new()
        } else {
            format!("Session: {session}\r\n")
        };
        let (h, _) = c.request(
            "SETUP",
            &track,
            &format!(
                "Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n{sess}",
                2 * i,
                2 * i + 1
            ),
        )?;
        if session.is_empty() {
            session = header(&h, "session")
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or("")
                .to_string();
        }
    }
    c.request(
        "PLAY",
        &base,
        &format!("Session: {session}\r\nRange: npt=0.000-\r\n"),
    )?;
    Ok((c.s, c.rest))
}

fn record(url: &str, out: &PathBuf, stop: &AtomicBool) -> std::io::Result<u64> {
    let (s, rest) = setup(url)?;
    let mut c = Conn { s, cseq: 0, rest };
    c.s.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut file = File::create(out)?;
    // One fixed buffer, filled from `len`: no allocation or zeroing per read.
    let mut buf = vec![0u8; WRITE_BYTES + (256 << 10)];
    let mut len = c.rest.len().min(buf.len());
    buf[..len].copy_from_slice(&c.rest[..len]);
    let mut total = 0u64;
    loop {
        if len >= WRITE_BYTES {
            file.write_all(&buf[..len])?;
            total += len as u64;
            len = 0;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match c.s.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                file.write_all(&buf[..len])?;
                return Err(e);
            }
        }
    }
    file.write_all(&buf[..len])?;
    total += len as u64;
    Ok(total)
}

/// One thread, every socket in one epoll set (level-triggered), one buffer per camera.
mod epoll {
    use super::*;
    use std::os::fd::AsRawFd;

    // Linux uapi <sys/epoll.h>: struct epoll_event is packed on x86-64 only.
    #[cfg_attr(target_arch = "x86_64", repr(C, packed))]
    #[cfg_attr(not(target_arch = "x86_64"), repr(C))]
    #[derive(Clone, Copy)]
    struct EpollEvent {
        events: u32,
        data: u64,
    }
    const EPOLLIN: u32 = 0x001;
    const EPOLLRDHUP: u32 = 0x2000;
    const EPOLL_CTL_ADD: i32 = 1;
    const EPOLL_CTL_DEL: i32 = 2;
    const EPOLL_CLOEXEC: i32 = 0o2000000;
    unsafe extern "C" {
        fn epoll_create1(flags: i32) -> i32;
        fn epoll_ctl(epfd: i32, op: i32, fd: i32, ev: *mut EpollEvent) -> i32;
        fn epoll_wait(epfd: i32, evs: *mut EpollEvent, max: i32, timeout_ms: i32) -> i32;
        fn setsockopt(fd: i32, level: i32, name: i32, val: *const i32, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_RCVLOWAT: i32 = 18;

    struct Cam {
        s: TcpStream,
        file: File,
        buf: Vec<u8>,
        len: usize,
        total: u64,
        open: bool,
        err: String,
    }

    impl Cam {
        fn flush(&mut self) {
            if self.len > 0 {
                if let Err(e) = self.file.write_all(&self.buf[..self.len]) {
                    self.err = e.to_string();
                }
                self.total += self.len as u64;
                self.len = 0;
            }
        }

        /// One non-blocking read into the buffer (flushed first when full); false when nothing was
        /// ready. An end or an error closes the camera (and says true: something happened).
        fn read_some(&mut self) -> bool {
            if self.len >= WRITE_BYTES {
                self.flush();
            }
            let len = self.len;
            match self.s.read(&mut self.buf[len..]) {
                Ok(0) => self.open = false,
                Ok(k) => self.len += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    self.err = e.to_string();
                    self.open = false;
                }
            }
            true
        }
    }

    pub fn run(url: &str, cameras: usize, out: &std::path::Path, stop: &AtomicBool, lowat: i32) {
        // Set-up in parallel (blocking RTSP requests), then hand every socket to one loop.
        let setups: Vec<_> = (1..=cameras)
            .map(|k| {
                let u = format!("{url}{k}");
                thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn(move || setup(&u))
                    .expect("spawn")
            })
            .collect();
        // SAFETY: plain syscall; the result is checked.
        let ep = unsafe { epoll_create1(EPOLL_CLOEXEC) };
        assert!(ep >= 0, "epoll_create1 failed");
        let mut cams: Vec<Option<Cam>> = Vec::with_capacity(cameras);
        for (i, t) in setups.into_iter().enumerate() {
            match t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("panicked")))
            {
                Ok((s, rest)) => {
                    let file =
                        File::create(out.join(format!("cam{}.rtp", i + 1))).expect("create file");
                    let mut buf = vec![0u8; WRITE_BYTES + (256 << 10)];
                    let len = rest.len().min(buf.len());
                    buf[..len].copy_from_slice(&rest[..len]);
                    s.set_nonblocking(true).expect("nonblocking");
                    if lowat > 1 {
                        // SAFETY: a valid fd and a pointer to one int that outlives the call.
                        let r = unsafe { setsockopt(s.as_raw_fd(), SOL_SOCKET, SO_RCVLOWAT, &lowat, 4) };
                        assert!(r == 0, "setsockopt(SO_RCVLOWAT) failed");
                    }
                    let mut ev = EpollEvent {
                        events: EPOLLIN | EPOLLRDHUP,
                        data: i as u64,
                    };
                    // SAFETY: `ev` lives across the call; the fd stays open while `s` is in `cams`.
                    let r = unsafe { epoll_ctl(ep, EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
                    assert!(r == 0, "epoll_ctl failed");
                    cams.push(Some(Cam {
                        s,
                        file,
                        buf,
                        len,
                        total: 0,
                        open: true,
                        err: String::new(),
                    }));
                }
                Err(e) => {
                    println!("cam{} 0 error: {e}", i + 1);
                    cams.push(None);
                }
            }
        }
        let mut events = vec![EpollEvent { events: 0, data: 0 }; 256];
        let mut open = cams.iter().filter(|c| c.is_some()).count();
        while open > 0 && !stop.load(Ordering::Relaxed) {
            // SAFETY: `events` has room for `len` entries and outlives the call.
            let n = unsafe {
                epoll_wait(
                    ep,
                    events.as_mut_ptr(),
                    events.len() as i32,
                    READ_TIMEOUT.as_millis() as i32,
                )
            };
            for ev in events.iter().take(n.max(0) as usize) {
                let data = ev.data;
                let Some(c) = cams[data as usize].as_mut() else {
                    continue;
                };
                if !c.open {
                    continue;
                }
                c.read_some();
                if !c.open {
                    open -= 1;
                    // SAFETY: the fd is still open (owned by `c.s`); a closed peer must leave the set or it fires forever.
                    unsafe { epoll_ctl(ep, EPOLL_CTL_DEL, c.s.as_raw_fd(), std::ptr::null_mut()) };
                }
            }
        }
        for (i, c) in cams.iter_mut().enumerate() {
            if let Some(c) = c {
                // Bytes below the low-water mark are still queued: a non-blocking read returns them.
                while c.open && c.read_some() {}
                c.flush();
                if c.err.is_empty() {
                    println!("cam{} {}", i + 1, c.total);
                } else {
                    println!("cam{} {} error: {}", i + 1, c.total, c.err);
                }
            }
        }
    }
}
