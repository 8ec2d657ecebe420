//! `NumpyArrayIterator`: Keras' iterator over memory-mapped arrays.

pub(crate) mod batch;
pub(crate) mod order;
pub(crate) mod pipeline;
pub(crate) mod save;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cache::telemetry::{residencies, EpochTelemetry, TelemetryRecorder};
use crate::cache::{advise_for_order, AccessPattern, ColdRows, PageBudget, NEARLY_CACHED};
use crate::generator::ImageDataGenerator;
use crate::iterator::batch::Batch;
use crate::iterator::order::{subset_range, Order, Shard, Subset};
use crate::iterator::pipeline::{Context, Producer};
use crate::iterator::save::{SaveConfig, SaveFormat};
use crate::npy::NpyArray;
use crate::rng::fresh_seed;
use crate::{DataFormat, Error, ErrorKind, OutputDtype, Result};

/// File extensions Keras' directory iterators accept (`white_list_formats`),
/// used by the image-folder converter. Lowercase; compare case-insensitively.
pub const WHITE_LIST_FORMATS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff"];

/// Where an iterator stands: the epoch and the next batch within it.
/// Save it with serde and restore it with [`NumpyArrayIterator::set_position`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The epoch (0-based).
    pub epoch: u64,
    /// The next batch to be produced in that epoch.
    pub batch: usize,
}

/// Buffer memory the default prefetch depth may take (see
/// [`IteratorBuilder::prefetch`]).
pub const AUTO_PREFETCH_BYTES: u64 = 32 << 20;

/// Builds a [`NumpyArrayIterator`]; every setter documents its default.
#[derive(Clone, Debug)]
pub struct IteratorBuilder {
    x: NpyArray,
    y: Option<NpyArray>,
    sample_weight: Option<NpyArray>,
    aux: Vec<NpyArray>,
    generator: Option<Arc<ImageDataGenerator>>,
    batch_size: usize,
    order: Order,
    seed: Option<u64>,
    data_format: Option<DataFormat>,
    subset: Subset,
    ignore_class_split: bool,
    dtype: Option<OutputDtype>,
    drop_last: bool,
    shard: Shard,
    save: Option<SaveConfig>,
    threads: usize,
    prefetch: Option<usize>,
    cache_budget: Option<u64>,
}

impl IteratorBuilder {
    /// A builder over images `x` (rank 4) with Keras' `NumpyArrayIterator` defaults.
    pub fn new(x: NpyArray) -> IteratorBuilder {
        IteratorBuilder {
            x,
            y: None,
            sample_weight: None,
            aux: Vec::new(),
            generator: None,
            batch_size: 32,
            order: Order::Sequential,
            seed: None,
            data_format: None,
            subset: Subset::All,
            ignore_class_split: false,
            dtype: None,
            drop_last: false,
            shard: Shard::ALL,
            save: None,
            threads: 0,
            prefetch: None,
            cache_budget: None,
        }
    }

    /// Targets, any dtype and rank, one row per sample. By default, none.
    pub fn y(mut self, y: NpyArray) -> Self {
        self.y = Some(y);
        self
    }

    /// Per-sample weights. By default, none. Sliced by `subset` and kept even
    /// without `y` (two deliberate fixes of Keras).
    pub fn sample_weight(mut self, w: NpyArray) -> Self {
        self.sample_weight = Some(w);
        self
    }

    /// An auxiliary array passed through untouched (Keras' `(x, misc)` form);
    /// call repeatedly for several. By default, none.
    pub fn aux(mut self, a: NpyArray) -> Self {
        self.aux.push(a);
        self
    }

    /// The generator that augments and standardises samples. By default, one
    /// with Keras' defaults (no augmentation).
    pub fn generator(mut self, g: impl Into<Arc<ImageDataGenerator>>) -> Self {
        self.generator = Some(g.into());
        self
    }

    /// Samples per batch. By default, 32. Zero is an error at `build`.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Keras' `shuffle`: [`Order::Shuffle`] or [`Order::Sequential`]. By default, false.
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.order = Order::from_shuffle(shuffle);
        self
    }

    /// The access order (including the page-aware block shuffle). By default, sequential.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// The seed of every random choice. By default, one is drawn at
    /// construction; read it back with [`NumpyArrayIterator::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Channel axis position. By default, the generator's.
    pub fn data_format(mut self, f: DataFormat) -> Self {
        self.data_format = Some(f);
        self
    }

    /// Training or validation part of the generator's `validation_split`. By default, all.
    pub fn subset(mut self, s: Subset) -> Self {
        self.subset = s;
        self
    }

    /// Skip the check that both subsets hold the same classes (Keras 3). By default, false.
    pub fn ignore_class_split(mut self, yes: bool) -> Self {
        self.ignore_class_split = yes;
        self
    }

    /// Output dtype of the images. By default, the generator's (float32).
    pub fn dtype(mut self, d: OutputDtype) -> Self {
        self.dtype = Some(d);
        self
    }

    /// Drop the last, shorter batch of each epoch. By default, false (Keras keeps it).
    pub fn drop_last(mut self, yes: bool) -> Self {
        self.drop_last = yes;
        self
    }

    /// Iterate only part `index` of `count` of every epoch. By default, everything.
    ///
    /// # Errors (at `build`)
    /// When `count == 0` or `index >= count`.
    pub fn shard(mut self, index: usize, count: usize) -> Self {
        self.shard = Shard { index, count };
        self
    }

    /// Write each produced image to `dir` as `{prefix}_{index}_{hash}.{format}`.
    /// By default, nothing is written.
    pub fn save_to_dir(
        mut self,
        dir: impl Into<PathBuf>,
        prefix: impl Into<String>,
        format: SaveFormat,
    ) -> Self {
        self.save = Some(SaveConfig {
            dir: dir.into(),
            prefix: prefix.into(),
            format,
        });
        self
    }

    /// Threads assembling each batch; 0 = all cores. By default, 0. Output
    /// is identical for any value.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Batches prepared ahead in the background; 0 = none (each batch is
    /// assembled when asked for, over all threads). By default, as many as
    /// fit in [`AUTO_PREFETCH_BYTES`] of buffers, from 2 up to 4 per thread:
    /// small batches need several in flight so that the threads never wait
    /// for the caller to hand a buffer back (with 2, 32×32 images reached
    /// 1.4M samples/s; with 8, 2M), large ones are fine with 2.
    pub fn prefetch(mut self, depth: usize) -> Self {
        self.prefetch = Some(depth);
        self
    }

    /// Keep at most this many bytes of the files in the page cache by
    /// dropping pages behind the reader. By default, no limit.
    pub fn cache_budget(mut self, bytes: u64) -> Self {
        self.cache_budget = Some(bytes);
        self
    }

    /// Validates everything (Keras' checks, in Keras' order) and builds the iterator.
    ///
    /// # Errors
    /// Length mismatches of `y`, `sample_weight` or auxiliary arrays; rank of
    /// `x` other than 4; `batch_size == 0`; a bad shard; a class set that
    /// differs between the subsets; an unwritable `save_to_dir`.
    pub fn build(self) -> Result<NumpyArrayIterator> {
        let generator = self.generator.unwrap_or_default();
        let n_all = self.x.len();
        for a in &self.aux {
            if a.len() != n_all {
                return Err(ErrorKind::ShapeMismatch {
                    what: format!(
                        "All of the arrays in `x` should have the same length. Found a pair with: len(x[0]) = {n_all}, len({}) = {}",
                        a.name(),
                        a.len()
                    ),
                    expected: vec![n_all],
                    found: vec![a.len()],
                }
                .into());
            }
        }
        if let Some(y) = &self.y {
            if y.len() != n_all {
                return Err(ErrorKind::ShapeMismatch {
                    what: format!(
                        "`x` (images tensor) and `y` (labels) should have the same length. Found: x.shape = {:?}, y.shape = {:?}",
                        self.x.shape(),
                        y.shape()
                    ),
                    expected: vec![n_all],
                    found: vec![y.len()],
                }
                .into());
            }
        }
        if let Some(w) = &self.sample_weight {
            if w.len() != n_all {
                return Err(ErrorKind::ShapeMismatch {
                    what: format!(
                        "`x` (images tensor) and `sample_weight` should have the same length. Found: x.shape = {:?}, sample_weight.shape = {:?}",
                        self.x.shape(),
                        w.shape()
                    ),
                    expected: vec![n_all],
                    found: vec![w.len()],
                }
                .into());
            }
        }
        let split = generator.options().validation_split;
        let (base, n) = subset_range(n_all, split, self.subset);
        if self.subset != Subset::All && !self.ignore_class_split {
            if let Some(y) = &self.y {
                check_classes(y, subset_range(n_all, split, Subset::Validation).1)?;
            }
        }
        if self.x.shape().len() != 4 {
            return Err(ErrorKind::ShapeMismatch {
                what: format!(
                    "Input data in `NumpyArrayIterator` should have rank 4. You passed an array with shape {:?} ({})",
                    self.x.shape(),
                    self.x.name()
                ),
                expected: vec![4],
                found: vec![self.x.shape().len()],
            }
            .into());
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "must be at least 1"));
        }
        let shard = Shard::new(self.shard.index, self.shard.count)?;
        self.order.validate()?;
        let data_format = self.data_format.unwrap_or(generator.options().data_format);
        let s = self.x.shape();
        let dims = [s[1], s[2], s[3]];
        let shape = data_format.image_shape(dims);
        if shape.is_empty() {
            return Err(Error::invalid(
                "x",
                format!("shape {:?}", self.x.shape()),
                format!(
                    "{}: images have no pixels (height, width and channels must be at least 1)",
                    self.x.name()
                ),
            ));
        }
        if !matches!(shape.channels, 1 | 3 | 4) {
            log::warn!(
                "{}: {} channels on axis {} ({}); expected 1, 3 or 4",
                self.x.name(),
                shape.channels,
                if data_format == DataFormat::ChannelsLast {
                    3
                } else {
                    1
                },
                data_format.as_str()
            );
        }
        if let Some(save) = &self.save {
            save.prepare()?;
        }
        // Match the kernel's read-ahead to the order: none for uniform
        // shuffles (read-around would pull ~128 KiB per faulting row and
        // thrash a cache smaller than the file), forward for the others —
        // except under a page budget, where the kernel's sequential window
        // (up to twice read_ahead_kb, here 16 MiB) would overrun the budget
        // and our own bounded read-ahead does the work.
        let pattern = match self.order {
            Order::Sequential if self.cache_budget.is_none() => AccessPattern::Sequential,
            Order::Sequential | Order::Shuffle => AccessPattern::Random,
            Order::Blocks { .. } => AccessPattern::Blocks,
        };
        advise_for_order(&self.x, pattern)?;
        if let Some(budget) = self.cache_budget {
            let batch_bytes = self.x.row_bytes() as u64 * self.batch_size as u64;
            if budget < batch_bytes {
                return Err(Error::from(ErrorKind::MemoryLimit {
                    what: format!("one batch of {} ({} rows)", self.x.name(), self.batch_size),
                    needed: batch_bytes,
                    limit: budget,
                }));
            }
        }
        let threads = if self.threads == 0 {
            rayon::current_num_threads()
        } else {
            self.threads
        };
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("npyflow-{i}"))
                .build()
                .map_err(|e| Error::invalid("threads", threads, e.to_string()))?,
        );
        let ctx = Arc::new(Context {
            x: self.x,
            y: self.y,
            sample_weight: self.sample_weight,
            aux: self.aux,
            dtype: self.dtype.unwrap_or(generator.options().dtype),
            generator,
            shape,
            dims,
            base,
            n,
            batch_size: self.batch_size,
            drop_last: self.drop_last,
            order: self.order,
            seed: self.seed.unwrap_or_else(fresh_seed),
            shard,
            save: self.save,
            budget: self
                .cache_budget
                .map(|b| std::sync::Mutex::new(PageBudget::new(b))),
            hints: std::sync::atomic::AtomicBool::new(true),
            cold_rows: std::sync::Mutex::new(None),
            windows: std::sync::Mutex::new(None),
            plans: std::sync::Mutex::new(Vec::new()),
            readahead: Default::default(),
        });
        let batch = ctx.new_batch();
        let prefetch = self.prefetch.unwrap_or_else(|| {
            // A full batch's images (the buffer's capacity, not its length).
            let rows = ctx.batch_size.min(ctx.shard_len()) as u64;
            let bytes = (rows * (ctx.shape.len() * ctx.dtype.size()) as u64).max(1);
            (AUTO_PREFETCH_BYTES / bytes).clamp(2, 4 * threads as u64) as usize
        });
        Ok(NumpyArrayIterator {
            ctx,
            position: Position::default(),
            plan: None,
            batch,
            pool,
            threads,
            prefetch,
            producer: None,
            recorder: None,
            telemetry: None,
            telemetry_epoch: None,
        })
    }
}

/// Keras' class check: the sorted sets of distinct label values before and
/// after the split must be equal.
fn check_classes(y: &NpyArray, split: usize) -> Result<()> {
    let row = y.row_len().max(1);
    let values = y.to_vec_f64()?;
    let key = |v: &f64| if *v == 0.0 { 0u64 } else { v.to_bits() };
    let cut = (split * row).min(values.len());
    let val: BTreeSet<u64> = values[..cut].iter().map(key).collect();
    let train: BTreeSet<u64> = values[cut..].iter().map(key).collect();
    if val != train {
        return Err(ErrorKind::ClassSplit {
            validation: val.len(),
            training: train.len(),
        }
        .into());
    }
    Ok(())
}

/// Keras' `NumpyArrayIterator` over memory-mapped arrays: shuffled,
/// augmented, standardised batches written into one reusable buffer.
///
/// Batches are lent: each call returns `&Batch`, valid until the next call.
pub struct NumpyArrayIterator {
    ctx: Arc<Context>,
    position: Position,
    /// The plan of one epoch, cached: (epoch, sample indices).
    plan: Option<(u64, Vec<usize>)>,
    batch: Batch,
    pool: Arc<rayon::ThreadPool>,
    threads: usize,
    prefetch: usize,
    /// Background assembly of the batches after the current one.
    producer: Option<Producer>,
    /// Telemetry of the epoch being walked sequentially.
    recorder: Option<TelemetryRecorder>,
    /// Telemetry of the last epoch walked to its end.
    telemetry: Option<EpochTelemetry>,
    /// The epoch `telemetry` belongs to.
    telemetry_epoch: Option<u64>,
}

impl std::fmt::Debug for NumpyArrayIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumpyArrayIterator")
            .field("x", &self.ctx.x)
            .field("samples", &self.num_samples())
            .field("batch_size", &self.ctx.batch_size)
            .field("order", &self.ctx.order)
            .field("seed", &self.ctx.seed)
            .field("position", &self.position)
            .finish()
    }
}

impl NumpyArrayIterator {
    /// Starts a builder over images `x`.
    pub fn builder(x: NpyArray) -> IteratorBuilder {
        IteratorBuilder::new(x)
    }

    /// Keras' `white_list_formats`.
    pub fn white_list_formats() -> &'static [&'static str] {
        &WHITE_LIST_FORMATS
    }

    /// Batches per epoch: `ceil(n / batch_size)` (`floor` with `drop_last`).
    pub fn len(&self) -> usize {
        self.ctx.num_batches()
    }

    /// True when an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples per epoch (this subset and shard).
    pub fn num_samples(&self) -> usize {
        self.ctx.shard_len()
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.ctx.batch_size
    }

    /// The seed in use (drawn at construction when none was given).
    pub fn seed(&self) -> u64 {
        self.ctx.seed
    }

    /// The access order.
    pub fn order(&self) -> Order {
        self.ctx.order
    }

    /// The image array.
    pub fn x(&self) -> &NpyArray {
        &self.ctx.x
    }

    /// The generator in use.
    pub fn generator(&self) -> &ImageDataGenerator {
        &self.ctx.generator
    }

    /// Threads used to assemble a batch.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Batches prepared ahead in the background (the one set, or the
    /// default chosen from the batch size; see [`IteratorBuilder::prefetch`]).
    pub fn prefetch_depth(&self) -> usize {
        self.prefetch
    }

    /// Telemetry of the last epoch walked to its end with `next_batch` /
    /// `next_in_epoch` (samples, wall time, throughput, storage reads, major
    /// faults, residency before/after, peak anonymous memory).
    pub fn last_epoch_telemetry(&self) -> Option<&EpochTelemetry> {
        self.telemetry.as_ref()
    }

    /// Where the iterator stands.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Moves to `position` (e.g. restored from a checkpoint). The batches
    /// that follow are exactly those an uninterrupted run would have produced.
    pub fn set_position(&mut self, position: Position) {
        self.position = position;
    }

    /// Keras' `reset`: the next batch starts a new epoch (the current one
    /// if it has not started yet).
    pub fn reset(&mut self) {
        if self.position.batch > 0 {
            self.position = Position {
                epoch: self.position.epoch + 1,
                batch: 0,
            };
        }
    }

    /// Keras' `on_epoch_end`: move to the next epoch (a new permutation for
    /// shuffled orders), as Keras' `fit` does after each epoch of a Sequence.
    pub fn on_epoch_end(&mut self) {
        self.position = Position {
            epoch: self.position.epoch + 1,
            batch: 0,
        };
    }

    /// Batch `index` of the current epoch (Keras' `__getitem__`), without
    /// moving the position. The same index gives the same batch every time
    /// within an epoch.
    ///
    /// # Errors
    /// [`ErrorKind::IndexOutOfRange`] when `index >= len()`; data errors.
    pub fn get(&mut self, index: usize) -> Result<&Batch> {
        let len = self.len();
        if index >= len {
            return Err(ErrorKind::IndexOutOfRange { index, len }.into());
        }
        self.fill(self.position.epoch, index)?;
        self.save_delivered()?;
        Ok(&self.batch)
    }

    /// The next batch, crossing epochs forever (Keras' `next()`). With no
    /// samples, returns empty batches (as Keras does).
    ///
    /// # Errors
    /// Data errors (a file that changed under the map, I/O on the read source,
    /// missing statistics...).
    pub fn next_batch(&mut self) -> Result<&Batch> {
        if self.position.batch >= self.len() {
            if self.is_empty() {
                self.batch.len = 0;
                self.batch.indices.clear();
                for r in self
                    .batch
                    .y
                    .iter_mut()
                    .chain(&mut self.batch.sample_weight)
                    .chain(&mut self.batch.aux)
                {
                    r.set_len(0);
                }
                return Ok(&self.batch);
            }
            self.position = Position {
                epoch: self.position.epoch + 1,
                batch: 0,
            };
        }
        let Position { epoch, batch } = self.position;
        self.produce(epoch, batch)?;
        self.position.batch += 1;
        Ok(&self.batch)
    }

    /// The next batch of the current epoch, or `None` at its end (after
    /// which the following call starts the next epoch).
    ///
    /// ```no_run
    /// # fn main() -> npyflow::Result<()> {
    /// let x = npyflow::NpyArray::open("x.npy")?;
    /// let mut it = npyflow::NumpyArrayIterator::builder(x).batch_size(64).build()?;
    /// while let Some(batch) = it.next_in_epoch()? {
    ///     let images = batch.images::<f32>()?;
    ///     println!("{:?}", images.shape());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`NumpyArrayIterator::next_batch`].
    pub fn next_in_epoch(&mut self) -> Result<Option<&Batch>> {
        if self.position.batch >= self.len() {
            self.position = Position {
                epoch: self.position.epoch + 1,
                batch: 0,
            };
            return Ok(None);
        }
        let Position { epoch, batch } = self.position;
        self.produce(epoch, batch)?;
        self.position.batch += 1;
        Ok(Some(&self.batch))
    }

    /// Runs `f` on every batch of one epoch (from the current position to its end).
    ///
    /// # Errors
    /// The first error of assembly or of `f`.
    pub fn for_each_in_epoch(&mut self, mut f: impl FnMut(&Batch) -> Result<()>) -> Result<()> {
        while let Some(b) = self.next_in_epoch()? {
            f(b)?;
        }
        Ok(())
    }

    /// Sequential production of batch `index` of `epoch`: from the prefetch
    /// pipeline when it is running ahead on exactly this batch, else
    /// assembled here (and the pipeline (re)started behind it).
    fn produce(&mut self, epoch: u64, index: usize) -> Result<()> {
        if index == 0 {
            self.begin_epoch(epoch);
        }
        self.produce_untimed(epoch, index)?;
        self.save_delivered()?;
        let len = self.len();
        if let Some(r) = &mut self.recorder {
            r.batch(self.batch.len);
            if index + 1 == len {
                let recorder = self.recorder.take().expect("checked above");
                self.telemetry = Some(recorder.finish(&self.arrays()));
                self.telemetry_epoch = Some(epoch);
            }
        }
        Ok(())
    }

    /// `save_to_dir`: writes the batch being handed out (not when it is
    /// assembled: the prefetcher builds batches that may never be yielded).
    fn save_delivered(&self) -> Result<()> {
        match &self.ctx.save {
            Some(save) => save.save_batch(&self.batch, self.ctx.shape, self.ctx.seed),
            None => Ok(()),
        }
    }

    fn arrays(&self) -> Vec<&NpyArray> {
        let c = &self.ctx;
        std::iter::once(&c.x)
            .chain(c.y.iter())
            .chain(c.sample_weight.iter())
            .chain(c.aux.iter())
            .collect()
    }

    /// Starts the telemetry of an epoch and decides whether read-ahead hints
    /// are worth their syscalls (not when the images are fully cached and no
    /// budget is going to evict them).
    fn begin_epoch(&mut self, epoch: u64) {
        // Right after the previous epoch, its residency after is this one's
        // before: one scan of the files fewer per epoch.
        let before = match (&self.telemetry, self.telemetry_epoch) {
            (Some(t), Some(e)) if e + 1 == epoch => t.residency_after.clone(),
            _ => residencies(&self.arrays()),
        };
        // The images come first in `arrays`.
        let resident = before.first().map_or(0.0, |(_, f)| *f);
        let unbudgeted = self.ctx.budget.is_none();
        let cached = unbudgeted && resident >= 1.0;
        // Nearly cached: hint only the rows found missing (when the scan
        // fails, every row, as for a colder file).
        let cold = (unbudgeted && !cached && resident >= NEARLY_CACHED)
            .then(|| ColdRows::snapshot(&self.ctx.x).ok().map(Arc::new))
            .flatten();
        *self.ctx.cold_rows.lock().unwrap_or_else(|e| e.into_inner()) = cold;
        self.ctx
            .hints
            .store(!cached, std::sync::atomic::Ordering::Relaxed);
        self.recorder = Some(TelemetryRecorder::start_with_residency(before));
    }

    /// Telemetry of the epoch in progress so far (`None` between epochs):
    /// for a run that stops in the middle of an epoch.
    pub fn current_epoch_telemetry(&self) -> Option<EpochTelemetry> {
        self.recorder.as_ref().map(|r| r.snapshot(&self.arrays()))
    }

    fn produce_untimed(&mut self, epoch: u64, index: usize) -> Result<()> {
        if self.prefetch == 0 {
            return self.fill(epoch, index);
        }
        let len = self.len();
        if self.producer.as_ref().map(|p| p.next) != Some((epoch, index)) {
            // A jump (set_position, reset, on_epoch_end) or a first call:
            // restart the producer at the requested batch.
            self.producer = Some(Producer::start(
                Arc::clone(&self.ctx),
                Arc::clone(&self.pool),
                self.threads,
                (epoch, index),
                self.prefetch,
            ));
        }
        let producer = self.producer.as_mut().expect("started above");
        match producer.swap(&mut self.batch, len) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                self.producer = None;
                Err(e)
            }
            None => {
                // The producer thread died (it only stops on error or drop);
                // fall back to assembling here.
                self.producer = None;
                self.fill(epoch, index)
            }
        }
    }

    fn fill(&mut self, epoch: u64, index: usize) -> Result<()> {
        if self.plan.as_ref().map(|p| p.0) != Some(epoch) {
            self.plan = Some((epoch, self.ctx.plan(epoch)));
        }
        let plan = &self.plan.as_ref().expect("plan set above").1;
        let ctx = &self.ctx;
        let batch = &mut self.batch;
        let threads = self.threads;
        self.pool
            .install(|| ctx.assemble(epoch, index, plan, batch, threads, false))
    }
}

impl ImageDataGenerator {
    /// Keras' `flow(x)`: an iterator builder over `x` with this generator,
    /// `shuffle=True` and `batch_size=32` (Keras' `flow` defaults).
    pub fn flow(&self, x: NpyArray) -> IteratorBuilder {
        IteratorBuilder::new(x)
            .generator(self.clone())
            .shuffle(true)
    }
}
