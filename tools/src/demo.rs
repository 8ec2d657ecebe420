//! `npyflow demo`: the README's first command. Builds a synthetic labelled
//! dataset, fits statistics out of core, runs one augmented epoch with
//! telemetry, writes a preview, and says where everything went.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::json;

use npyflow::preview::{write_preview, PreviewOptions};
use npyflow::{
    FitConfig, GeneratorOptions, ImageDataGenerator, NpyArray, NumpyArrayIterator, Order,
    ShiftRange, ZoomRange,
};

use crate::iterate::run_epochs;
use crate::opts::parse_size;
use crate::synth::{write_synthetic, SynthOptions, SYNTH_CLASSES};
use crate::ui::{self, Ui, Unit};

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  npyflow demo                            # ~300 MB of 64x64 RGB images in a temporary folder\n  npyflow demo --samples 2000 --size 32x32 --dir demo/"
)]
pub struct Args {
    /// Number of synthetic images (default: 24000, about 300 MB at 64x64x3).
    #[arg(long, default_value_t = 24_000, value_name = "N")]
    samples: usize,
    /// Image size HxW.
    #[arg(long, default_value = "64x64", value_parser = parse_size, value_name = "HxW")]
    size: (u32, u32),
    /// Classes (one drawn shape each), 1 to 8.
    #[arg(long, default_value_t = 4, value_name = "N")]
    classes: usize,
    /// Folder for the dataset and outputs (default: a new temporary folder, kept).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Seed of the dataset, the permutation and the augmentation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Samples per batch.
    #[arg(long, default_value_t = 64, value_name = "N")]
    batch_size: usize,
    /// Threads assembling each batch (0 = all cores).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Print the summary and telemetry as JSON.
    #[arg(long)]
    json: bool,
}

/// The augmentation the demo shows off, in Keras' terms.
fn demo_options() -> GeneratorOptions {
    GeneratorOptions {
        featurewise_center: true,
        featurewise_std_normalization: true,
        rescale: Some(1.0 / 255.0),
        rotation_range: 20.0,
        width_shift_range: ShiftRange::Float(0.1),
        height_shift_range: ShiftRange::Float(0.1),
        zoom_range: ZoomRange::Scalar(0.1),
        horizontal_flip: true,
        ..GeneratorOptions::default()
    }
}

pub fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    if args.samples == 0 {
        bail!("invalid `--samples` = 0: must be at least 1");
    }
    // Checked before anything is printed or created (the library checks too).
    if !(1..=SYNTH_CLASSES.len()).contains(&args.classes) {
        bail!(
            "invalid `--classes` = {}: must be 1 to {}",
            args.classes,
            SYNTH_CLASSES.len()
        );
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("npyflow-demo-")
            .tempdir()
            .context("cannot create a temporary folder")?
            .keep(),
    };
    let synth = SynthOptions {
        samples: args.samples,
        height: args.size.0 as usize,
        width: args.size.1 as usize,
        channels: 3,
        classes: args.classes,
        seed: args.seed,
    };
    if !args.json {
        eprintln!(
            "npyflow demo: {} synthetic {}x{} RGB images ({}) in {}",
            synth.samples,
            synth.height,
            synth.width,
            ui::bytes(synth.x_bytes()),
            dir.display()
        );
    }

    // 1. The dataset, streamed to disk in chunks.
    let bar = ui.bar(synth.samples as u64, "generating", Unit::Items);
    let progress = |done: u64, _total: u64| bar.set_position(done);
    let paths = write_synthetic(&dir, &synth, Some(&progress));
    bar.finish_and_clear();
    let paths = paths?;
    let x = NpyArray::open(&paths.x)?;
    let y = NpyArray::open(&paths.y)?;

    // 2. Featurewise statistics, one streaming pass.
    let options = demo_options();
    let mut generator = ImageDataGenerator::new(options.clone())?;
    let stats_path = dir.join("stats.npz");
    let (stats, _) =
        crate::fit::fit_and_save(&x, &generator, &FitConfig::default(), &stats_path, ui)?;
    generator.set_statistics(Some(stats.clone()));

    // 3. One augmented, shuffled epoch with telemetry.
    let mut it = NumpyArrayIterator::builder(x.clone())
        .y(y.clone())
        .generator(generator.clone())
        .batch_size(args.batch_size)
        .order(Order::Shuffle)
        .seed(args.seed)
        .threads(args.threads)
        .build()?;
    let bar = ui.bar(it.len() as u64, "epoch 1", Unit::Items);
    let report = run_epochs(&mut it, 1, None, None, &bar);
    bar.finish_and_clear();
    let report = report?;

    // 4. What the augmentation does, as a picture.
    let preview = write_preview(
        dir.join("preview.png"),
        &x,
        &generator,
        &PreviewOptions {
            seed: args.seed,
            ..PreviewOptions::default()
        },
    )?;

    let telemetry = report.epochs.first().cloned().unwrap_or_default();
    if args.json {
        return ui::print_json(&json!({
            "dir": dir,
            "x": paths.x,
            "y": paths.y,
            "classes_txt": paths.classes_txt,
            "classes": &SYNTH_CLASSES[..args.classes],
            "shape": x.shape(),
            "stats": stats_path,
            "mean": stats.mean(),
            "std": stats.std(),
            "preview": preview.path,
            "seed": it.seed(),
            "throughput": report.throughput(),
            "epoch": telemetry,
        }));
    }
    let fmt = |v: Option<&[f64]>| {
        v.map(|v| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    let classes = SYNTH_CLASSES[..args.classes].join(", ");
    let (d, xp, yp, sp) = (
        dir.display(),
        paths.x.display(),
        paths.y.display(),
        stats_path.display(),
    );
    let text = format!(
        "dataset     {xp} {:?} uint8\n\
         labels      {yp} ({} classes: {classes})\n\
         statistics  {sp}: mean [{}], std [{}] (after rescale 1/255)\n\
         preview     {} (originals left, augmented versions right)\n\n\
         one augmented epoch: rotation 20, shifts 0.1, zoom 0.1, horizontal flip, featurewise\n\
         normalisation; {} order, seed {}, {} threads\n{telemetry}\n\n\
         next steps\n  \
         npyflow info {xp}\n  \
         npyflow cache {xp} --evict\n  \
         npyflow iterate {xp} --y {yp} --stats {sp} --featurewise-std-normalization \\\n      \
         --rescale 1/255 --rotation-range 20 --order blocks --epochs 2\n  \
         npyflow preview {xp} --rotation-range 45 --zoom-range 0.3 --out {d}/preview2.png\n  \
         rm -r {d}",
        x.shape(),
        args.classes,
        fmt(stats.mean()),
        fmt(stats.std()),
        preview.path.display(),
        crate::iterate::describe_order(it.order()),
        it.seed(),
        it.threads(),
    );
    ui::print(&text)
}
