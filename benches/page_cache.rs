//! The page-cache benchmark: order (sequential / shuffle / blocks) × cache
//! state (cold / warm) × advice (kernel default / matched) × memory
//! (unlimited / a memory cgroup of a quarter of the file, root only), on
//! 32×32×3 u8 images, plus the device's limits measured in the same run.
//!
//! ```text
//! cargo bench --bench page_cache                        # 0.25 GiB, a few minutes
//! NPYFLOW_BENCH_GB=4 cargo bench --bench page_cache     # the real run (issue 4's table)
//! ```
//!
//! Environment: `NPYFLOW_BENCH_GB` (file size, default 0.25),
//! `NPYFLOW_BENCH_SECONDS` (cap per cell, default 10), `NPYFLOW_BENCH_THREADS`
//! (default all cores), `NPYFLOW_BENCH_FIO_SECONDS` (default 5; fio must be
//! installed, e.g. `apt-get install -y fio`, or that part is skipped).
//! Output: a table on stdout, `page_cache.csv` and `page_cache.png` in
//! `target/npyflow-bench/`. Under `cargo test --benches` it runs a tiny smoke
//! version instead.

mod common;

use std::path::Path;
use std::time::Duration;

use npyflow::bench::{self, BenchConfig, BenchRow};
use npyflow::NpyArray;

const ROW_BYTES: usize = 32 * 32 * 3;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The device's ceilings for this file, measured in the same run.
struct Device {
    sequential_bytes_per_s: f64,
    pages_per_sample: f64,
    /// (queue depth, IOPS) or why fio did not run.
    fio: Result<Vec<(u32, f64)>, String>,
}

fn main() {
    if let Some(code) = bench::child_main() {
        std::process::exit(code);
    }
    let smoke = !std::env::args().any(|a| a == "--bench");
    if let Err(e) = run(smoke) {
        eprintln!("page_cache: {e}");
        std::process::exit(1);
    }
}

fn run(smoke: bool) -> Result<(), Box<dyn std::error::Error>> {
    let gib = if smoke {
        1.0 / 512.0
    } else {
        env_f64("NPYFLOW_BENCH_GB", 0.25)
    };
    let n = ((gib * (1u64 << 30) as f64) as usize / ROW_BYTES).max(1);
    eprintln!(
        "page_cache: preparing {n} images of 32x32x3 u8 ({:.2} GiB)...",
        gib
    );
    let path = common::images_u8(n, 32, 32, 3);
    let file_bytes = std::fs::metadata(&path)?.len();
    let mut config = BenchConfig::for_file(file_bytes);
    config.threads = env_f64("NPYFLOW_BENCH_THREADS", 0.0) as usize;
    config.time_limit = Duration::from_secs_f64(env_f64("NPYFLOW_BENCH_SECONDS", 10.0));
    if smoke {
        config.cgroup_limit = None;
        config.time_limit = Duration::from_secs(1);
    }

    let device = measure_device(&path, smoke)?;
    print_device(&device, &path);

    println!("\n{}", bench::table(&[]).trim_end());
    let rows = bench::run_matrix_with(&path, &config, |row| {
        // The table's line for this row, as it completes.
        print!(
            "{}",
            bench::table(std::slice::from_ref(row))
                .lines()
                .nth(1)
                .map(|l| format!("{l}\n"))
                .unwrap_or_default()
        );
    })?;
    if smoke {
        return Ok(());
    }
    let dir = common::bench_dir();
    bench::write_csv(&rows, &dir.join("page_cache.csv"))?;
    let png = dir.join("page_cache.png");
    if let Err(e) = chart(&rows, &device, &png) {
        eprintln!("page_cache: no chart: {e}");
    }
    summarise(&rows, &device);
    println!(
        "\nwrote {} and {}",
        dir.join("page_cache.csv").display(),
        png.display()
    );
    Ok(())
}

fn measure_device(path: &Path, smoke: bool) -> Result<Device, Box<dyn std::error::Error>> {
    let x = NpyArray::open(path)?;
    let pages_per_sample = bench::pages_per_sample(&x);
    drop(x);
    let sequential_bytes_per_s = bench::cold_sequential_read(path)?;
    let fio = if smoke {
        Err("smoke run".to_string())
    } else {
        let secs = env_f64("NPYFLOW_BENCH_FIO_SECONDS", 5.0) as u32;
        [1u32, 32]
            .iter()
            .map(|&qd| bench::fio_randread(path, qd, secs.max(1)).map(|iops| (qd, iops)))
            .collect()
    };
    Ok(Device {
        sequential_bytes_per_s,
        pages_per_sample,
        fio,
    })
}

fn print_device(d: &Device, path: &Path) {
    println!("file: {}", path.display());
    println!(
        "cold sequential read: {:.0} MB/s = {:.0} img/s",
        d.sequential_bytes_per_s / 1e6,
        d.sequential_bytes_per_s / ROW_BYTES as f64
    );
    match &d.fio {
        Ok(v) => {
            for (qd, iops) in v {
                println!(
                    "fio randread 4 KiB, queue depth {qd}: {iops:.0} IOPS = {:.0} img/s ({:.2} pages per sample)",
                    iops / d.pages_per_sample,
                    d.pages_per_sample
                );
            }
        }
        Err(why) => println!("fio randread: skipped ({why})"),
    }
}

/// The ratios issue 4's targets are stated in, where the cells exist.
fn summarise(rows: &[BenchRow], d: &Device) {
    let find = |label: &str| {
        rows.iter()
            .find(|r| r.label() == label && r.skipped.is_none())
    };
    println!();
    if let Some(r) = find("shuffle/cold/matched/cgroup") {
        if let Ok(v) = &d.fio {
            if let Some((_, iops)) = v.iter().find(|(qd, _)| *qd == 32) {
                let limit = iops / d.pages_per_sample;
                println!(
                    "cold shuffle under the cgroup: {:.0} img/s = {:.0}% of the qd32 random-read limit",
                    r.images_per_s,
                    100.0 * r.images_per_s / limit
                );
            }
        }
        if let Some(k) = find("shuffle/cold/kernel/cgroup") {
            println!(
                "  vs kernel default advice: {:.1}x",
                r.images_per_s / k.images_per_s.max(1e-9)
            );
        }
    }
    if let Some(r) = find("blocks/cold/matched/cgroup") {
        println!(
            "cold blocks under the cgroup: {:.0} MB/s = {:.0}% of the cold sequential read",
            r.mb_per_s,
            100.0 * r.mb_per_s * 1e6 / d.sequential_bytes_per_s
        );
    }
    let anon = rows
        .iter()
        .filter(|r| r.skipped.is_none())
        .map(|r| r.peak_anon_bytes)
        .max()
        .unwrap_or(0);
    println!(
        "peak anonymous memory over all cells: {:.1} MiB",
        anon as f64 / (1u64 << 20) as f64
    );
}

/// The chart, with the device's limits as lines.
fn chart(rows: &[BenchRow], d: &Device, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut limits = vec![(
        "cold sequential read".to_string(),
        d.sequential_bytes_per_s / ROW_BYTES as f64,
    )];
    if let Ok(v) = &d.fio {
        for (qd, iops) in v {
            limits.push((format!("fio randread qd{qd}"), iops / d.pages_per_sample));
        }
    }
    bench::draw_chart(
        rows,
        &limits,
        "npyflow page-cache benchmark: images/s, 32x32x3 u8 (log scale)",
        path,
    )
}
