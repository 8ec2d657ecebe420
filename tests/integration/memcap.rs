//! Under a memory cgroup several times smaller than the dataset: a full
//! epoch in every order, with augmentation and prefetch on, is not OOM-killed
//! and delivers every sample exactly once with the file's bytes; `fit`
//! completes too.
//!
//! The test re-runs itself (the same test binary, this test only) inside a
//! memory cgroup it creates with the benchmark crate's cgroup code (v1 or
//! v2). Without root or a memory controller it prints why and skips. `NPYFLOW_MEMCAP_MB` sets the dataset size (default 192 MiB
//! under a 64 MiB cap, about a minute in CI); the large documented run is
//! `NPYFLOW_MEMCAP_MB=4096 cargo test --release --test integration memcap -- --nocapture`
//! (4 GiB under a 1.33 GiB cap).
//!
//! The cap is a third of the file: the debug build's anonymous memory peaks
//! at ~38 MiB here (batches of 256 with prefetch 4 hold six 3 MiB batches),
//! and under a quarter (48 MiB) the page cache the reads need was left
//! ~10 MiB, which the OOM killer occasionally ended.

use std::path::Path;

use npyflow::npy::{ElemType, NpyWriter};
use npyflow::{
    GeneratorOptions, ImageDataGenerator, NpyArray, NumpyArrayIterator, Order, ShiftRange,
};
use npyflow_bench::cgroup::MemoryCgroup;

const CHILD_ENV: &str = "NPYFLOW_MEMCAP_CHILD";
const SIDE: usize = 32;
const ROW: usize = SIDE * SIDE * 3;

/// Row `i`'s bytes: a cheap function of (i, k), so the checksum is known without storing the file.
fn row_byte(i: usize, k: usize) -> u8 {
    (i.wrapping_mul(2654435761) >> 7).wrapping_add(k * 31) as u8
}

fn row_sum(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.enumerate().fold(0u64, |acc, (k, b)| {
        acc.wrapping_add((b as u64 + 1).wrapping_mul(k as u64 + 7))
    })
}

fn write_dataset(path: &Path, n: usize) {
    let mut w = NpyWriter::create(
        path,
        npyflow::npy::Dtype::native(ElemType::U8),
        &[n, SIDE, SIDE, 3],
    )
    .unwrap();
    let mut buf = vec![0u8; ROW * 1024];
    for start in (0..n).step_by(1024) {
        let rows = (n - start).min(1024);
        for r in 0..rows {
            for k in 0..ROW {
                buf[r * ROW + k] = row_byte(start + r, k);
            }
        }
        w.write_bytes(&buf[..rows * ROW]).unwrap();
    }
    w.finish().unwrap();
}

fn expected_checksum(n: usize) -> u64 {
    (0..n).fold(0u64, |acc, i| {
        acc.wrapping_add(row_sum((0..ROW).map(|k| row_byte(i, k))).wrapping_mul(i as u64 + 1))
    })
}

/// The work done inside the cgroup.
fn child(path: &Path) {
    let x = NpyArray::open(path).unwrap();
    let n = x.len();
    let want = expected_checksum(n);
    let cap = std::env::var("NPYFLOW_MEMCAP_LIMIT")
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let block_rows = ((cap / 8) / ROW as u64 / 4).max(1) as usize;
    for order in [
        Order::Sequential,
        Order::Shuffle,
        Order::Blocks {
            block_rows,
            window: 4,
        },
    ] {
        // Plain pass: bytes of every delivered sample, weighted by its index.
        let mut it = NumpyArrayIterator::builder(x.clone())
            .batch_size(256)
            .order(order)
            .seed(3)
            .prefetch(4)
            .build()
            .unwrap();
        let mut sum = 0u64;
        let mut count = 0usize;
        it.for_each_in_epoch(|b| {
            let imgs = b.images::<f32>()?;
            for (slot, &j) in b.indices().iter().enumerate() {
                let s = row_sum(
                    imgs.index_axis(ndarray::Axis(0), slot)
                        .iter()
                        .map(|&v| v as u8),
                );
                sum = sum.wrapping_add(s.wrapping_mul(j as u64 + 1));
                count += 1;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(count, n, "{order:?}");
        // Samples only converted and read past the page cache (in file
        // order here) leave a core to the kernel's side of the reads; the
        // uniform shuffle reads through the page cache, and these blocks'
        // windows are too large for the stash: all cores, as for the
        // augmented passes below.
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let light = if order == Order::Sequential {
            (cores - 1).max(1)
        } else {
            cores
        };
        assert_eq!(it.threads(), light, "{order:?}: default threads");
        assert_eq!(
            sum, want,
            "{order:?}: delivered samples differ from the file"
        );
        // Augmented pass with prefetch: every index exactly once, no OOM.
        let g = ImageDataGenerator::new(GeneratorOptions {
            rotation_range: 20.0,
            width_shift_range: ShiftRange::Float(0.1),
            horizontal_flip: true,
            rescale: Some(1.0 / 255.0),
            ..Default::default()
        })
        .unwrap();
        let mut it = g
            .flow(x.clone())
            .batch_size(256)
            .order(order)
            .seed(3)
            .prefetch(4)
            .build()
            .unwrap();
        assert_eq!(it.threads(), cores, "{order:?}: default threads, augmented");
        let mut seen = vec![false; n];
        it.for_each_in_epoch(|b| {
            for &j in b.indices() {
                assert!(!seen[j], "sample {j} twice");
                seen[j] = true;
            }
            Ok(())
        })
        .unwrap();
        assert!(
            seen.iter().all(|&s| s),
            "{order:?}: a sample was never delivered"
        );
        let anon = it.last_epoch_telemetry().map_or(0, |t| t.peak_anon_bytes);
        println!("{order:?}: ok, peak anon memory {} MiB", anon >> 20);
    }
    let opts = GeneratorOptions {
        featurewise_center: true,
        featurewise_std_normalization: true,
        ..Default::default()
    };
    let stats = npyflow::fit::fit(&opts, &x, &npyflow::FitConfig::default(), None).unwrap();
    // The file's own moments, summed exactly from the formula.
    let (mut sum, mut squares) = ([0u128; 3], [0u128; 3]);
    for i in 0..n {
        for k in 0..ROW {
            let v = row_byte(i, k) as u128;
            sum[k % 3] += v;
            squares[k % 3] += v * v;
        }
    }
    let count = (n * ROW / 3) as f64;
    for c in 0..3 {
        let mean = sum[c] as f64 / count;
        let var = squares[c] as f64 / count - mean * mean;
        let (got_mean, got_std) = (stats.mean().unwrap()[c], stats.std().unwrap()[c]);
        assert!(
            (got_mean - mean).abs() <= 1e-9 * mean,
            "channel {c}: mean {got_mean} vs {mean}"
        );
        assert!(
            (got_std - var.sqrt()).abs() <= 1e-9 * var.sqrt(),
            "channel {c}: std {got_std} vs {}",
            var.sqrt()
        );
    }
    println!("fit: ok, mean {:?}", stats.mean());
}

#[test]
fn an_epoch_larger_than_the_memory_cap_delivers_every_sample() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let _alone = crate::util::HEAVY_IO
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mb: usize = std::env::var("NPYFLOW_MEMCAP_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192);
    let cap: u64 = (mb as u64 * 1024 * 1024) / 3;
    let cg = match MemoryCgroup::create(cap) {
        Ok(cg) => cg,
        Err(e) if e.is_unsupported_here() => {
            println!("skipped: {e}");
            return;
        }
        Err(e) => panic!("cannot create the memory cgroup: {e}"),
    };
    let n = mb * 1024 * 1024 / ROW;
    let dir = tempfile::Builder::new()
        .prefix("memcap")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let path = dir.path().join("x.npy");
    write_dataset(&path, n);
    npyflow::cache::evict_file(&path).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = cg
        .command(&exe)
        .args([
            "--exact",
            "memcap::an_epoch_larger_than_the_memory_cap_delivers_every_sample",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, &path)
        .env("NPYFLOW_MEMCAP_LIMIT", cap.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A thrashing loader would otherwise hang CI: give the child a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let peak = cg.peak_bytes().unwrap_or(0);
    let oom_kills = cg.oom_kills();
    drop(cg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    println!(
        "dataset {mb} MiB, cap {} MiB, cgroup peak usage {} MiB, OOM kills {oom_kills:?}",
        cap >> 20,
        peak >> 20,
    );
    assert!(
        out.status.success(),
        "child failed ({:?}); OOM kills {oom_kills:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        peak <= cap,
        "the cgroup was charged {peak} bytes over its {cap}-byte cap"
    );
    assert!(
        stdout.contains("fit: ok"),
        "the child did not run to the end"
    );
}
