//! Tests of the writer from Rust: blocks written equal bytes read back, headers wait for
//! their data and set the committed end, files are cut to their final size (space reserved
//! ahead, writes after an error), misuse is refused with the right errno.

use crate::pool::ALIGN;
use crate::writer::{Options, Writer};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn opts(direct: bool) -> Options {
    Options {
        direct_io: direct,
        block_bytes: 16 * 1024,
        pool_blocks: 256,
        batch_interval: Duration::from_millis(5),
        batch_size: 8,
        ring_entries: 32,
        prealloc_bytes: 0,
    }
}

fn scratch(name: &str) -> PathBuf {
    // Beside the crate (ext4 here), not /tmp, which may be tmpfs elsewhere.
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../target/flux-writer-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// A tiny PRNG (mulberry32) so the sizes are random but repeatable.
fn mulberry32(seed: &mut u32) -> u32 {
    *seed = seed.wrapping_add(0x6D2B_79F5);
    let mut t = *seed;
    t = (t ^ (t >> 15)).wrapping_mul(t | 1);
    t ^= t.wrapping_add((t ^ (t >> 7)).wrapping_mul(t | 61));
    t ^ (t >> 14)
}

/// Takes a block (waiting while all are out, as JS would drop data instead) and fills it
/// with `data`.
fn filled(w: &Writer, data: &[u8]) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        if let Some(id) = w.take() {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "no block came back: {:?}",
            w.stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let b = w.block(id).expect("block memory");
    assert!(data.len() <= b.len());
    // SAFETY: the block is lent to this thread (taken, not yet handed back) and holds
    // `b.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), b.ptr(), data.len()) };
    id
}

fn wait_pending(w: &Writer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.pending() > 0 {
        assert!(Instant::now() < deadline, "closes did not finish");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Writes one fragment the way the streamer does: data blocks after a header region, then
/// the header committing the fragment's end. Returns the new end.
fn fragment(w: &Writer, id: u64, at: u64, data: &[u8], expect: &mut Vec<u8>) -> u64 {
    let bs = 16 * 1024;
    let head = vec![0x48u8; ALIGN];
    let body = data.len().next_multiple_of(ALIGN);
    let mut padded = data.to_vec();
    padded.resize(body, 0);
    let data_at = at + ALIGN as u64;
    for (k, chunk) in padded.chunks(bs).enumerate() {
        let b = filled(w, chunk);
        w.write(id, b, data_at + (k * bs) as u64, chunk.len(), 0)
            .expect("data write");
    }
    let end = data_at + body as u64;
    let h = filled(w, &head);
    w.write(id, h, at, ALIGN, end).expect("header write");
    expect.resize(end as usize, 0);
    expect[at as usize..data_at as usize].copy_from_slice(&head);
    expect[data_at as usize..end as usize].copy_from_slice(&padded);
    end
}

fn round_trip(direct: bool, prealloc: u64) {
    let Ok(w) = Writer::new(Options {
        prealloc_bytes: prealloc,
        ..opts(direct)
    }) else {
        return eprintln!("io_uring unavailable");
    };
    let dir = scratch(&format!("rt-{direct}-{prealloc}"));
    let mut seed = 7u32;
    let mut files = Vec::new();
    for i in 0..12 {
        let path = dir.join(format!("f{i}.bin"));
        let o = w.open(path.to_str().expect("utf8"), None).expect("open");
        assert_eq!(o.direct, direct);
        files.push((o.id, path, 0u64, Vec::<u8>::new()));
    }
    for round in 0..30u32 {
        for (id, _, end, expect) in files.iter_mut() {
            let n = (mulberry32(&mut seed) % 90_000) as usize + 1;
            let a: Vec<u8> = (0..n)
                .map(|k| (k as u32 ^ round ^ *id as u32) as u8 | 1)
                .collect();
            *end = fragment(&w, *id, *end, &a, expect);
        }
        if round % 10 == 3 {
            std::thread::sleep(Duration::from_millis(7));
        }
    }
    for (id, _, end, _) in &files {
        w.close(*id, true, Some(*end)).expect("close");
    }
    wait_pending(&w);
    let s = w.stats();
    w.shutdown(true);
    for (_, path, _, expect) in &files {
        let got = std::fs::read(path).expect("read back");
        assert_eq!(got.len(), expect.len(), "{} size", path.display());
        assert!(got == *expect, "{} differs", path.display());
    }
    assert_eq!(
        (s.open_files, s.closing_files, s.inflight, s.blocks_in_use),
        (0, 0, 0, 0)
    );
    assert!(s.fsyncs >= 12);
    assert!(s.blocks_allocated <= 256);
    if prealloc > 0 {
        assert!(s.preallocs > 0, "space was reserved ahead");
    } else {
        assert_eq!(s.preallocs, 0);
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn blocks_read_back_as_written_with_o_direct() {
    round_trip(true, 0);
}

#[test]
fn blocks_read_back_as_written_buffered() {
    round_trip(false, 0);
}

#[test]
fn space_reserved_ahead_is_cut_back_at_close() {
    round_trip(true, 1 << 20);
}

#[test]
fn an_open_file_holds_reserved_space_and_a_crash_would_leave_whole_fragments() {
    let Ok(w) = Writer::new(Options {
        prealloc_bytes: 1 << 20,
        ..opts(true)
    }) else {
        return;
    };
    let dir = scratch("reserve");
    let path = dir.join("open");
    let o = w.open(path.to_str().expect("utf8"), None).expect("open");
    let mut expect = Vec::new();
    let end = fragment(&w, o.id, 0, &vec![7u8; 50_000], &mut expect);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = std::fs::read(&path).expect("read");
        if got.len() >= end as usize && got[..end as usize] == expect[..] {
            // The rest is reserved space: zeros, which the recovery scan takes as the end.
            assert!(got.len() >= (1 << 20), "reserved {} bytes", got.len());
            assert!(got[end as usize..].iter().all(|&b| b == 0));
            break;
        }
        assert!(Instant::now() < deadline, "the fragment did not land");
        std::thread::sleep(Duration::from_millis(2));
    }
    w.close(o.id, false, Some(end)).expect("close");
    wait_pending(&w);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), end);
    drop(w);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn after_a_failed_write_the_header_is_dropped_and_the_file_cut_to_the_committed_end() {
    let Ok(w) = Writer::new(opts(true)) else {
        return;
    };
    let dir = scratch("fail");
    let path = dir.join("f");
    let o = w.open(path.to_str().expect("utf8"), None).expect("open");
    let mut expect = Vec::new();
    let good = fragment(&w, o.id, 0, &[1u8; 10_000], &mut expect);
    // A data write the kernel refuses (past any file size ext4 allows), then its header.
    let b = filled(&w, &[2u8; ALIGN]);
    w.write(o.id, b, 1 << 62, ALIGN, 0).expect("queued");
    let b = filled(&w, &[3u8; ALIGN]);
    w.write(o.id, b, good + ALIGN as u64, ALIGN, 0)
        .expect("queued");
    let h = filled(&w, &[4u8; ALIGN]);
    w.write(o.id, h, good, ALIGN, good + 2 * ALIGN as u64)
        .expect("queued");
    // Every write after the failure throws it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        let b = filled(&w, &[5u8; ALIGN]);
        match w.write(o.id, b, good + 4 * ALIGN as u64, ALIGN, 0) {
            Err(e) => break e,
            Ok(()) => {
                assert!(Instant::now() < deadline, "the failure was not reported");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    assert_eq!(err.op, "write");
    assert!(err.size <= good, "intact size {} reported", err.size);
    assert!(matches!(err.code(), "EFBIG" | "EINVAL"), "{}", err.code());
    w.close(o.id, true, Some(1 << 20))
        .expect("reported already");
    wait_pending(&w);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        expect,
        "cut to the last whole fragment"
    );
    assert_eq!(w.stats().blocks_in_use, 0);
    drop(w);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn shutdown_closes_open_files_at_their_committed_end() {
    let Ok(w) = Writer::new(opts(false)) else {
        return;
    };
    let dir = scratch("shutdown");
    let path = dir.join("s");
    let o = w.open(path.to_str().expect("utf8"), None).expect("open");
    let mut expect = Vec::new();
    let end = fragment(&w, o.id, 0, &[9u8; 20_000], &mut expect);
    let b = filled(&w, &[8u8; ALIGN]); // data of a fragment whose header never comes
    w.write(o.id, b, end + ALIGN as u64, ALIGN, 0)
        .expect("queued");
    w.shutdown(true);
    assert_eq!(std::fs::read(&path).expect("read"), expect);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn misuse_is_refused_with_errno_codes_not_panics() {
    let Ok(w) = Writer::new(Options {
        pool_blocks: 3,
        block_bytes: ALIGN,
        ..opts(true)
    }) else {
        return;
    };
    let dir = scratch("misuse");
    let o = w
        .open(dir.join("m").to_str().expect("utf8"), None)
        .expect("open");
    let code = |r: Result<(), crate::writer::WriteError>| r.expect_err("refused").code();
    // Blocks JS does not hold.
    assert_eq!(code(w.write(o.id, 0, 0, ALIGN, 0)), "EINVAL");
    assert_eq!(code(w.drop_block(0)), "EINVAL");
    let a = w.take().expect("a");
    let b = w.take().expect("b");
    let c = w.take().expect("c");
    assert!(w.take().is_none(), "the pool is bounded");
    w.write(o.id, a, 0, ALIGN, 0).expect("write");
    assert_eq!(
        code(w.write(o.id, a, 0, ALIGN, 0)),
        "EINVAL",
        "handed over twice"
    );
    w.drop_block(b).expect("drop");
    // O_DIRECT: offset and length must be aligned; a refused write gives its block back.
    let b = w.take().expect("b again");
    assert_eq!(code(w.write(o.id, b, 100, ALIGN, 0)), "EINVAL");
    let b = w.take().expect("b back in the pool");
    assert_eq!(code(w.write(o.id, b, 0, 100, 0)), "EINVAL");
    let b = w.take().expect("b back again");
    assert_eq!(
        code(w.write(o.id, b, 0, 2 * ALIGN, 0)),
        "EINVAL",
        "longer than a block"
    );
    let b = w.take().expect("b");
    assert_eq!(
        code(w.write(12345, b, 0, ALIGN, 0)),
        "EBADF",
        "unknown file"
    );
    w.close(o.id, false, Some(0)).expect("close");
    w.close(o.id, false, Some(0))
        .expect("second close is a no-op");
    assert_eq!(code(w.write(o.id, c, 0, ALIGN, 0)), "EBADF", "closed file");
    w.close(987_654, true, None)
        .expect("closing an unknown id is a no-op");
    let missing = w.open("/nonexistent-dir/x", None).expect_err("missing dir");
    assert_eq!(missing.code(), "ENOENT");
    wait_pending(&w);
    assert_eq!(w.stats().blocks_in_use, 0, "every refused block went back");
    w.shutdown(true);
    assert_eq!(
        w.open(dir.join("late").to_str().expect("utf8"), None)
            .expect_err("after shutdown")
            .code(),
        "ESHUTDOWN"
    );
    // Closed at size 0 with one block written beyond: cut back.
    assert_eq!(std::fs::metadata(dir.join("m")).expect("stat").len(), 0);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
