//! `Generator`: an `ImageDataGenerator` built from Keras' keyword arguments
//! (as the JSON the Rust layer reads), with the single-image operations,
//! the streaming `fit` and the fitted statistics.

use std::sync::Arc;

use npyflow::{
    DataFormat, FitConfig, ImageDataGenerator, ImageShape, Real, SampleRng, Scratch, Statistics,
    Stream, TransformParams,
};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::arrays::Array;
use crate::errors::IntoPy;
use crate::preprocess::{self, Failure};

/// Keras' transform parameters as a tuple: (theta, tx, ty, shear, zx, zy,
/// flip_horizontal, flip_vertical, channel_shift_intensity, brightness).
type ParamsTuple = (
    f64,
    f64,
    f64,
    f64,
    f64,
    f64,
    bool,
    bool,
    Option<f64>,
    Option<f64>,
);

/// A validated generator.
#[pyclass(module = "npyflow._native")]
pub struct Generator {
    pub(crate) inner: ImageDataGenerator,
    pub(crate) failure: Arc<Failure>,
}

impl Generator {
    fn shape_of(&self, dims: &[usize]) -> PyResult<ImageShape> {
        let [a, b, c] = dims else {
            return Err(PyValueError::new_err(format!(
                "expected a 3-D image, got shape {dims:?}"
            )));
        };
        Ok(self.inner.options().data_format.image_shape([*a, *b, *c]))
    }

    /// Runs `op` on a writeable, C-contiguous float32/float64 array in place,
    /// image by image (a 4-D batch is a stack of images), with the GIL released.
    fn in_place(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        op: &(dyn Fn(&ImageDataGenerator, ImageMutAny<'_>, ImageShape) -> npyflow::Result<()>
              + Sync),
    ) -> PyResult<()> {
        if let Ok(a) = x.cast::<PyArrayDyn<f32>>() {
            let shape = a.shape().to_vec();
            let mut rw = a.try_readwrite()?;
            let data = rw.as_slice_mut()?;
            self.each(py, data, &shape, &|g, img, s| {
                op(g, ImageMutAny::F32(img), s)
            })
        } else if let Ok(a) = x.cast::<PyArrayDyn<f64>>() {
            let shape = a.shape().to_vec();
            let mut rw = a.try_readwrite()?;
            let data = rw.as_slice_mut()?;
            self.each(py, data, &shape, &|g, img, s| {
                op(g, ImageMutAny::F64(img), s)
            })
        } else {
            Err(PyTypeError::new_err(
                "internal: expected a float32 or float64 ndarray",
            ))
        }
    }

    fn each<T: Real>(
        &self,
        py: Python<'_>,
        data: &mut [T],
        shape: &[usize],
        op: ImageOp<'_, T>,
    ) -> PyResult<()> {
        let image = self.shape_of(&shape[shape.len().saturating_sub(3)..])?;
        let inner = &self.inner;
        py.detach(|| -> npyflow::Result<()> {
            if image.is_empty() {
                return Ok(());
            }
            for img in data.chunks_exact_mut(image.len()) {
                op(inner, img, image)?;
            }
            Ok(())
        })
        .py_err()?;
        self.failure.check()
    }
}

/// An operation on one image of `T` (a generator method with its arguments).
type ImageOp<'a, T> =
    &'a (dyn Fn(&ImageDataGenerator, &mut [T], ImageShape) -> npyflow::Result<()> + Sync);

/// The fitted statistics as flat lists: (mean, std, zca row-major).
type StatsLists = (Option<Vec<f64>>, Option<Vec<f64>>, Option<Vec<f64>>);

/// A mutable image of either float type.
pub enum ImageMutAny<'a> {
    /// float32.
    F32(&'a mut [f32]),
    /// float64.
    F64(&'a mut [f64]),
}

fn params(t: ParamsTuple) -> TransformParams {
    TransformParams {
        theta: t.0,
        tx: t.1,
        ty: t.2,
        shear: t.3,
        zx: t.4,
        zy: t.5,
        flip_horizontal: t.6,
        flip_vertical: t.7,
        channel_shift_intensity: t.8,
        brightness: t.9,
    }
}

#[pymethods]
impl Generator {
    /// A generator from a JSON object of Keras keyword arguments.
    #[new]
    fn new(options_json: &str) -> PyResult<Generator> {
        Ok(Generator {
            inner: ImageDataGenerator::from_json(options_json).py_err()?,
            failure: Arc::new(Failure::default()),
        })
    }

    /// Attaches (or with None removes) Keras' `preprocessing_function`.
    fn set_preprocessing_function(&mut self, f: Option<Py<PyAny>>) {
        let f = f.map(|f| preprocess::wrap(f, Arc::clone(&self.failure)));
        self.inner.set_preprocessing_function(f);
    }

    /// The options in force (after Keras' flag overrides), as JSON.
    fn options_json(&self) -> PyResult<String> {
        serde_json::to_string(self.inner.options())
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Keras' `zoom_range` attribute, `[lo, hi]`.
    #[getter]
    fn zoom_range(&self) -> [f64; 2] {
        self.inner.zoom_range()
    }

    /// Draws the transform of one image of shape `dims` (in the generator's
    /// data format) from `seed`'s stream.
    fn get_random_transform(&self, dims: Vec<usize>, seed: u64) -> PyResult<ParamsTuple> {
        let shape = self.shape_of(&dims)?;
        let mut rng = SampleRng::new(seed, Stream::Augment, 0, 0);
        let p = self.inner.get_random_transform(shape, &mut rng);
        Ok((
            p.theta,
            p.tx,
            p.ty,
            p.shear,
            p.zx,
            p.zy,
            p.flip_horizontal,
            p.flip_vertical,
            p.channel_shift_intensity,
            p.brightness,
        ))
    }

    /// Keras' `apply_transform`, in place on each image of `x`.
    fn apply_transform(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        transform: ParamsTuple,
    ) -> PyResult<()> {
        let p = params(transform);
        self.in_place(py, x, &|g, img, shape| match img {
            ImageMutAny::F32(v) => g.apply_transform(v, shape, &p, &mut Scratch::default()),
            ImageMutAny::F64(v) => g.apply_transform(v, shape, &p, &mut Scratch::default()),
        })
    }

    /// Keras' `standardize`, in place on each image of `x`.
    fn standardize(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        self.in_place(py, x, &|g, img, shape| match img {
            ImageMutAny::F32(v) => g.standardize(v, shape),
            ImageMutAny::F64(v) => g.standardize(v, shape),
        })
    }

    /// The streaming `fit`; Ctrl-C raises KeyboardInterrupt promptly.
    #[pyo3(signature = (x, augment, rounds, seed, chunk_bytes=None))]
    fn fit(
        &mut self,
        py: Python<'_>,
        x: &Array,
        augment: bool,
        rounds: usize,
        seed: u64,
        chunk_bytes: Option<usize>,
    ) -> PyResult<()> {
        let mut config = FitConfig {
            augment,
            rounds,
            seed,
            ..FitConfig::default()
        };
        if let Some(c) = chunk_bytes {
            config.chunk_bytes = c;
        }
        crate::fit::fit(py, &mut self.inner, &x.inner, &config)
    }

    /// The fitted statistics as (mean, std, zca): flat float64 lists (ZCA
    /// row-major) or None each; None when nothing was fitted.
    fn statistics(&self) -> Option<StatsLists> {
        let s = self.inner.statistics()?;
        Some((
            s.mean().map(<[f64]>::to_vec),
            s.std().map(<[f64]>::to_vec),
            s.zca().map(|z| z.as_slice().to_vec()),
        ))
    }

    /// Replaces the statistics (Keras lets users assign `mean`, `std` and
    /// `principal_components`); all None removes them.
    #[pyo3(signature = (mean=None, std=None, zca=None))]
    fn set_statistics(
        &mut self,
        mean: Option<Vec<f64>>,
        std: Option<Vec<f64>>,
        zca: Option<(usize, Vec<f64>)>,
    ) -> PyResult<()> {
        if mean.is_none() && std.is_none() && zca.is_none() {
            self.inner.set_statistics(None);
            return Ok(());
        }
        let format: DataFormat = self.inner.options().data_format;
        let mut s = Statistics::new(format);
        if let Some(m) = mean {
            s = s.with_mean(m).py_err()?;
        }
        if let Some(v) = std {
            s = s.with_std(v).py_err()?;
        }
        if let Some((dim, data)) = zca {
            s = s
                .with_zca(npyflow::ZcaMatrix::from_row_major(dim, data).py_err()?)
                .py_err()?;
        }
        self.inner.set_statistics(Some(s));
        Ok(())
    }
}
