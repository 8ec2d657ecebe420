//! `Iterator`: a `NumpyArrayIterator` whose batches become numpy arrays
//! that own their memory.
//!
//! Each batch is swapped out of the iterator into a `Batch` from the
//! iterator's pool (`next_into`: no copy) and handed to numpy behind one
//! `BatchMemory` base object; a batch the user keeps is never written again,
//! and it returns to the pool when numpy drops the last of its arrays. All
//! work runs with the GIL released.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use npyflow::npy::ElemType;
use npyflow::{
    Batch, IteratorState, NumpyArrayIterator, Order, OutputDtype, Position, SaveFormat, Subset,
};
use numpy::PyArrayDescr;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::arrays::Array;
use crate::buffers::{array_over, BatchMemory, Pool};
use crate::errors::IntoPy;
use crate::generator::Generator;
use crate::preprocess::Failure;

fn descr(py: Python<'_>, elem: ElemType) -> Bound<'_, PyArrayDescr> {
    use numpy::dtype;
    match elem {
        ElemType::Bool => dtype::<bool>(py),
        ElemType::U8 => dtype::<u8>(py),
        ElemType::I8 => dtype::<i8>(py),
        ElemType::U16 => dtype::<u16>(py),
        ElemType::I16 => dtype::<i16>(py),
        ElemType::U32 => dtype::<u32>(py),
        ElemType::I32 => dtype::<i32>(py),
        ElemType::U64 => dtype::<u64>(py),
        ElemType::I64 => dtype::<i64>(py),
        ElemType::F16 => dtype::<half::f16>(py),
        ElemType::F32 => dtype::<f32>(py),
        ElemType::F64 => dtype::<f64>(py),
    }
}

/// `ml_dtypes.bfloat16`'s numpy dtype (numpy has none of its own), looked
/// up once. The Python layer checks that `ml_dtypes` imports before it
/// builds a bfloat16 iterator.
fn bfloat16(py: Python<'_>) -> PyResult<Bound<'_, PyArrayDescr>> {
    static BFLOAT16: PyOnceLock<Py<PyArrayDescr>> = PyOnceLock::new();
    let d = BFLOAT16.get_or_try_init(py, || -> PyResult<_> {
        let scalar = py.import("ml_dtypes")?.getattr("bfloat16")?;
        Ok(PyArrayDescr::new(py, scalar)?.unbind())
    })?;
    Ok(d.bind(py).clone())
}

/// `batch` as Keras returns it: `x`, `(x, y)` or `(x, y, sample_weight)`,
/// with `x` the images or, with auxiliary arrays, `[images, aux...]`. The
/// arrays are numpy's over `batch`, which numpy then owns (through one
/// `BatchMemory`). Built here rather than in Python: a batch is a hot path.
fn to_python<'py>(py: Python<'py>, batch: Batch, pool: &Arc<Pool>) -> PyResult<Bound<'py, PyAny>> {
    let images_descr = match batch.dtype() {
        OutputDtype::F32 => descr(py, ElemType::F32),
        OutputDtype::F64 => descr(py, ElemType::F64),
        OutputDtype::F16 => descr(py, ElemType::F16),
        OutputDtype::BF16 => bfloat16(py)?,
    };
    let images_shape = batch.shape();
    let rows = |r: &npyflow::Rows| (r.elem(), r.shape());
    let y = batch.y().map(rows);
    let w = batch.sample_weight().map(rows);
    let aux: Vec<_> = batch.aux().iter().map(rows).collect();
    let memory = Bound::new(py, BatchMemory::new(batch, pool))?;
    let images = array_over(&memory, 0, images_descr, &images_shape)?;
    // The parts after the images, in `BatchMemory`'s order.
    let mut next = 1;
    let mut array = |p: &(ElemType, Vec<usize>)| {
        let index = next;
        next += 1;
        array_over(&memory, index, descr(py, p.0), &p.1)
    };
    let y = y.as_ref().map(&mut array).transpose()?;
    let w = w.as_ref().map(&mut array).transpose()?;
    let x = if aux.is_empty() {
        images
    } else {
        let mut parts = Vec::with_capacity(1 + aux.len());
        parts.push(images);
        for a in &aux {
            parts.push(array(a)?);
        }
        PyList::new(py, parts)?.into_any()
    };
    Ok(match (y, w) {
        (None, _) => x,
        (Some(y), None) => PyTuple::new(py, [x, y])?.into_any(),
        (Some(y), Some(w)) => PyTuple::new(py, [x, y, w])?.into_any(),
    })
}

/// The iterator's options, a dict from the Python layer (which applies
/// Keras' defaults and checks); `batch_size` and `order` are required,
/// other missing keys take their defaults.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct Config {
    batch_size: usize,
    order: String,
    #[pyo3(default)]
    block_rows: Option<usize>,
    #[pyo3(default = 4)]
    window: usize,
    #[pyo3(default)]
    seed: Option<u64>,
    #[pyo3(default)]
    subset: Option<String>,
    #[pyo3(default)]
    ignore_class_split: bool,
    #[pyo3(default)]
    dtype: Option<String>,
    #[pyo3(default)]
    drop_last: bool,
    #[pyo3(default)]
    shard: Option<(usize, usize)>,
    #[pyo3(default)]
    save_to_dir: Option<PathBuf>,
    #[pyo3(default)]
    save_prefix: String,
    #[pyo3(default = String::from("png"))]
    save_format: String,
    #[pyo3(default)]
    threads: usize,
    #[pyo3(default)]
    prefetch: Option<usize>,
    #[pyo3(default)]
    cache_budget: Option<u64>,
}

/// A `NumpyArrayIterator` with its pool of batch buffers.
///
/// Safe to call from several Python threads: calls take turns on a lock
/// (as Keras' iterator does), taken with the GIL released, since the thread
/// holding it may be waiting for a batch without the GIL and needs the GIL
/// back to finish. One lock here rather than one in the Python layer: a
/// batch is a hot path.
#[pyclass(frozen, module = "npyflow._native")]
pub struct Iterator {
    /// None once abandoned (in a forked child).
    it: Mutex<Option<NumpyArrayIterator>>,
    pool: Arc<Pool>,
    failure: Arc<Failure>,
}

impl Iterator {
    /// Runs `f` on the iterator with the GIL released, holding the lock.
    ///
    /// # Errors
    /// `RuntimeError` when the iterator was abandoned (the Python layer
    /// discards abandoned objects, so only a caller that kept one sees it).
    fn with_it<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut NumpyArrayIterator) -> R + Send,
    ) -> PyResult<R> {
        py.detach(|| {
            // A poisoned lock only means a panic (a bug) inside a call; the
            // iterator itself is still whole.
            let mut it = self.it.lock().unwrap_or_else(|e| e.into_inner());
            it.as_mut().map(f)
        })
        .ok_or_else(|| PyRuntimeError::new_err("npyflow: this iterator was abandoned after fork"))
    }

    /// Runs `f` with the GIL released on a batch from the pool; `f` swaps
    /// the finished batch in (true) or leaves it (false: none).
    fn deliver<'py>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&mut NumpyArrayIterator, &mut Batch) -> npyflow::Result<bool> + Send,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let pool = &self.pool;
        let result = self.with_it(py, |it| {
            let mut batch = pool.take(it);
            match f(it, &mut batch) {
                Ok(true) => Ok(Some(batch)),
                other => {
                    pool.put(batch);
                    other.map(|_| None)
                }
            }
        })?;
        // An exception of the preprocessing function explains a failed batch.
        self.failure.check()?;
        match result.py_err()? {
            Some(batch) => to_python(py, batch, pool).map(Some),
            None => Ok(None),
        }
    }
}

impl Drop for Iterator {
    fn drop(&mut self) {
        // The prefetch workers are joined when the iterator drops; a worker
        // running a Python preprocessing function waits for the GIL, so the
        // GIL must not be held while they are joined. A lock that is held
        // here, where no call can be running, was held by another thread
        // when this process was forked: the iterator's threads are the
        // parent's, so it is left alone (never joined).
        let it = match self.it.try_lock() {
            Ok(mut it) => it.take(),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().take(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(it) = it {
            Python::attach(|py| py.detach(move || drop(it)));
        }
    }
}

#[pymethods]
impl Iterator {
    #[new]
    #[pyo3(signature = (x, generator, y, sample_weight, aux, config))]
    fn new(
        py: Python<'_>,
        x: &Array,
        generator: &Generator,
        y: Option<PyRef<'_, Array>>,
        sample_weight: Option<PyRef<'_, Array>>,
        aux: Vec<PyRef<'_, Array>>,
        config: Config,
    ) -> PyResult<Iterator> {
        let Config {
            batch_size,
            order,
            block_rows,
            window,
            seed,
            subset,
            ignore_class_split,
            dtype,
            drop_last,
            shard,
            save_to_dir,
            save_prefix,
            save_format,
            threads,
            prefetch,
            cache_budget,
        } = config;
        let order = match order.as_str() {
            "sequential" => Order::Sequential,
            "shuffle" => Order::Shuffle,
            "blocks" => match block_rows {
                Some(block_rows) => Order::Blocks { block_rows, window },
                // As the tool: windows of a quarter of the budget, at most 64 MiB.
                None => Order::blocks_for_budget(
                    (cache_budget.unwrap_or(256 << 20) / 4).min(64 << 20),
                    x.inner.row_bytes(),
                    window,
                ),
            },
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid `order` = {other:?}: expected 'sequential', 'shuffle' or 'blocks'"
                )))
            }
        };
        let mut b = NumpyArrayIterator::builder(x.inner.clone())
            .generator(generator.inner.clone())
            .batch_size(batch_size)
            .order(order)
            .ignore_class_split(ignore_class_split)
            .drop_last(drop_last)
            .threads(threads);
        if let Some(y) = y {
            b = b.y(y.inner.clone());
        }
        if let Some(w) = sample_weight {
            b = b.sample_weight(w.inner.clone());
        }
        for a in aux {
            b = b.aux(a.inner.clone());
        }
        if let Some(s) = seed {
            b = b.seed(s);
        }
        if let Some(s) = subset {
            b = b.subset(s.parse::<Subset>().py_err()?);
        }
        if let Some(d) = dtype.as_deref() {
            b = b.dtype(d.parse().py_err()?);
        }
        if let Some((i, n)) = shard {
            b = b.shard(i, n);
        }
        if let Some(dir) = save_to_dir {
            let format: SaveFormat = save_format.parse().py_err()?;
            b = b.save_to_dir(dir, save_prefix, format);
        }
        if let Some(p) = prefetch {
            b = b.prefetch(p);
        }
        if let Some(c) = cache_budget {
            b = b.cache_budget(c);
        }
        let it = py.detach(|| b.build()).py_err()?;
        Ok(Iterator {
            it: Mutex::new(Some(it)),
            pool: Arc::new(Pool::default()),
            failure: Arc::clone(&generator.failure),
        })
    }

    /// Forgets the Rust iterator without dropping it, and returns the
    /// position it was at: in a forked child its worker threads do not
    /// exist, and dropping it would join them.
    ///
    /// # Errors
    /// `RuntimeError` when another thread was inside a call at the fork
    /// (the lock stays held in the child): the object must be kept, never
    /// used again.
    fn abandon(&self) -> PyResult<(u64, usize)> {
        let mut guard = match self.it.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "npyflow: the iterator was in use by another thread at fork",
                ))
            }
        };
        let position = guard.as_ref().map_or((0, 0), |it| {
            let p = it.position();
            (p.epoch, p.batch)
        });
        if let Some(it) = guard.take() {
            std::mem::forget(it);
        }
        Ok(position)
    }

    /// The next batch, crossing epochs (Keras' `next()`).
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // Crossing into the next epoch when this one has ended; an iterator
        // with no samples yields empty batches, as Keras does.
        let b = self.deliver(py, |it, batch| {
            Ok(it.next_into(batch)? || it.next_into(batch)? || {
                *batch = it.new_batch();
                true
            })
        })?;
        Ok(b.expect("next_batch always yields"))
    }

    /// The next batch of the current epoch, or None at its end.
    fn next_in_epoch<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.deliver(py, |it, batch| it.next_into(batch))
    }

    /// Batch `index` of the current epoch (Keras' `__getitem__`).
    fn get<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyAny>> {
        let b = self.deliver(py, |it, batch| it.get_into(index, batch).map(|()| true))?;
        Ok(b.expect("get always yields"))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with_it(py, |it| it.len())
    }

    /// Samples per epoch.
    #[getter]
    fn num_samples(&self, py: Python<'_>) -> PyResult<usize> {
        self.with_it(py, |it| it.num_samples())
    }

    /// The seed in use.
    #[getter]
    fn seed(&self, py: Python<'_>) -> PyResult<u64> {
        self.with_it(py, |it| it.seed())
    }

    /// Threads assembling a batch.
    #[getter]
    fn threads(&self, py: Python<'_>) -> PyResult<usize> {
        self.with_it(py, |it| it.threads())
    }

    /// Batches prepared ahead.
    #[getter]
    fn prefetch(&self, py: Python<'_>) -> PyResult<usize> {
        self.with_it(py, |it| it.prefetch_depth())
    }

    /// The access order as its serde form (`"shuffle"`, `{"blocks": {...}}`).
    #[getter]
    fn order(&self, py: Python<'_>) -> PyResult<String> {
        self.with_it(py, |it| serde_json::to_string(&it.order()))?
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// `(epoch, batch)`: the next batch to be produced.
    fn position(&self, py: Python<'_>) -> PyResult<(u64, usize)> {
        self.with_it(py, |it| {
            let p = it.position();
            (p.epoch, p.batch)
        })
    }

    /// Moves to `(epoch, batch)`.
    fn set_position(&self, py: Python<'_>, epoch: u64, batch: usize) -> PyResult<()> {
        self.with_it(py, |it| it.set_position(Position { epoch, batch }))
    }

    /// The state as JSON: after the batches taken in sequence, or, with
    /// `batches`, after those of the current epoch (indices, any order).
    #[pyo3(signature = (batches=None))]
    fn state(&self, py: Python<'_>, batches: Option<Vec<usize>>) -> PyResult<String> {
        let state = self.with_it(py, |it| match batches {
            Some(b) => it.state_after_batches(&b),
            None => it.state(),
        })?;
        serde_json::to_string(&state).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Continues where the state (JSON, from `state`) stood.
    fn load_state(&self, py: Python<'_>, state: &str) -> PyResult<()> {
        let state: IteratorState = serde_json::from_str(state)
            .map_err(|e| PyValueError::new_err(format!("invalid iterator state: {e}")))?;
        self.with_it(py, |it| it.load_state(&state))?.py_err()
    }

    /// Keras' `reset`.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.with_it(py, |it| it.reset())
    }

    /// Keras' `on_epoch_end`.
    fn on_epoch_end(&self, py: Python<'_>) -> PyResult<()> {
        self.with_it(py, |it| it.on_epoch_end())
    }

    /// The telemetry of the last complete epoch (or, with `current`, of the
    /// epoch in progress) as a dict, or None.
    #[pyo3(signature = (current=false))]
    fn telemetry<'py>(
        &self,
        py: Python<'py>,
        current: bool,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let t = self.with_it(py, |it| {
            if current {
                it.current_epoch_telemetry()
            } else {
                it.last_epoch_telemetry().cloned()
            }
        })?;
        let Some(t) = t else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("samples", t.samples)?;
        d.set_item("batches", t.batches)?;
        d.set_item("wall_seconds", t.wall.as_secs_f64())?;
        d.set_item("throughput", t.throughput)?;
        d.set_item(
            "time_to_first_batch_seconds",
            t.time_to_first_batch.as_secs_f64(),
        )?;
        d.set_item("bytes_read", t.bytes_read)?;
        d.set_item("rchar", t.rchar)?;
        d.set_item("major_faults", t.major_faults)?;
        d.set_item("residency_before", t.residency_before.clone())?;
        d.set_item("residency_after", t.residency_after.clone())?;
        d.set_item("peak_anon_bytes", t.peak_anon_bytes)?;
        Ok(Some(d))
    }
}
