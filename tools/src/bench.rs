//! `npyflow bench X`: the page-cache benchmark (the `npyflow-bench` crate)
//! on the user's own file: access order × cold/warm × advice × a memory
//! cgroup (as root), set against the device under the file, as a table,
//! JSON, CSV and a chart.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde_json::json;

use npyflow::NpyArray;
use npyflow_bench::{
    self as bench, AdviceMode, BenchConfig, BenchOrder, CacheState, Device, FileInfo, MemoryLimit,
    RandomMethod, ReferenceConfig, References, Report, RowStatus,
};

use crate::opts::parse_bytes;
use crate::ui::{self, Ui, Unit};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
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
    /// Memory cap of the cgroup rows: auto (the rule below), a size such as 512M, or none (no cgroup rows).
    #[arg(long, value_name = "auto|BYTES|none", default_value = "auto")]
    memory_limit: String,
    /// Time cap per row, in seconds (a row stops early after this).
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
    /// The random-read reference: auto (fio if installed, else built-in), fio, builtin, none.
    #[arg(long, default_value = "auto", value_parser = parse_random, value_name = "HOW")]
    random_reference: RandomMethod,
    /// Seconds of random reads for the random-read reference.
    #[arg(long, default_value_t = 3.0, value_name = "S")]
    reference_seconds: f64,
    /// Skip the device references (cold sequential read, random reads).
    #[arg(long)]
    no_references: bool,
    /// Write the rows as CSV.
    #[arg(long, value_name = "FILE.csv")]
    csv: Option<PathBuf>,
    /// Draw images/s per row as a PNG chart.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

const AFTER_HELP: &str = "\
Rows: order x cache (cold: X evicted first; warm: read through once) x advice x memory.
Device: the block device under X (read_ahead_kb, max_sectors_kb, rotational) and two
references measured on X in the same run: a cold sequential read (buffered, 8 MiB reads)
and random 4 KiB reads (fio at queue depth 32 if installed, else 32 threads of pread,
O_DIRECT). Each row shows its share of the matching reference (\"of ref\"): sequential and
blocks against the sequential read, shuffle against random IOPS / pages per sample.

Memory cap (--memory-limit auto): the peak anonymous memory of the unlimited matched rows
+ the file pages of the batches in flight ((prefetch + 2) x batch size rows) + 16 MiB for
the program + a quarter of the file, rounded up to a MiB. The cgroup rows need root and a
memory controller (cgroup v1 or v2); without them they are listed as skipped, unless a
size was given.

Exit status 2 when a row that should have run did not (killed by the OOM killer, failed);
the table says why.

Examples:
  npyflow bench x.npy
  npyflow bench x.npy --orders shuffle,blocks --caches cold --seconds 5 --plot bench.png --json";

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

fn parse_random(s: &str) -> Result<RandomMethod, String> {
    match s {
        "auto" => Ok(RandomMethod::Auto),
        "fio" => Ok(RandomMethod::Fio),
        "builtin" => Ok(RandomMethod::Builtin),
        "none" => Ok(RandomMethod::Off),
        _ => Err(format!(
            "unknown random reference {s:?} (expected auto, fio, builtin or none)"
        )),
    }
}

fn memory_limit(s: &str) -> anyhow::Result<MemoryLimit> {
    Ok(match s {
        "auto" => MemoryLimit::Auto,
        "none" => MemoryLimit::Off,
        _ => match parse_bytes(s)? {
            0 => bail!("invalid `--memory-limit` = {s}: must be positive, auto or none"),
            b => MemoryLimit::Bytes(b),
        },
    })
}

fn positive_seconds(name: &str, v: f64) -> anyhow::Result<Duration> {
    if !(v > 0.0 && v.is_finite()) {
        bail!("invalid `{name}` = {v}: must be a positive number");
    }
    Ok(Duration::from_secs_f64(v))
}

pub fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    // Validate the file up front: the matrix would only fail in its first row.
    let x = NpyArray::open(&args.x)?;
    if x.shape().len() != 4 {
        bail!(
            "{}: bench needs a rank-4 image array, found shape {:?}",
            args.x.display(),
            x.shape()
        );
    }
    drop(x);
    let config = BenchConfig {
        orders: args.orders.clone(),
        caches: args.caches.clone(),
        advice: args.advice.clone(),
        memory_limit: memory_limit(&args.memory_limit)?,
        batch_size: args.batch_size,
        threads: args.threads,
        block_bytes: args.block_bytes,
        time_limit: positive_seconds("--seconds", args.seconds)?,
        ..BenchConfig::default()
    };
    let references = ReferenceConfig {
        sequential: !args.no_references,
        random: if args.no_references {
            RandomMethod::Off
        } else {
            args.random_reference
        },
        random_seconds: positive_seconds("--reference-seconds", args.reference_seconds)?
            .as_secs_f64(),
        ..ReferenceConfig::default()
    };

    let file = FileInfo::of(&args.x)?;
    let device = Device::of(&args.x)?;
    let spinner = (!args.no_references)
        .then(|| ui.spinner("measuring the device (cold sequential read, random reads)"));
    let refs = References::measure(&args.x, &references);
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let refs = refs?;
    let bar = ui.bar(config.cells().len() as u64, "rows", Unit::Items);
    let matrix = bench::run_matrix_with(&args.x, &config, |row| {
        let mut row = row.clone();
        refs.judge(&mut row, file.row_bytes);
        let what = match (&row.skipped, row.of_reference) {
            (Some(why), _) => format!("not run: {why}"),
            (None, Some(f)) => format!(
                "{:.0} img/s, {:.0}% of its reference",
                row.images_per_s,
                f * 100.0
            ),
            (None, None) => format!("{:.0} img/s", row.images_per_s),
        };
        bar.println(format!("  {}: {what}", row.label()));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let report = Report::new(file, device, refs, matrix?);

    if let Some(path) = &args.csv {
        bench::write_csv(&report, path)?;
    }
    if let Some(path) = &args.plot {
        bench::draw_chart(&report, "npyflow bench: images/s per row (log scale)", path)?;
    }
    if args.json {
        ui::print_json(&json!({
            "x": args.x,
            "file_bytes": report.file.bytes,
            "row_bytes": report.file.row_bytes,
            "cold_sequential_bytes_per_s": report.references.sequential_bytes_per_s,
            "file": report.file,
            "device": report.device,
            "references": report.references,
            "cap": report.cap,
            "rows": report.rows,
        }))?;
    } else {
        let mut text = report.text().trim_end().to_string();
        for p in [&args.csv, &args.plot].into_iter().flatten() {
            text.push_str(&format!("\nwrote {}", p.display()));
        }
        ui::print(&text)?;
    }
    let failed: Vec<_> = report.failed().collect();
    if let Some(first) = failed.first() {
        let total = report.rows.len();
        let skipped = report
            .rows
            .iter()
            .filter(|r| r.status == RowStatus::Skipped)
            .count();
        bail!(
            "{} of {} rows did not run{}: {}: {}",
            failed.len(),
            total - skipped,
            if failed.len() > 1 { ", the first" } else { "" },
            first.label(),
            first.skipped.as_deref().unwrap_or("no reason recorded")
        );
    }
    Ok(())
}
