//! `ImageDataGenerator`: options, validation, and the per-sample transform seam.
//!
//! (Skeleton: the iterator calls [`ImageDataGenerator::process_sample`]; the
//! full behaviour lands with the generator issue.)

use serde::{Deserialize, Serialize};

use crate::layout::{DataFormat, ImageShape};
use crate::rng::SampleRng;
use crate::{OutputDtype, Real, Result};

/// A shift range, as Keras' `width_shift_range` / `height_shift_range` accept it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShiftRange {
    /// A whole number of pixels `k`: integer shifts in `-(k-1)..=k-1` (Keras' rule).
    Pixels(i64),
    /// A float: a fraction of the dimension when `< 1`, else pixels; continuous.
    Float(f64),
    /// A list of choices, times a random sign; scaled by the dimension when `max < 1`.
    Choices(Vec<f64>),
}

impl Default for ShiftRange {
    fn default() -> Self {
        ShiftRange::Float(0.0)
    }
}

/// A zoom range: a scalar `z` means `[1 - z, 1 + z]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ZoomRange {
    /// `[1 - z, 1 + z]`.
    Scalar(f64),
    /// Explicit `[lo, hi]`.
    Pair(Vec<f64>),
}

impl Default for ZoomRange {
    fn default() -> Self {
        ZoomRange::Scalar(0.0)
    }
}

/// Every `ImageDataGenerator` constructor option, with Keras' names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorOptions {
    /// Subtract the dataset mean per channel (needs `fit`).
    pub featurewise_center: bool,
    /// Subtract each image's own mean.
    pub samplewise_center: bool,
    /// Divide by the dataset std per channel (needs `fit`).
    pub featurewise_std_normalization: bool,
    /// Divide each image by its own std.
    pub samplewise_std_normalization: bool,
    /// ZCA whitening (needs `fit`).
    pub zca_whitening: bool,
    /// Epsilon added to the eigenvalues for ZCA. Default 1e-6.
    pub zca_epsilon: f64,
    /// Degrees of random rotation.
    pub rotation_range: f64,
    /// Horizontal shift range.
    pub width_shift_range: ShiftRange,
    /// Vertical shift range.
    pub height_shift_range: ShiftRange,
    /// Range of the brightness factor, a pair.
    pub brightness_range: Option<Vec<f64>>,
    /// Shear angle range in degrees.
    pub shear_range: f64,
    /// Zoom range.
    pub zoom_range: ZoomRange,
    /// Channel shift range (one offset for all channels, clipped to the image range).
    pub channel_shift_range: f64,
    /// Fill mode: constant, nearest, reflect, wrap, mirror, grid-wrap, grid-mirror, grid-constant.
    pub fill_mode: String,
    /// Fill value for `constant` mode.
    pub cval: f64,
    /// Random horizontal flips.
    pub horizontal_flip: bool,
    /// Random vertical flips.
    pub vertical_flip: bool,
    /// Multiplier applied first in `standardize`; `None` or 0 = off.
    pub rescale: Option<f64>,
    /// Channel axis position.
    pub data_format: DataFormat,
    /// Fraction of samples reserved for validation, in (0, 1); 0 = none.
    pub validation_split: f64,
    /// Spline order 0..=5 for the affine resampling.
    pub interpolation_order: u8,
    /// Output dtype.
    pub dtype: OutputDtype,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            featurewise_center: false,
            samplewise_center: false,
            featurewise_std_normalization: false,
            samplewise_std_normalization: false,
            zca_whitening: false,
            zca_epsilon: 1e-6,
            rotation_range: 0.0,
            width_shift_range: ShiftRange::default(),
            height_shift_range: ShiftRange::default(),
            brightness_range: None,
            shear_range: 0.0,
            zoom_range: ZoomRange::default(),
            channel_shift_range: 0.0,
            fill_mode: "nearest".to_string(),
            cval: 0.0,
            horizontal_flip: false,
            vertical_flip: false,
            rescale: None,
            data_format: DataFormat::ChannelsLast,
            validation_split: 0.0,
            interpolation_order: 1,
            dtype: OutputDtype::F32,
        }
    }
}

/// Keras' `ImageDataGenerator`: augmentation and standardisation options.
#[derive(Clone, Debug, Default)]
pub struct ImageDataGenerator {
    options: GeneratorOptions,
}

/// Reusable per-thread scratch memory for [`ImageDataGenerator::process_sample`].
#[derive(Debug, Default)]
pub struct Scratch<T> {
    /// A buffer of one image.
    pub image: Vec<T>,
}

impl ImageDataGenerator {
    /// A generator with validated options.
    ///
    /// # Errors
    /// When an option is out of range.
    pub fn new(options: GeneratorOptions) -> Result<ImageDataGenerator> {
        Ok(ImageDataGenerator { options })
    }

    /// The options in force (after Keras' flag overrides).
    pub fn options(&self) -> &GeneratorOptions {
        &self.options
    }

    /// Augments and standardises one image in place: `random_transform` with
    /// parameters drawn from `rng`, then `standardize`.
    ///
    /// # Errors
    /// When an option needs statistics that were not fitted.
    pub fn process_sample<T: Real>(
        &self,
        sample: &mut [T],
        _shape: ImageShape,
        _rng: &mut SampleRng,
        _scratch: &mut Scratch<T>,
    ) -> Result<()> {
        if let Some(r) = self.options.rescale.filter(|r| *r != 0.0) {
            let r = T::from_f64_lossy(r);
            sample.iter_mut().for_each(|v| *v *= r);
        }
        Ok(())
    }
}
