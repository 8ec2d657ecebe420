//! Augmentation: transform parameters, the Keras affine geometry, scipy-exact
//! resampling, channel shift, flips and brightness.

mod color;
mod flip;
mod matrix;
mod params;
mod resample;

pub use matrix::{keras3_affine, keras_affine, Affine2};
pub use resample::{affine_transform, FillMode, Interpolation, ResampleScratch};
pub(crate) use resample::{Fused, Prefetch, ResampleJob};

pub(crate) use color::check_len;
pub(crate) use color::keras3_brightness;
pub use color::{apply_brightness_shift, apply_channel_shift, BrightnessMode};
pub use flip::{flip_horizontal, flip_vertical};
pub use params::TransformParams;
pub(crate) use params::{ShiftRule, TransformRanges};
