//! `npyflow._native`: the native layer of the `npyflow` Python package.
//!
//! It only converts types and errors and releases the GIL around the work;
//! everything Keras users see (keyword arguments, defaults, argument checks
//! and their wording, return shapes, the iterator protocol) lives in the
//! Python package (`python/npyflow/`), which is the supported interface.
//!
//! - [`arrays`]: `Array`, an `npyflow::NpyArray` opened from a `.npy`, a raw
//!   file region (`numpy.memmap`) or an in-memory ndarray, used in place.
//! - [`generator`]: `Generator`, an `ImageDataGenerator` built from Keras'
//!   keyword arguments as JSON, with single-image operations and `fit`.
//! - [`iterator`]: `Iterator`, a `NumpyArrayIterator` whose batches are handed
//!   to numpy as arrays that own their memory (pooled buffers).
//! - [`errors`]: npyflow's errors as conventional Python exceptions.
//! - [`buffers`]: the only `unsafe` code: numpy arrays over buffers owned by
//!   a Python object, and Rust slices over ndarray memory kept alive by a
//!   reference to the array.

use pyo3::prelude::*;

mod arrays;
mod buffers;
mod errors;
mod fit;
mod generator;
mod iterator;
mod preprocess;

/// The module: classes, the exception type and the version.
#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<arrays::Array>()?;
    m.add_class::<generator::Generator>()?;
    m.add_class::<iterator::Iterator>()?;
    m.add_class::<buffers::BatchMemory>()?;
    m.add(
        "FileChangedError",
        m.py().get_type::<errors::FileChangedError>(),
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
