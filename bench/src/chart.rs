//! The benchmark's chart: one horizontal bar of images/s per row, on a log
//! scale with a label per decade, the device references as vertical lines,
//! a legend for every colour, and rows that did not run shown as such.
//!
//! plotters only rasterises into an RGB buffer; the PNG is encoded with the
//! `image` crate the library already builds (plotters' own encoder would
//! bring a second `image` version) and written atomically.

use std::path::Path;

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::config::{CacheState, MemoryMode};
use crate::error::{Error, ErrorKind, Result};
use crate::files::write_atomic;
use crate::report::Report;
use crate::row::BenchRow;

const WIDTH: u32 = 1200;
const ROW_HEIGHT: u32 = 26;
const TOP: u32 = 50;
const AXIS: u32 = 60;
const LEGEND_LINE: u32 = 20;

/// The bar colour of a row: one per (cache state, memory) pair.
fn colour(cache: CacheState, memory: MemoryMode) -> RGBColor {
    match (cache, memory) {
        (CacheState::Cold, MemoryMode::Unlimited) => RGBColor(31, 119, 180),
        (CacheState::Warm, MemoryMode::Unlimited) => RGBColor(255, 127, 14),
        (CacheState::Cold, MemoryMode::Cgroup) => RGBColor(44, 160, 44),
        (CacheState::Warm, MemoryMode::Cgroup) => RGBColor(214, 39, 40),
    }
}

const REFERENCE_COLOURS: [RGBColor; 2] = [RGBColor(0, 0, 0), RGBColor(148, 103, 189)];
const MISSING_TEXT: RGBColor = RGBColor(110, 110, 110);

/// Draws the report's rows as a PNG at `path`, titled `title`.
///
/// # Errors
/// Nothing to draw (no rows), a font is missing, or the file cannot be written.
pub fn draw_chart(report: &Report, title: &str, path: &Path) -> Result<()> {
    let chart_error = |message: String| {
        Error::from(ErrorKind::Chart {
            path: path.to_path_buf(),
            message,
        })
    };
    if report.rows.is_empty() {
        return Err(chart_error("no rows to draw".to_string()));
    }
    let references = reference_lines(report);
    let legend_lines = 1 + references.len() as u32;
    // At least four rows' height, so a short chart keeps its proportions.
    let bars = report.rows.len().max(4) as u32;
    let height = TOP + ROW_HEIGHT * bars + AXIS + LEGEND_LINE * legend_lines;
    let mut rgb = vec![255u8; (WIDTH * height * 3) as usize];
    render(&mut rgb, height, report, &references, title).map_err(chart_error)?;
    write_atomic(path, |file| {
        image::codecs::png::PngEncoder::new(std::io::BufWriter::new(file))
            .write_image(&rgb, WIDTH, height, image::ExtendedColorType::Rgb8)
            .map_err(|e| chart_error(e.to_string()))
    })
}

/// The references as (label, images/s) lines.
fn reference_lines(report: &Report) -> Vec<(String, f64)> {
    let refs = &report.references;
    let mut lines = Vec::new();
    if let Some(v) = refs.sequential_samples_per_s(report.file.row_bytes) {
        lines.push(("cold sequential read of the file".to_string(), v));
    }
    if let Some(v) = refs.random_samples_per_s() {
        lines.push((
            format!(
                "random 4 KiB reads ÷ {:.2} pages per sample",
                refs.pages_per_sample
            ),
            v,
        ));
    }
    lines
}

fn render(
    rgb: &mut [u8],
    height: u32,
    report: &Report,
    references: &[(String, f64)],
    title: &str,
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let legend_height = LEGEND_LINE * (1 + references.len() as u32);
    let (plot, legend) = root.split_vertically(height - legend_height);
    let rows = &report.rows;
    let n = rows.len();
    // The x axis is log10(images/s), so decades can be labelled exactly.
    let values = rows
        .iter()
        .filter(|r| r.is_measured() && r.images_per_s > 0.0)
        .map(|r| r.images_per_s)
        .chain(references.iter().map(|l| l.1));
    let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo.is_finite() {
        (lo, hi)
    } else {
        (1.0, 10.0)
    };
    let lo_exp = (lo / 1.5).max(1.0).log10().floor();
    let hi_exp = (hi * 1.5).log10().ceil().max(lo_exp + 1.0);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(AXIS - 20)
        .y_label_area_size(330)
        // An integer range is inclusive as segments: n rows are 0..n - 1.
        .build_cartesian_2d(lo_exp..hi_exp, (0..n - 1).into_segmented())
        .map_err(|x| e(&x))?;
    let label_of = |i: usize| rows.get(n - 1 - i).map(label).unwrap_or_default();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => label_of(*i),
            _ => String::new(),
        })
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_desc("images per second (log scale)")
        .draw()
        .map_err(|x| e(&x))?;
    // Gridlines at 1, 2 and 5 of each decade; labels at decades only, so
    // they never crowd.
    let top = || SegmentValue::Exact(n);
    let bottom = || SegmentValue::Exact(0);
    let mut d = lo_exp;
    while d <= hi_exp {
        for (m, shade) in [(1.0f64, 200u8), (2.0, 235), (5.0, 235)] {
            let x = d + m.log10();
            if x > hi_exp {
                continue;
            }
            let grey = RGBColor(shade, shade, shade);
            chart
                .draw_series(LineSeries::new([(x, bottom()), (x, top())], grey))
                .map_err(|x| e(&x))?;
        }
        let (px, py) = chart.backend_coord(&(d, bottom()));
        root.draw(&Text::new(
            si(10f64.powf(d)),
            (px, py + 6),
            ("sans-serif", 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(|x| e(&x))?;
        d += 1.0;
    }
    // Bars top to bottom in the rows' order; missing rows say why.
    for (k, r) in rows.iter().enumerate() {
        let i = n - 1 - k;
        if r.is_measured() && r.images_per_s > 0.0 {
            let mut bar = Rectangle::new(
                [
                    (lo_exp, SegmentValue::Exact(i)),
                    (r.images_per_s.log10(), SegmentValue::Exact(i + 1)),
                ],
                colour(r.cell.cache, r.cell.memory).filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            chart.draw_series([bar]).map_err(|x| e(&x))?;
        } else {
            // Hatched across the plot, with the reason on top.
            let (left, bottom_px) = chart.backend_coord(&(lo_exp, SegmentValue::Exact(i)));
            let (right, top_px) = chart.backend_coord(&(hi_exp, SegmentValue::Exact(i + 1)));
            let (y0, y1) = (top_px + 3, bottom_px - 3);
            let hatch = RGBColor(205, 205, 205);
            let mut x = left;
            while x < right {
                let x1 = (x + (y1 - y0)).min(right);
                let y_end = y1 - (x1 - x);
                root.draw(&PathElement::new(vec![(x, y1), (x1, y_end)], hatch))
                    .map_err(|x| e(&x))?;
                x += 10;
            }
            let why = r.skipped.as_deref().unwrap_or("no samples");
            let (px, py) = chart.backend_coord(&(lo_exp, SegmentValue::CenterOf(i)));
            root.draw(&Text::new(
                format!("not run: {why}"),
                (px + 6, py),
                ("sans-serif", 13)
                    .into_font()
                    .color(&MISSING_TEXT)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(|x| e(&x))?;
        }
    }
    for ((_, v), colour) in references.iter().zip(REFERENCE_COLOURS.iter().cycle()) {
        let x = v.log10();
        chart
            .draw_series(LineSeries::new(
                [(x, bottom()), (x, top())],
                colour.stroke_width(2),
            ))
            .map_err(|x| e(&x))?;
    }
    draw_legend(&legend, rows, references)
}

fn draw_legend(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    rows: &[BenchRow],
    references: &[(String, f64)],
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let font = ("sans-serif", 14).into_font();
    let mut x = 20;
    for (cache, memory, text) in [
        (CacheState::Cold, MemoryMode::Unlimited, "cold, unlimited"),
        (CacheState::Warm, MemoryMode::Unlimited, "warm, unlimited"),
        (CacheState::Cold, MemoryMode::Cgroup, "cold, memory cgroup"),
        (CacheState::Warm, MemoryMode::Cgroup, "warm, memory cgroup"),
    ] {
        if !rows
            .iter()
            .any(|r| r.is_measured() && r.cell.cache == cache && r.cell.memory == memory)
        {
            continue;
        }
        area.draw(&Rectangle::new(
            [(x, 3), (x + 14, 15)],
            colour(cache, memory).filled(),
        ))
        .map_err(|x| e(&x))?;
        area.draw(&Text::new(text, (x + 20, 2), font.clone()))
            .map_err(|x| e(&x))?;
        x += 200;
    }
    if rows.iter().any(|r| !r.is_measured()) {
        area.draw(&Text::new(
            "hatched: row not run (the reason is written on it)",
            (x, 2),
            font.clone().color(&MISSING_TEXT),
        ))
        .map_err(|x| e(&x))?;
    }
    for (k, ((name, v), colour)) in references
        .iter()
        .zip(REFERENCE_COLOURS.iter().cycle())
        .enumerate()
    {
        let y = (LEGEND_LINE * (k as u32 + 1)) as i32 + 8;
        area.draw(&PathElement::new(
            vec![(20, y), (34, y)],
            colour.stroke_width(2),
        ))
        .map_err(|x| e(&x))?;
        area.draw(&Text::new(
            format!("{name}: {} img/s", si(*v)),
            (40, y - 7),
            font.clone(),
        ))
        .map_err(|x| e(&x))?;
    }
    Ok(())
}

/// The row's label, with the memory limit of capped rows.
fn label(r: &BenchRow) -> String {
    match r.limit {
        Some(l) if r.cell.memory == MemoryMode::Cgroup => {
            format!("{} ({} MiB)", r.label(), l >> 20)
        }
        _ => r.label(),
    }
}

/// A number with an SI suffix and at most three significant digits, without
/// trailing zeros: 1, 20, 1k, 2.5k, 297k, 1.16M.
fn si(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = match scaled.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    let mut s = format!("{scaled:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + suffix
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdviceMode, BenchOrder, Cell};
    use crate::device::Device;
    use crate::matrix::Matrix;
    use crate::reference::References;
    use crate::report::FileInfo;
    use crate::row::RowStatus;

    fn report(rows: Vec<BenchRow>) -> Report {
        let file = FileInfo {
            path: "x.npy".into(),
            bytes: 3072 * 600 + 128,
            samples: 600,
            row_bytes: 3072,
        };
        let refs = References {
            sequential_bytes_per_s: Some(300e6),
            random_iops: Some(40_000.0),
            random_method: "test".into(),
            random_note: None,
            pages_per_sample: 1.75,
        };
        Report::new(file, Device::default(), refs, Matrix { rows, cap: None })
    }

    fn row(order: BenchOrder, memory: MemoryMode, images_per_s: f64) -> BenchRow {
        let cell = Cell {
            order,
            cache: CacheState::Cold,
            advice: AdviceMode::Matched,
            memory,
        };
        let mut r = BenchRow::missing(cell, None, RowStatus::Measured, String::new());
        r.skipped = None;
        r.images_per_s = images_per_s;
        r
    }

    #[test]
    fn the_chart_has_bars_hatched_missing_rows_and_the_umask_mode() {
        use std::os::unix::fs::PermissionsExt;
        let mut missing = row(BenchOrder::Shuffle, MemoryMode::Cgroup, 0.0);
        missing.status = RowStatus::Failed;
        missing.skipped = Some("killed by the OOM killer at 2 MiB".into());
        let rows = vec![
            row(BenchOrder::Sequential, MemoryMode::Unlimited, 120_000.0),
            row(BenchOrder::Shuffle, MemoryMode::Unlimited, 20_000.0),
            missing,
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        draw_chart(&report(rows), "test", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // Four rows' height at least, two reference lines in the legend.
        assert_eq!(
            img.dimensions(),
            (WIDTH, TOP + 4 * ROW_HEIGHT + AXIS + 3 * LEGEND_LINE)
        );
        let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
        assert!(count([31, 119, 180]) > 1000, "no cold unlimited bars");
        assert!(count([205, 205, 205]) > 100, "no hatching");
        assert_eq!(count([44, 160, 44]), 0, "a missing row drawn as a bar");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !crate::files::umask());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let empty = draw_chart(&report(Vec::new()), "test", &dir.path().join("e.png"));
        assert!(empty.unwrap_err().to_string().contains("no rows to draw"));
        assert!(!dir.path().join("e.png").exists());
    }

    #[test]
    fn si_numbers_have_no_trailing_zeros() {
        assert_eq!(si(1.0), "1");
        assert_eq!(si(10.0), "10");
        assert_eq!(si(100.0), "100");
        assert_eq!(si(1000.0), "1k");
        assert_eq!(si(2500.0), "2.5k");
        assert_eq!(si(8000.0), "8k");
        assert_eq!(si(297_412.0), "297k");
        assert_eq!(si(1_160_000.0), "1.16M");
        assert_eq!(si(1e7), "10M");
        assert_eq!(si(0.5), "0.5");
    }
}
