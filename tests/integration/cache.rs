//! Page-cache tooling: residency, eviction, prefetch, the page budget and
//! telemetry, on files written to the real disk (`CARGO_TARGET_TMPDIR`),
//! where eviction means something. The benchmark's own tests live in the
//! `npyflow-bench` crate.

use std::path::Path;
use std::time::{Duration, Instant};

use npyflow::cache::{
    advise_for_order, evict_array, evict_file, file_residency, prefetch_row_range, prefetch_rows,
    residency_of, resident_fraction, warm_file, AccessPattern, PageBudget, TelemetryRecorder,
};
use npyflow::npy::{write_npy, ElemType};
use npyflow::NpyArray;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Writes `n` rows of `row_bytes` pseudo-random bytes as a u8 `.npy`.
fn write_rows(dir: &Path, name: &str, n: usize, row_bytes: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..n * row_bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    write_npy(&path, ElemType::U8, &[n, row_bytes], &data).unwrap();
    path
}

/// The filesystem type holding `path` (longest mount-point prefix in /proc/self/mounts).
fn fs_type(path: &Path) -> String {
    let path = path.canonicalize().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mnt, ty) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mnt).then(|| (mnt.len(), ty.to_string()))
        })
        .max()
        .map(|(_, t)| t)
        .unwrap_or_default()
}

/// Eviction is a no-op on memory-backed filesystems: their pages are the file.
fn eviction_meaningless(path: &Path) -> Option<String> {
    let ty = fs_type(path);
    matches!(ty.as_str(), "tmpfs" | "ramfs" | "devtmpfs")
        .then(|| format!("{} is on {ty}", path.display()))
}

fn read_all(x: &NpyArray) {
    let mut row = vec![0u8; x.row_bytes()];
    for i in 0..x.len() {
        x.read_row_raw(i, &mut row).unwrap();
    }
}

#[test]
fn residency_rises_when_read_and_drops_after_eviction() {
    let dir = tempdir();
    let path = write_rows(dir.path(), "r.npy", 256, 32 << 10);
    warm_file(&path).unwrap();
    let warm = file_residency(&path).unwrap();
    assert!(
        warm.pages >= (8 << 20) / warm.page_size,
        "{} pages",
        warm.pages
    );
    // Just read in full: every page of the 8 MiB file is resident.
    assert!(warm.fraction() > 0.99, "{}", warm.fraction());
    if let Some(why) = eviction_meaningless(&path) {
        eprintln!("skipping the eviction half: {why}");
        return;
    }
    evict_file(&path).unwrap();
    let cold = file_residency(&path).unwrap();
    assert!(
        cold.resident < warm.resident,
        "evict: {} -> {} resident pages",
        warm.resident,
        cold.resident
    );

    // Through an open map: reading faults pages in, evict_array drops them
    // although this process maps them.
    let x = NpyArray::open(&path).unwrap();
    read_all(&x);
    let read = residency_of(&x).unwrap();
    assert_eq!(
        read.pages,
        x.data_len().div_ceil(read.page_size)
            + usize::from(!x.data_offset().is_multiple_of(read.page_size as u64))
    );
    assert!(
        read.fraction() > 0.9,
        "after reading every row: {}",
        read.fraction()
    );
    evict_array(&x).unwrap();
    assert!(residency_of(&x).unwrap().resident < read.resident);
}

#[test]
fn empty_file_has_no_pages() {
    let dir = tempdir();
    let path = dir.path().join("empty");
    std::fs::write(&path, b"").unwrap();
    let r = file_residency(&path).unwrap();
    assert_eq!((r.pages, r.resident, r.fraction()), (0, 0, 0.0));
    assert!(file_residency(dir.path().join("missing")).is_err());
}

#[test]
fn prefetch_brings_rows_in_and_every_pattern_is_accepted() {
    let dir = tempdir();
    let path = write_rows(dir.path(), "p.npy", 512, 4096);
    let x = NpyArray::open(&path).unwrap();
    for p in [
        AccessPattern::Sequential,
        AccessPattern::Blocks,
        AccessPattern::Random,
    ] {
        advise_for_order(&x, p).unwrap();
    }
    if let Some(why) = eviction_meaningless(&path) {
        eprintln!("skipping: {why}");
        return;
    }
    evict_array(&x).unwrap();
    let before = residency_of(&x).unwrap().resident;
    // Adjacent rows coalesce into one request; out-of-range rows are ignored.
    let rows = [300, 10, 11, 12, 13, 200, 9999];
    prefetch_rows(&x, &rows).unwrap();
    // A block of rows in one request; a range past the end is clamped.
    prefetch_row_range(&x, 400..404).unwrap();
    prefetch_row_range(&x, 510..9999).unwrap();
    // WILLNEED only starts the reads; give them time to land.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = residency_of(&x).unwrap().resident;
    while now < before + 11 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        now = residency_of(&x).unwrap().resident;
    }
    assert!(
        now >= before + 11,
        "prefetching 12 rows of one page: {before} -> {now} resident pages"
    );
}

#[test]
fn a_large_range_prefetch_lands_whole() {
    // Linux truncates one WILLNEED request to the device's read-ahead size
    // (128 KiB to a few MiB); a 24 MiB block must still come in entirely.
    let dir = tempdir();
    let path = write_rows(dir.path(), "big.npy", 384, 64 << 10);
    let x = NpyArray::open(&path).unwrap();
    if let Some(why) = eviction_meaningless(&path) {
        eprintln!("skipping: {why}");
        return;
    }
    evict_array(&x).unwrap();
    prefetch_row_range(&x, 0..x.len()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = resident_fraction(&x).unwrap();
    while got < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        got = resident_fraction(&x).unwrap();
    }
    assert_eq!(
        got, 1.0,
        "24 MiB asked for in one call: {got} of it resident"
    );
}

#[test]
fn resident_fraction_agrees_with_the_mincore_map() {
    let dir = tempdir();
    let path = write_rows(dir.path(), "f.npy", 512, 4096);
    let x = NpyArray::open(&path).unwrap();
    read_all(&x);
    assert_eq!(
        resident_fraction(&x).unwrap(),
        residency_of(&x).unwrap().fraction()
    );
    if eviction_meaningless(&path).is_some() {
        return;
    }
    evict_array(&x).unwrap();
    // Every fourth row back in (a row straddles two pages, so about half
    // the pages): both counts see the same pages.
    let mut row = vec![0u8; x.row_bytes()];
    for i in (0..x.len()).step_by(4) {
        x.read_row_raw(i, &mut row).unwrap();
    }
    let (fast, map) = (resident_fraction(&x).unwrap(), residency_of(&x).unwrap());
    assert!(
        (fast - map.fraction()).abs() <= 2.0 / map.pages as f64,
        "cachestat {fast} vs mincore {}",
        map.fraction()
    );
    assert!(fast > 0.3 && fast < 0.8, "{fast}");
}

#[test]
fn page_budget_keeps_residency_under_the_budget() {
    let dir = tempdir();
    // 16 MiB of 12 KiB rows (not page multiples, so rows share pages) under
    // a 1 MiB budget.
    let path = write_rows(dir.path(), "b.npy", 1365, 12 << 10);
    let x = NpyArray::open(&path).unwrap();
    if let Some(why) = eviction_meaningless(&path) {
        eprintln!("skipping: {why}");
        return;
    }
    let budget = 1u64 << 20;
    // One row spans at most 4 pages.
    let slack = 4 * 4096u64;
    for order in [AccessPattern::Sequential, AccessPattern::Random] {
        evict_array(&x).unwrap();
        // The array's default advice (random: no read-around) keeps the
        // kernel from reading more than the rows touched.
        let rows: Vec<usize> = match order {
            AccessPattern::Random => (0..x.len()).map(|i| i * 7919 % x.len()).collect(),
            _ => (0..x.len()).collect(),
        };
        let mut pb = PageBudget::new(budget);
        let mut row = vec![0u8; x.row_bytes()];
        let mut worst = 0;
        for (k, &i) in rows.iter().enumerate() {
            x.read_row_raw(i, &mut row).unwrap();
            pb.touch_rows(&x, &[i]).unwrap();
            assert!(
                pb.resident_bytes() <= budget + slack,
                "{order:?}: held {}",
                pb.resident_bytes()
            );
            if k % 64 == 0 {
                worst = worst.max(residency_of(&x).unwrap().resident_bytes());
            }
        }
        worst = worst.max(residency_of(&x).unwrap().resident_bytes());
        assert!(
            worst <= budget + slack,
            "{order:?}: residency reached {worst} bytes with a {budget}-byte budget"
        );
        // The file is 16x the budget, so the budget really dropped pages.
        assert!(worst > 0);
        pb.release_all().unwrap();
        assert_eq!(pb.resident_bytes(), 0);
        assert!(residency_of(&x).unwrap().resident_bytes() <= slack);
    }
}

#[test]
fn telemetry_sees_a_cold_epoch() {
    let dir = tempdir();
    let path = write_rows(dir.path(), "t.npy", 512, 16 << 10);
    let x = NpyArray::open(&path).unwrap();
    if let Some(why) = eviction_meaningless(&path) {
        eprintln!("skipping: {why}");
        return;
    }
    evict_array(&x).unwrap();
    let mut rec = TelemetryRecorder::start(&[&x]);
    let mut row = vec![0f32; x.row_len()];
    for batch in (0..x.len()).collect::<Vec<_>>().chunks(64) {
        for &i in batch {
            x.read_sample_into(i, &mut row).unwrap();
        }
        rec.batch(batch.len());
    }
    let t = rec.finish(&[&x]);
    assert_eq!((t.samples, t.batches), (512, 8));
    assert!(t.wall > Duration::ZERO);
    let rate = 512.0 / t.wall.as_secs_f64();
    assert!(
        (t.throughput - rate).abs() <= 1e-9 * rate,
        "{} vs {rate}",
        t.throughput
    );
    assert!(t.time_to_first_batch <= t.wall);
    let name = x.name();
    assert_eq!(t.residency_before[0].0, name);
    assert!(
        t.residency_before[0].1 < 0.5,
        "before: {:?}",
        t.residency_before
    );
    assert!(
        t.residency_after[0].1 > 0.9,
        "after: {:?}",
        t.residency_after
    );
    let exposed = Path::new("/proc/self/io").exists();
    if exposed {
        assert!(
            t.bytes_read > 0 || t.major_faults > 0,
            "a cold read of 8 MiB shows no I/O: {t}"
        );
    } else {
        eprintln!("no /proc/self/io: only fault counts checked");
    }
    assert!(t.peak_anon_bytes > 0 || !Path::new("/proc/self/status").exists());
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["samples"], 512);
    assert!(t.to_string().contains(&name));
}

#[test]
fn the_iterator_reports_a_stopped_epoch_and_then_the_whole_one() {
    let dir = tempdir();
    let images = dir.path().join("i.npy");
    let data: Vec<u8> = (0..96 * 300).map(|i| (i * 7 % 251) as u8).collect();
    write_npy(&images, ElemType::U8, &[96, 10, 10, 3], &data).unwrap();
    let mut it = npyflow::NumpyArrayIterator::builder(NpyArray::open(&images).unwrap())
        .batch_size(16)
        .seed(3)
        .build()
        .unwrap();
    assert!(it.current_epoch_telemetry().is_none(), "no epoch yet");
    for _ in 0..2 {
        it.next_in_epoch().unwrap().unwrap();
    }
    let partial = it.current_epoch_telemetry().expect("an epoch in progress");
    assert_eq!((partial.samples, partial.batches), (32, 2));
    assert!(it.last_epoch_telemetry().is_none());
    while it.next_in_epoch().unwrap().is_some() {}
    assert!(it.current_epoch_telemetry().is_none(), "the epoch is over");
    let whole = it.last_epoch_telemetry().unwrap().clone();
    assert_eq!((whole.samples, whole.batches), (96, 6));
    assert!(whole.time_to_first_batch <= partial.wall);
    // The next epoch starts from the residency this one ended with.
    while it.next_in_epoch().unwrap().is_some() {}
    let second = it.last_epoch_telemetry().unwrap();
    assert_eq!(second.residency_before, whole.residency_after);
}

#[test]
fn the_default_prefetch_depth_follows_the_batch_size() {
    let dir = tempdir();
    let small = dir.path().join("small.npy");
    write_npy(&small, ElemType::U8, &[256, 8, 8, 3], &vec![1u8; 256 * 192]).unwrap();
    let it = npyflow::NumpyArrayIterator::builder(NpyArray::open(&small).unwrap())
        .batch_size(64)
        .threads(2)
        .build()
        .unwrap();
    // 64 × 8×8×3 f32 = 48 KiB per batch: many fit in the budget, capped at 4 per thread.
    assert_eq!(it.prefetch_depth(), 8);
    // 16 × 512×512×3 f32 = 48 MiB per batch: more than the budget, so 2.
    let large = dir.path().join("large.npy");
    write_npy(
        &large,
        ElemType::U8,
        &[16, 512, 512, 3],
        &vec![1u8; 16 * 512 * 512 * 3],
    )
    .unwrap();
    let it = npyflow::NumpyArrayIterator::builder(NpyArray::open(&large).unwrap())
        .batch_size(16)
        .threads(2)
        .build()
        .unwrap();
    assert_eq!(it.prefetch_depth(), 2);
    const { assert!(npyflow::IteratorBuilder::AUTO_PREFETCH_BYTES < 48 << 20) };
    // An explicit depth is kept.
    let it = npyflow::NumpyArrayIterator::builder(NpyArray::open(&small).unwrap())
        .prefetch(0)
        .build()
        .unwrap();
    assert_eq!(it.prefetch_depth(), 0);
}
