//! `npyflow iterate X`: epochs of augmented batches with telemetry, and
//! optionally every yielded image batch written to one `.npy`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;

use npyflow::npy::{Dtype, ElemType, NpyWriter};
use npyflow::{
    Batch, EpochTelemetry, NpyArray, NumpyArrayIterator, Order, OutputDtype, OutputElement, Rows,
    SaveFormat,
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
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = crate::opts::whole::<u64>)]
    epochs: u64,
    /// Stop after this many batches in total.
    #[arg(long, value_name = "N", value_parser = crate::opts::whole::<u64>)]
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
    /// Write every yielded image batch, in order, into this .npy, and the matching
    /// rows of --y, --sample-weight and each --aux beside it (OUT_y.npy,
    /// OUT_sample_weight.npy, OUT_aux0.npy...).
    #[arg(long, value_name = "FILE.npy")]
    out: Option<PathBuf>,
    /// Print the telemetry as JSON.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
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

/// Which array a file written by `--out` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// The augmented images.
    Images,
    /// The rows of `--y`.
    Y,
    /// The rows of `--sample-weight`.
    SampleWeight,
    /// The rows of the `i`-th `--aux`.
    Aux(usize),
}

impl Part {
    /// The suffix added to the stem of `--out` (`aug.npy` → `aug_y.npy`).
    fn suffix(&self) -> String {
        match self {
            Part::Images => String::new(),
            Part::Y => "_y".into(),
            Part::SampleWeight => "_sample_weight".into(),
            Part::Aux(i) => format!("_aux{i}"),
        }
    }

    /// The batch's rows of this array (`None` for the images).
    fn rows<'b>(&self, batch: &'b Batch) -> Option<&'b Rows> {
        match self {
            Part::Images => None,
            Part::Y => batch.y(),
            Part::SampleWeight => batch.sample_weight(),
            Part::Aux(i) => batch.aux().get(*i),
        }
    }
}

/// `stem` + `suffix` + the extension of `out`: `aug.npy` → `aug_y.npy`.
fn beside(out: &Path, suffix: &str) -> PathBuf {
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let name = match out.extension() {
        Some(ext) => format!("{stem}{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}{suffix}"),
    };
    out.with_file_name(name)
}

/// The files `--out` writes: the images at `out`, then one file per array
/// passed with them, holding the same rows in the same order.
#[derive(Clone, Debug)]
pub struct OutFiles {
    /// Each file with the array it holds; the images first.
    pub files: Vec<(Part, PathBuf)>,
    /// Element type and row shape of each non-image file, in `files` order.
    arrays: Vec<(ElemType, Vec<usize>)>,
}

impl OutFiles {
    /// The files for images written to `out`, with `y`, `sample_weight`
    /// and `aux` (the arrays passed to the iterator) beside them.
    pub fn new(
        out: &Path,
        y: Option<&NpyArray>,
        sample_weight: Option<&NpyArray>,
        aux: &[NpyArray],
    ) -> OutFiles {
        let mut files = vec![(Part::Images, out.to_path_buf())];
        let mut arrays = Vec::new();
        let parts = y
            .map(|a| (Part::Y, a))
            .into_iter()
            .chain(sample_weight.map(|a| (Part::SampleWeight, a)))
            .chain(aux.iter().enumerate().map(|(i, a)| (Part::Aux(i), a)));
        for (part, a) in parts {
            files.push((part.clone(), beside(out, &part.suffix())));
            arrays.push((a.dtype().elem, a.shape().get(1..).unwrap_or(&[]).to_vec()));
        }
        OutFiles { files, arrays }
    }

    /// Every path, the images first.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(_, p)| p.as_path())
    }
}

/// Writers for every file of an [`OutFiles`], filled batch by batch.
struct OutWriters<'a> {
    files: &'a OutFiles,
    writers: Vec<NpyWriter>,
}

impl<'a> OutWriters<'a> {
    fn create(
        files: &'a OutFiles,
        image_dtype: OutputDtype,
        image_shape: [usize; 3],
        rows: usize,
    ) -> anyhow::Result<OutWriters<'a>> {
        let elem = match image_dtype {
            OutputDtype::F32 => ElemType::F32,
            OutputDtype::F64 => ElemType::F64,
            OutputDtype::F16 => ElemType::F16,
            // numpy saves an ml_dtypes.bfloat16 array as '<V2' (two raw
            // bytes per value), which loads back as bytes, not numbers:
            // a file nothing reads as bfloat16 without being told.
            OutputDtype::BF16 => bail!(
                "{}: .npy has no bfloat16 type (numpy saves ml_dtypes.bfloat16 as raw '<V2' bytes, \
                 which load back as bytes, not numbers); write float16 or float32 with --dtype, or \
                 take bfloat16 batches from the library or the Python package",
                files.files[0].1.display()
            ),
        };
        let [h, w, c] = image_shape;
        let mut writers = vec![NpyWriter::create(
            &files.files[0].1,
            Dtype::native(elem),
            &[rows, h, w, c],
        )?];
        for ((_, path), (elem, row_shape)) in files.files[1..].iter().zip(&files.arrays) {
            let mut shape = vec![rows];
            shape.extend(row_shape);
            writers.push(NpyWriter::create(path, Dtype::native(*elem), &shape)?);
        }
        Ok(OutWriters { files, writers })
    }

    fn write(&mut self, batch: &Batch) -> anyhow::Result<()> {
        write_images(&mut self.writers[0], batch)?;
        for ((part, path), w) in self.files.files[1..].iter().zip(&mut self.writers[1..]) {
            let rows = part
                .rows(batch)
                .with_context(|| format!("{}: the batch has no such rows", path.display()))?;
            w.write_bytes(rows.bytes())?;
        }
        Ok(())
    }

    /// Renames every file into place, the images last; an older image file
    /// is removed first, so that "the images exist" keeps meaning "every
    /// file of this run is complete" if the run stops between renames.
    fn finish(self) -> anyhow::Result<()> {
        let mut writers = self.writers.into_iter();
        let images = writers.next().context("no image writer")?;
        let images_path = &self.files.files[0].1;
        if writers.len() > 0 {
            match std::fs::remove_file(images_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(npyflow::Error::io(images_path, e).into())
                }
                _ => {}
            }
        }
        for w in writers {
            w.finish()?;
        }
        images.finish()?;
        Ok(())
    }
}

/// Runs up to `epochs` epochs (at most `max_batches` batches), recording
/// telemetry per epoch and optionally streaming the batches into `out`.
pub fn run_epochs(
    it: &mut NumpyArrayIterator,
    epochs: u64,
    max_batches: Option<u64>,
    out: Option<&OutFiles>,
    bar: &crate::ui::Bar,
) -> anyhow::Result<RunReport> {
    let len = it.len() as u64;
    let total = (len.saturating_mul(epochs)).min(max_batches.unwrap_or(u64::MAX));
    let batch_size = it.batch_size() as u64;
    let samples_per_epoch = it.num_samples() as u64;
    bar.set_length(total);
    let mut writer = match out {
        Some(files) => {
            let s = it.x().shape();
            let rows = if it.len() as u64 * batch_size < samples_per_epoch {
                // drop_last: only full batches are yielded.
                (total * batch_size) as usize
            } else {
                rows_in(total, len, samples_per_epoch, batch_size) as usize
            };
            Some(OutWriters::create(
                files,
                it.generator().options().dtype,
                [s[1], s[2], s[3]],
                rows,
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
                w.write(batch)?;
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
    fn write<T: OutputElement>(w: &mut NpyWriter, batch: &Batch) -> anyhow::Result<()> {
        let images = batch.images::<T>()?;
        let values = images
            .as_slice()
            .context("batch images are not in C order")?;
        Ok(w.write_bytes(bytemuck::cast_slice(values))?)
    }
    match batch.dtype() {
        OutputDtype::F32 => write::<f32>(w, batch),
        OutputDtype::F64 => write::<f64>(w, batch),
        OutputDtype::F16 => write::<half::f16>(w, batch),
        OutputDtype::BF16 => write::<half::bf16>(w, batch),
    }
}

/// Adds the tool's way out to the library's errors where the tool has one:
/// missing statistics, statistics of another channel count (naming the
/// file), and Keras' class-split check (shuffled conversions).
fn with_hints(e: anyhow::Error, args: &Args) -> anyhow::Error {
    let Some(kind) = e.downcast_ref::<npyflow::Error>().map(npyflow::Error::kind) else {
        return e;
    };
    match kind {
        npyflow::ErrorKind::MissingStatistics { .. } => anyhow::anyhow!(
            "{e} (with this tool: `npyflow fit X --featurewise-... --out stats.npz`, then `--stats stats.npz`)"
        ),
        npyflow::ErrorKind::ShapeMismatch { what, .. } if what.contains("image channels") => {
            match &args.stats {
                Some(stats) => anyhow::anyhow!(
                    "{}: {e} (these statistics were fitted on images with another channel count than {}'s)",
                    stats.display(),
                    args.x.display()
                ),
                None => e,
            }
        }
        npyflow::ErrorKind::ClassSplit { .. } => anyhow::anyhow!(
            "{e}. With this tool: convert the data shuffled (`npyflow convert images DIR --out OUT --shuffle`, or `npyflow convert array X.npy X.npy --with Y.npy Y.npy --shuffle` for arrays), or pass --ignore-class-split"
        ),
        _ => e,
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
    let config = args.generator.config_echo()?;
    let x = NpyArray::open(&args.x)?;
    let y = args.y.as_ref().map(NpyArray::open).transpose()?;
    let sample_weight = args
        .sample_weight
        .as_ref()
        .map(NpyArray::open)
        .transpose()?;
    let aux = args
        .aux
        .iter()
        .map(NpyArray::open)
        .collect::<npyflow::Result<Vec<_>>>()?;
    let out = args
        .out
        .as_ref()
        .map(|p| OutFiles::new(p, y.as_ref(), sample_weight.as_ref(), &aux));
    let mut builder = args.iter.builder(x)?.generator(generator);
    if let Some(a) = y {
        builder = builder.y(a);
    }
    if let Some(a) = sample_weight {
        builder = builder.sample_weight(a);
    }
    for a in aux {
        builder = builder.aux(a);
    }
    if let Some(dir) = &args.save_to_dir {
        crate::interrupt::watch_dir(dir);
        let format: SaveFormat = args.save_format.parse()?;
        builder = builder.save_to_dir(dir, args.save_prefix.clone(), format);
    }
    let mut it = builder.build().map_err(|e| with_hints(e.into(), args))?;
    for p in out.iter().flat_map(OutFiles::paths) {
        crate::interrupt::watch_file(p);
    }
    let bar = ui.bar(0, "batches", Unit::Items);
    let report = run_epochs(&mut it, args.epochs, args.max_batches, out.as_ref(), &bar);
    bar.finish_and_clear();
    let report = report.map_err(|e| with_hints(e, args))?;

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
            "config": config.as_ref().map(|c| c.json()),
            "out_files": out.as_ref().map(|o| o.files.iter().map(|(part, path)| json!({
                "array": match part {
                    Part::Images => "images".to_string(),
                    Part::Y => "y".to_string(),
                    Part::SampleWeight => "sample_weight".to_string(),
                    Part::Aux(i) => format!("aux{i}"),
                },
                "path": path,
            })).collect::<Vec<_>>()),
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
    if let Some(c) = &config {
        text.push_str(&format!("\nconfig {}", c.line()));
    }
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
    if let Some(out) = &out {
        for (part, path) in &out.files {
            let what = match part {
                Part::Images => "the images".to_string(),
                Part::Y => format!("their rows of {}", path_of(&args.y)),
                Part::SampleWeight => format!("their rows of {}", path_of(&args.sample_weight)),
                Part::Aux(i) => format!("their rows of {}", args.aux[*i].display()),
            };
            text.push_str(&format!(
                "\nwrote {} ({what}, in the order yielded)",
                path.display()
            ));
        }
    }
    ui::print(&text)
}

fn path_of(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{beside, rows_in};
    use std::path::Path;

    #[test]
    fn companions_sit_beside_the_images() {
        assert_eq!(
            beside(Path::new("d/aug.npy"), "_y"),
            Path::new("d/aug_y.npy")
        );
        assert_eq!(beside(Path::new("aug"), "_aux0"), Path::new("aug_aux0"));
        assert_eq!(
            beside(Path::new("a.b.npy"), "_sample_weight"),
            Path::new("a.b_sample_weight.npy")
        );
    }

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
