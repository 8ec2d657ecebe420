//! The only `unsafe` code of the bindings, both directions of sharing memory
//! with numpy without a copy:
//!
//! - [`NdarrayBytes`]: the bytes of a C-contiguous ndarray as a Rust slice,
//!   kept alive by a reference to the array (input used in place).
//! - [`BatchMemory`] + [`array_over`]: numpy arrays over buffers that a
//!   Python object owns; when numpy drops the last array, the object drops
//!   and its buffers go back to the iterator's pool (batches that stay
//!   valid while the user holds them, with no allocation per batch).

use std::sync::{Arc, Mutex};

use npyflow::{Batch, NumpyArrayIterator, OutputDtype, OutputElement, Rows};
use numpy::npyffi::{self, npy_intp, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// The data of a C-contiguous ndarray, borrowed for as long as this value
/// lives (it holds a reference to the array, so numpy never frees or
/// reallocates the data: `resize` refuses arrays with other references).
pub struct NdarrayBytes {
    _array: Py<PyAny>,
    ptr: usize,
    len: usize,
}

impl NdarrayBytes {
    /// Borrows `array`'s data.
    ///
    /// # Errors
    /// `TypeError` when the array is not C-contiguous (the Python layer
    /// makes one contiguous copy first, with a warning).
    pub fn new(array: &Bound<'_, PyUntypedArray>) -> PyResult<NdarrayBytes> {
        if !array.is_c_contiguous() {
            return Err(PyTypeError::new_err(
                "npyflow uses in-memory arrays in place and needs them C-contiguous",
            ));
        }
        let len = array.shape().iter().product::<usize>() * array.dtype().itemsize();
        // numpy's documented way to the data address, without reaching
        // into the object's struct.
        let ptr: usize = array
            .getattr("__array_interface__")?
            .get_item("data")?
            .get_item(0)?
            .extract()?;
        Ok(NdarrayBytes {
            _array: array.clone().into_any().unbind(),
            ptr,
            len,
        })
    }
}

impl AsRef<[u8]> for NdarrayBytes {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr..ptr + len` is the data of a C-contiguous array (one
        // block of `len` bytes) that `_array` keeps alive and in place. The
        // bytes may be written by Python code while npyflow reads them; the
        // package documents that arrays must not be modified while they are
        // iterated (numpy gives no way to lock an array against writes).
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

/// Finished batches numpy has released, recycled for the next ones.
#[derive(Default)]
pub struct Pool {
    free: Mutex<Vec<Batch>>,
}

/// Batches kept for reuse at most (a training loop holds one or two; more
/// would only pin memory).
const POOL_KEEP: usize = 16;

impl Pool {
    /// A released batch, or a new one shaped for `it`.
    pub fn take(&self, it: &NumpyArrayIterator) -> Batch {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        free.unwrap_or_else(|| it.new_batch())
    }

    /// Keeps `batch` for a later [`take`](Pool::take).
    pub fn put(&self, batch: Batch) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < POOL_KEEP {
            free.push(batch);
        }
    }
}

/// The memory of one batch as numpy sees it: the base object of every array
/// of the batch. Dropped by Python when the last of them is; the batch then
/// returns to the pool, to be filled again.
#[pyclass(frozen, module = "npyflow._native")]
pub struct BatchMemory {
    batch: Option<Batch>,
    /// Address and size in bytes of each part: the images, then the y,
    /// sample-weight and auxiliary rows present, in that order.
    parts: Vec<(usize, usize)>,
    pool: std::sync::Weak<Pool>,
}

impl BatchMemory {
    /// Owns `batch` (just filled by the iterator) and returns it to `pool` when dropped.
    pub fn new(mut batch: Batch, pool: &Arc<Pool>) -> BatchMemory {
        // The addresses come from `&mut` borrows: numpy's arrays write
        // through them for as long as they live.
        fn images<T: OutputElement>(batch: &mut Batch) -> Option<(usize, usize)> {
            let mut v = batch.images_mut::<T>().ok()?;
            Some((v.as_mut_ptr() as usize, v.len() * size_of::<T>()))
        }
        let images = match batch.dtype() {
            OutputDtype::F32 => images::<f32>(&mut batch),
            OutputDtype::F64 => images::<f64>(&mut batch),
            OutputDtype::F16 => images::<half::f16>(&mut batch),
            OutputDtype::BF16 => images::<half::bf16>(&mut batch),
        }
        .unwrap_or((0, 0));
        let mut parts = Vec::with_capacity(3 + batch.aux().len());
        parts.push(images);
        let mut part = |r: &mut Rows| {
            let bytes = r.bytes_mut();
            parts.push((bytes.as_mut_ptr() as usize, bytes.len()));
        };
        if let Some(r) = batch.y_mut() {
            part(r);
        }
        if let Some(r) = batch.sample_weight_mut() {
            part(r);
        }
        batch.aux_mut().iter_mut().for_each(part);
        BatchMemory {
            batch: Some(batch),
            parts,
            pool: Arc::downgrade(pool),
        }
    }
}

impl Drop for BatchMemory {
    fn drop(&mut self) {
        if let (Some(pool), Some(batch)) = (self.pool.upgrade(), self.batch.take()) {
            pool.put(batch);
        }
    }
}

/// A writeable, C-contiguous numpy array of `descr` and `shape` over buffer
/// `index` of `owner`, whose base object is `owner`.
///
/// # Errors
/// When the buffer is smaller than the array, or numpy fails to allocate
/// the array object.
pub fn array_over<'py>(
    owner: &Bound<'py, BatchMemory>,
    index: usize,
    descr: Bound<'py, PyArrayDescr>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let (data, len) = owner.get().parts[index];
    let bytes = shape.iter().product::<usize>() * descr.itemsize();
    if bytes > len || (data == 0 && bytes > 0) {
        return Err(PyTypeError::new_err(format!(
            "internal: buffer of {len} bytes for an array of {bytes}"
        )));
    }
    let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
    // SAFETY: PyArray_NewFromDescr steals the reference to `descr` (hence
    // `into_dtype_ptr`) and builds a writeable C-contiguous array of `dims`
    // over `data`, which holds at least `bytes` bytes (checked above),
    // aligned for its element type (the batch keeps images as f32/f64/f16/
    // bf16 vectors and rows in u64 words). `data` was taken from a `&mut` borrow
    // of the batch's heap block (`Batch::images_mut`, `Rows::bytes_mut`) when
    // `owner` took the batch; no Rust code reads, writes or frees that block
    // again before `owner` is dropped (frozen class; the batch only moves
    // out in `Drop`, which leaves its heap blocks in place), so numpy's
    // reads and writes are the only accesses. `owner` stays alive as long
    // as the array: PyArray_SetBaseObject makes it the base object, stealing
    // the new reference created by `into_ptr`. A null result is an error set
    // by numpy, which `from_owned_ptr_or_err` turns into a PyErr.
    unsafe {
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            descr.into_dtype_ptr(),
            dims.len() as std::os::raw::c_int,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            data as *mut std::os::raw::c_void,
            npyffi::NPY_ARRAY_CARRAY,
            std::ptr::null_mut(),
        );
        let array = Bound::from_owned_ptr_or_err(py, ptr)?;
        if PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            ptr as *mut npyffi::PyArrayObject,
            owner.clone().into_any().into_ptr(),
        ) != 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(array)
    }
}
