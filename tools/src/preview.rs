//! `npyflow preview X --grid 4x8 --out preview.png`: see what the
//! augmentation does before training.

use std::path::PathBuf;

use serde_json::json;

use npyflow::preview::{write_preview, PreviewOptions};
use npyflow::NpyArray;

use crate::opts::{parse_size, GenArgs};
use crate::ui::{self, Ui};

/// Arguments of `preview`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each row is one sample: the original, then augmented versions (column k shows\nwhat `iterate --seed S` yields for that sample in epoch k-1, before standardize).\n\nExample:\n  npyflow preview x.npy --rotation-range 30 --zoom-range 0.2 --horizontal-flip --grid 4x8 --out preview.png"
)]
pub struct Args {
    /// Images: a rank-4 .npy.
    #[arg(value_name = "X")]
    x: PathBuf,
    #[command(flatten)]
    generator: GenArgs,
    /// ROWSxCOLS: samples, and the original plus augmented versions of each.
    #[arg(long, default_value = "4x8", value_parser = parse_size, value_name = "RxC")]
    grid: (u32, u32),
    /// Output picture (.png, .jpg, .bmp, .tif or .ppm), written atomically.
    #[arg(long, value_name = "FILE.png")]
    out: PathBuf,
    /// Seed of the augmentation and of the samples drawn.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Show these rows of X (comma-separated) instead of a random draw.
    #[arg(long, value_delimiter = ',', value_name = "I,J,...")]
    indices: Option<Vec<usize>>,
    /// Also apply standardize (rescale, centring...) and show each image min-max scaled.
    #[arg(long)]
    standardize: bool,
    /// Fitted statistics for the featurewise options (with --standardize).
    #[arg(long, value_name = "FILE.npz")]
    stats: Option<PathBuf>,
    /// Approximate cell size in pixels.
    #[arg(long, default_value_t = 96, value_name = "PX")]
    cell: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let generator = args.generator.generator(args.stats.as_deref())?;
    let x = NpyArray::open(&args.x)?;
    let options = PreviewOptions {
        rows: args
            .indices
            .as_ref()
            .map(Vec::len)
            .unwrap_or(args.grid.0 as usize),
        cols: args.grid.1 as usize,
        seed: args.seed,
        indices: args.indices.clone(),
        standardize: args.standardize,
        cell: args.cell,
    };
    let spinner = ui.spinner("drawing");
    let report = write_preview(&args.out, &x, &generator, &options);
    spinner.finish_and_clear();
    let report = report?;
    if args.json {
        return ui::print_json(&json!({
            "out": report.path,
            "indices": report.indices,
            "width": report.width,
            "height": report.height,
        }));
    }
    ui::print(&format!(
        "wrote {} ({}x{} px): rows {:?} of {}, original then {} augmented each",
        report.path.display(),
        report.width,
        report.height,
        report.indices,
        args.x.display(),
        options.cols.saturating_sub(1)
    ))
}
