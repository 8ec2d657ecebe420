//! Augmentation: transform parameters, the Keras affine geometry, scipy-exact
//! resampling, channel shift, flips and brightness.

mod matrix;
mod resample;
mod spline;

pub use matrix::{keras_affine, Affine2};
pub use resample::{affine_transform, FillMode, ResampleScratch};
