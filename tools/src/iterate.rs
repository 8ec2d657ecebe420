//! `npyflow iterate X`: epochs of augmented batches with telemetry, and
//! optionally every yielded image batch written to one `.npy`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use serde_json::json;

use npyflow::npy::{Dtype, ElemType, NpyWriter};
use npyflow::{
    Batch, EpochTelemetry, NpyArray, NumpyArrayIterator, Order, OutputDtype, Real, SaveFormat,
};

use crate::opts::{GenArgs, IterArgs};
use crate::ui::{self, Ui, Unit};

/// Arguments of `iterate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  npyflow iterate x.npy --y y.npy --rotation-range 20 --width-shift-range 0.1 --horizontal-flip \\\n      --rescale 1/255 --batch-size 64 --seed 1 --order blocks --epochs 2\n  npyflow iterate x.npy --config gen.json --max-batches 100 --out augmented.npy --json"
)]
pub struct Args {
    /// Images: a rank-4 .npy (N,H,W,C or N,C,H,W with --data-format channels_first).
    #[arg(value_name = "X")]
    x: PathBuf,
    /// Targets, one row per sample (any dtype and rank).
    #[arg(long, value_name = "Y.npy")]
    y: Option<PathBuf>,
    /// Per-sample weights.
    #[arg(long, value_name = "W.npy")]
    sample_weight: Option<PathBuf>,
    /// Auxiliary arrays passed through with each batch (repeatable).
    #[arg(long, value_name = "A.npy")]
    aux: Vec<PathBuf>,
    #[command(flatten)]
    generator: GenArgs,
    #[command(flatten)]
    iter: IterArgs,
    /// Fitted statistics (from `npyflow fit`) for the featurewise options.
    #[arg(long, value_name = "FILE.npz")]
    stats: Option<PathBuf>,
    /// Epochs to run.
    #[arg(long, default_value_t = 1, value_name = "N")]
    epochs: u64,
    /// Stop after this many batches in total.
    #[arg(long, value_name = "N")]
    max_batches: Option<u64>,
    /// Write each final image to this folder (Keras' save_to_dir).
    #[arg(long, value_name = "DIR")]
    save_to_dir: Option<PathBuf>,
    /// File-name prefix of saved images.
    #[arg(long, default_value = "", value_name = "PREFIX")]
    save_prefix: String,
    /// Picture format of saved images: png, jpeg, bmp, tiff or ppm.
    #[arg(long, default_value = "png", value_name = "FORMAT")]
    save_format: String,
    /// Write every yielded image batch, in order, into this one .npy.
    #[arg(long, value_name = "FILE.npy")]
    out: Option<PathBuf>,
    /// Print the telemetry as JSON.
    #[arg(long)]
    json: bool,
}

/// What a run of epochs produced.
pub struct RunReport {
    pub epochs: Vec<EpochTelemetry>,
    pub batches: u64,
    pub samples: u64,
    pub seconds: f64,
}

impl RunReport {
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 {
            self.samples as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The order in words, e.g. `blocks (5461 rows each, 4 at a time)`.
pub fn describe_order(order: Order) -> String {
    match order {
        Order::Blocks { block_rows, window } => {
            format!("blocks ({block_rows} rows each, {window} at a time)")
        }
        Order::Shuffle => "shuffle".into(),
        Order::Sequential => "sequential".into(),
    }
}

/// Rows yielded by the first `batches` batches of an iterator with `len`
/// batches per epoch of `n` samples each in batches of `batch_size`.
fn rows_in(batches: u64, len: u64, n: u64, batch_size: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let last = n - batch_size * (len - 1); // also right with drop_last (then n is a multiple)
    let last = last.min(batch_size);
    let (full_epochs, rest) = (batches / len, batches % len);
    full_epochs * (batch_size * (len - 1) + last) + rest * batch_size
}

/// Runs up to `epochs` epochs (at most `max_batches` batches), recording
/// telemetry per epoch and optionally streaming the images into `out`.
pub fn run_epochs(
    it: &mut NumpyArrayIterator,
    epochs: u64,
    max_batches: Option<u64>,
    out: Option<&Path>,
    bar: &ProgressBar,
) -> anyhow::Result<RunReport> {
    let len = it.len() as u64;
    let total = (len.saturating_mul(epochs)).min(max_batches.unwrap_or(u64::MAX));
    let batch_size = it.batch_size() as u64;
    let samples_per_epoch = it.num_samples() as u64;
    bar.set_length(total);
    let mut writer = match out {
        Some(path) => {
            let s = it.x().shape();
            let rows = if it.len() as u64 * batch_size < samples_per_epoch {
                // drop_last: only full batches are yielded.
                (total * batch_size) as usize
            } else {
                rows_in(total, len, samples_per_epoch, batch_size) as usize
            };
            let elem = match it.generator().options().dtype {
                OutputDtype::F64 => ElemType::F64,
                _ => ElemType::F32,
            };
            Some(NpyWriter::create(
                path,
                Dtype::native(elem),
                &[rows, s[1], s[2], s[3]],
            )?)
        }
        None => None,
    };
    let started = Instant::now();
    let mut report = RunReport {
        epochs: Vec::new(),
        batches: 0,
        samples: 0,
        seconds: 0.0,
    };
    'epochs: for _ in 0..epochs {
        if report.batches >= total {
            break;
        }
        // The iterator records each epoch's telemetry itself.
        while let Some(batch) = it.next_in_epoch()? {
            if let Some(w) = writer.as_mut() {
                write_images(w, batch)?;
            }
            report.batches += 1;
            report.samples += batch.len() as u64;
            bar.inc(1);
            if report.batches >= total {
                // Stopped inside the epoch (or at its very end).
                let t = it.current_epoch_telemetry();
                report
                    .epochs
                    .extend(t.or_else(|| it.last_epoch_telemetry().cloned()));
                break 'epochs;
            }
        }
        report.epochs.extend(it.last_epoch_telemetry().cloned());
    }
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(w) = writer {
        w.finish()?;
    }
    Ok(report)
}

/// Appends a batch's images to the output array, in their own dtype.
fn write_images(w: &mut NpyWriter, batch: &Batch) -> anyhow::Result<()> {
    fn write<T: Real + bytemuck::Pod>(w: &mut NpyWriter, batch: &Batch) -> anyhow::Result<()> {
        let images = batch.images::<T>()?;
        let values = images
            .as_slice()
            .context("batch images are not in C order")?;
        Ok(w.write_bytes(bytemuck::cast_slice(values))?)
    }
    match batch.dtype() {
        OutputDtype::F32 => write::<f32>(w, batch),
        OutputDtype::F64 => write::<f64>(w, batch),
    }
}

/// Adds the tool's way out to the library's "no fitted statistics" error.
fn with_stats_hint(e: anyhow::Error) -> anyhow::Error {
    let missing = e
        .downcast_ref::<npyflow::Error>()
        .is_some_and(|e| matches!(e.kind(), npyflow::ErrorKind::MissingStatistics { .. }));
    if missing {
        anyhow::anyhow!("{e} (with this tool: `npyflow fit X --featurewise-... --out stats.npz`, then `--stats stats.npz`)")
    } else {
        e
    }
}

pub fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    if args.epochs == 0 {
        bail!("invalid `--epochs` = 0: must be at least 1");
    }
    if args.max_batches == Some(0) {
        bail!("invalid `--max-batches` = 0: must be at least 1");
    }
    let generator = args.generator.generator(args.stats.as_deref())?;
    let x = NpyArray::open(&args.x)?;
    let mut builder = args.iter.builder(x)?.generator(generator);
    if let Some(p) = &args.y {
        builder = builder.y(NpyArray::open(p)?);
    }
    if let Some(p) = &args.sample_weight {
        builder = builder.sample_weight(NpyArray::open(p)?);
    }
    for p in &args.aux {
        builder = builder.aux(NpyArray::open(p)?);
    }
    if let Some(dir) = &args.save_to_dir {
        let format: SaveFormat = args.save_format.parse()?;
        builder = builder.save_to_dir(dir, args.save_prefix.clone(), format);
    }
    let mut it = builder.build()?;
    let bar = ui.bar(0, "batches", Unit::Items);
    let report = run_epochs(
        &mut it,
        args.epochs,
        args.max_batches,
        args.out.as_deref(),
        &bar,
    );
    bar.finish_and_clear();
    let report = report.map_err(with_stats_hint)?;

    if args.json {
        return ui::print_json(&json!({
            "x": args.x,
            "samples_per_epoch": it.num_samples(),
            "batches_per_epoch": it.len(),
            "batch_size": it.batch_size(),
            "seed": it.seed(),
            "order": it.order(),
            "threads": it.threads(),
            "batches": report.batches,
            "samples": report.samples,
            "seconds": report.seconds,
            "throughput": report.throughput(),
            "epochs": report.epochs,
            "out": args.out,
        }));
    }
    let mut text = format!(
        "{}: {} samples per epoch, {} batches of {}, {} order, seed {}, {} threads",
        args.x.display(),
        it.num_samples(),
        it.len(),
        it.batch_size(),
        describe_order(it.order()),
        it.seed(),
        it.threads()
    );
    let n = report.epochs.len();
    for (i, t) in report.epochs.iter().enumerate() {
        text.push_str(&format!("\n\nepoch {}/{n}\n{t}", i + 1));
    }
    text.push_str(&format!(
        "\n\ntotal: {} samples in {} batches, {:.2} s, {:.0} samples/s",
        report.samples,
        report.batches,
        report.seconds,
        report.throughput()
    ));
    if let Some(out) = &args.out {
        text.push_str(&format!("\nwrote every image batch to {}", out.display()));
    }
    ui::print(&text)
}

#[cfg(test)]
mod tests {
    use super::rows_in;

    #[test]
    fn rows_count_partial_last_batches() {
        // 10 samples, batches of 4: 4 + 4 + 2 per epoch.
        assert_eq!(rows_in(3, 3, 10, 4), 10);
        assert_eq!(rows_in(2, 3, 10, 4), 8);
        assert_eq!(rows_in(4, 3, 10, 4), 14);
        assert_eq!(rows_in(6, 3, 10, 4), 20);
        assert_eq!(rows_in(0, 3, 10, 4), 0);
    }
}
