//! The benchmark's chart (feature `plot`): one horizontal bar of images/s per
//! measured cell, log scale, with the device's limits as vertical lines.

use std::path::Path;

use plotters::prelude::*;

use super::{BenchRow, CacheState, MemoryMode};

/// Draws `rows` (skipped and empty cells left out) as a PNG at `path`, with
/// each `(name, images/s)` of `limits` as a vertical line named under the
/// chart (a legend would cover bars).
///
/// # Errors
/// No measured cell, or the image cannot be drawn or written.
pub fn draw_chart(
    rows: &[BenchRow],
    limits: &[(String, f64)],
    title: &str,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let measured: Vec<&BenchRow> = rows
        .iter()
        .filter(|r| r.skipped.is_none() && r.images_per_s > 0.0)
        .collect();
    if measured.is_empty() {
        return Err("no measured cells".into());
    }
    let values = measured
        .iter()
        .map(|r| r.images_per_s)
        .chain(limits.iter().map(|l| l.1));
    let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = ((lo / 2.0).max(1.0), hi * 2.0);
    let notes = limits.len() as u32;
    let height = 120 + 26 * measured.len() as u32 + 20 * notes;
    let root = BitMapBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, below) = root.split_vertically(height - 20 * notes);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(300)
        .build_cartesian_2d((lo..hi).log_scale(), (0..measured.len()).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(measured.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => measured.get(*i).map(|r| label(r)).unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("images per second")
        .draw()?;
    chart.draw_series(measured.iter().enumerate().map(|(i, r)| {
        let color = match (r.cell.cache, r.cell.memory) {
            (CacheState::Cold, MemoryMode::Unlimited) => RGBColor(31, 119, 180),
            (CacheState::Warm, MemoryMode::Unlimited) => RGBColor(255, 127, 14),
            (CacheState::Cold, MemoryMode::Cgroup) => RGBColor(44, 160, 44),
            (CacheState::Warm, MemoryMode::Cgroup) => RGBColor(214, 39, 40),
        };
        let mut bar = Rectangle::new(
            [
                (lo, SegmentValue::Exact(i)),
                (r.images_per_s, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    let palette = [BLACK, RGBColor(120, 120, 120), RGBColor(148, 103, 189)];
    for (k, ((name, x), color)) in limits.iter().zip(palette.iter().cycle()).enumerate() {
        let line = vec![
            (*x, SegmentValue::Exact(0)),
            (*x, SegmentValue::Exact(measured.len())),
        ];
        chart.draw_series(LineSeries::new(line, color.stroke_width(2)))?;
        below.draw(&Text::new(
            format!("line {}: {name}, {x:.0} img/s", k + 1),
            (20, 20 * k as i32),
            ("sans-serif", 14).into_font().color(color),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// The cell's label, with the memory limit of capped cells.
fn label(r: &BenchRow) -> String {
    match r.limit {
        Some(l) if r.cell.memory == MemoryMode::Cgroup => {
            format!("{} ({} MiB)", r.label(), l >> 20)
        }
        _ => r.label(),
    }
}
