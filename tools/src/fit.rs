//! `npyflow fit X --out stats.npz`: streaming featurewise statistics.

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde_json::json;

use npyflow::fit::{fit_with_plan, plan_fit, FitPlan, SampleSource};
use npyflow::{
    FitConfig, ImageDataGenerator, ImageShape, NpyArray, SampleRng, Scratch, Statistics,
};

use crate::opts::{parse_bytes, GenArgs};
use crate::ui::{self, Ui, Unit};

/// Arguments of `fit`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  npyflow fit x.npy --featurewise-center --featurewise-std-normalization --rescale 1/255 --out stats.npz\n  npyflow fit x.npy --zca-whitening --out zca.npz\n  npyflow iterate x.npy --featurewise-std-normalization --stats stats.npz"
)]
pub struct Args {
    /// Images: a rank-4 .npy.
    #[arg(value_name = "X")]
    x: PathBuf,
    #[command(flatten)]
    generator: GenArgs,
    /// Where to write the statistics (.npz; read back with `iterate --stats`).
    #[arg(long, value_name = "FILE.npz")]
    out: PathBuf,
    /// Fit on augmented samples (Keras' augment=True).
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    augment: bool,
    /// Augmented passes over the data with --augment (Keras' rounds).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = crate::opts::whole::<usize>)]
    rounds: usize,
    /// Seed of the augmentation with --augment.
    #[arg(long, default_value_t = 0, value_parser = crate::opts::whole::<u64>)]
    seed: u64,
    /// Refuse ZCA beyond this much memory (e.g. 4G).
    #[arg(long, default_value = "2G", value_parser = parse_bytes, value_name = "BYTES")]
    zca_memory_limit: u64,
    /// Print the statistics as JSON.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    json: bool,
}

/// The array, counting samples read on a progress bar.
struct Counting<'a> {
    x: &'a NpyArray,
    bar: &'a crate::ui::Bar,
}

impl SampleSource for Counting<'_> {
    fn shape(&self) -> &[usize] {
        self.x.shape()
    }

    fn read_sample_into(&self, index: usize, out: &mut [f64]) -> npyflow::Result<()> {
        SampleSource::read_sample_into(self.x, index, out)?;
        self.bar.inc(1);
        Ok(())
    }

    fn prefetch(&self, rows: std::ops::Range<usize>) -> npyflow::Result<()> {
        SampleSource::prefetch(self.x, rows)
    }

    fn exact_in_f32(&self) -> bool {
        SampleSource::exact_in_f32(self.x)
    }

    fn read_samples_into(&self, first: usize, out: &mut [f64]) -> npyflow::Result<()> {
        SampleSource::read_samples_into(self.x, first, out)?;
        self.bar.inc((out.len() / self.x.row_len().max(1)) as u64);
        Ok(())
    }

    fn as_npy(&self) -> Option<&NpyArray> {
        Some(self.x)
    }

    fn rows_read(&self, rows: usize) {
        self.bar.inc(rows as u64);
    }

    fn read_u8_samples_into(&self, first: usize, out: &mut [u8]) -> Option<npyflow::Result<()>> {
        let read = SampleSource::read_u8_samples_into(self.x, first, out)?;
        self.bar.inc((out.len() / self.x.row_len().max(1)) as u64);
        Some(read)
    }
}

/// Fits `generator`'s featurewise statistics on `x`, saves them to `out`,
/// and returns them with the plan followed.
pub fn fit_and_save(
    x: &NpyArray,
    generator: &ImageDataGenerator,
    config: &FitConfig,
    out: &Path,
    ui: &Ui,
) -> anyhow::Result<(Statistics, FitPlan)> {
    let options = generator.options();
    if !(options.featurewise_center
        || options.featurewise_std_normalization
        || options.zca_whitening)
    {
        bail!(
            "nothing to fit: give --featurewise-center, --featurewise-std-normalization or --zca-whitening (or set them in --config)"
        );
    }
    let plan = plan_fit(options, x.shape(), config)?;
    let bar = ui.bar(plan.rows, "fitting", Unit::Items);
    let source = Counting { x, bar: &bar };
    let augment =
        |img: &mut [f64], shape: ImageShape, rng: &mut SampleRng| -> npyflow::Result<()> {
            generator.random_transform(img, shape, rng, &mut Scratch::default())
        };
    let result = fit_with_plan(
        options,
        &source,
        config,
        if config.augment { Some(&augment) } else { None },
    );
    bar.finish_and_clear();
    let (stats, plan) = result?;
    stats.save(out)?;
    Ok((stats, plan))
}

fn fmt_list(v: Option<&[f64]>) -> String {
    match v {
        Some(v) => format!(
            "[{}]",
            v.iter()
                .map(|x| format!("{x:.6}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "-".into(),
    }
}

pub fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let generator = args.generator.generator(None)?;
    let x = NpyArray::open(&args.x)?;
    let config = FitConfig {
        augment: args.augment,
        rounds: args.rounds,
        seed: args.seed,
        zca_memory_limit: args.zca_memory_limit,
        ..FitConfig::default()
    };
    crate::interrupt::watch_file(&args.out);
    let started = std::time::Instant::now();
    let (stats, plan) = fit_and_save(&x, &generator, &config, &args.out, ui)?;
    let seconds = started.elapsed().as_secs_f64();
    // Bytes of the array read per second of the whole pass (all rounds).
    let read_rate = (plan.rows as f64 / x.len().max(1) as f64) * x.data_len() as f64 / seconds;
    if args.json {
        return ui::print_json(&json!({
            "x": args.x,
            "out": args.out,
            "rows": plan.rows,
            "sample_len": plan.sample_len,
            "chunk_bytes": plan.chunk_bytes,
            "zca_bytes": plan.zca_bytes,
            "mean": stats.mean(),
            "std": stats.std(),
            "zca_dim": stats.zca().map(|z| z.dim()),
            "seconds": seconds,
            "bytes_per_second": read_rate,
        }));
    }
    let mut text = format!(
        "fitted {} samples of {} in {:.2} s ({}/s, {} buffer{})\nmean  {}\nstd   {}",
        plan.rows,
        args.x.display(),
        seconds,
        ui::bytes(read_rate as u64),
        ui::bytes(plan.chunk_bytes),
        if plan.zca_bytes > 0 {
            format!(", {} for ZCA", ui::bytes(plan.zca_bytes))
        } else {
            String::new()
        },
        fmt_list(stats.mean()),
        fmt_list(stats.std()),
    );
    if let Some(z) = stats.zca() {
        text.push_str(&format!("\nzca   {0}×{0} matrix", z.dim()));
    }
    text.push_str(&format!(
        "\nwrote {} (use it with `npyflow iterate {} --stats {} ...`)",
        args.out.display(),
        args.x.display(),
        args.out.display()
    ));
    ui::print(&text)
}
