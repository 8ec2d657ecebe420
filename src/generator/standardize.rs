//! `standardize`: Keras' normalisation of one image, in Keras' order.
//!
//! Every step works in the image's element type `T`, and every constant
//! (`rescale`, the `1e-6` guards, the fitted statistics) is first rounded to
//! `T`, because that is what numpy does with Python floats and `float32`
//! arrays (weak scalar typing): a `float32` generator gives `float32` results
//! step by step. Reductions (the sample mean and std, the ZCA product) are
//! accumulated in `f64` and rounded once, which lands within an ulp or two of
//! numpy's pairwise `float32` sums.

use crate::generator::config::GeneratorOptions;
use crate::generator::statistics::{Statistics, ZcaMatrix};
use crate::layout::{DataFormat, ImageShape};
use crate::{Error, ErrorKind, Real, Result};

/// The guard Keras adds to every std before dividing.
const STD_EPSILON: f64 = 1e-6;

/// Which normalisation steps run, after Keras' constructor flag overrides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Steps {
    pub samplewise_center: bool,
    pub samplewise_std: bool,
    pub featurewise_center: bool,
    pub featurewise_std: bool,
    pub zca: bool,
}

impl Steps {
    /// Reads `options` with Keras' overrides applied (zca ⇒ featurewise centre,
    /// zca ⇒ no featurewise std, featurewise std ⇒ featurewise centre,
    /// samplewise std ⇒ samplewise centre). The generator applies them once
    /// with warnings; applying them again here is idempotent, and makes the
    /// free functions behave like Keras when handed options built by hand.
    pub(crate) fn from_options(o: &GeneratorOptions) -> Steps {
        let zca = o.zca_whitening;
        let featurewise_std = o.featurewise_std_normalization && !zca;
        Steps {
            samplewise_center: o.samplewise_center || o.samplewise_std_normalization,
            samplewise_std: o.samplewise_std_normalization,
            featurewise_center: o.featurewise_center || zca || featurewise_std,
            featurewise_std,
            zca,
        }
    }
}

/// The `rescale` factor in force: Keras treats `None` and `0` alike as "off".
pub(crate) fn rescale_factor(options: &GeneratorOptions) -> Option<f64> {
    options.rescale.filter(|r| *r != 0.0)
}

/// Normalises one image in place, in Keras 1.1.2's order (the body of
/// [`ImageDataGenerator::standardize`](crate::ImageDataGenerator::standardize)).
///
/// `image` holds one image of `shape` in memory order. The steps, each only
/// when its option is on:
///
/// 1. (`preprocessing_function` — not here: the generator applies it before
///    calling this function, so this function starts at step 2.)
/// 2. `rescale`: `x *= rescale`.
/// 3. `samplewise_center`: subtract the mean of all elements (all channels).
/// 4. `samplewise_std_normalization`: divide by the population std of all
///    elements plus `1e-6`.
/// 5. `featurewise_center`: subtract the fitted per-channel mean.
/// 6. `featurewise_std_normalization`: divide by the fitted per-channel std plus `1e-6`.
/// 7. `zca_whitening`: flatten in memory order and right-multiply by the
///    fitted `D × D` matrix.
///
/// Keras' flag overrides are applied to `options` first (see
/// [`GeneratorOptions`]). `scratch` holds the ZCA product (grown to `D`
/// elements on first use, then reused without allocating).
///
/// # Errors
/// [`ErrorKind::MissingStatistics`] when a featurewise option or ZCA is on and
/// `stats` lacks what it needs (Keras only warns and skips the step; npyflow
/// refuses, so unnormalised data never reaches a model silently).
/// [`ErrorKind::ShapeMismatch`] when `image.len() != shape.len()`, or the
/// statistics were fitted on a different channel count or image shape.
pub(crate) fn standardize_with_scratch<T: Real>(
    options: &GeneratorOptions,
    stats: Option<&Statistics>,
    image: &mut [T],
    shape: ImageShape,
    scratch: &mut Vec<f64>,
) -> Result<()> {
    if image.len() != shape.len() {
        return Err(ErrorKind::ShapeMismatch {
            what: "image buffer and image shape".into(),
            expected: vec![shape.len()],
            found: vec![image.len()],
        }
        .into());
    }
    let steps = Steps::from_options(options);
    // Everything that can fail is checked before the image is touched, so an
    // error leaves the caller's buffer as it was.
    let mean = if steps.featurewise_center {
        Some(per_channel(stats, Stat::Mean, shape)?)
    } else {
        None
    };
    let std = if steps.featurewise_std {
        Some(per_channel(stats, Stat::Std, shape)?)
    } else {
        None
    };
    let zca = if steps.zca {
        Some(zca_for(stats, shape)?)
    } else {
        None
    };

    if let Some(r) = rescale_factor(options) {
        let r = T::from_f64_lossy(r);
        image.iter_mut().for_each(|v| *v *= r);
    }
    if steps.samplewise_center {
        let m = T::from_f64_lossy(mean_f64(image));
        image.iter_mut().for_each(|v| *v -= m);
    }
    if steps.samplewise_std {
        let d = T::from_f64_lossy(population_std(image)) + T::from_f64_lossy(STD_EPSILON);
        image.iter_mut().for_each(|v| *v /= d);
    }
    if let Some(mean) = mean {
        per_channel_apply(image, shape, |c| T::from_f64_lossy(mean[c]), |v, m| *v -= m);
    }
    if let Some(std) = std {
        let eps = T::from_f64_lossy(STD_EPSILON);
        per_channel_apply(
            image,
            shape,
            |c| T::from_f64_lossy(std[c]) + eps,
            |v, d| *v /= d,
        );
    }
    if let Some(zca) = zca {
        apply_zca(zca, image, scratch);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Stat {
    Mean,
    Std,
}

fn per_channel(stats: Option<&Statistics>, which: Stat, shape: ImageShape) -> Result<&[f64]> {
    let (values, what) = match which {
        Stat::Mean => (stats.and_then(Statistics::mean), "mean"),
        Stat::Std => (stats.and_then(Statistics::std), "std"),
    };
    let values = values.ok_or(ErrorKind::MissingStatistics { what })?;
    // Per-channel values mean the same thing in either layout, so only the
    // channel count has to agree.
    if values.len() != shape.channels {
        return Err(ErrorKind::ShapeMismatch {
            what: format!("featurewise {what} and the image channels"),
            expected: vec![values.len()],
            found: vec![shape.channels],
        }
        .into());
    }
    Ok(values)
}

fn zca_for(stats: Option<&Statistics>, shape: ImageShape) -> Result<&ZcaMatrix> {
    let stats = stats.ok_or(ErrorKind::MissingStatistics { what: "zca" })?;
    let zca = stats
        .zca()
        .ok_or(ErrorKind::MissingStatistics { what: "zca" })?;
    if zca.dim() != shape.len() {
        return Err(ErrorKind::ShapeMismatch {
            what: "ZCA matrix and the image size".into(),
            expected: vec![zca.dim(), zca.dim()],
            found: vec![shape.len(), shape.len()],
        }
        .into());
    }
    // The matrix mixes elements by their flat position, so the same element
    // count is not enough: the fitted image must have had the same layout.
    // (One channel is laid out identically in both formats.)
    let same_layout = match stats.image_shape() {
        Some(fitted) => {
            (fitted.height, fitted.width, fitted.channels)
                == (shape.height, shape.width, shape.channels)
                && (fitted.format == shape.format || shape.channels == 1)
        }
        None => stats.data_format() == shape.format || shape.channels == 1,
    };
    if !same_layout {
        let fitted = stats
            .image_shape()
            .map(|s| s.dims().to_vec())
            .unwrap_or_default();
        return Err(Error::invalid(
            "data_format",
            format!("{} {:?}", shape.format.as_str(), shape.dims()),
            format!(
                "the ZCA matrix was fitted on {} images {fitted:?}; flatten order differs",
                stats.data_format().as_str()
            ),
        ));
    }
    Ok(zca)
}

/// Applies `op(element, constant(channel))` to every element.
fn per_channel_apply<T: Real>(
    image: &mut [T],
    shape: ImageShape,
    constant: impl Fn(usize) -> T,
    op: impl Fn(&mut T, T),
) {
    let c = shape.channels;
    let plane = shape.height * shape.width;
    if c == 0 || plane == 0 {
        return;
    }
    match shape.format {
        DataFormat::ChannelsFirst => {
            for (ch, p) in image.chunks_exact_mut(plane).enumerate() {
                let k = constant(ch);
                p.iter_mut().for_each(|v| op(v, k));
            }
        }
        DataFormat::ChannelsLast => {
            for px in image.chunks_exact_mut(c) {
                for (ch, v) in px.iter_mut().enumerate() {
                    op(v, constant(ch));
                }
            }
        }
    }
}

/// Mean of all elements, accumulated in `f64`.
fn mean_f64<T: Real>(x: &[T]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.iter().map(|v| v.to_f64_lossless()).sum::<f64>() / x.len() as f64
}

/// Population std (ddof 0) of all elements, two-pass like `np.std`.
fn population_std<T: Real>(x: &[T]) -> f64 {
    let m = mean_f64(x);
    let ss: f64 = x
        .iter()
        .map(|v| {
            let d = v.to_f64_lossless() - m;
            d * d
        })
        .sum();
    (ss / x.len() as f64).sqrt()
}

/// `x ← x · M` for the flattened image, accumulated in `f64`.
///
/// Row-major `M` makes this a sequence of `axpy`s over contiguous rows, which
/// vectorises and reads the matrix exactly once, front to back.
fn apply_zca<T: Real>(zca: &ZcaMatrix, image: &mut [T], scratch: &mut Vec<f64>) {
    let d = zca.dim();
    scratch.clear();
    scratch.resize(d, 0.0);
    for (xi, row) in image.iter().zip(zca.as_slice().chunks_exact(d)) {
        let xi = xi.to_f64_lossless();
        for (o, m) in scratch.iter_mut().zip(row) {
            *o += xi * m;
        }
    }
    for (v, o) in image.iter_mut().zip(scratch.iter()) {
        *v = T::from_f64_lossy(*o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standardize<T: Real>(
        options: &GeneratorOptions,
        stats: Option<&Statistics>,
        image: &mut [T],
        shape: ImageShape,
    ) -> Result<()> {
        standardize_with_scratch(options, stats, image, shape, &mut Vec::new())
    }

    fn opts() -> GeneratorOptions {
        GeneratorOptions::default()
    }

    #[test]
    fn overrides_follow_keras() {
        let s = Steps::from_options(&GeneratorOptions {
            zca_whitening: true,
            featurewise_std_normalization: true,
            samplewise_std_normalization: true,
            ..opts()
        });
        assert_eq!(
            s,
            Steps {
                samplewise_center: true,
                samplewise_std: true,
                featurewise_center: true,
                featurewise_std: false,
                zca: true
            }
        );
        let s = Steps::from_options(&GeneratorOptions {
            featurewise_std_normalization: true,
            ..opts()
        });
        assert!(s.featurewise_center && s.featurewise_std && !s.zca);
    }

    #[test]
    fn missing_statistics_is_an_error_and_leaves_the_image() {
        let o = GeneratorOptions {
            featurewise_center: true,
            rescale: Some(2.0),
            ..opts()
        };
        let mut x = [1.0f32, 2.0, 3.0];
        let e = standardize(&o, None, &mut x, ImageShape::hwc(1, 1, 3)).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::MissingStatistics { what: "mean" }
        ));
        assert_eq!(x, [1.0, 2.0, 3.0]);
        let stats = Statistics::new(DataFormat::ChannelsLast)
            .with_mean(vec![0.0; 3])
            .unwrap();
        let o = GeneratorOptions {
            featurewise_std_normalization: true,
            ..opts()
        };
        let e = standardize(&o, Some(&stats), &mut x, ImageShape::hwc(1, 1, 3)).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::MissingStatistics { what: "std" }
        ));
        let o = GeneratorOptions {
            zca_whitening: true,
            ..opts()
        };
        let e = standardize(&o, Some(&stats), &mut x, ImageShape::hwc(1, 1, 3)).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::MissingStatistics { what: "zca" }
        ));
    }

    #[test]
    fn featurewise_per_channel_in_both_layouts() {
        let stats = Statistics::new(DataFormat::ChannelsLast)
            .with_mean(vec![1.0, 10.0])
            .unwrap()
            .with_std(vec![1.0, 4.0])
            .unwrap();
        let o = GeneratorOptions {
            featurewise_std_normalization: true,
            ..opts()
        };
        // (1, 2, 2) channels-last: pixels (a0, a1), (b0, b1).
        let mut cl = [3.0f64, 18.0, 5.0, 2.0];
        standardize(&o, Some(&stats), &mut cl, ImageShape::hwc(1, 2, 2)).unwrap();
        let e = 1e-6;
        let want = [
            2.0 / (1.0 + e),
            8.0 / (4.0 + e),
            4.0 / (1.0 + e),
            -8.0 / (4.0 + e),
        ];
        assert_eq!(cl, want);
        let mut cf = [3.0f64, 5.0, 18.0, 2.0];
        standardize(&o, Some(&stats), &mut cf, ImageShape::chw(2, 1, 2)).unwrap();
        assert_eq!(cf, [want[0], want[2], want[1], want[3]]);
    }

    #[test]
    fn samplewise_std_uses_population_std() {
        let o = GeneratorOptions {
            samplewise_std_normalization: true,
            ..opts()
        };
        let mut x = [1.0f64, 3.0];
        standardize(&o, None, &mut x, ImageShape::hwc(1, 2, 1)).unwrap();
        assert_eq!(x, [-1.0 / (1.0 + 1e-6), 1.0 / (1.0 + 1e-6)]);
    }

    #[test]
    fn zca_right_multiplies_and_checks_layout() {
        // M = [[1, 2], [3, 4]]: [x0, x1]·M = [x0 + 3·x1, 2·x0 + 4·x1].
        let m = ZcaMatrix::from_row_major(2, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let stats = Statistics::for_image(ImageShape::hwc(1, 1, 2))
            .with_mean(vec![0.0, 0.0])
            .unwrap()
            .with_zca(m)
            .unwrap();
        let o = GeneratorOptions {
            zca_whitening: true,
            ..opts()
        };
        let mut x = [1.0f32, 10.0];
        standardize(&o, Some(&stats), &mut x, ImageShape::hwc(1, 1, 2)).unwrap();
        assert_eq!(x, [31.0, 42.0]);
        let e = standardize(&o, Some(&stats), &mut x, ImageShape::chw(2, 1, 1)).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::InvalidArgument {
                name: "data_format",
                ..
            }
        ));
        let e =
            standardize(&o, Some(&stats), &mut [0.0f32; 3], ImageShape::hwc(1, 1, 3)).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::ShapeMismatch { .. }));
    }

    #[test]
    fn rescale_is_rounded_to_the_element_type_first() {
        let o = GeneratorOptions {
            rescale: Some(1.0 / 255.0),
            ..opts()
        };
        let mut x = [200.0f32];
        standardize(&o, None, &mut x, ImageShape::hwc(1, 1, 1)).unwrap();
        assert_eq!(x[0], 200.0f32 * (1.0f64 / 255.0) as f32);
        let o = GeneratorOptions {
            rescale: Some(0.0),
            ..opts()
        };
        standardize(&o, None, &mut x, ImageShape::hwc(1, 1, 1)).unwrap();
        assert_eq!(x[0], 200.0f32 * (1.0f64 / 255.0) as f32);
    }
}
