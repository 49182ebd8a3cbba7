//! Tests of the writer from Rust: bytes written equal bytes read back, O_DIRECT tails are
//! cut to the exact size, misuse is refused with the right errno.

use crate::pool::ALIGN;
use crate::writer::{Options, Writer};
use std::path::PathBuf;
use std::time::Duration;

fn opts(direct: bool) -> Options {
    Options {
        direct_io: direct,
        chunk_bytes: 64 * 1024,
        pool_chunks: 64,
        batch_interval: Duration::from_millis(5),
        batch_size: 8,
        ring_entries: 32,
        stage_wait: Duration::from_secs(5),
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

fn round_trip(direct: bool) {
    let Ok(w) = Writer::new(opts(direct)) else {
        return eprintln!("io_uring unavailable");
    };
    let dir = scratch(if direct { "rt-direct" } else { "rt-buffered" });
    let mut seed = 7u32;
    let mut files = Vec::new();
    for i in 0..12 {
        let path = dir.join(format!("f{i}.bin"));
        let o = w.open(path.to_str().expect("utf8"), None).expect("open");
        assert_eq!(o.direct, direct);
        files.push((o.id, path, Vec::<u8>::new()));
    }
    for round in 0..40 {
        for (id, _, expect) in files.iter_mut() {
            let n = (mulberry32(&mut seed) % 150_000) as usize;
            let a: Vec<u8> = (0..n)
                .map(|k| (k as u32 ^ round ^ *id as u32) as u8)
                .collect();
            let split = n / 3;
            let size = w
                .append(*id, &[&a[..split], &[], &a[split..]])
                .expect("append");
            expect.extend_from_slice(&a);
            assert_eq!(size, expect.len() as u64);
        }
        if round % 10 == 3 {
            std::thread::sleep(Duration::from_millis(7)); // let the interval flush partials
        }
    }
    for (id, _, _) in &files {
        w.close(*id, true).expect("close");
    }
    w.shutdown(true);
    for (_, path, expect) in &files {
        let got = std::fs::read(path).expect("read back");
        assert_eq!(got.len(), expect.len());
        assert!(got == *expect, "{} differs", path.display());
    }
    let s = w.stats();
    assert_eq!(
        (s.open_files, s.closing_files, s.inflight, s.chunks_in_use),
        (0, 0, 0, 0)
    );
    assert!(s.fsyncs >= 12);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn bytes_read_back_equal_bytes_appended_with_o_direct() {
    round_trip(true);
}

#[test]
fn bytes_read_back_equal_bytes_appended_buffered() {
    round_trip(false);
}

#[test]
fn an_o_direct_tail_is_cut_to_the_exact_size() {
    let Ok(w) = Writer::new(opts(true)) else {
        return;
    };
    let dir = scratch("tail");
    for n in [0usize, 1, 4095, 4096, 4097, 65536 + 5] {
        let path = dir.join(format!("t{n}"));
        let o = w.open(path.to_str().expect("utf8"), None).expect("open");
        let data = vec![0xAB; n];
        w.append(o.id, &[&data]).expect("append");
        w.close(o.id, false).expect("close");
        while w.pending() > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(std::fs::read(&path).expect("read"), data, "size {n}");
    }
    drop(w);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn misuse_is_refused_with_errno_codes_not_panics() {
    let Ok(w) = Writer::new(Options {
        pool_chunks: 2,
        chunk_bytes: ALIGN,
        ..opts(false)
    }) else {
        return;
    };
    let dir = scratch("misuse");
    let o = w
        .open(dir.join("m").to_str().expect("utf8"), None)
        .expect("open");
    // Larger than the whole pool: refused up front, nothing kept.
    let big = vec![1u8; 3 * ALIGN];
    assert_eq!(
        w.append(o.id, &[&big]).expect_err("too big").code(),
        "ENOBUFS"
    );
    assert_eq!(w.append(o.id, &[]).expect("empty"), 0);
    assert_eq!(w.append(o.id, &[b"abc"]).expect("small"), 3);
    w.close(o.id, false).expect("close");
    w.close(o.id, false).expect("second close is a no-op");
    assert_eq!(w.append(o.id, &[b"x"]).expect_err("closed").code(), "EBADF");
    assert_eq!(
        w.append(12345, &[b"x"]).expect_err("unknown").code(),
        "EBADF"
    );
    w.close(987_654, true)
        .expect("closing an unknown id is a no-op");
    let missing = w.open("/nonexistent-dir/x", None).expect_err("missing dir");
    assert_eq!(missing.code(), "ENOENT");
    w.shutdown(true);
    assert_eq!(
        w.open(dir.join("late").to_str().expect("utf8"), None)
            .expect_err("after shutdown")
            .code(),
        "ESHUTDOWN"
    );
    assert_eq!(std::fs::read(dir.join("m")).expect("read"), b"abc");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn appended_bytes_reach_the_file_within_the_interval_even_mid_block() {
    // What a crash (kill -9) would leave: the file holds every byte appended more than a
    // batch interval ago, and ends exactly there (the padded tail is cut back).
    let Ok(w) = Writer::new(opts(true)) else {
        return;
    };
    let dir = scratch("provisional");
    let path = dir.join("open");
    let o = w.open(path.to_str().expect("utf8"), None).expect("open");
    let mut expect = Vec::new();
    for (i, n) in [1000usize, 70_000, 5, 4096, 100_003]
        .into_iter()
        .enumerate()
    {
        let part = vec![i as u8 + 1; n];
        w.append(o.id, &[&part]).expect("append");
        expect.extend_from_slice(&part);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read(&path).expect("read") != expect {
            assert!(
                std::time::Instant::now() < deadline,
                "after append {i} the file is not the data"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    w.close(o.id, true).expect("close");
    drop(w);
    assert_eq!(std::fs::read(&path).expect("read"), expect);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
