//! `ImageDataGenerator`: validated options, random transform parameters and
//! the per-sample pipeline (affine ▶ channel shift ▶ flips ▶ brightness ▶
//! standardize), in Keras 1.1.2's order and numerics, or Keras 3's legacy
//! generator's ([`Compat::Keras3`]).

mod config;
mod json;
mod preprocess;
pub(crate) mod standardize;
pub(crate) mod statistics;

use std::path::Path;

pub use config::{Compat, GeneratorOptions, ShiftRange, ZoomRange};
pub use preprocess::{ImageMut, PreprocessingFunction};

use crate::augment::{
    apply_brightness_shift, apply_channel_shift, check_len, flip_horizontal, flip_vertical,
    keras3_affine, keras3_brightness, keras_affine, Affine2, BrightnessMode, FillMode, Fused,
    Interpolation, Prefetch, ResampleJob, ResampleScratch, TransformParams, TransformRanges,
};
use crate::generator::standardize::{rescale_factor, standardize_with_scratch, Steps};
use crate::generator::statistics::Statistics;
use crate::layout::{ImageShape, Placement};
use crate::rng::SampleRng;
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

/// Reads a sample into a buffer (see
/// [`ImageDataGenerator::process_sample_from`]) where the [`Placement`] puts
/// it (the whole buffer, or the rows inside the resampler's copy), each
/// value multiplied by the factor when one is given (`rescale` riding on
/// the read, as `standardize` would apply it: `v · T(factor)`), issuing
/// the lines of the [`Prefetch`] when one is given a few at a time as it
/// converts the row (all of them by its end).
pub(crate) type Read<'a, T> =
    &'a mut dyn FnMut(&mut [T], Placement, Option<f64>, Option<&Prefetch<'_>>) -> Result<()>;

/// A sample not read yet, as the pipeline's gather hands it to
/// [`ImageDataGenerator::process_sample_from`]: how to read it, and the next
/// sample's first lines, to bring into the CPU caches while this one is
/// processed.
pub(crate) struct Unread<'a, T> {
    /// Reads the sample.
    pub read: Read<'a, T>,
    /// The next sample's lines. Handed to the read, which issues them while
    /// it converts the row, or, when the sample is read into the
    /// resampler's edge copy, issued a few per output row while it is
    /// resampled (see [`Prefetch`]). The caller issues whatever is left
    /// after the sample.
    pub next: &'a Prefetch<'a>,
}

/// Reusable per-thread memory for [`ImageDataGenerator::process_sample`] and
/// [`ImageDataGenerator::apply_transform`]: the image the resampler reads or
/// writes beside the sample, the resampler's own buffers and the ZCA product. They grow to the largest
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
    /// naming the option, for: `interpolation_order` above 5;
    /// `validation_split` outside (0, 1) other than 0; any non-finite number.
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

    /// Whether each sample is only converted: no random transform drawn,
    /// no preprocessing function, no ZCA whitening (rescaling and the
    /// sample- and featurewise steps are one pass over the values).
    /// A thread converts such samples faster than a fast drive delivers
    /// them (3.5 GB/s of 32×32×3 `u8` here), which the iterator's default
    /// thread count takes into account.
    pub(crate) fn converts_only(&self) -> bool {
        self.ranges == TransformRanges::default()
            && self.preprocessing_function.is_none()
            && !Steps::from_options(&self.options).zca
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
    /// shift, horizontal flip, vertical flip, brightness. With
    /// [`Compat::Keras3`] the geometry is [`keras3_affine`](crate::augment::keras3_affine)'s
    /// (Keras 3's pivot and axis convention) and the brightness Keras 3's
    /// (stretched only outside 0..255, then back to the image's range).
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
        self.transform_sample(image, shape, params, scratch, None, None)
            .map(|_| ())
    }

    /// [`ImageDataGenerator::apply_transform`], with `rescale` (if any) folded
    /// into the resampler's writes when it can be: returns whether it was, in
    /// which case the caller must not rescale again. Only for a caller that
    /// rescales right after (see [`ImageDataGenerator::fusable_rescale`]).
    fn transform_sample<T: Real>(
        &self,
        image: &mut [T],
        shape: ImageShape,
        params: &TransformParams,
        scratch: &mut Scratch<T>,
        rescale: Option<f64>,
        unread: Option<Unread<'_, T>>,
    ) -> Result<bool> {
        // Checked up front so that no step sees a buffer of the wrong size.
        check_len(image.len(), shape)?;
        let p = params;
        let mut done = Fused {
            flips: false,
            scale: false,
        };
        if let Some(m) = self.affine(p, shape) {
            // Keras flips after the channel shift, but a flip only moves values
            // and the shift only changes them (by a whole-image rule), so the
            // two commute and the flips can ride on the resampler's writes.
            let job = ResampleJob {
                shape,
                m,
                interp: Interpolation {
                    order: self.options.interpolation_order,
                    mode: self.fill_mode,
                    cval: self.options.cval,
                },
                flips: [p.flip_vertical, p.flip_horizontal],
                scale: rescale,
            };
            done = resample(&job, image, scratch, unread)?;
        } else if let Some(Unread { read, next }) = unread {
            // Nothing moves values between the read and `standardize` but
            // the flips, which only move them: the rescale can ride along.
            read(
                image,
                Placement::contiguous(image.len()),
                rescale,
                Some(next),
            )?;
            done.scale = true;
        }
        if let Some(intensity) = p.channel_shift_intensity {
            apply_channel_shift(image, intensity);
        }
        if p.flip_horizontal && !done.flips {
            flip_horizontal(image, shape)?;
        }
        if p.flip_vertical && !done.flips {
            flip_vertical(image, shape)?;
        }
        if let Some(b) = p.brightness {
            match (self.options.compat, self.options.brightness_mode) {
                (Compat::Keras3, BrightnessMode::Keras) => keras3_brightness(image, shape, b),
                (_, mode) => apply_brightness_shift(image, shape, b, mode)?,
            }
        }
        Ok(rescale.is_some() && done.scale)
    }

    /// The resampling matrix of `params` for an image of `shape`, in the
    /// numerics of the `compat` in force; `None` for the identity.
    fn affine(&self, params: &TransformParams, shape: ImageShape) -> Option<Affine2> {
        match self.options.compat {
            Compat::KerasPreprocessing => keras_affine(params, shape.height, shape.width),
            Compat::Keras3 => keras3_affine(params, shape.height, shape.width),
        }
    }

    /// `rescale`, when it is the whole of `standardize` and nothing runs
    /// between the resampling and it for a sample drawn with `params`: no
    /// preprocessing function, no channel shift or brightness, no sample- or
    /// featurewise step, no ZCA. Multiplying each value as it is written is
    /// then the same arithmetic as the separate pass (`f32(v) · f32(rescale)`).
    fn fusable_rescale(&self, params: &TransformParams) -> Option<f64> {
        let steps = Steps::from_options(&self.options);
        let other = steps.samplewise_center
            || steps.samplewise_std
            || steps.featurewise_center
            || steps.featurewise_std
            || steps.zca;
        let between = self.preprocessing_function.is_some()
            || params.channel_shift_intensity.is_some()
            || params.brightness.is_some();
        if other || between {
            None
        } else {
            rescale_factor(&self.options)
        }
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

    /// Keras' `standardize` on one image, in place, in Keras 1.1.2's order,
    /// each step only when its option is on: the preprocessing function;
    /// `rescale` (`x *= rescale`); samplewise centre (the mean of all
    /// elements) and std (the population std of all elements, plus `1e-6`);
    /// featurewise centre and std (the fitted per-channel mean and std, plus
    /// `1e-6`); ZCA (flattened in memory order, right-multiplied by the
    /// fitted `D × D` matrix). Every step works in `T`, as numpy does on a
    /// `float32` array.
    ///
    /// ```
    /// use npyflow::{DataFormat, GeneratorOptions, ImageDataGenerator, ImageShape, Statistics};
    ///
    /// let generator = ImageDataGenerator::new(GeneratorOptions {
    ///     rescale: Some(0.5),
    ///     featurewise_center: true,
    ///     ..Default::default()
    /// })?
    /// .with_statistics(Statistics::new(DataFormat::ChannelsLast).with_mean(vec![1.0])?);
    /// let mut image = [2.0f32, 4.0, 6.0, 8.0];
    /// generator.standardize(&mut image, ImageShape::hwc(2, 2, 1))?;
    /// assert_eq!(image, [0.0, 1.0, 2.0, 3.0]);
    /// # Ok::<(), npyflow::Error>(())
    /// ```
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
        self.process(sample, shape, rng, scratch, None)
    }

    /// [`ImageDataGenerator::process_sample`] on a sample not read yet:
    /// `unread.read` fills a buffer of `shape.len()` elements with it (say
    /// [`NpyArray::read_sample_into`](crate::NpyArray::read_sample_into)).
    /// The result is the same, bit for bit, but when the sample is resampled
    /// it is read into the scratch buffer (or the resampler's edge copy) and
    /// resampled straight into `sample`, which saves copying the image once.
    ///
    /// # Errors
    /// As [`ImageDataGenerator::process_sample`], and the read's.
    // The pipeline's gather.
    pub(crate) fn process_sample_from<T: Real>(
        &self,
        sample: &mut [T],
        shape: ImageShape,
        rng: &mut SampleRng,
        scratch: &mut Scratch<T>,
        unread: Unread<'_, T>,
    ) -> Result<()> {
        self.process(sample, shape, rng, scratch, Some(unread))
    }

    fn process<T: Real>(
        &self,
        sample: &mut [T],
        shape: ImageShape,
        rng: &mut SampleRng,
        scratch: &mut Scratch<T>,
        unread: Option<Unread<'_, T>>,
    ) -> Result<()> {
        let params = self.get_random_transform(shape, rng);
        let rescale = self.fusable_rescale(&params);
        if self.transform_sample(sample, shape, &params, scratch, rescale, unread)? {
            // The rescale was the whole of `standardize`, and it is done.
            return Ok(());
        }
        self.standardize_into(sample, shape, &mut scratch.zca)
    }
}

/// The resampling step of [`ImageDataGenerator::transform_sample`]:
/// `job` on the sample, which is in `image` or still to be read.
///
/// A sample still to be read that the resampler would copy first anyway
/// (see [`ResampleScratch::read_buffer`]) is read straight into that copy,
/// and the resampling, which has a loop over rows to spread them over,
/// issues the next sample's prefetches. Otherwise resampling needs the
/// source and the result apart: a sample still to be read goes to the
/// scratch image (its prefetches issued first) and is resampled into
/// `image`; one already in `image` is resampled into the scratch image and
/// copied back. Returns which of the job's folded steps are done.
fn resample<T: Real>(
    job: &ResampleJob,
    image: &mut [T],
    scratch: &mut Scratch<T>,
    unread: Option<Unread<'_, T>>,
) -> Result<Fused> {
    if let Some(Unread { read, next }) = unread {
        if let Some((copy, place)) = scratch.resample.read_buffer(job) {
            read(copy, place, None, None)?;
            return Ok(scratch.resample.transform_read(job, image, next));
        }
        let buf = resized(&mut scratch.resampled, image.len());
        read(buf, Placement::contiguous(image.len()), None, Some(next))?;
        return Ok(scratch.resample.transform(job, buf, image));
    }
    let buf = resized(&mut scratch.resampled, image.len());
    let done = scratch.resample.transform(job, image, buf);
    image.copy_from_slice(buf);
    Ok(done)
}

/// `buf` with `len` elements. Every value is written by the resampler (or
/// by the read), so it needs the right length, not zeroing per sample.
fn resized<T: Real>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() != len {
        buf.clear();
        buf.resize(len, T::zero());
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use crate::{ShiftRange, ZoomRange};

    #[test]
    fn only_conversions_without_transforms_a_function_or_zca() {
        let make = |o: GeneratorOptions| ImageDataGenerator::new(o).unwrap();
        let light = GeneratorOptions {
            rescale: Some(1.0 / 255.0),
            featurewise_center: true,
            featurewise_std_normalization: true,
            samplewise_center: true,
            dtype: crate::OutputDtype::F16,
            ..GeneratorOptions::default()
        };
        assert!(make(GeneratorOptions::default()).converts_only());
        assert!(make(light.clone()).converts_only());
        let heavy = [
            GeneratorOptions {
                rotation_range: 1.0,
                ..light.clone()
            },
            GeneratorOptions {
                width_shift_range: ShiftRange::Float(0.1),
                ..light.clone()
            },
            GeneratorOptions {
                zoom_range: ZoomRange::Scalar(0.1),
                ..light.clone()
            },
            GeneratorOptions {
                horizontal_flip: true,
                ..light.clone()
            },
            GeneratorOptions {
                channel_shift_range: 5.0,
                ..light.clone()
            },
            GeneratorOptions {
                brightness_range: Some([0.9, 1.1]),
                ..light.clone()
            },
            GeneratorOptions {
                zca_whitening: true,
                ..GeneratorOptions::default()
            },
        ];
        for o in heavy {
            assert!(!make(o.clone()).converts_only(), "{o:?}");
        }
        let f = PreprocessingFunction::elementwise(|v| v + 1.0);
        assert!(!make(light).with_preprocessing_function(f).converts_only());
    }

    /// The augmentation of the speed benchmarks: rotation 20, shifts 0.1,
    /// shear 10, zoom 0.1, horizontal flip, rescale 1/255.
    fn keras_augmentation() -> GeneratorOptions {
        GeneratorOptions {
            rotation_range: 20.0,
            width_shift_range: ShiftRange::Float(0.1),
            height_shift_range: ShiftRange::Float(0.1),
            shear_range: 10.0,
            zoom_range: ZoomRange::Scalar(0.1),
            horizontal_flip: true,
            rescale: Some(1.0 / 255.0),
            ..GeneratorOptions::default()
        }
    }

    /// `process_sample_from` over `image` (read by a reader that honours the
    /// placement it is given) against `process_sample` on it: equal to the
    /// bit for 8 samples. Returns how many reads went into the resampler's
    /// copy rather than a whole buffer.
    fn read_equals_in_hand<T: Real>(
        options: GeneratorOptions,
        image: &[T],
        shape: ImageShape,
    ) -> usize {
        let generator = ImageDataGenerator::new(options).unwrap();
        let mut scratch = Scratch::default();
        let mut copies = 0;
        for index in 0..8 {
            let rng = || SampleRng::new(1, Stream::Augment, 0, index);
            let mut a = image.to_vec();
            generator
                .process_sample(&mut a, shape, &mut rng(), &mut scratch)
                .unwrap();
            let mut b = vec![T::nan(); image.len()];
            let mut read =
                |buf: &mut [T], place: Placement, scale: Option<f64>, _: Option<&Prefetch<'_>>| {
                    copies += usize::from(place != Placement::contiguous(image.len()));
                    let s = T::from_f64_lossy(scale.unwrap_or(1.0));
                    for (run, src) in place.runs(buf, image.len()).zip(image.chunks(place.run)) {
                        run.iter_mut().zip(src).for_each(|(b, &v)| *b = v * s);
                    }
                    Ok(())
                };
            let unread = Unread {
                read: &mut read,
                next: &Prefetch::default(),
            };
            generator
                .process_sample_from(&mut b, shape, &mut rng(), &mut scratch, unread)
                .unwrap();
            let same = a
                .iter()
                .zip(&b)
                .all(|(x, y)| x.to_f64().unwrap().to_bits() == y.to_f64().unwrap().to_bits());
            assert!(same, "{shape:?} sample {index}");
        }
        copies
    }

    /// The next sample's lines (`Unread::next`): the edge-replicated copy's
    /// resampling issues them after the image is read into the copy, all
    /// of them by its last row; every other path hands them to its read,
    /// none issued yet.
    #[test]
    fn the_next_rows_lines_are_issued_by_the_copy_or_during_the_read() {
        let next_row = vec![0u8; 3072];
        let augment = |fill: &str| GeneratorOptions {
            fill_mode: fill.parse().unwrap(),
            ..keras_augmentation()
        };
        let rescale_only = GeneratorOptions {
            rescale: Some(0.5),
            ..GeneratorOptions::default()
        };
        let small = ImageShape::hwc(32, 32, 3);
        for (options, shape, by_the_copy) in [
            (augment("nearest"), small, true),
            (augment("reflect"), small, false),
            (augment("nearest"), ImageShape::hwc(128, 128, 3), false),
            (rescale_only, small, false),
        ] {
            let what = format!("{:?} {shape:?}", options.fill_mode);
            let generator = ImageDataGenerator::new(options).unwrap();
            let mut scratch = Scratch::<f32>::default();
            let mut out = vec![0f32; shape.len()];
            let next = Prefetch::new(&next_row);
            let mut left_at_read = None;
            let mut handed = None;
            let mut read = |buf: &mut [f32], place: Placement, _, pace: Option<&Prefetch<'_>>| {
                left_at_read = Some(next.lines_left());
                handed = Some(pace.is_some());
                // What the pipeline's read does, a few lines per part.
                pace.inspect(|p| p.issue_all());
                place.runs(buf, shape.len()).for_each(|run| run.fill(1.0));
                Ok(())
            };
            let unread = Unread {
                read: &mut read,
                next: &next,
            };
            let mut rng = SampleRng::new(1, Stream::Augment, 0, 0);
            generator
                .process_sample_from(&mut out, shape, &mut rng, &mut scratch, unread)
                .unwrap();
            assert_eq!(left_at_read, Some(3072 / 64), "{what}");
            assert_eq!(handed, Some(!by_the_copy), "{what}");
            assert_eq!(next.lines_left(), 0, "{what}");
        }
    }

    /// Reading through the generator gives what processing the image in
    /// hand gives: without resampling (the rescale riding on the read),
    /// through the scratch image, and straight into the bilinear kernel's
    /// edge-replicated copy (f32, `nearest`, small images), which the
    /// Keras-like draws here take every time.
    #[test]
    fn reading_through_the_generator_equals_processing_the_image() {
        let flips = GeneratorOptions {
            horizontal_flip: true,
            rescale: Some(0.5),
            ..GeneratorOptions::default()
        };
        let shape = ImageShape::hwc(3, 4, 3);
        let image: Vec<f64> = (0..shape.len()).map(|i| i as f64).collect();
        assert_eq!(read_equals_in_hand(flips, &image, shape), 0);

        let augment = |fill_mode: &str| GeneratorOptions {
            fill_mode: fill_mode.parse().unwrap(),
            ..keras_augmentation()
        };
        for shape in [
            ImageShape::hwc(32, 32, 3),
            ImageShape::hwc(9, 7, 1),
            ImageShape::hwc(12, 10, 4),
        ] {
            let image: Vec<f32> = (0..shape.len()).map(|i| (i * 37 % 256) as f32).collect();
            assert_eq!(
                read_equals_in_hand(augment("nearest"), &image, shape),
                8,
                "{shape:?}"
            );
            assert_eq!(
                read_equals_in_hand(augment("reflect"), &image, shape),
                0,
                "{shape:?}"
            );
        }
        // Too large for the copy, and channels-first: the scratch image.
        for shape in [ImageShape::hwc(128, 128, 3), ImageShape::chw(3, 9, 8)] {
            let image: Vec<f32> = (0..shape.len()).map(|i| (i * 37 % 256) as f32).collect();
            assert_eq!(
                read_equals_in_hand(augment("nearest"), &image, shape),
                0,
                "{shape:?}"
            );
        }
    }

    /// Folding `rescale` (and the flips) into the resampler gives, to the
    /// bit, what the separate passes give, in every layout and order.
    #[test]
    fn fused_rescale_and_flips_equal_the_separate_passes() {
        for (order, fill) in [(1, "nearest"), (1, "constant"), (0, "reflect"), (3, "wrap")] {
            let generator = ImageDataGenerator::new(GeneratorOptions {
                vertical_flip: true,
                interpolation_order: order,
                fill_mode: fill.parse().unwrap(),
                ..keras_augmentation()
            })
            .unwrap();
            for shape in [
                ImageShape::hwc(12, 9, 3),
                ImageShape::hwc(7, 8, 1),
                ImageShape::chw(3, 6, 5),
            ] {
                let image: Vec<f32> = (0..shape.len()).map(|i| ((i * 37) % 256) as f32).collect();
                let mut scratch = Scratch::default();
                for index in 0..24 {
                    let rng = || SampleRng::new(5, Stream::Augment, 0, index);
                    let mut fused = image.clone();
                    generator
                        .process_sample(&mut fused, shape, &mut rng(), &mut scratch)
                        .unwrap();
                    let mut separate = image.clone();
                    let params = generator.get_random_transform(shape, &mut rng());
                    if let Some(m) = keras_affine(&params, shape.height, shape.width) {
                        let mut out = vec![0.0; separate.len()];
                        let mode = generator.fill_mode();
                        crate::augment::affine_transform(
                            &separate,
                            &mut out,
                            shape,
                            &m,
                            Interpolation {
                                order,
                                mode,
                                cval: 0.0,
                            },
                            &mut ResampleScratch::default(),
                        );
                        separate = out;
                    }
                    if params.flip_horizontal {
                        flip_horizontal(&mut separate, shape).unwrap();
                    }
                    if params.flip_vertical {
                        flip_vertical(&mut separate, shape).unwrap();
                    }
                    generator.standardize(&mut separate, shape).unwrap();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&fused),
                        bits(&separate),
                        "{fill} {order} {shape:?} {index}"
                    );
                }
            }
        }
    }
}
