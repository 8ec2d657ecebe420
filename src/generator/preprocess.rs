//! Keras' `preprocessing_function` as a Rust closure.

use std::fmt;
use std::sync::Arc;

use crate::{Error, ImageShape, OutputDtype, Real, Result};

/// One image handed to a [`PreprocessingFunction`], in the element type the
/// generator is running in (the iterator's `dtype`).
#[derive(Debug)]
pub enum ImageMut<'a> {
    /// A `float32` image.
    F32(&'a mut [f32]),
    /// A `float64` image.
    F64(&'a mut [f64]),
}

type Callback = dyn Fn(ImageMut<'_>, ImageShape) + Send + Sync;

/// Keras' `preprocessing_function`: runs first in `standardize`, on one
/// augmented image, in place.
///
/// Rust closures cannot be generic, so the function receives an
/// [`ImageMut`] and matches on the element type; [`PreprocessingFunction::elementwise`]
/// covers the common value-by-value case without that. The function must keep
/// the image's length and layout (Keras requires the same shape back). It is
/// shared between the worker threads, hence `Send + Sync`.
///
/// # Examples
/// ```
/// use npyflow::{GeneratorOptions, ImageDataGenerator, ImageMut, PreprocessingFunction};
///
/// // Keras' `preprocess_input` "tf" mode: scale 0..255 to -1..1.
/// let tf_mode = PreprocessingFunction::elementwise(|v| v / 127.5 - 1.0);
/// // A whole-image function: invert around the image's own maximum.
/// let invert = PreprocessingFunction::new(|image, _shape| match image {
///     ImageMut::F32(x) => {
///         let m = x.iter().copied().fold(f32::MIN, f32::max);
///         x.iter_mut().for_each(|v| *v = m - *v);
///     }
///     ImageMut::F64(x) => {
///         let m = x.iter().copied().fold(f64::MIN, f64::max);
///         x.iter_mut().for_each(|v| *v = m - *v);
///     }
/// });
/// let generator = ImageDataGenerator::new(GeneratorOptions::default())?
///     .with_preprocessing_function(tf_mode);
/// # let _ = invert;
/// # let _ = generator;
/// # Ok::<(), npyflow::Error>(())
/// ```
#[derive(Clone)]
pub struct PreprocessingFunction(Arc<Callback>);

impl PreprocessingFunction {
    /// Wraps a function of one whole image.
    pub fn new<F>(f: F) -> PreprocessingFunction
    where
        F: Fn(ImageMut<'_>, ImageShape) + Send + Sync + 'static,
    {
        PreprocessingFunction(Arc::new(f))
    }

    /// Wraps a function of one value, computed in `f64` and rounded back to
    /// the image's element type.
    pub fn elementwise<F>(f: F) -> PreprocessingFunction
    where
        F: Fn(f64) -> f64 + Send + Sync + 'static,
    {
        PreprocessingFunction::new(move |image, _| match image {
            ImageMut::F32(x) => x.iter_mut().for_each(|v| *v = f(*v as f64) as f32),
            ImageMut::F64(x) => x.iter_mut().for_each(|v| *v = f(*v)),
        })
    }

    /// Runs the function on `image`.
    ///
    /// # Errors
    /// Only if `T` is not laid out as the `f32`/`f64` its [`OutputElement::DTYPE`](crate::OutputElement::DTYPE)
    /// names, which the crate's two `Real` types always are.
    pub fn call<T: Real>(&self, image: &mut [T], shape: ImageShape) -> Result<()> {
        // `T` is f32 or f64; the checked cast recovers the concrete slice
        // type without `unsafe` and without copying.
        let view = match T::DTYPE {
            OutputDtype::F32 => bytemuck::try_cast_slice_mut::<T, f32>(image).map(ImageMut::F32),
            OutputDtype::F64 => bytemuck::try_cast_slice_mut::<T, f64>(image).map(ImageMut::F64),
            // No `Real` type is a half type (they are computed in f32).
            OutputDtype::F16 | OutputDtype::BF16 => Err(bytemuck::PodCastError::SizeMismatch),
        };
        let view = view.map_err(|e| {
            Error::invalid("preprocessing_function", T::DTYPE.size(), e.to_string())
        })?;
        (self.0)(view, shape);
        Ok(())
    }
}

impl fmt::Debug for PreprocessingFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreprocessingFunction(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches_on_the_element_type() {
        let f = PreprocessingFunction::new(|image, shape| match image {
            ImageMut::F32(x) => x[0] = shape.height as f32,
            ImageMut::F64(x) => x[0] = -(shape.width as f64),
        });
        let mut a = [0.0f32; 6];
        let mut b = [0.0f64; 6];
        f.call(&mut a, ImageShape::hwc(2, 3, 1)).unwrap();
        f.call(&mut b, ImageShape::hwc(2, 3, 1)).unwrap();
        assert_eq!((a[0], b[0]), (2.0, -3.0));
        let g = PreprocessingFunction::elementwise(|v| v * 2.0 + 1.0);
        g.call(&mut a, ImageShape::hwc(2, 3, 1)).unwrap();
        assert_eq!(a, [5.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(format!("{g:?}"), "PreprocessingFunction(..)");
    }
}
