//! Fitted featurewise statistics (Keras' `mean`, `std`, `principal_components`)
//! and their `.npz` persistence.
//!
//! Values are kept in `f64` whatever the generator dtype: `fit` accumulates in
//! `f64`, and [`standardize`](crate::generator::standardize) rounds each constant to the
//! image's element type where it is used, as numpy does with a `float32`
//! generator.

use std::fmt;
use std::path::Path;

use crate::layout::{DataFormat, ImageShape};
use crate::npy::{NpzArchive, NpzWriter};
use crate::{Error, ErrorKind, Result};

/// Archive member names: Keras' attribute names for the three statistics, so
/// `np.load(path)["principal_components"]` reads what Keras users expect.
const MEAN: &str = "mean";
const STD: &str = "std";
const ZCA: &str = "principal_components";
/// npyflow's additions: the image shape in memory order and the layout code,
/// which Keras keeps on the generator rather than with the statistics.
const IMAGE_SHAPE: &str = "image_shape";
const DATA_FORMAT: &str = "data_format";

/// The ZCA whitening matrix `U·diag(1/sqrt(s + ε))·Uᵀ`, `D × D` with
/// `D = height · width · channels`, stored row-major.
///
/// A flattened image (in its memory order) is whitened by right-multiplying:
/// `out[j] = Σᵢ x[i] · m[i][j]`, as Keras' `np.dot(flat, principal_components)`.
#[derive(Clone, PartialEq)]
pub struct ZcaMatrix {
    dim: usize,
    data: Vec<f64>,
}

impl ZcaMatrix {
    /// Wraps a row-major `dim × dim` matrix.
    ///
    /// # Errors
    /// [`ErrorKind::ShapeMismatch`] when `data.len() != dim²`;
    /// [`ErrorKind::InvalidArgument`] when an entry is not finite.
    pub fn from_row_major(dim: usize, data: Vec<f64>) -> Result<ZcaMatrix> {
        if dim.checked_mul(dim) != Some(data.len()) {
            return Err(ErrorKind::ShapeMismatch {
                what: "principal_components (a square matrix)".into(),
                expected: vec![dim, dim],
                found: vec![data.len()],
            }
            .into());
        }
        check_finite("principal_components", &data)?;
        Ok(ZcaMatrix { dim, data })
    }

    /// `D`, the number of elements of one image.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The entries, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// Entry `(row, col)`.
    ///
    /// # Panics
    /// When `row` or `col` is not below [`ZcaMatrix::dim`].
    pub fn get(&self, row: usize, col: usize) -> f64 {
        assert!(
            row < self.dim && col < self.dim,
            "ZcaMatrix::get({row}, {col}) out of {}",
            self.dim
        );
        self.data[row * self.dim + col]
    }

    /// Unwraps the row-major entries.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }
}

impl fmt::Debug for ZcaMatrix {
    // Thousands of entries are noise in a log line; the size is what matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZcaMatrix({0}x{0})", self.dim)
    }
}

/// Statistics fitted on a dataset: per-channel mean and std, ZCA matrix.
///
/// Produced by [`ImageDataGenerator::fit`](crate::ImageDataGenerator::fit)
/// (or [`fit::fit`](crate::fit::fit)), consumed by
/// [`ImageDataGenerator::standardize`](crate::ImageDataGenerator::standardize),
/// saved and loaded as `.npz` with Keras' attribute names. Each statistic is
/// present only when the option that needs it was on during `fit`
/// (`featurewise_center` → mean, `featurewise_std_normalization` → std,
/// `zca_whitening` → mean and ZCA matrix), as in Keras.
///
/// # Examples
/// ```
/// use ndarray::Array4;
/// use npyflow::{FitConfig, GeneratorOptions, ImageDataGenerator, Statistics};
///
/// // 4 images of 2×2 pixels, 2 channels: channel 0 holds 1s, channel 1 the image index.
/// let x = Array4::from_shape_fn((4, 2, 2, 2), |(n, _, _, c)| if c == 0 { 1.0 } else { n as f32 });
/// let mut generator = ImageDataGenerator::new(GeneratorOptions {
///     featurewise_std_normalization: true, // and, as in Keras, featurewise_center
///     ..Default::default()
/// })?;
/// let stats = generator.fit(&x, &FitConfig::default())?;
/// assert_eq!(stats.mean(), Some(&[1.0, 1.5][..]));
/// assert_eq!(stats.std().unwrap()[0], 0.0);
/// assert!((stats.std().unwrap()[1] - 1.25f64.sqrt()).abs() < 1e-12);
///
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("stats.npz"); // np.savez(mean=..., std=...)
/// stats.save(&path)?;
/// assert_eq!(&Statistics::load(&path)?, stats);
/// # Ok::<(), npyflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Statistics {
    format: DataFormat,
    image: Option<ImageShape>,
    mean: Option<Vec<f64>>,
    std: Option<Vec<f64>>,
    zca: Option<ZcaMatrix>,
}

impl Statistics {
    /// Empty statistics for images laid out as `format`.
    pub fn new(format: DataFormat) -> Statistics {
        Statistics {
            format,
            image: None,
            mean: None,
            std: None,
            zca: None,
        }
    }

    /// Empty statistics for images of `shape` (recorded so a ZCA matrix can
    /// be checked against the full image shape, not only its element count).
    pub fn for_image(shape: ImageShape) -> Statistics {
        Statistics {
            format: shape.format,
            image: Some(shape),
            mean: None,
            std: None,
            zca: None,
        }
    }

    /// Sets the per-channel mean.
    ///
    /// # Errors
    /// [`ErrorKind::ShapeMismatch`] when its length disagrees with the channel
    /// count already known; [`ErrorKind::InvalidArgument`] for non-finite values.
    pub fn with_mean(mut self, mean: Vec<f64>) -> Result<Statistics> {
        check_finite(MEAN, &mean)?;
        self.check_channels("featurewise mean", mean.len())?;
        self.mean = Some(mean);
        Ok(self)
    }

    /// Sets the per-channel std (population std, without the `1e-6` that
    /// `standardize` adds).
    ///
    /// # Errors
    /// As [`Statistics::with_mean`].
    pub fn with_std(mut self, std: Vec<f64>) -> Result<Statistics> {
        check_finite(STD, &std)?;
        self.check_channels("featurewise std", std.len())?;
        self.std = Some(std);
        Ok(self)
    }

    /// Sets the ZCA whitening matrix.
    ///
    /// # Errors
    /// [`ErrorKind::ShapeMismatch`] when its size is not the image's element count.
    pub fn with_zca(mut self, zca: ZcaMatrix) -> Result<Statistics> {
        if let Some(image) = self.image {
            if zca.dim() != image.len() {
                return Err(ErrorKind::ShapeMismatch {
                    what: "principal_components and the fitted image size".into(),
                    expected: vec![image.len(), image.len()],
                    found: vec![zca.dim(), zca.dim()],
                }
                .into());
            }
        }
        self.zca = Some(zca);
        Ok(self)
    }

    /// The layout the statistics were fitted in.
    pub fn data_format(&self) -> DataFormat {
        self.format
    }

    /// The shape of the images fitted on, when known (always after `fit`;
    /// absent when loaded from an archive Keras users wrote themselves).
    pub fn image_shape(&self) -> Option<ImageShape> {
        self.image
    }

    /// The number of channels, when any statistic or the image shape says it.
    pub fn channels(&self) -> Option<usize> {
        self.image
            .map(|s| s.channels)
            .or_else(|| self.mean.as_ref().map(Vec::len))
            .or_else(|| self.std.as_ref().map(Vec::len))
    }

    /// The per-channel mean, when fitted with `featurewise_center`.
    pub fn mean(&self) -> Option<&[f64]> {
        self.mean.as_deref()
    }

    /// The per-channel population std, when fitted with `featurewise_std_normalization`.
    pub fn std(&self) -> Option<&[f64]> {
        self.std.as_deref()
    }

    /// The ZCA whitening matrix, when fitted with `zca_whitening`.
    pub fn zca(&self) -> Option<&ZcaMatrix> {
        self.zca.as_ref()
    }

    /// True when no statistic is present.
    pub fn is_empty(&self) -> bool {
        self.mean.is_none() && self.std.is_none() && self.zca.is_none()
    }

    /// Keras' broadcast shape of `mean` and `std` for one image: `(1, 1, C)`
    /// channels-last, `(C, 1, 1)` channels-first (`None` when `C` is unknown).
    pub fn broadcast_shape(&self) -> Option<[usize; 3]> {
        let c = self.channels()?;
        Some(match self.format {
            DataFormat::ChannelsLast => [1, 1, c],
            DataFormat::ChannelsFirst => [c, 1, 1],
        })
    }

    /// Writes the statistics to an `.npz` archive (stored members, `f64`):
    /// `mean` and `std` in Keras' broadcast shape, `principal_components` as
    /// `(D, D)`, plus `image_shape` (the fitted image shape in memory order)
    /// and `data_format` (0 channels-last, 1 channels-first). Written to a
    /// temporary file and renamed, so an interrupted save leaves no partial file.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut w = NpzWriter::create(path.as_ref())?;
        let bshape = self.broadcast_shape().unwrap_or([1, 1, 1]);
        if let Some(m) = &self.mean {
            w.add_f64(MEAN, &bshape, m)?;
        }
        if let Some(s) = &self.std {
            w.add_f64(STD, &bshape, s)?;
        }
        if let Some(z) = &self.zca {
            w.add_f64(ZCA, &[z.dim, z.dim], &z.data)?;
        }
        if let Some(image) = self.image {
            let dims = image.dims().map(|d| d as f64);
            w.add_f64(IMAGE_SHAPE, &[3], &dims)?;
        }
        let code = match self.format {
            DataFormat::ChannelsLast => 0.0,
            DataFormat::ChannelsFirst => 1.0,
        };
        w.add_f64(DATA_FORMAT, &[1], &[code])?;
        w.finish()
    }

    /// Reads statistics saved by [`Statistics::save`], or an archive written
    /// from Keras with `np.savez(path, mean=gen.mean, std=gen.std,
    /// principal_components=gen.principal_components)` (any member may be
    /// absent; the layout is then read from the shape of `mean`/`std`:
    /// `(C, 1, 1)` with `C > 1` is channels-first, anything else channels-last).
    ///
    /// # Errors
    /// I/O and `.npz` errors; [`ErrorKind::Npz`] when a member has an
    /// unexpected shape or the archive holds no statistic at all.
    pub fn load(path: impl AsRef<Path>) -> Result<Statistics> {
        let path = path.as_ref();
        let archive = NpzArchive::open(path)?;
        let names = archive.names();
        let has = |n: &str| names.iter().any(|m| m == n);
        let read = |n: &str| -> Result<(Vec<usize>, Vec<f64>)> {
            let a = archive.array(n)?;
            Ok((a.shape().to_vec(), a.to_vec_f64()?))
        };
        let bad = |reason: String| -> Error {
            ErrorKind::Npz {
                path: path.to_path_buf(),
                reason,
            }
            .into()
        };

        let mean = if has(MEAN) { Some(read(MEAN)?) } else { None };
        let std = if has(STD) { Some(read(STD)?) } else { None };
        let zca = if has(ZCA) { Some(read(ZCA)?) } else { None };
        if mean.is_none() && std.is_none() && zca.is_none() {
            return Err(bad(format!(
                "no `{MEAN}`, `{STD}` or `{ZCA}` member: not a statistics archive"
            )));
        }

        let format = if has(DATA_FORMAT) {
            match read(DATA_FORMAT)?.1.as_slice() {
                [c] if *c == 0.0 => DataFormat::ChannelsLast,
                [c] if *c == 1.0 => DataFormat::ChannelsFirst,
                other => {
                    return Err(bad(format!(
                        "`{DATA_FORMAT}` must be [0] or [1], found {other:?}"
                    )))
                }
            }
        } else {
            match mean.as_ref().or(std.as_ref()).map(|(s, _)| s.as_slice()) {
                Some([c, 1, 1]) if *c > 1 => DataFormat::ChannelsFirst,
                _ => DataFormat::ChannelsLast,
            }
        };
        let mut stats = if has(IMAGE_SHAPE) {
            let (_, dims) = read(IMAGE_SHAPE)?;
            let dims = match dims.as_slice() {
                [a, b, c]
                    if [a, b, c]
                        .iter()
                        .all(|v| v.fract() == 0.0 && **v >= 1.0 && **v < 1e15) =>
                {
                    [*a as usize, *b as usize, *c as usize]
                }
                other => {
                    return Err(bad(format!(
                        "`{IMAGE_SHAPE}` must hold 3 positive integers, found {other:?}"
                    )))
                }
            };
            Statistics::for_image(format.image_shape(dims))
        } else {
            Statistics::new(format)
        };

        let per_channel = |name: &str, (shape, v): (Vec<usize>, Vec<f64>)| -> Result<Vec<f64>> {
            let c = v.len();
            let ok = shape == [c] || shape == [1, 1, c] || shape == [c, 1, 1];
            if ok {
                Ok(v)
            } else {
                Err(bad(format!(
                    "`{name}` must have shape (C,), (1, 1, C) or (C, 1, 1); found {shape:?}"
                )))
            }
        };
        if let Some(m) = mean {
            stats = stats.with_mean(per_channel(MEAN, m)?)?;
        }
        if let Some(s) = std {
            stats = stats.with_std(per_channel(STD, s)?)?;
        }
        if let Some((shape, v)) = zca {
            match shape.as_slice() {
                [a, b] if a == b => stats = stats.with_zca(ZcaMatrix::from_row_major(*a, v)?)?,
                _ => {
                    return Err(bad(format!(
                        "`{ZCA}` must be a square matrix, found shape {shape:?}"
                    )))
                }
            }
        }
        Ok(stats)
    }

    fn check_channels(&self, what: &str, found: usize) -> Result<()> {
        match self.channels() {
            Some(c) if c != found => Err(ErrorKind::ShapeMismatch {
                what: format!("{what} and the image channels"),
                expected: vec![c],
                found: vec![found],
            }
            .into()),
            _ => Ok(()),
        }
    }
}

fn check_finite(name: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::invalid(
            name,
            values[i],
            format!("entry {i} is not finite"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_shape_follows_layout() {
        let cl = Statistics::for_image(ImageShape::hwc(4, 5, 3))
            .with_mean(vec![1.0, 2.0, 3.0])
            .unwrap();
        assert_eq!(cl.broadcast_shape(), Some([1, 1, 3]));
        let cf = Statistics::for_image(ImageShape::chw(3, 4, 5));
        assert_eq!(cf.broadcast_shape(), Some([3, 1, 1]));
        assert_eq!(
            Statistics::new(DataFormat::ChannelsLast).broadcast_shape(),
            None
        );
    }

    #[test]
    fn setters_check_shapes_and_values() {
        let s = Statistics::for_image(ImageShape::hwc(2, 2, 3));
        assert!(matches!(
            s.clone().with_mean(vec![0.0; 2]).unwrap_err().kind(),
            ErrorKind::ShapeMismatch { .. }
        ));
        assert!(matches!(
            s.clone().with_std(vec![f64::NAN; 3]).unwrap_err().kind(),
            ErrorKind::InvalidArgument { .. }
        ));
        let z = ZcaMatrix::from_row_major(4, vec![0.0; 16]).unwrap();
        assert!(matches!(
            s.with_zca(z).unwrap_err().kind(),
            ErrorKind::ShapeMismatch { .. }
        ));
        assert!(ZcaMatrix::from_row_major(3, vec![0.0; 8]).is_err());
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.npz");
        let zca: Vec<f64> = (0..36).map(|i| i as f64 * 0.5 - 3.0).collect();
        let stats = Statistics::for_image(ImageShape::chw(3, 2, 1))
            .with_mean(vec![1.5, -2.0, 1e-3])
            .unwrap()
            .with_std(vec![0.25, 3.0, 7.0])
            .unwrap()
            .with_zca(ZcaMatrix::from_row_major(6, zca).unwrap())
            .unwrap();
        stats.save(&path).unwrap();
        let back = Statistics::load(&path).unwrap();
        assert_eq!(back, stats);
        let a = NpzArchive::open(&path).unwrap();
        assert_eq!(a.array("mean").unwrap().shape(), &[3, 1, 1]);
        assert_eq!(a.array("principal_components").unwrap().shape(), &[6, 6]);
    }

    #[test]
    fn load_rejects_archives_without_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.npz");
        let mut w = NpzWriter::create(&path).unwrap();
        w.add_f64("x", &[2], &[1.0, 2.0]).unwrap();
        w.finish().unwrap();
        assert!(matches!(
            Statistics::load(&path).unwrap_err().kind(),
            ErrorKind::Npz { .. }
        ));
    }
}
