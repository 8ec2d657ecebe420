//! `npyflow convert images|npz|array`: into mappable `.npy` files, streamed,
//! through temporary files renamed only when complete.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use npyflow::convert::{
    convert_arrays, convert_images, extract_npz, shuffled_rows, ArrayJob, ColorMode,
    ConvertArrayOptions, ImageConvertOptions, ResizeFilter, SizeChoice,
};
use npyflow::npy::ElemType;

use crate::opts::{parse_number, parse_size};
use crate::ui::{self, Ui, Unit};

/// The three conversions.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Image folder (one sub-folder per class) → x.npy (N,H,W,C uint8) + y.npy (int32) + classes.txt.
    #[command(
        after_help = "Examples:\n  npyflow convert images photos/ --out data/ --size 64x64 --color rgb --skip-bad\n  npyflow convert images digits/ --out data/ --shuffle --seed 1   # for --validation-split"
    )]
    Images(ImagesArgs),
    /// .npz archive → OUT/NAME.npy per member (stored or compressed).
    #[command(after_help = "Example:\n  npyflow convert npz data.npz --out data/")]
    Npz(NpzArgs),
    /// Rewrite an array in C order and native byte order, optionally cast and scaled.
    #[command(
        after_help = "Examples:\n  npyflow convert array x_fortran.npy x.npy\n  npyflow convert array x.npy x_f32.npy --dtype float32 --scale 1/255\n  npyflow convert array x.npy x.npy --with y.npy y.npy --shuffle --seed 1   # in place, together"
    )]
    Array(ArrayArgs),
}

/// Arguments of `convert images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Folder holding one sub-folder per class (Keras' flow_from_directory layout).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Output folder (created if needed) for x.npy, y.npy and classes.txt.
    #[arg(long, value_name = "OUTDIR")]
    out: PathBuf,
    /// Output size HxW (or N for NxN); every image is resized to it [default:
    /// the images' own size when they all share one, else 256x256, Keras'
    /// target_size]
    #[arg(long, value_parser = parse_size, value_name = "HxW")]
    size: Option<(u32, u32)>,
    /// rgb, grayscale or rgba.
    #[arg(long, default_value = "rgb", value_parser = parse_color, value_name = "MODE")]
    color: ColorMode,
    /// Resampling filter: nearest, triangle, catmull-rom, gaussian or lanczos3.
    #[arg(long, default_value = "nearest", value_parser = parse_filter, value_name = "FILTER")]
    filter: ResizeFilter,
    /// Skip images that cannot be decoded (each is reported) instead of failing.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    skip_bad: bool,
    /// Write the images in a shuffled order (with their labels) instead of class
    /// by class, so that `iterate --validation-split` holds every class.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    shuffle: bool,
    /// Seed of --shuffle (drawn and printed when absent).
    #[arg(long, value_parser = crate::opts::whole::<u64>, value_name = "N")]
    seed: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    json: bool,
}

/// Arguments of `convert npz`.
#[derive(Debug, clap::Args)]
pub struct NpzArgs {
    /// The .npz archive.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Output folder (created if needed).
    #[arg(long, value_name = "OUTDIR")]
    out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    json: bool,
}

/// Arguments of `convert array`.
#[derive(Debug, clap::Args)]
pub struct ArrayArgs {
    /// Input .npy (any supported dtype, byte order, C or Fortran order).
    #[arg(value_name = "IN")]
    input: PathBuf,
    /// Output .npy (C order, native byte order); may be IN itself.
    #[arg(value_name = "OUT")]
    output: PathBuf,
    /// Output dtype: bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float16, float32, float64.
    #[arg(long, value_parser = parse_dtype, value_name = "T")]
    dtype: Option<ElemType>,
    /// Multiply by this (in float64) before the cast, e.g. 1/255.
    #[arg(long, value_parser = parse_number, value_name = "F", allow_hyphen_values = true)]
    scale: Option<f64>,
    /// Another array rewritten along with IN, its rows in the same order and its
    /// dtype kept, e.g. the labels (repeatable). All outputs appear together.
    #[arg(long = "with", num_args = 2, value_names = ["IN2", "OUT2"], action = clap::ArgAction::Append)]
    with: Vec<PathBuf>,
    /// Shuffle the rows (of IN and every --with array, in one order).
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    shuffle: bool,
    /// Seed of --shuffle (drawn and printed when absent).
    #[arg(long, value_parser = crate::opts::whole::<u64>, value_name = "N")]
    seed: Option<u64>,
    /// Print the summary as JSON.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    json: bool,
}

fn parse_color(s: &str) -> Result<ColorMode, String> {
    s.parse().map_err(|e: npyflow::Error| e.to_string())
}

fn parse_filter(s: &str) -> Result<ResizeFilter, String> {
    s.parse().map_err(|e: npyflow::Error| e.to_string())
}

fn parse_dtype(s: &str) -> Result<ElemType, String> {
    ElemType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = ElemType::ALL.iter().map(|e| e.name()).collect();
        format!("unknown dtype {s:?} (expected one of {})", names.join(", "))
    })
}

pub fn run(cmd: &Command, ui: &Ui) -> anyhow::Result<()> {
    match cmd {
        Command::Images(a) => images(a, ui),
        Command::Npz(a) => npz(a, ui),
        Command::Array(a) => array(a, ui),
    }
}

/// The seed of `--shuffle`: given, or drawn (and then printed).
fn shuffle_seed(shuffle: bool, seed: Option<u64>) -> anyhow::Result<Option<u64>> {
    match (shuffle, seed) {
        (false, Some(_)) => anyhow::bail!("--seed applies to --shuffle, which is not given"),
        (false, None) => Ok(None),
        (true, Some(s)) => Ok(Some(s)),
        (true, None) => Ok(Some(crate::opts::draw_seed())),
    }
}

/// The size and why, in words: `64x64 (every image's own size)`.
fn describe_size((h, w): (usize, usize), choice: SizeChoice) -> String {
    match choice {
        SizeChoice::Given => format!("{h}x{w} (--size)"),
        SizeChoice::Shared => format!("{h}x{w}, every image's own size (--size HxW resizes)"),
        SizeChoice::Mixed { smallest, largest } => format!(
            "{h}x{w}, Keras' default target_size: the images range from {}x{} to {}x{} (choose with --size HxW)",
            smallest.0, smallest.1, largest.0, largest.1
        ),
    }
}

fn images(a: &ImagesArgs, ui: &Ui) -> anyhow::Result<()> {
    for name in ["x.npy", "y.npy", "classes.txt"] {
        crate::interrupt::watch_file(&a.out.join(name));
    }
    let shuffle = shuffle_seed(a.shuffle, a.seed)?;
    let bar = ui.bar(0, "decoding", Unit::Items);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let opts = ImageConvertOptions {
        size: a.size,
        color: a.color,
        filter: a.filter,
        skip_bad: a.skip_bad,
        shuffle,
        progress: Some(&progress),
    };
    let report = convert_images(&a.dir, &a.out, &opts);
    bar.finish_and_clear();
    let report = report?;
    for s in &report.skipped {
        eprintln!(
            "npyflow: skipped {}: {}",
            s.path.display(),
            s.reason.trim_end()
        );
    }
    let [n, h, w, c] = report.shape;
    if a.json {
        return ui::print_json(&json!({
            "x": report.x,
            "y": report.y,
            "classes_txt": report.classes_txt,
            "shape": report.shape,
            "size": [h, w],
            "size_chosen": describe_size((h, w), report.size_choice),
            "shuffle_seed": report.shuffled,
            "samples": report.samples,
            "classes": report.classes,
            "per_class": report.per_class,
            "skipped": report.skipped.iter().map(|s| json!({"path": s.path, "reason": s.reason.trim_end()})).collect::<Vec<_>>(),
        }));
    }
    let order = match report.shuffled {
        Some(seed) => format!("shuffled with seed {seed}"),
        None => "class by class (add --shuffle before using --validation-split)".to_string(),
    };
    let mut text = format!(
        "converted {n} images in {} classes to {} ({n}, {h}, {w}, {c}) uint8\nsize       {}\norder      {order}\nlabels     {} ({n},) int32\nclasses    {}",
        report.classes.len(),
        report.x.display(),
        describe_size((h, w), report.size_choice),
        report.y.display(),
        report.classes_txt.display()
    );
    for (name, count) in report.classes.iter().zip(&report.per_class) {
        text.push_str(&format!("\n  {count:>8}  {name}"));
    }
    if !report.skipped.is_empty() {
        text.push_str(&format!(
            "\nskipped    {} unreadable images (listed above)",
            report.skipped.len()
        ));
    }
    ui::print(&text)
}

fn npz(a: &NpzArgs, ui: &Ui) -> anyhow::Result<()> {
    crate::interrupt::watch_dir(&a.out);
    let bar = ui.bar(0, "extracting", Unit::Bytes);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let members = extract_npz(&a.file, &a.out, Some(&progress));
    bar.finish_and_clear();
    let members = members?;
    if a.json {
        let list: Vec<_> = members
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "path": m.path,
                    "dtype": m.header.dtype.elem.name(),
                    "descr": m.header.dtype.descr(),
                    "shape": m.header.shape,
                    "fortran_order": m.header.fortran_order,
                    "compressed": m.compressed,
                    "data_bytes": m.header.data_len,
                })
            })
            .collect();
        return ui::print_json(&json!({ "members": list }));
    }
    let mut text = format!(
        "extracted {} members of {}",
        members.len(),
        a.file.display()
    );
    for m in &members {
        let note = if m.header.fortran_order {
            "  (Fortran order: rewrite with `npyflow convert array`)"
        } else {
            ""
        };
        text.push_str(&format!(
            "\n  {}  {} {:?}{}{note}",
            m.path.display(),
            m.header.dtype,
            m.header.shape,
            if m.compressed { ", was compressed" } else { "" }
        ));
    }
    ui::print(&text)
}

fn array(a: &ArrayArgs, ui: &Ui) -> anyhow::Result<()> {
    let mut inputs = vec![(a.input.clone(), a.output.clone())];
    inputs.extend(a.with.chunks(2).map(|p| (p[0].clone(), p[1].clone())));
    for (input, _) in &inputs {
        let mut head = [0u8; 2];
        // Only a regular file is sniffed: opening a FIFO would block; the
        // library names what anything else is.
        let regular = std::fs::metadata(input).is_ok_and(|m| m.is_file());
        let opened = match regular {
            true => std::fs::File::open(input).and_then(|mut f| f.read_exact(&mut head)),
            false => Ok(()),
        };
        if opened.is_ok() && head == *b"PK" {
            anyhow::bail!(
                "{}: this is an .npz archive; extract its arrays with `npyflow convert npz {} --out DIR`",
                input.display(),
                input.display()
            );
        }
    }
    for (k, (_, out)) in inputs.iter().enumerate() {
        if inputs[..k].iter().any(|(_, o)| o == out) {
            anyhow::bail!("{} is the output of two arrays", out.display());
        }
    }
    let shuffle = shuffle_seed(a.shuffle, a.seed)?;
    let rows = match shuffle {
        Some(seed) => Some(shuffled_rows(
            npyflow::NpyArray::open_with(
                &a.input,
                npyflow::npy::OpenOptions {
                    allow_fortran: true,
                    ..Default::default()
                },
            )?
            .len(),
            seed,
        )),
        None => None,
    };
    for (_, out) in &inputs {
        crate::interrupt::watch_file(out);
    }
    let bar = ui.bar(0, "converting", Unit::Bytes);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let jobs: Vec<ArrayJob> = inputs
        .iter()
        .enumerate()
        .map(|(k, (input, output))| ArrayJob {
            input,
            output,
            options: ConvertArrayOptions {
                dtype: if k == 0 { a.dtype } else { None },
                scale: if k == 0 { a.scale } else { None },
                progress: Some(&progress),
            },
        })
        .collect();
    let reports = convert_arrays(&jobs, rows.as_deref());
    bar.finish_and_clear();
    let reports = reports?;
    if a.json {
        let list: Vec<_> = inputs
            .iter()
            .zip(&reports)
            .map(|((input, _), report)| {
                json!({
                    "input": input,
                    "output": report.path,
                    "from": report.from.descr(),
                    "to": report.to.descr(),
                    "shape": report.shape,
                    "was_fortran": report.was_fortran,
                })
            })
            .collect();
        let first = &list[0];
        return ui::print_json(&json!({
            "input": first["input"],
            "output": first["output"],
            "from": first["from"],
            "to": first["to"],
            "shape": first["shape"],
            "was_fortran": first["was_fortran"],
            "scale": a.scale,
            "shuffle_seed": shuffle,
            "arrays": list,
        }));
    }
    let mut lines = Vec::new();
    for (k, report) in reports.iter().enumerate() {
        lines.push(format!(
            "wrote {} {:?} {} (C order) from {} {}{}",
            report.path.display(),
            report.shape,
            report.to,
            report.from,
            if report.was_fortran {
                "Fortran order"
            } else {
                "C order"
            },
            if k == 0 {
                a.scale
                    .map(|s| format!(", scaled by {s}"))
                    .unwrap_or_default()
            } else {
                String::new()
            }
        ));
    }
    if let Some(seed) = shuffle {
        lines.push(format!(
            "rows shuffled with seed {seed}, in one order for every array"
        ));
    }
    ui::print(&lines.join("\n"))
}
