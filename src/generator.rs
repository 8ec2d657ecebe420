//! `ImageDataGenerator`: validated options, random transform parameters and
//! the per-sample pipeline (affine ▶ channel shift ▶ flips ▶ brightness ▶
//! standardize), in Keras 1.1.2's order and numerics.

mod config;
mod json;
mod preprocess;

use std::path::Path;

pub use config::{GeneratorOptions, ShiftRange, ZoomRange};
pub use preprocess::{ImageMut, PreprocessingFunction};

use crate::augment::{
    affine_transform, apply_brightness_shift, apply_channel_shift, check_len, flip_horizontal,
    flip_vertical, keras_affine, FillMode, ResampleScratch, TransformParams, TransformRanges,
};
use crate::layout::ImageShape;
use crate::rng::SampleRng;
use crate::standardize::standardize_with_scratch;
use crate::statistics::Statistics;
use crate::{Real, Result};

/// Keras' `ImageDataGenerator`: augmentation and standardisation options,
/// validated once, plus the operations that use them on one image.
///
/// The layout of an image (channels-last or -first) is taken from the
/// [`ImageShape`] passed with it, not from `options().data_format`; the
/// iterator builds shapes from the options, so the two agree there.
///
/// # Examples
/// ```
/// use npyflow::{GeneratorOptions, ImageDataGenerator, ImageShape, SampleRng, Scratch, Stream};
///
/// let generator = ImageDataGenerator::new(GeneratorOptions {
///     horizontal_flip: true,
///     channel_shift_range: 10.0,
///     ..GeneratorOptions::default()
/// })?;
/// let shape = ImageShape::hwc(2, 3, 1);
/// let mut image = vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
/// let mut rng = SampleRng::new(42, Stream::Augment, 0, 0);
/// let mut scratch = Scratch::default();
/// generator.random_transform(&mut image, shape, &mut rng, &mut scratch)?;
/// assert!(image.iter().all(|v| (0.0..=5.0).contains(v)));
/// # Ok::<(), npyflow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ImageDataGenerator {
    options: GeneratorOptions,
    fill_mode: FillMode,
    ranges: TransformRanges,
    preprocessing_function: Option<PreprocessingFunction>,
    statistics: Option<Statistics>,
}

impl Default for ImageDataGenerator {
    /// Keras' defaults: no augmentation, no standardisation.
    fn default() -> Self {
        ImageDataGenerator {
            options: GeneratorOptions::default(),
            fill_mode: FillMode::Nearest,
            ranges: TransformRanges::default(),
            preprocessing_function: None,
            statistics: None,
        }
    }
}

/// Reusable per-thread memory for [`ImageDataGenerator::process_sample`] and
/// [`ImageDataGenerator::apply_transform`]: the resampling output, the
/// resampler's own buffers and the ZCA product. They grow to the largest
/// image seen and are then reused, so the steady state allocates nothing per
/// sample.
#[derive(Debug, Default)]
pub struct Scratch<T> {
    resampled: Vec<T>,
    resample: ResampleScratch,
    zca: Vec<f64>,
}

impl ImageDataGenerator {
    /// A generator with validated options and Keras' flag overrides applied
    /// (zca ⇒ featurewise center, zca ⇒ no featurewise std, featurewise std ⇒
    /// featurewise center, samplewise std ⇒ samplewise center; each logs a
    /// warning through `log`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument),
    /// naming the option, for: an unknown `fill_mode`; `interpolation_order`
    /// above 5; `validation_split` outside (0, 1) other than 0;
    /// `brightness_range` that is not a pair; a `zoom_range` list that is not
    /// a pair; any non-finite number.
    pub fn new(options: GeneratorOptions) -> Result<ImageDataGenerator> {
        let checked = config::validate(options)?;
        Ok(ImageDataGenerator {
            options: checked.options,
            fill_mode: checked.fill_mode,
            ranges: checked.ranges,
            preprocessing_function: None,
            statistics: None,
        })
    }

    /// A generator from a JSON object of Keras keyword arguments
    /// ([`GeneratorOptions::from_json`], then [`ImageDataGenerator::new`]).
    ///
    /// # Errors
    /// As those two functions.
    pub fn from_json(text: &str) -> Result<ImageDataGenerator> {
        ImageDataGenerator::new(GeneratorOptions::from_json(text)?)
    }

    /// [`ImageDataGenerator::from_json`] on the contents of a file.
    ///
    /// # Errors
    /// As [`GeneratorOptions::from_json_file`] and [`ImageDataGenerator::new`].
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<ImageDataGenerator> {
        ImageDataGenerator::new(GeneratorOptions::from_json_file(path)?)
    }

    /// Attaches Keras' `preprocessing_function`, run first in `standardize`.
    pub fn with_preprocessing_function(mut self, f: PreprocessingFunction) -> ImageDataGenerator {
        self.preprocessing_function = Some(f);
        self
    }

    /// Replaces (or with `None` removes) the preprocessing function.
    pub fn set_preprocessing_function(&mut self, f: Option<PreprocessingFunction>) {
        self.preprocessing_function = f;
    }

    /// The preprocessing function, if any.
    pub fn preprocessing_function(&self) -> Option<&PreprocessingFunction> {
        self.preprocessing_function.as_ref()
    }

    /// Attaches fitted statistics (from [`fit`](crate::fit) or
    /// [`Statistics::load`]), used by the featurewise steps of `standardize`.
    pub fn with_statistics(mut self, statistics: Statistics) -> ImageDataGenerator {
        self.statistics = Some(statistics);
        self
    }

    /// Replaces (or with `None` removes) the fitted statistics.
    pub fn set_statistics(&mut self, statistics: Option<Statistics>) {
        self.statistics = statistics;
    }

    /// The fitted statistics, if any (Keras' `mean`, `std`,
    /// `principal_components` attributes).
    pub fn statistics(&self) -> Option<&Statistics> {
        self.statistics.as_ref()
    }

    /// The options in force (after Keras' flag overrides).
    pub fn options(&self) -> &GeneratorOptions {
        &self.options
    }

    /// The parsed `fill_mode`.
    pub fn fill_mode(&self) -> FillMode {
        self.fill_mode
    }

    /// The zoom bounds `[lo, hi]` after Keras' normalisation (a scalar `z`
    /// becomes `[1 - z, 1 + z]`), as Keras' `zoom_range` attribute.
    pub fn zoom_range(&self) -> [f64; 2] {
        self.ranges.zoom
    }

    /// Draws the parameters of one random transform for an image of `shape`,
    /// with Keras' conditions, distributions and draw order (see
    /// [`TransformParams`]); `rng` is usually the sample's own stream.
    pub fn get_random_transform(&self, shape: ImageShape, rng: &mut SampleRng) -> TransformParams {
        self.ranges.sample(shape.height, shape.width, rng)
    }

    /// Applies explicit parameters to one image in place, in Keras' order:
    /// affine resampling (skipped when the geometry is the identity), channel
    /// shift, horizontal flip, vertical flip, brightness.
    ///
    /// Brightness works on the image's real channel axis for channels-first
    /// images too (Keras 1.1.2 reads every image as channels-last there and
    /// fails unless the width is 1, 3 or 4); see [`apply_brightness_shift`].
    ///
    /// # Errors
    /// [`ErrorKind::ShapeMismatch`](crate::ErrorKind::ShapeMismatch) when
    /// `image.len()` differs from `shape.len()`.
    pub fn apply_transform<T: Real>(
        &self,
        image: &mut [T],
        shape: ImageShape,
        params: &TransformParams,
        scratch: &mut Scratch<T>,
    ) -> Result<()> {
        // Checked up front so that no step sees a buffer of the wrong size.
        check_len(image.len(), shape)?;
        let p = params;
        if let Some(m) = keras_affine(
            p.theta,
            p.tx,
            p.ty,
            p.shear,
            p.zx,
            p.zy,
            shape.height,
            shape.width,
        ) {
            let out = &mut scratch.resampled;
            // Every output value is written by the resampler, so the buffer
            // only needs the right length, not zeroing per sample.
            if out.len() != image.len() {
                out.clear();
                out.resize(image.len(), T::zero());
            }
            affine_transform(
                image,
                out,
                shape,
                &m,
                self.options.interpolation_order,
                self.fill_mode,
                self.options.cval,
                &mut scratch.resample,
            );
            image.copy_from_slice(out);
        }
        if let Some(intensity) = p.channel_shift_intensity {
            apply_channel_shift(image, intensity);
        }
        if p.flip_horizontal {
            flip_horizontal(image, shape)?;
        }
        if p.flip_vertical {
            flip_vertical(image, shape)?;
        }
        if let Some(b) = p.brightness {
            apply_brightness_shift(image, shape, b, self.options.brightness_mode)?;
        }
        Ok(())
    }

    /// [`ImageDataGenerator::apply_transform`] with parameters from
    /// [`ImageDataGenerator::get_random_transform`].
    ///
    /// # Errors
    /// As [`ImageDataGenerator::apply_transform`].
    pub fn random_transform<T: Real>(
        &self,
        image: &mut [T],
        shape: ImageShape,
        rng: &mut SampleRng,
        scratch: &mut Scratch<T>,
    ) -> Result<()> {
        let params = self.get_random_transform(shape, rng);
        self.apply_transform(image, shape, &params, scratch)
    }

    /// Keras' `standardize` on one image, in place: the preprocessing
    /// function, then [`standardize`](crate::standardize) with this generator's
    /// options and statistics (rescale, samplewise centre and std, featurewise
    /// centre and std, ZCA).
    ///
    /// # Errors
    /// [`ErrorKind::ShapeMismatch`](crate::ErrorKind::ShapeMismatch) when
    /// `image.len()` differs from `shape.len()`;
    /// [`ErrorKind::MissingStatistics`](crate::ErrorKind::MissingStatistics)
    /// when a featurewise option or ZCA is on without fitted statistics.
    pub fn standardize<T: Real>(&self, image: &mut [T], shape: ImageShape) -> Result<()> {
        self.standardize_into(image, shape, &mut Vec::new())
    }

    fn standardize_into<T: Real>(
        &self,
        image: &mut [T],
        shape: ImageShape,
        zca: &mut Vec<f64>,
    ) -> Result<()> {
        check_len(image.len(), shape)?;
        if let Some(f) = &self.preprocessing_function {
            f.call(image, shape)?;
        }
        standardize_with_scratch(&self.options, self.statistics.as_ref(), image, shape, zca)
    }

    /// Augments and standardises one image in place: `random_transform` with
    /// parameters drawn from `rng`, then `standardize` (what Keras' iterator
    /// does to every sample).
    ///
    /// # Errors
    /// As [`ImageDataGenerator::apply_transform`] and
    /// [`ImageDataGenerator::standardize`].
    pub fn process_sample<T: Real>(
        &self,
        sample: &mut [T],
        shape: ImageShape,
        rng: &mut SampleRng,
        scratch: &mut Scratch<T>,
    ) -> Result<()> {
        self.random_transform(sample, shape, rng, scratch)?;
        self.standardize_into(sample, shape, &mut scratch.zca)
    }
}
