//! `Iterator`: a `NumpyArrayIterator` whose batches become numpy arrays
//! that own their memory.
//!
//! Each batch is swapped out of the iterator into a `Batch` from the
//! iterator's pool (`next_into`: no copy) and handed to numpy behind one
//! `BatchMemory` base object; a batch the user keeps is never written again,
//! and it returns to the pool when numpy drops the last of its arrays. All
//! work runs with the GIL released.

use std::path::PathBuf;
use std::sync::Arc;

use npyflow::npy::ElemType;
use npyflow::{Batch, NumpyArrayIterator, Order, OutputDtype, Position, SaveFormat, Subset};
use numpy::PyArrayDescr;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
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

/// `(images, y, sample_weight, [aux...])` as numpy arrays over `batch`,
/// which numpy then owns (through one `BatchMemory`).
fn to_python<'py>(
    py: Python<'py>,
    batch: Batch,
    pool: &Arc<Pool>,
) -> PyResult<Bound<'py, PyTuple>> {
    let images = (
        match batch.dtype() {
            OutputDtype::F64 => ElemType::F64,
            _ => ElemType::F32,
        },
        batch.shape().to_vec(),
    );
    let rows = |r: &npyflow::Rows| (r.elem(), r.shape());
    let y = batch.y().map(rows);
    let w = batch.sample_weight().map(rows);
    let aux: Vec<_> = batch.aux().iter().map(rows).collect();
    let memory = Bound::new(py, BatchMemory::new(batch, pool))?;
    let mut index = 0;
    let mut array = |p: &(ElemType, Vec<usize>)| {
        let a = array_over(&memory, index, descr(py, p.0), &p.1);
        index += 1;
        a
    };
    let images = array(&images)?;
    let y = y.as_ref().map(&mut array).transpose()?;
    let w = w.as_ref().map(&mut array).transpose()?;
    let aux = aux.iter().map(&mut array).collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(
        py,
        [
            images,
            y.unwrap_or_else(|| py.None().into_bound(py)),
            w.unwrap_or_else(|| py.None().into_bound(py)),
            PyList::new(py, aux)?.into_any(),
        ],
    )
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
#[pyclass(module = "npyflow._native")]
pub struct Iterator {
    it: Option<NumpyArrayIterator>,
    pool: Arc<Pool>,
    failure: Arc<Failure>,
}

impl Iterator {
    fn it(&mut self) -> &mut NumpyArrayIterator {
        // `abandon` is only called on objects the Python layer then discards.
        self.it
            .as_mut()
            .expect("the iterator lives until dropped or abandoned")
    }

    /// Runs `f` with the GIL released on a batch from the pool; `f` swaps
    /// the finished batch in (true) or leaves it (false: none).
    fn deliver<'py>(
        &mut self,
        py: Python<'py>,
        f: impl FnOnce(&mut NumpyArrayIterator, &mut Batch) -> npyflow::Result<bool> + Send,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let pool = Arc::clone(&self.pool);
        let it = self.it();
        let result = py.detach(|| {
            let mut batch = pool.take(it);
            let got = f(it, &mut batch);
            match got {
                Ok(true) => Ok(Some(batch)),
                other => {
                    pool_put_back(&pool, batch);
                    other.map(|_| None)
                }
            }
        });
        // An exception of the preprocessing function explains a failed batch.
        self.failure.check()?;
        match result.py_err()? {
            Some(batch) => to_python(py, batch, &pool).map(Some),
            None => Ok(None),
        }
    }
}

/// A batch taken from the pool but not handed out goes back.
fn pool_put_back(pool: &Arc<Pool>, batch: Batch) {
    drop(BatchMemory::new(batch, pool));
}

impl Drop for Iterator {
    fn drop(&mut self) {
        // The prefetch workers are joined when the iterator drops; a worker
        // running a Python preprocessing function waits for the GIL, so the
        // GIL must not be held while they are joined.
        if let Some(it) = self.it.take() {
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
            it: Some(it),
            pool: Arc::new(Pool::default()),
            failure: Arc::clone(&generator.failure),
        })
    }

    /// Forgets the Rust iterator without dropping it: in a forked child its
    /// worker threads do not exist, and dropping it would join them.
    fn abandon(&mut self) {
        if let Some(it) = self.it.take() {
            std::mem::forget(it);
        }
    }

    /// The next batch, crossing epochs (Keras' `next()`).
    fn next_batch<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
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
    fn next_in_epoch<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.deliver(py, |it, batch| it.next_into(batch))
    }

    /// Batch `index` of the current epoch (Keras' `__getitem__`).
    fn get<'py>(&mut self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyTuple>> {
        let b = self.deliver(py, |it, batch| it.get_into(index, batch).map(|()| true))?;
        Ok(b.expect("get always yields"))
    }

    fn __len__(&mut self) -> usize {
        self.it().len()
    }

    /// Samples per epoch.
    #[getter]
    fn num_samples(&mut self) -> usize {
        self.it().num_samples()
    }

    /// The seed in use.
    #[getter]
    fn seed(&mut self) -> u64 {
        self.it().seed()
    }

    /// Threads assembling a batch.
    #[getter]
    fn threads(&mut self) -> usize {
        self.it().threads()
    }

    /// Batches prepared ahead.
    #[getter]
    fn prefetch(&mut self) -> usize {
        self.it().prefetch_depth()
    }

    /// The access order as its serde form (`"shuffle"`, `{"blocks": {...}}`).
    #[getter]
    fn order(&mut self) -> PyResult<String> {
        serde_json::to_string(&self.it().order()).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// `(epoch, batch)`: the next batch to be produced.
    fn position(&mut self) -> (u64, usize) {
        let p = self.it().position();
        (p.epoch, p.batch)
    }

    /// Moves to `(epoch, batch)`.
    fn set_position(&mut self, py: Python<'_>, epoch: u64, batch: usize) {
        let it = self.it();
        py.detach(|| it.set_position(Position { epoch, batch }));
    }

    /// Keras' `reset`.
    fn reset(&mut self, py: Python<'_>) {
        let it = self.it();
        py.detach(|| it.reset());
    }

    /// Keras' `on_epoch_end`.
    fn on_epoch_end(&mut self, py: Python<'_>) {
        let it = self.it();
        py.detach(|| it.on_epoch_end());
    }

    /// The telemetry of the last complete epoch (or, with `current`, of the
    /// epoch in progress) as a dict, or None.
    #[pyo3(signature = (current=false))]
    fn telemetry<'py>(
        &mut self,
        py: Python<'py>,
        current: bool,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let it = self.it();
        let t = if current {
            py.detach(|| it.current_epoch_telemetry())
        } else {
            it.last_epoch_telemetry().cloned()
        };
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
