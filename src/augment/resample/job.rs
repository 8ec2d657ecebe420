//! What one resampling is asked to do: scipy's interpolation settings, and
//! the job a caller describes once per image (the geometry, the
//! interpolation, and the steps after it that the kernels can fold into
//! their writes).

use super::mode::FillMode;
use crate::augment::matrix::Affine2;
use crate::layout::ImageShape;

/// scipy's interpolation settings for
/// [`affine_transform`](super::affine_transform): `order`, `mode` and `cval`
/// of `scipy.ndimage.affine_transform` (Keras' `interpolation_order`,
/// `fill_mode` and `cval`).
///
/// [`Default`] is Keras' default: bilinear, `nearest`, `cval` 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interpolation {
    /// The B-spline order: 0 = nearest neighbour, 1 = bilinear, up to 5.
    pub order: u8,
    /// How values are read beyond the edges of the input.
    pub mode: FillMode,
    /// The fill value of the constant modes, in pixel units.
    pub cval: f64,
}

impl Default for Interpolation {
    fn default() -> Self {
        Interpolation {
            order: 1,
            mode: FillMode::Nearest,
            cval: 0.0,
        }
    }
}

/// One image's resampling: its shape, the pull mapping, the interpolation,
/// and two of Keras' next steps that the kernels can fold into their writes,
/// saving a pass each. The generator builds one per sample.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResampleJob {
    /// The layout of the input and of the output.
    pub shape: ImageShape,
    /// Output pixel `(r, c)` reads the input at `m.a · (r, c) + m.offset`.
    pub m: Affine2,
    /// scipy's order, mode and fill value.
    pub interp: Interpolation,
    /// `[vertical, horizontal]`: the output mirrored, as `flip_vertical` /
    /// `flip_horizontal` on the result would.
    pub flips: [bool; 2],
    /// Every output value multiplied by `T::from_f64_lossy(scale)` in `T`
    /// after rounding, as `standardize`'s `rescale` would.
    pub scale: Option<f64>,
}

impl ResampleJob {
    /// scipy's resampling alone: no flips, no scale.
    pub(crate) fn plain(shape: ImageShape, m: Affine2, interp: Interpolation) -> Self {
        ResampleJob {
            shape,
            m,
            interp,
            flips: [false; 2],
            scale: None,
        }
    }
}

/// Which of a [`ResampleJob`]'s folded steps are done, applied by the
/// kernel or not asked for; the caller applies the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fused {
    /// The flips (orders 0 and 1 always apply them).
    pub flips: bool,
    /// The scale (only the single-precision order-1 kernel applies it).
    pub scale: bool,
}
