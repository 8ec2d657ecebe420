//! A contact sheet of original and augmented samples: one row per sample,
//! the original first, then augmented versions, so a user sees what the
//! chosen options do before training.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ImageFormat, Rgb, RgbImage};

use crate::npy::{persist, ElemType, NpyArray, Partial};
use crate::rng::{SampleRng, Stream};
use crate::{Error, ErrorKind, ImageDataGenerator, ImageShape, Result, Scratch};

/// Options for [`contact_sheet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewOptions {
    /// Grid rows: one sample each. By default 4.
    pub rows: usize,
    /// Grid columns: the original, then `cols - 1` augmented versions. By default 8.
    pub cols: usize,
    /// The augmentation seed: column `k ≥ 1` of sample `i` shows exactly the
    /// augmentation an iterator with this seed applies to row `i` in epoch
    /// `k - 1`. The samples shown are also drawn from it. By default 0.
    pub seed: u64,
    /// Rows of `x` to show instead of a random draw. By default, none.
    pub indices: Option<Vec<usize>>,
    /// Also apply `standardize` (rescale, centring, ZCA...) and display each
    /// image min-max scaled, as `save_to_dir` does. By default, only the
    /// random transform is shown, in the original's value range.
    pub standardize: bool,
    /// Cells are scaled so their longer side is about this many pixels
    /// (integer upscaling for small images, downscaling for large ones). By default 96.
    pub cell: u32,
}

impl Default for PreviewOptions {
    fn default() -> Self {
        PreviewOptions {
            rows: 4,
            cols: 8,
            seed: 0,
            indices: None,
            standardize: false,
            cell: 96,
        }
    }
}

/// What [`write_preview`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewReport {
    /// The picture file.
    pub path: PathBuf,
    /// The rows of `x` shown, top to bottom.
    pub indices: Vec<usize>,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
}

const GAP: u32 = 4;
const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);

/// `k` distinct rows of `0..n`, sorted (Floyd's algorithm: `k` draws, no `n`-sized table).
fn choose_rows(n: usize, k: usize, seed: u64) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    let mut rng = SampleRng::new(seed, Stream::Permutation, u64::MAX, 0);
    let mut chosen = std::collections::BTreeSet::new();
    for j in n - k..n {
        let t = rng.below(j as u64 + 1) as usize;
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

/// Draws the contact sheet of `x` (rank 4, in the generator's data format).
///
/// # Errors
/// [`ErrorKind::ShapeMismatch`] when `x` is not rank 4;
/// [`ErrorKind::InvalidArgument`] for an empty grid, an empty array or an
/// index out of range; read, transform and standardise errors (e.g. missing
/// statistics with `standardize`).
pub fn contact_sheet(
    x: &NpyArray,
    generator: &ImageDataGenerator,
    options: &PreviewOptions,
) -> Result<(RgbImage, Vec<usize>)> {
    let s = x.shape();
    if s.len() != 4 {
        return Err(ErrorKind::ShapeMismatch {
            what: format!(
                "preview needs a rank-4 image array; {} has shape {s:?}",
                x.name()
            ),
            expected: vec![4],
            found: vec![s.len()],
        }
        .into());
    }
    if options.rows == 0 || options.cols == 0 {
        return Err(Error::invalid(
            "grid",
            format!("{}x{}", options.rows, options.cols),
            "needs at least one row and column",
        ));
    }
    if x.is_empty() {
        return Err(Error::invalid("x", x.name(), "has no samples"));
    }
    let indices = match &options.indices {
        Some(v) => {
            if let Some(&bad) = v.iter().find(|&&i| i >= x.len()) {
                return Err(Error::invalid(
                    "indices",
                    bad,
                    format!("{} has {} samples", x.name(), x.len()),
                ));
            }
            v.clone()
        }
        None => choose_rows(x.len(), options.rows, options.seed),
    };
    let shape = generator
        .options()
        .data_format
        .image_shape([s[1], s[2], s[3]]);
    let (cw, ch) = cell_size(shape, options.cell);
    let (width, height) = sheet_size(options, indices.len(), (cw, ch))?;
    let cols = options.cols as u32;
    let mut sheet = blank_sheet(width, height, options)?;
    // Each cell is drawn into its own picture first.
    crate::error::check_allocation(cw as u64 * ch as u64 * 3, || {
        format!("a {cw}x{ch} preview cell (cell {})", options.cell)
    })?;
    let mut original = vec![0f64; shape.len()];
    let mut work = vec![0f64; shape.len()];
    let mut scratch = Scratch::<f64>::default();
    for (r, &i) in indices.iter().enumerate() {
        x.read_sample_into(i, &mut original)?;
        // Integer images show in their type's range; others in the original's own range.
        let range = match x.dtype().elem {
            ElemType::U8 => (0.0, 255.0),
            _ => min_max(&original),
        };
        for c in 0..cols {
            work.copy_from_slice(&original);
            let mut shown_range = range;
            if c > 0 {
                let mut rng = SampleRng::new(options.seed, Stream::Augment, c as u64 - 1, i as u64);
                generator.random_transform(&mut work, shape, &mut rng, &mut scratch)?;
            }
            if options.standardize {
                generator.standardize(&mut work, shape)?;
                shown_range = min_max(&work);
            }
            let cell = render(&work, shape, shown_range, cw, ch);
            let x0 = GAP + c * (cw + GAP) + if c > 0 { GAP } else { 0 };
            let y0 = GAP + r as u32 * (ch + GAP);
            image::imageops::replace(&mut sheet, &cell, x0 as i64, y0 as i64);
        }
    }
    Ok((sheet, indices))
}

/// The sheet's `(width, height)` for `rows` samples of cells `cw × ch`,
/// with an extra gap after the first column to set the originals apart.
fn sheet_size(options: &PreviewOptions, rows: usize, (cw, ch): (u32, u32)) -> Result<(u32, u32)> {
    let cols = options.cols as u64;
    let width = cols
        .saturating_mul(cw as u64)
        .saturating_add(cols.saturating_add(2).saturating_mul(GAP as u64));
    let height = (rows as u64)
        .saturating_mul(ch as u64)
        .saturating_add((rows as u64).saturating_add(1).saturating_mul(GAP as u64));
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(Error::invalid(
            "grid",
            format!("{}x{}", options.rows, options.cols),
            format!(
                "a sheet of {width}x{height} pixels (cells of {cw}x{ch}) is beyond what a picture can hold (4294967295 per side); use a smaller grid or cell"
            ),
        )),
    }
}

/// A sheet filled with the background colour, or
/// [`ErrorKind::OutOfMemory`] naming the grid when it does not fit.
fn blank_sheet(width: u32, height: u32, options: &PreviewOptions) -> Result<RgbImage> {
    let len = width as usize * height as usize * 3;
    let mut raw = crate::error::try_zeroed::<u8>(len, || {
        format!(
            "a {width}x{height} preview sheet (grid {}x{}, cell {})",
            options.rows, options.cols, options.cell
        )
    })?;
    for px in raw.chunks_exact_mut(3) {
        px.copy_from_slice(&BACKGROUND.0);
    }
    RgbImage::from_raw(width, height, raw)
        .ok_or_else(|| Error::invalid("grid", format!("{width}x{height}"), "sheet size mismatch"))
}

/// Draws the contact sheet and writes it to `path` (format from the
/// extension: png, jpg/jpeg, bmp, tif/tiff, ppm), through a temporary file
/// renamed when complete.
///
/// # Errors
/// As [`contact_sheet`]; [`ErrorKind::InvalidArgument`] for an unsupported
/// extension; [`ErrorKind::Image`] when encoding fails; I/O errors.
pub fn write_preview(
    path: impl AsRef<Path>,
    x: &NpyArray,
    generator: &ImageDataGenerator,
    options: &PreviewOptions,
) -> Result<PreviewReport> {
    let path = path.as_ref();
    let format = match ImageFormat::from_path(path) {
        Ok(
            f @ (ImageFormat::Png
            | ImageFormat::Jpeg
            | ImageFormat::Bmp
            | ImageFormat::Tiff
            | ImageFormat::Pnm),
        ) => f,
        _ => {
            return Err(Error::invalid(
                "out",
                path.display(),
                "expected a .png, .jpg, .bmp, .tif or .ppm file name",
            ))
        }
    };
    let (sheet, indices) = contact_sheet(x, generator, options)?;
    let tmp = Partial::create_replacing(path)?;
    let mut out = BufWriter::new(tmp);
    sheet.write_to(&mut out, format).map_err(|e| {
        Error::from(ErrorKind::Image {
            path: path.to_path_buf(),
            reason: format!("cannot encode: {e}"),
        })
    })?;
    let tmp = out
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    persist(tmp, path)?;
    Ok(PreviewReport {
        path: path.to_path_buf(),
        indices,
        width: sheet.width(),
        height: sheet.height(),
    })
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Cell width and height for an image of `shape` with a longer side near `target`.
fn cell_size(shape: ImageShape, target: u32) -> (u32, u32) {
    let (h, w) = (shape.height.max(1) as u32, shape.width.max(1) as u32);
    let long = h.max(w);
    if long <= target {
        let k = (target / long).max(1);
        (w * k, h * k)
    } else {
        let scale = target as f64 / long as f64;
        (
            ((w as f64 * scale).round() as u32).max(1),
            ((h as f64 * scale).round() as u32).max(1),
        )
    }
}

/// One image as an RGB cell of `cw × ch`, values mapped from `range` to 0..255.
fn render(img: &[f64], shape: ImageShape, (lo, hi): (f64, f64), cw: u32, ch: u32) -> RgbImage {
    let span = if hi > lo { hi - lo } else { 1.0 };
    let to_u8 = |v: f64| {
        if v.is_finite() {
            ((v - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8
        } else {
            0
        }
    };
    let (h, w) = (shape.height as u32, shape.width as u32);
    let small = RgbImage::from_fn(w, h, |c, r| {
        let at = |k: usize| img[shape.index(r as usize, c as usize, k)];
        match shape.channels {
            // 3 or 4 (alpha is not shown): colour.
            3.. => Rgb([to_u8(at(0)), to_u8(at(1)), to_u8(at(2))]),
            // 1 or 2: the first channel as gray.
            _ => {
                let g = to_u8(at(0));
                Rgb([g, g, g])
            }
        }
    });
    if (cw, ch) == (w, h) {
        return small;
    }
    let filter = if cw >= w {
        FilterType::Nearest
    } else {
        FilterType::Triangle
    };
    image::imageops::resize(&small, cw, ch, filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_distinct_sorted_and_in_range() {
        let rows = choose_rows(1000, 8, 3);
        assert_eq!(rows.len(), 8);
        assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows[7] < 1000);
        assert_eq!(choose_rows(3, 8, 3), [0, 1, 2]);
        assert_eq!(rows, choose_rows(1000, 8, 3));
    }

    #[test]
    fn cells_scale_by_whole_factors_up_and_fit_down() {
        assert_eq!(cell_size(ImageShape::hwc(32, 32, 3), 96), (96, 96));
        assert_eq!(cell_size(ImageShape::hwc(28, 40, 1), 96), (80, 56));
        assert_eq!(cell_size(ImageShape::hwc(512, 256, 3), 128), (64, 128));
    }
}
