//! The fixed inputs of one order-0 or order-1 resampling.

use crate::augment::matrix::Affine2;
use crate::augment::resample::mode::FillMode;
use crate::{ImageShape, Real};

/// The fixed inputs of one low-order resampling.
#[derive(Clone, Copy)]
pub(crate) struct Job<'a, T> {
    pub input: &'a [T],
    pub shape: ImageShape,
    pub m: &'a Affine2,
    pub mode: FillMode,
    pub cval: f64,
    /// `[vertical, horizontal]`: output row `i` (column `j`) holds source
    /// row `h-1-i` (column `w-1-j`) when set.
    pub flips: [bool; 2],
}

impl<'a> Job<'a, f32> {
    /// A job whose input is elsewhere (read into a copy by the caller):
    /// for the order-1 kernel's copy, whose values never depend on `cval`.
    pub(crate) fn without_input(
        shape: ImageShape,
        m: &'a Affine2,
        mode: FillMode,
        flips: [bool; 2],
    ) -> Self {
        Job {
            input: &[],
            shape,
            m,
            mode,
            cval: 0.0,
            flips,
        }
    }
}

impl<T: Real> Job<'_, T> {
    /// The element offset of the output pixel holding source pixel `(r, c)`.
    #[inline(always)]
    pub(crate) fn dst(&self, r: usize, c: usize) -> usize {
        let (sr, sc, _) = self.shape.strides();
        let [v, h] = self.flips;
        let r = if v { self.shape.height - 1 - r } else { r };
        let c = if h { self.shape.width - 1 - c } else { c };
        r * sr + c * sc
    }
}
