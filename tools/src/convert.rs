//! `npyflow convert images|npz|array`: into mappable `.npy` files, streamed,
//! through temporary files renamed only when complete.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use npyflow::convert::{
    convert_array, convert_images, extract_npz, ColorMode, ConvertArrayOptions,
    ImageConvertOptions, ResizeFilter,
};
use npyflow::npy::ElemType;

use crate::opts::{parse_number, parse_size};
use crate::ui::{self, Ui, Unit};

/// The three conversions.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Image folder (one sub-folder per class) → x.npy (N,H,W,C uint8) + y.npy (int32) + classes.txt.
    #[command(
        after_help = "Example:\n  npyflow convert images photos/ --out data/ --size 64x64 --color rgb --skip-bad"
    )]
    Images(ImagesArgs),
    /// .npz archive → OUT/NAME.npy per member (stored or compressed).
    #[command(after_help = "Example:\n  npyflow convert npz data.npz --out data/")]
    Npz(NpzArgs),
    /// Rewrite an array in C order and native byte order, optionally cast and scaled.
    #[command(
        after_help = "Examples:\n  npyflow convert array x_fortran.npy x.npy\n  npyflow convert array x.npy x_f32.npy --dtype float32 --scale 1/255"
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
    /// Output size HxW; every image is resized to it.
    #[arg(long, default_value = "256x256", value_parser = parse_size, value_name = "HxW")]
    size: (u32, u32),
    /// rgb, grayscale or rgba.
    #[arg(long, default_value = "rgb", value_parser = parse_color, value_name = "MODE")]
    color: ColorMode,
    /// Resampling filter: nearest, triangle, catmull-rom, gaussian or lanczos3.
    #[arg(long, default_value = "nearest", value_parser = parse_filter, value_name = "FILTER")]
    filter: ResizeFilter,
    /// Skip images that cannot be decoded (each is reported) instead of failing.
    #[arg(long)]
    skip_bad: bool,
    /// Print the summary as JSON.
    #[arg(long)]
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
    #[arg(long)]
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
    /// Print the summary as JSON.
    #[arg(long)]
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

fn images(a: &ImagesArgs, ui: &Ui) -> anyhow::Result<()> {
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
        progress: Some(&progress),
    };
    let report = convert_images(&a.dir, &a.out, &opts);
    bar.finish_and_clear();
    let report = report?;
    for s in &report.skipped {
        eprintln!("npyflow: skipped {}: {}", s.path.display(), s.reason);
    }
    if a.json {
        return ui::print_json(&json!({
            "x": report.x,
            "y": report.y,
            "classes_txt": report.classes_txt,
            "shape": report.shape,
            "samples": report.samples,
            "classes": report.classes,
            "per_class": report.per_class,
            "skipped": report.skipped.iter().map(|s| json!({"path": s.path, "reason": s.reason})).collect::<Vec<_>>(),
        }));
    }
    let [n, h, w, c] = report.shape;
    let mut text = format!(
        "converted {n} images in {} classes to {} ({n}, {h}, {w}, {c}) uint8\nlabels     {} ({n},) int32\nclasses    {}",
        report.classes.len(),
        report.x.display(),
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
    let mut head = [0u8; 2];
    let opened = std::fs::File::open(&a.input).and_then(|mut f| f.read_exact(&mut head));
    if opened.is_ok() && head == *b"PK" {
        anyhow::bail!(
            "{}: this is an .npz archive; extract its arrays with `npyflow convert npz {} --out DIR`",
            a.input.display(),
            a.input.display()
        );
    }
    let bar = ui.bar(0, "converting", Unit::Bytes);
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let opts = ConvertArrayOptions {
        dtype: a.dtype,
        scale: a.scale,
        progress: Some(&progress),
    };
    let report = convert_array(&a.input, &a.output, &opts);
    bar.finish_and_clear();
    let report = report?;
    if a.json {
        return ui::print_json(&json!({
            "input": a.input,
            "output": report.path,
            "from": report.from.descr(),
            "to": report.to.descr(),
            "shape": report.shape,
            "was_fortran": report.was_fortran,
            "scale": a.scale,
        }));
    }
    ui::print(&format!(
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
        a.scale
            .map(|s| format!(", scaled by {s}"))
            .unwrap_or_default()
    ))
}
