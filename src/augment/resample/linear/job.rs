//! The fixed inputs of one order-0 or order-1 resampling.

use crate::augment::matrix::Affine2;
use crate::augment::resample::job::ResampleJob;
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

impl<'a, T> Job<'a, T> {
    /// `job` on `input`.
    pub(crate) fn new(input: &'a [T], job: &'a ResampleJob) -> Self {
        Job {
            input,
            shape: job.shape,
            m: &job.m,
            mode: job.interp.mode,
            cval: job.interp.cval,
            flips: job.flips,
        }
    }
}

impl<'a> Job<'a, f32> {
    /// `job` with its input elsewhere (read into a copy by the caller): for
    /// the order-1 kernel's copy, whose values never depend on `cval`.
    pub(crate) fn without_input(job: &'a ResampleJob) -> Self {
        Job::new(&[], job)
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
