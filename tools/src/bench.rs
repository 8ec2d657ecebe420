//! `npyflow bench X`: the page-cache benchmark (`npyflow::bench`) on the
//! user's own file: access order × cold/warm × advice (× a memory cgroup
//! when running as root), as a table, JSON, CSV and a chart.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde_json::json;

use npyflow::bench::{self, AdviceMode, BenchConfig, BenchOrder, CacheState};
use npyflow::NpyArray;

use crate::opts::parse_bytes;
use crate::ui::{self, Ui, Unit};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Evicts X from the page cache between cells (cold runs). Memory-limited cells need\nroot and a cgroup v2 memory controller; otherwise they are reported as skipped.\n\nExamples:\n  npyflow bench x.npy\n  npyflow bench x.npy --orders shuffle,blocks --caches cold --seconds 5 --plot bench.png --json"
)]
pub struct Args {
    /// Images: a rank-4 .npy.
    #[arg(value_name = "X")]
    x: PathBuf,
    /// Orders to compare: sequential, shuffle, blocks.
    #[arg(long, value_delimiter = ',', default_value = "sequential,shuffle,blocks", value_parser = parse_order)]
    orders: Vec<BenchOrder>,
    /// Cache states: cold, warm.
    #[arg(long, value_delimiter = ',', default_value = "cold,warm", value_parser = parse_cache)]
    caches: Vec<CacheState>,
    /// Kernel hints: kernel (default read-around), matched (advice + prefetch for the order).
    #[arg(long, value_delimiter = ',', default_value = "kernel,matched", value_parser = parse_advice)]
    advice: Vec<AdviceMode>,
    /// Memory limit of the cgroup cells (default: a quarter of the file); `none` skips them.
    #[arg(long, value_name = "BYTES|none")]
    memory_limit: Option<String>,
    /// Time cap per cell, in seconds (a cell stops early after this).
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    seconds: f64,
    /// Samples per batch.
    #[arg(long, default_value_t = 64, value_name = "N")]
    batch_size: usize,
    /// Threads (0 = all cores).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Bytes per block of the blocks order.
    #[arg(long, default_value = "32M", value_parser = parse_bytes, value_name = "BYTES")]
    block_bytes: u64,
    /// Also measure the device: a cold sequential read of X (the ceiling of sequential orders).
    #[arg(long)]
    device: bool,
    /// Write the rows as CSV.
    #[arg(long, value_name = "FILE.csv")]
    csv: Option<PathBuf>,
    /// Draw images/s per cell as a PNG chart.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_order(s: &str) -> Result<BenchOrder, String> {
    serde_json::from_value(json!(s))
        .map_err(|_| format!("unknown order {s:?} (expected sequential, shuffle or blocks)"))
}

fn parse_cache(s: &str) -> Result<CacheState, String> {
    serde_json::from_value(json!(s))
        .map_err(|_| format!("unknown cache state {s:?} (expected cold or warm)"))
}

fn parse_advice(s: &str) -> Result<AdviceMode, String> {
    serde_json::from_value(json!(s))
        .map_err(|_| format!("unknown advice {s:?} (expected kernel or matched)"))
}

pub fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    // Validate the file up front: the matrix would only fail in its first cell.
    let x = NpyArray::open(&args.x)?;
    if x.shape().len() != 4 {
        bail!(
            "{}: bench needs a rank-4 image array, found shape {:?}",
            args.x.display(),
            x.shape()
        );
    }
    let row_bytes = x.row_bytes();
    drop(x);
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        bail!(
            "invalid `--seconds` = {}: must be a positive number",
            args.seconds
        );
    }
    let file_bytes = std::fs::metadata(&args.x).map(|m| m.len()).unwrap_or(0);
    let mut config = BenchConfig::for_file(file_bytes);
    config.orders = args.orders.clone();
    config.caches = args.caches.clone();
    config.advice = args.advice.clone();
    config.batch_size = args.batch_size;
    config.threads = args.threads;
    config.block_bytes = args.block_bytes;
    config.time_limit = Duration::from_secs_f64(args.seconds);
    match args.memory_limit.as_deref() {
        Some("none") => config.cgroup_limit = None,
        Some(s) => config.cgroup_limit = Some(parse_bytes(s)?),
        None => {}
    }

    let sequential = if args.device {
        let spinner = ui.spinner("cold sequential read");
        let r = bench::cold_sequential_read(&args.x);
        spinner.finish_and_clear();
        Some(r?)
    } else {
        None
    };
    let bar = ui.bar(config.cells().len() as u64, "cells", Unit::Items);
    let rows = bench::run_matrix_with(&args.x, &config, |row| {
        bar.println(format!("  {}: {:.0} img/s", row.label(), row.images_per_s));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let rows = rows?;
    if let Some(path) = &args.csv {
        bench::write_csv(&rows, path)?;
    }
    let limits: Vec<(String, f64)> = sequential
        .map(|b| {
            (
                "cold sequential read of the file".to_string(),
                b / row_bytes.max(1) as f64,
            )
        })
        .into_iter()
        .collect();
    if let Some(path) = &args.plot {
        bench::draw_chart(
            &rows,
            &limits,
            "npyflow bench: images/s per cell (log scale)",
            path,
        )
        .map_err(|e| anyhow::anyhow!("{}: cannot draw the chart: {e}", path.display()))?;
    }
    if args.json {
        return ui::print_json(&json!({
            "x": args.x,
            "file_bytes": file_bytes,
            "row_bytes": row_bytes,
            "cold_sequential_bytes_per_s": sequential,
            "rows": rows,
        }));
    }
    let mut text = format!(
        "{}: {} ({} per sample)\n",
        args.x.display(),
        ui::bytes(file_bytes),
        ui::bytes(row_bytes as u64)
    );
    if let Some(b) = sequential {
        text.push_str(&format!(
            "cold sequential read: {:.0} MB/s = {:.0} img/s\n",
            b / 1e6,
            b / row_bytes.max(1) as f64
        ));
    }
    text.push_str(bench::table(&rows).trim_end());
    for p in [&args.csv, &args.plot].into_iter().flatten() {
        text.push_str(&format!("\nwrote {}", p.display()));
    }
    ui::print(&text)
}
