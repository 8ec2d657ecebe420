//! Keras' `preprocessing_function` as a Python callable.
//!
//! npyflow's worker threads call it with the GIL taken, one image at a time,
//! so the workers are serialised on the GIL for that step (the rest of the
//! pipeline stays parallel). The function gets a fresh numpy copy of the
//! image (it may keep it) and returns an array of the same size, converted
//! back to the iterator's dtype. A function that raises stops the batch: the
//! exception is kept and raised by the call that produced the batch.

use std::sync::{Arc, Mutex};

use npyflow::{ImageMut, ImageShape, PreprocessingFunction};
use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The first exception a preprocessing function raised, until collected.
#[derive(Default)]
pub struct Failure(Mutex<Option<PyErr>>);

impl Failure {
    /// Raises (and clears) the kept exception, if any.
    pub fn check(&self) -> PyResult<()> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn failed(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    fn keep(&self, e: PyErr) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    }
}

/// Wraps `f` as npyflow's preprocessing function; its exceptions go to `failure`.
pub fn wrap(f: Py<PyAny>, failure: Arc<Failure>) -> PreprocessingFunction {
    PreprocessingFunction::new(move |image, shape| {
        if failure.failed() {
            return;
        }
        // Not attached during interpreter shutdown: the image stays as it is
        // (nothing can observe it any more).
        let result = Python::try_attach(|py| match image {
            ImageMut::F32(x) => call(py, &f, x, shape),
            ImageMut::F64(x) => call(py, &f, x, shape),
        });
        if let Some(Err(e)) = result {
            failure.keep(e);
        }
    })
}

fn call<T>(py: Python<'_>, f: &Py<PyAny>, image: &mut [T], shape: ImageShape) -> PyResult<()>
where
    T: numpy::Element + Copy,
{
    let arr = PyArray1::from_slice(py, image).reshape(shape.dims())?;
    let out = f.call1(py, (arr,))?;
    let dtype = numpy::dtype::<T>(py);
    let np = py.import("numpy")?;
    let out = np.call_method1("ascontiguousarray", (out, dtype))?;
    let out = out.cast_into::<numpy::PyArrayDyn<T>>()?;
    if out.len() != image.len() {
        return Err(PyValueError::new_err(format!(
            "preprocessing_function returned an array of shape {:?} for an image of shape {:?}; it must keep the image's size",
            out.shape(),
            shape.dims()
        )));
    }
    let ro = out.readonly();
    image.copy_from_slice(ro.as_slice()?);
    Ok(())
}
