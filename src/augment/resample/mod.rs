//! scipy.ndimage.affine_transform, reproduced: every fill mode, orders 0..=5.
//!
//! Keras resamples each channel with its own scipy call; here coordinates,
//! taps and weights are computed once per output pixel and applied to every
//! channel in the same pass, for channels-last and channels-first buffers
//! alike (through the layout's strides).
//!
//! This file is the entry ([`affine_transform`], [`ResampleScratch`]) and the
//! dispatch on the order. The layers below it, each using only those listed
//! before it:
//!
//! - `mode`: [`FillMode`], scipy's extensions past the edges, by name;
//! - `job`: [`Interpolation`] (scipy's settings) and the job of one image;
//! - `boundary`: scipy's folding of coordinates and tap indices into the
//!   image for each mode;
//! - `taps`: the taps of one axis and their B-spline weights;
//! - `general`: one output pixel through scipy's full rules, the reference
//!   the kernels are held to and their fallback;
//! - `prefilter`: scipy's B-spline prefilter (orders 2..=5);
//! - `spline`: orders 2..=5, the prefiltered coefficients evaluated;
//! - `prefetch`: memory the caller wants in the CPU caches soon, which a
//!   kernel issues while it works;
//! - `linear`: orders 0 and 1, with their fast paths (`linear::fast`: the
//!   single-precision order-1 kernel behind Keras' default, on AVX2 where
//!   the CPU has it).
//!
//! [`ResampleScratch::transform`] lets the generator fold its next steps
//! (flips, `rescale`) into the writes.

mod boundary;
mod general;
mod job;
mod linear;
mod mode;
mod prefetch;
mod prefilter;
mod spline;
mod taps;

pub use job::Interpolation;
pub(crate) use job::{Fused, ResampleJob};
pub use mode::FillMode;
pub(crate) use prefetch::Prefetch;

use super::matrix::Affine2;
use crate::layout::{ImageShape, Placement};
use crate::{OutputDtype, Real};
use taps::MAX_ORDER;

/// Reusable buffers for [`affine_transform`]: the B-spline coefficients of
/// orders 2..=5, the row plan of order 1 and the edge-replicated copy of
/// small images. Keep one per worker thread; after the first image of a
/// given size no call allocates.
#[derive(Debug, Default)]
pub struct ResampleScratch {
    prefilter: prefilter::PrefilterScratch,
    low: linear::LowScratch,
}

/// Resamples `input` into `output` (same shape and layout) with the pull
/// mapping `m`: output pixel `(r, c)` of every channel takes the input value
/// at `m.a · (r, c) + m.offset`, interpolated with B-splines of
/// `interp.order` (0 = nearest neighbour, 1 = bilinear, up to 5) and
/// extended past the edges according to `interp.mode` (`interp.cval` is the
/// fill value for the constant modes, in pixel units).
///
/// This is `scipy.ndimage.affine_transform(channel, m.a, m.offset, order=order,
/// mode=mode, cval=cval)` on each 2-D channel (scipy 1.17.1, the backend of
/// Keras' `apply_affine_transform`), computed in f64 and rounded to `T` at the
/// end. Every step follows scipy's operation order (coordinates, boundary
/// folding, prefilter, weights, sums), so results agree with scipy to the last
/// bit on the conformance fixtures, up to the sign of zero. A non-finite
/// coordinate yields `cval`.
///
/// One exception, for speed: order 1 on `f32` images (Keras' default) keeps
/// the coordinates, taps and border rules in f64 but blends the interior in
/// single precision, within ~5e-5 of scipy on 0..255 data (the spec allows
/// 1e-4; typically ~1e-5). `f64` images are always scipy's to the bit.
///
/// # Panics
///
/// On caller bugs only, never on pixel or matrix values: `interp.order > 5`
/// (the generator validates `interpolation_order` when it is built), or
/// `input` / `output` lengths different from `shape.len()`.
///
/// # Examples
///
/// ```
/// use npyflow::augment::{affine_transform, Affine2, Interpolation, ResampleScratch};
/// use npyflow::{FillMode, ImageShape};
///
/// // A 3×3 single-channel image, shifted up by one row (tx = 1 in Keras terms).
/// let shape = ImageShape::hwc(3, 3, 1);
/// let input: Vec<f32> = (0..9).map(|v| v as f32).collect();
/// let mut output = vec![0f32; 9];
/// let m = Affine2 { offset: [1.0, 0.0], ..Affine2::IDENTITY };
/// let bilinear = Interpolation { order: 1, mode: FillMode::Nearest, cval: 0.0 };
/// let mut scratch = ResampleScratch::default();
/// affine_transform(&input, &mut output, shape, &m, bilinear, &mut scratch);
/// assert_eq!(output, [3., 4., 5., 6., 7., 8., 6., 7., 8.]);
/// ```
pub fn affine_transform<T: Real>(
    input: &[T],
    output: &mut [T],
    shape: ImageShape,
    m: &Affine2,
    interp: Interpolation,
    scratch: &mut ResampleScratch,
) {
    scratch.transform(&ResampleJob::plain(shape, *m, interp), input, output);
}

impl ResampleScratch {
    /// [`affine_transform`] of `job`, with its flips and scale folded into
    /// the writes where the kernel can: orders 0 and 1 always apply the
    /// flips, and the scale is applied only by the single-precision order-1
    /// kernel. Returns what is done; the caller applies the rest, and
    /// `affine_transform`'s values are unchanged.
    ///
    /// # Panics
    /// As [`affine_transform`].
    pub(crate) fn transform<T: Real>(
        &mut self,
        job: &ResampleJob,
        input: &[T],
        output: &mut [T],
    ) -> Fused {
        let (shape, order) = (job.shape, usize::from(job.interp.order));
        assert!(
            order <= MAX_ORDER,
            "affine_transform: interpolation order {order} is not in 0..=5"
        );
        assert_eq!(
            input.len(),
            shape.len(),
            "affine_transform: input length does not match {shape:?}"
        );
        assert_eq!(
            output.len(),
            shape.len(),
            "affine_transform: output length does not match {shape:?}"
        );
        if shape.is_empty() {
            return Fused {
                flips: true,
                scale: true,
            };
        }
        if order <= 1 {
            let scale = linear::low_order(job, input, output, &mut self.low);
            Fused { flips: true, scale }
        } else {
            spline::spline_order(job, input, output, &mut self.prefilter);
            Fused {
                flips: job.flips == [false; 2],
                scale: job.scale.is_none(),
            }
        }
    }

    /// When [`ResampleScratch::transform`] of `job` would read its input
    /// through a copy of its own (order 1 on a small `f32` image in
    /// `nearest` mode: an edge-replicated copy), that copy and where the
    /// image goes in it. A caller that reads the image from storage anyway
    /// reads it there, then calls [`ResampleScratch::transform_read`]: one
    /// pass over the image fewer.
    pub(crate) fn read_buffer<T: Real>(
        &mut self,
        job: &ResampleJob,
    ) -> Option<(&mut [T], Placement)> {
        if job.interp.order != 1 || T::DTYPE != OutputDtype::F32 {
            return None;
        }
        let (buf, place) = self.low.read_buffer(job)?;
        // Same type: the cast is a reinterpretation and cannot fail.
        Some((bytemuck::try_cast_slice_mut(buf).ok()?, place))
    }

    /// [`ResampleScratch::transform`] of the image read into
    /// [`ResampleScratch::read_buffer`]'s copy for the same `job`: the same
    /// values, with the flips and the scale applied (both done). `next`:
    /// lines to prefetch meanwhile, issued a few per output row.
    ///
    /// # Panics
    /// When `read_buffer` gave no copy for this job, or `output`'s length
    /// is not `job.shape.len()` (caller bugs).
    pub(crate) fn transform_read<T: Real>(
        &mut self,
        job: &ResampleJob,
        output: &mut [T],
        next: &Prefetch<'_>,
    ) -> Fused {
        assert_eq!(
            output.len(),
            job.shape.len(),
            "transform_read: output length"
        );
        let output = bytemuck::try_cast_slice_mut(output).expect("read_buffer is for f32 only");
        self.low.transform_read(job, output, next);
        Fused {
            flips: true,
            scale: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::general::{general_pixel, Source};
    use super::*;
    use crate::augment::matrix::keras_affine;
    use crate::TransformParams;

    fn image(shape: ImageShape) -> Vec<f64> {
        (0..shape.len())
            .map(|i| ((i * 37 + 11) % 101) as f64 * 2.5 - 3.0)
            .collect()
    }

    #[test]
    fn identity_returns_the_input_for_every_mode_and_order() {
        let mut scratch = ResampleScratch::default();
        for shape in [
            ImageShape::hwc(5, 7, 3),
            ImageShape::chw(2, 4, 6),
            ImageShape::hwc(1, 4, 2),
            ImageShape::hwc(3, 1, 1),
            ImageShape::hwc(1, 1, 1),
        ] {
            let input = image(shape);
            for mode in FillMode::ALL {
                for order in 0..=5u8 {
                    let mut out = vec![f64::NAN; input.len()];
                    affine_transform(
                        &input,
                        &mut out,
                        shape,
                        &Affine2::IDENTITY,
                        Interpolation {
                            order,
                            mode,
                            cval: -9.0,
                        },
                        &mut scratch,
                    );
                    // scipy's reflect prefilter is inexact on short lines (its
                    // own identity transform is off by ~0.1 at order 5 on 4
                    // samples, ~0.7 on 3, of 0..250); reproduced on purpose and checked
                    // against scipy in the conformance tests.
                    let half_sample = matches!(mode, FillMode::Reflect | FillMode::GridMirror);
                    let tol = match order {
                        0 | 1 => 0.0,
                        _ if half_sample => 1.0,
                        _ => 1e-9,
                    };
                    for (o, i) in out.iter().zip(&input) {
                        assert!((o - i).abs() <= tol, "{shape:?} {mode} {order}: {o} vs {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn keras_theta_45_on_ones_gives_the_1_1_2_mask() {
        // keras-behaviour §5.3 item 9: the off-centre pivot of Keras 1.1.2.
        let shape = ImageShape::hwc(3, 3, 3);
        let input = vec![1f32; 27];
        let mut out = vec![f32::NAN; 27];
        let m = keras_affine(
            &TransformParams {
                theta: 45.0,
                ..TransformParams::default()
            },
            3,
            3,
        )
        .unwrap();
        let mut scratch = ResampleScratch::default();
        affine_transform(
            &input,
            &mut out,
            shape,
            &m,
            Interpolation {
                order: 1,
                mode: FillMode::Constant,
                cval: 0.0,
            },
            &mut scratch,
        );
        let want = [[0., 0., 1.], [0., 1., 1.], [0., 0., 1.]];
        for ch in 0..3 {
            for r in 0..3 {
                for c in 0..3 {
                    assert_eq!(out[shape.index(r, c, ch)], want[r][c], "({r},{c},{ch})");
                }
            }
        }
    }

    #[test]
    fn layouts_give_the_same_pixels() {
        // Every channel count takes its own kernel (packed 1/3/4, planes of 3,
        // strided otherwise); all must agree with the channels-last result.
        let (h, w) = (6, 9);
        let m = keras_affine(
            &TransformParams {
                theta: 17.0,
                tx: 0.7,
                ty: -1.2,
                shear: 8.0,
                zx: 1.1,
                zy: 0.9,
                ..TransformParams::default()
            },
            h,
            w,
        )
        .unwrap();
        let mut scratch = ResampleScratch::default();
        for nc in 1..=5 {
            let last = ImageShape::hwc(h, w, nc);
            let first = ImageShape::chw(nc, h, w);
            let data = image(last);
            let mut planar = vec![0.0; data.len()];
            for r in 0..h {
                for c in 0..w {
                    for ch in 0..nc {
                        planar[first.index(r, c, ch)] = data[last.index(r, c, ch)];
                    }
                }
            }
            for mode in FillMode::ALL {
                for order in 0..=5u8 {
                    let mut a = vec![0.0; data.len()];
                    let mut b = vec![0.0; data.len()];
                    affine_transform(
                        &data,
                        &mut a,
                        last,
                        &m,
                        Interpolation {
                            order,
                            mode,
                            cval: 5.0,
                        },
                        &mut scratch,
                    );
                    affine_transform(
                        &planar,
                        &mut b,
                        first,
                        &m,
                        Interpolation {
                            order,
                            mode,
                            cval: 5.0,
                        },
                        &mut scratch,
                    );
                    // Each channel alone, as Keras calls scipy.
                    let mut single = vec![0.0; h * w];
                    let one = ImageShape::hwc(h, w, 1);
                    for ch in 0..nc {
                        let plane: Vec<f64> = (0..h * w).map(|i| data[i * nc + ch]).collect();
                        affine_transform(
                            &plane,
                            &mut single,
                            one,
                            &m,
                            Interpolation {
                                order,
                                mode,
                                cval: 5.0,
                            },
                            &mut scratch,
                        );
                        for r in 0..h {
                            for c in 0..w {
                                let want = single[r * w + c];
                                assert_eq!(
                                    a[last.index(r, c, ch)].to_bits(),
                                    want.to_bits(),
                                    "{nc} {mode} {order}"
                                );
                                assert_eq!(
                                    b[first.index(r, c, ch)].to_bits(),
                                    want.to_bits(),
                                    "{nc} {mode} {order}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn non_finite_matrices_fill_with_cval_without_panicking() {
        let shape = ImageShape::hwc(4, 5, 2);
        let input = image(shape);
        let mut scratch = ResampleScratch::default();
        for bad in [f64::NAN, f64::INFINITY, 1e300] {
            let m = Affine2 {
                a: [[bad, 0.0], [0.0, 1.0]],
                offset: [0.0, bad],
            };
            for mode in FillMode::ALL {
                for order in 0..=5u8 {
                    let mut out = vec![0.0; input.len()];
                    affine_transform(
                        &input,
                        &mut out,
                        shape,
                        &m,
                        Interpolation {
                            order,
                            mode,
                            cval: 2.0,
                        },
                        &mut scratch,
                    );
                    if !bad.is_finite() {
                        assert!(out.iter().all(|&v| v == 2.0), "{bad} {mode} {order}");
                    }
                }
            }
        }
    }

    #[test]
    fn fast_paths_agree_with_the_general_rules() {
        // Zoomed out and shifted so that every pixel class occurs: inside,
        // border, beyond the border, and exactly on the last row / column.
        let m = Affine2 {
            a: [[1.4, 0.3], [-0.2, 1.3]],
            offset: [-2.5, -1.0],
        };
        let edge = Affine2 {
            a: [[1.0, 0.0], [0.0, 1.0]],
            offset: [0.0, 0.5],
        };
        let mut scratch = ResampleScratch::default();
        for shape in [
            ImageShape::hwc(7, 8, 3),
            ImageShape::chw(3, 7, 8),
            ImageShape::hwc(7, 8, 2),
        ] {
            let input = image(shape);
            let (sr, sc, sch) = shape.strides();
            let src = Source {
                data: &input[..],
                rows: 7,
                cols: 8,
                pad: 0,
                strides: (sr, sc, sch),
                channels: shape.channels,
                mode: FillMode::Nearest, // set per mode below
                cval: 3.5,
            };
            for m in [m, edge] {
                for mode in FillMode::ALL {
                    let src = Source { mode, ..src };
                    for order in 0..=1u8 {
                        let mut fast = vec![0.0; input.len()];
                        affine_transform(
                            &input,
                            &mut fast,
                            shape,
                            &m,
                            Interpolation {
                                order,
                                mode,
                                cval: 3.5,
                            },
                            &mut scratch,
                        );
                        let mut slow = vec![0.0; input.len()];
                        for r in 0..7 {
                            for c in 0..8 {
                                let coord = m.apply(r as f64, c as f64);
                                let (o, dst) = (usize::from(order), r * sr + c * sc);
                                general_pixel(&src, coord, o, &mut slow, dst, sch);
                            }
                        }
                        assert_eq!(fast, slow, "{shape:?} {mode} order {order}");
                    }
                }
            }
        }
    }
}
