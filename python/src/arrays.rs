//! `Array`: an `npyflow::NpyArray` opened from a `.npy` file, a raw file
//! region (what `numpy.memmap` views) or an in-memory ndarray used in place.

use std::path::PathBuf;

use npyflow::npy::Dtype;
use npyflow::NpyArray;
use numpy::{PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::buffers::NdarrayBytes;
use crate::errors::IntoPy;

/// One input array (images, labels, weights or an auxiliary array).
#[pyclass(frozen, module = "npyflow._native")]
pub struct Array {
    pub(crate) inner: NpyArray,
    kind: &'static str,
}

fn dtype_of(descr: &str) -> PyResult<Dtype> {
    Dtype::parse_descr(descr).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "unsupported dtype {descr} (npyflow reads bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float16, float32, float64)"
        ))
    })
}

#[pymethods]
impl Array {
    /// Opens a `.npy` file, memory-mapped.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Array> {
        let inner = py.detach(|| NpyArray::open(&path)).py_err()?;
        Ok(Array { inner, kind: "npy" })
    }

    /// `shape` elements of numpy dtype `descr` (e.g. `'<f4'`) at byte
    /// `offset` of a headerless file, C order, memory-mapped.
    #[staticmethod]
    fn raw(
        py: Python<'_>,
        path: PathBuf,
        offset: u64,
        descr: &str,
        shape: Vec<usize>,
    ) -> PyResult<Array> {
        let dtype = dtype_of(descr)?;
        let inner = py
            .detach(|| NpyArray::from_raw_file(&path, offset, dtype, &shape))
            .py_err()?;
        Ok(Array { inner, kind: "raw" })
    }

    /// A C-contiguous ndarray, used in place (kept alive by this object).
    #[staticmethod]
    fn memory(array: &Bound<'_, PyUntypedArray>, name: String) -> PyResult<Array> {
        let descr: String = array.dtype().getattr("str")?.extract()?;
        let dtype = dtype_of(&descr)?;
        let shape = array.shape().to_vec();
        let bytes = NdarrayBytes::new(array)?;
        let inner = NpyArray::from_memory(Box::new(bytes), name, dtype, &shape).py_err()?;
        Ok(Array {
            inner,
            kind: "memory",
        })
    }

    /// The shape.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.inner.shape().to_vec()
    }

    /// The numpy dtype string (`'<f4'`, `'|u1'`...).
    #[getter]
    fn dtype(&self) -> String {
        self.inner.dtype().descr()
    }

    /// The file (or the name given to an in-memory array).
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    /// Byte offset of the data in the file.
    #[getter]
    fn data_offset(&self) -> u64 {
        self.inner.data_offset()
    }

    /// `"npy"`, `"raw"` or `"memory"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Array({}, shape={:?}, dtype='{}', kind={})",
            self.inner.name(),
            self.inner.shape(),
            self.inner.dtype().descr(),
            self.kind
        )
    }
}
