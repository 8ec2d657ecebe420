//! The page-cache benchmark: order (sequential / shuffle / blocks) × cache
//! state (cold / warm) × advice (kernel default / matched) × memory
//! (unlimited / a memory cgroup sized by the `npyflow-bench` crate's rule,
//! root only), on 32×32×3 u8 images, set against the device under the file
//! (its queue settings, a cold sequential read and random 4 KiB reads
//! measured in the same run).
//!
//! ```text
//! cargo bench --bench page_cache                        # 0.25 GiB, a few minutes
//! NPYFLOW_BENCH_GB=4 cargo bench --bench page_cache     # the large run
//! ```
//!
//! Environment: `NPYFLOW_BENCH_GB` (file size, default 0.25),
//! `NPYFLOW_BENCH_SECONDS` (cap per row, default 10), `NPYFLOW_BENCH_THREADS`
//! (default all cores), `NPYFLOW_BENCH_FIO_SECONDS` (random-read reference,
//! default 5; fio if installed, else the built-in reader),
//! `NPYFLOW_BENCH_DIR` (where the data file lives; default
//! `target/npyflow-bench/`, set it to a mounted loop device to measure that
//! device, see docs/BENCHMARKS.md). Output: the report on stdout,
//! `page_cache.csv` and `page_cache.png` in `target/npyflow-bench/`. Under
//! `cargo test --benches` it runs a tiny smoke version instead.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use npyflow_bench::{
    self as bench, BenchConfig, Device, FileInfo, MemoryLimit, RandomMethod, ReferenceConfig,
    References, Report,
};

const ROW_BYTES: usize = 32 * 32 * 3;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // Memory-limited rows re-execute this binary inside a memory cgroup.
    if let Some(code) = bench::child_main() {
        std::process::exit(code);
    }
    let smoke = !std::env::args().any(|a| a == "--bench");
    match run(smoke) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("page_cache: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs the matrix; `Ok(false)` when a row that should have run did not.
fn run(smoke: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let gib = if smoke {
        1.0 / 512.0
    } else {
        env_f64("NPYFLOW_BENCH_GB", 0.25)
    };
    let n = ((gib * (1u64 << 30) as f64) as usize / ROW_BYTES).max(1);
    eprintln!("page_cache: preparing {n} images of 32x32x3 u8 ({gib:.2} GiB)...");
    let path = match std::env::var_os("NPYFLOW_BENCH_DIR") {
        Some(dir) => common::images_u8_in(&PathBuf::from(dir), n, 32, 32, 3),
        None => common::images_u8(n, 32, 32, 3),
    };
    let mut config = BenchConfig {
        threads: env_f64("NPYFLOW_BENCH_THREADS", 0.0) as usize,
        time_limit: Duration::from_secs_f64(env_f64("NPYFLOW_BENCH_SECONDS", 10.0)),
        ..BenchConfig::default()
    };
    let mut references = ReferenceConfig {
        random_seconds: env_f64("NPYFLOW_BENCH_FIO_SECONDS", 5.0),
        ..ReferenceConfig::default()
    };
    if smoke {
        config.memory_limit = MemoryLimit::Off;
        config.time_limit = Duration::from_secs(1);
        references.random = RandomMethod::Builtin;
        references.random_seconds = 0.2;
    }

    let file = FileInfo::of(&path)?;
    let device = Device::of(&path)?;
    let refs = References::measure(&path, &references)?;
    println!(
        "file: {} ({:.2} GiB)",
        path.display(),
        file.bytes as f64 / (1u64 << 30) as f64
    );
    println!("device: {}", device.describe());
    println!("{}", refs.describe(file.row_bytes));
    println!("\n{}", bench::table_header());
    let matrix = bench::run_matrix_with(&path, &config, |row| {
        let mut row = row.clone();
        refs.judge(&mut row, file.row_bytes);
        println!("{}", bench::table_row(&row));
    })?;
    let report = Report::new(file, device, refs, matrix);
    if let Some(cap) = &report.cap {
        println!("{}", cap.describe());
    }
    let failed = report.failed().count();
    if failed > 0 {
        println!("{failed} row(s) that should have run did not (see \"not run\" above)");
    }
    let complete = failed == 0;
    if smoke {
        return Ok(complete);
    }
    // Beside the build, not the data: a device under test is often torn down after the run.
    let dir = common::bench_dir();
    let csv = dir.join("page_cache.csv");
    let png = dir.join("page_cache.png");
    bench::write_csv(&report, &csv)?;
    if let Err(e) = bench::draw_chart(
        &report,
        "npyflow page-cache benchmark: images/s, 32x32x3 u8 (log scale)",
        &png,
    ) {
        eprintln!("page_cache: no chart: {e}");
    }
    println!();
    summarise(&report);
    println!("\nwrote {} and {}", csv.display(), png.display());
    Ok(complete)
}

/// The ratios the targets are stated in, where the rows exist.
fn summarise(report: &Report) {
    let find = |label: &str| {
        report
            .rows
            .iter()
            .find(|r| r.label() == label && r.is_measured())
    };
    for label in [
        "shuffle/cold/matched/cgroup",
        "blocks/cold/matched/cgroup",
        "sequential/cold/matched/cgroup",
    ] {
        if let Some(r) = find(label) {
            let of = r.of_reference.map_or("no reference".to_string(), |f| {
                format!("{:.0}% of its reference", f * 100.0)
            });
            println!("{label}: {:.0} img/s = {of}", r.images_per_s);
            let kernel = label.replace("matched", "kernel");
            if let Some(k) = find(&kernel) {
                println!(
                    "  vs kernel default advice: {:.1}x",
                    r.images_per_s / k.images_per_s.max(1e-9)
                );
            }
        }
    }
    let anon = report
        .rows
        .iter()
        .filter(|r| r.is_measured())
        .map(|r| r.peak_anon_bytes)
        .max()
        .unwrap_or(0);
    println!(
        "peak anonymous memory over all rows: {:.1} MiB",
        anon as f64 / (1u64 << 20) as f64
    );
}
