//! `NumpyArrayIterator`: Keras' iterator over memory-mapped arrays.
//!
//! The builder (`builder.rs`) checks the options and makes the shared
//! pipeline context that assembles any batch; the iterator here walks
//! positions, hands batches out (lent, or swapped into the caller's buffer)
//! and records each epoch's telemetry.

pub(crate) mod batch;
mod builder;
pub(crate) mod order;
pub(crate) mod pipeline;
pub(crate) mod save;
pub(crate) mod shard;
pub(crate) mod state;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use builder::IteratorBuilder;

use crate::cache::telemetry::{residencies, EpochTelemetry, TelemetryRecorder};
use crate::generator::ImageDataGenerator;
use crate::iterator::batch::Batch;
use crate::iterator::order::Order;
use crate::iterator::pipeline::{Context, ContextConfig, Producer};
use crate::iterator::state::IteratorState;
use crate::npy::NpyArray;
use crate::{ErrorKind, Result};

/// File extensions Keras' directory iterators accept (`white_list_formats`),
/// used by the image-folder converter. Lowercase; compare case-insensitively.
pub const WHITE_LIST_FORMATS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff"];

/// Where an iterator stands: the epoch and the next batch within it.
/// Save it with serde and restore it with [`NumpyArrayIterator::set_position`]
/// into an iterator of the same batch size and shards; an
/// [`IteratorState`] also resumes with other ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The epoch (0-based).
    pub epoch: u64,
    /// The next batch to be produced in that epoch.
    pub batch: usize,
}

/// Keras' `NumpyArrayIterator` over memory-mapped arrays: shuffled,
/// augmented, standardised batches of `(x, y, sample_weight, aux...)`.
///
/// Two ways to take batches, which can be mixed:
/// - **lent**: [`next_in_epoch`](NumpyArrayIterator::next_in_epoch),
///   [`next_batch`](NumpyArrayIterator::next_batch) and
///   [`get`](NumpyArrayIterator::get) return `&Batch`, valid until the next
///   call; the iterator's buffers are reused, nothing is allocated per batch.
/// - **owned**: [`next_into`](NumpyArrayIterator::next_into) and
///   [`get_into`](NumpyArrayIterator::get_into) swap the batch into a
///   [`Batch`] the caller owns (made by [`new_batch`](NumpyArrayIterator::new_batch)),
///   without copying; the caller's old buffer goes back into the iterator's
///   circulation. A batch kept this way is never written again by the
///   iterator.
///
/// Both give the same bytes, whatever the thread count and prefetch depth:
/// every sample's randomness comes from (seed, epoch, row).
///
/// # Examples
/// ```
/// use npyflow::npy::{write_npy, ElemType};
/// use npyflow::{GeneratorOptions, ImageDataGenerator, NpyArray};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("x.npy");
/// write_npy(&path, ElemType::U8, &[10, 4, 4, 1], &(0..160u8).collect::<Vec<_>>())?;
/// let generator = ImageDataGenerator::new(GeneratorOptions {
///     horizontal_flip: true,
///     ..Default::default()
/// })?;
/// let mut it = generator.flow(NpyArray::open(&path)?).batch_size(4).seed(3).build()?;
/// assert_eq!(it.len(), 3); // ceil(10 / 4)
///
/// // Lent batches: one epoch.
/// let mut samples = 0;
/// while let Some(batch) = it.next_in_epoch()? {
///     samples += batch.len();
/// }
/// assert_eq!(samples, 10);
///
/// // Owned batches: kept while the iterator goes on.
/// let mut kept = Vec::new();
/// let mut batch = it.new_batch();
/// while it.next_into(&mut batch)? {
///     kept.push(std::mem::replace(&mut batch, it.new_batch()));
/// }
/// assert_eq!(kept.iter().map(|b| b.len()).collect::<Vec<_>>(), [4, 4, 2]);
/// assert!(kept.iter().all(|b| b.epoch() == 1));
/// # Ok::<(), npyflow::Error>(())
/// ```
pub struct NumpyArrayIterator {
    ctx: Arc<Context>,
    /// What `ctx` was made from, to make it again for another seed or
    /// resumed epoch.
    config: ContextConfig,
    position: Position,
    /// The plan of one epoch, cached: (epoch, sample indices).
    plan: Option<(u64, Vec<usize>)>,
    /// The batch being lent out (or, after a swap, the caller's old buffer,
    /// the next to be filled).
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
            .field("x", self.ctx.x())
            .field("samples", &self.num_samples())
            .field("batch_size", &self.ctx.batch_size())
            .field("order", &self.ctx.order())
            .field("seed", &self.ctx.seed())
            .field("position", &self.position)
            .finish()
    }
}

impl NumpyArrayIterator {
    /// An iterator over `ctx` (the builder has checked everything).
    fn new(
        config: ContextConfig,
        ctx: Context,
        pool: Arc<rayon::ThreadPool>,
        threads: usize,
        prefetch: usize,
    ) -> NumpyArrayIterator {
        let batch = ctx.new_batch();
        NumpyArrayIterator {
            ctx: Arc::new(ctx),
            config,
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
        }
    }

    /// Keras' `white_list_formats`.
    pub fn white_list_formats() -> &'static [&'static str] {
        &WHITE_LIST_FORMATS
    }

    /// Batches of the current epoch: `ceil(n / batch_size)` (`floor` with
    /// `drop_last`) for `n` samples per epoch ([`num_samples`](Self::num_samples)).
    pub fn len(&self) -> usize {
        self.ctx.schedule().batches(self.position.epoch)
    }

    /// True when the current epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples per epoch (this subset and shard: every shard has as many,
    /// see [`Shard::len`](crate::Shard::len)).
    pub fn num_samples(&self) -> usize {
        self.ctx.schedule().full_samples()
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.ctx.batch_size()
    }

    /// The seed in use (drawn at construction when none was given).
    pub fn seed(&self) -> u64 {
        self.ctx.seed()
    }

    /// The access order.
    pub fn order(&self) -> Order {
        self.ctx.order()
    }

    /// The image array.
    pub fn x(&self) -> &NpyArray {
        self.ctx.x()
    }

    /// The generator in use.
    pub fn generator(&self) -> &ImageDataGenerator {
        self.ctx.generator()
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
    /// `next_in_epoch` / `next_into` (samples, wall time, throughput,
    /// storage reads, major faults, residency before/after, peak anonymous
    /// memory).
    pub fn last_epoch_telemetry(&self) -> Option<&EpochTelemetry> {
        self.telemetry.as_ref()
    }

    /// Telemetry of the epoch in progress so far (`None` between epochs):
    /// for a run that stops in the middle of an epoch.
    pub fn current_epoch_telemetry(&self) -> Option<EpochTelemetry> {
        self.recorder
            .as_ref()
            .map(|r| r.snapshot(&self.ctx.arrays()))
    }

    /// Where the iterator stands.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Moves to `position` (e.g. restored from a checkpoint). The batches
    /// that follow are exactly those an uninterrupted run would have produced.
    /// In an epoch resumed with [`load_state`](Self::load_state), batch
    /// numbers count that epoch's (fewer) batches.
    pub fn set_position(&mut self, position: Position) {
        self.position = position;
    }

    /// Where the run stands, to continue it exactly with
    /// [`load_state`](Self::load_state): the seed, the epoch and the
    /// positions of its plan not yet delivered by the batches taken in
    /// sequence ([`next_batch`](Self::next_batch), [`next_in_epoch`](Self::next_in_epoch),
    /// [`next_into`](Self::next_into)). The same on every shard whose
    /// iterator took as many batches.
    pub fn state(&self) -> IteratorState {
        let Position { epoch, batch } = self.position;
        self.state_after(epoch, std::slice::from_ref(&(0..batch)))
    }

    /// [`state`](Self::state) for a caller that takes the current epoch's
    /// batches by index ([`get`](Self::get), as Keras' `fit` does, in any
    /// order): the state once the batches `taken` (indices, any order,
    /// repeats allowed) have been consumed.
    pub fn state_after_batches(&self, taken: &[usize]) -> IteratorState {
        let mut taken = taken.to_vec();
        taken.sort_unstable();
        let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
        for b in taken {
            match ranges.last_mut() {
                Some(r) if b <= r.end => r.end = r.end.max(b + 1),
                _ => ranges.push(b..b + 1),
            }
        }
        self.state_after(self.position.epoch, &ranges)
    }

    fn state_after(&self, epoch: u64, done: &[std::ops::Range<usize>]) -> IteratorState {
        let (epoch, remaining) = self.ctx.schedule().progress(epoch, done);
        IteratorState {
            version: IteratorState::VERSION,
            seed: self.seed(),
            order: self.order(),
            samples: self.config.rows.len(),
            epoch,
            remaining: remaining.map(|r| r.iter().map(|r| [r.start, r.end]).collect()),
        }
    }

    /// Continues where `state` (from [`state`](Self::state), of this
    /// iterator or another over the same samples in the same order) stood:
    /// its seed, its epoch, and in that epoch only the positions it had not
    /// delivered, re-batched and re-sharded for this iterator's batch size
    /// and shards; later epochs are full. Threads and prefetch depth may
    /// differ too: the samples and pixels are those of the uninterrupted run.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] naming the field when the state is of
    /// another version, another number of samples or another order, or its
    /// `remaining` ranges are not sorted, disjoint, non-empty and within the
    /// samples. The iterator is left as it was.
    pub fn load_state(&mut self, state: &IteratorState) -> Result<()> {
        let resumed = state.resumed(self.config.rows.len(), self.order())?;
        // The workers hold the old context: stop them before replacing it.
        self.producer = None;
        self.config.seed = state.seed;
        self.config.resumed = resumed;
        self.ctx = Arc::new(Context::new(self.config.clone()));
        self.plan = None;
        self.recorder = None;
        self.position = Position {
            epoch: state.epoch,
            batch: 0,
        };
        Ok(())
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

    /// An empty batch shaped for this iterator (its dtype, image size,
    /// batch capacity and y / sample-weight / auxiliary rows), to pass to
    /// [`next_into`](NumpyArrayIterator::next_into) or
    /// [`get_into`](NumpyArrayIterator::get_into).
    pub fn new_batch(&self) -> Batch {
        self.ctx.new_batch()
    }

    /// Batch `index` of the current epoch (Keras' `__getitem__`), without
    /// moving the position. The same index gives the same batch every time
    /// within an epoch.
    ///
    /// # Errors
    /// [`ErrorKind::IndexOutOfRange`] when `index >= len()`; data errors.
    pub fn get(&mut self, index: usize) -> Result<&Batch> {
        self.assemble_at(index)?;
        Ok(&self.batch)
    }

    /// [`get`](NumpyArrayIterator::get), swapped into `batch` (a buffer the
    /// caller owns, from [`new_batch`](NumpyArrayIterator::new_batch)) instead
    /// of lent: no copy, and the iterator keeps `batch`'s old buffer.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] naming `batch` when `batch` was not
    /// made for an iterator of this layout (another dtype, image size,
    /// capacity or set of y / sample-weight / auxiliary rows), before
    /// anything else; then as [`get`](NumpyArrayIterator::get). On error,
    /// `batch` is left as it was.
    pub fn get_into(&mut self, index: usize, batch: &mut Batch) -> Result<()> {
        self.batch.check_layout(batch)?;
        self.assemble_at(index)?;
        std::mem::swap(&mut self.batch, batch);
        Ok(())
    }

    /// The next batch, crossing epochs forever (Keras' `next()`). With no
    /// samples, returns empty batches (as Keras does).
    ///
    /// # Errors
    /// Data errors (a file that changed under the map, I/O on the read source,
    /// missing statistics...).
    pub fn next_batch(&mut self) -> Result<&Batch> {
        if self.ctx.schedule().full_batches() == 0 {
            self.batch.clear();
            return Ok(&self.batch);
        }
        if !self.step_in_epoch()? {
            // The epoch had ended: this is the next one's first batch.
            self.step_in_epoch()?;
        }
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
        Ok(self.step_in_epoch()?.then_some(&self.batch))
    }

    /// [`next_in_epoch`](NumpyArrayIterator::next_in_epoch), swapped into
    /// `batch` (a buffer the caller owns, from
    /// [`new_batch`](NumpyArrayIterator::new_batch)) instead of lent. Returns
    /// `true` with the epoch's next batch in `batch`; `false` at the end of
    /// the epoch, leaving `batch` as it was (the following call starts the
    /// next epoch).
    ///
    /// Nothing is copied: the finished buffer changes hands, and `batch`'s
    /// old buffer becomes the iterator's, to be filled again later. So a
    /// caller that keeps every batch (moving each out and passing a fresh
    /// one in) never sees one overwritten, and a caller that passes the same
    /// batch back each time circulates one buffer more than the lending API
    /// does.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] naming `batch` when it was not made for
    /// an iterator of this layout (see [`get_into`](NumpyArrayIterator::get_into));
    /// then as [`next_batch`](NumpyArrayIterator::next_batch). On error,
    /// `batch` is left as it was.
    pub fn next_into(&mut self, batch: &mut Batch) -> Result<bool> {
        self.batch.check_layout(batch)?;
        let more = self.step_in_epoch()?;
        if more {
            std::mem::swap(&mut self.batch, batch);
        }
        Ok(more)
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

    /// The one sequential step of every `next_*`: the epoch's next batch
    /// into `self.batch` (true), or, at the end of the epoch, a move to the
    /// next one (false).
    fn step_in_epoch(&mut self) -> Result<bool> {
        if self.position.batch >= self.len() {
            self.position = Position {
                epoch: self.position.epoch + 1,
                batch: 0,
            };
            return Ok(false);
        }
        let Position { epoch, batch } = self.position;
        self.produce(epoch, batch)?;
        self.position.batch += 1;
        Ok(true)
    }

    /// Random access: batch `index` of the current epoch into `self.batch`.
    fn assemble_at(&mut self, index: usize) -> Result<()> {
        let len = self.len();
        if index >= len {
            return Err(ErrorKind::IndexOutOfRange { index, len }.into());
        }
        self.fill(self.position.epoch, index)?;
        self.ctx.save_delivered(&self.batch)
    }

    /// Sequential production of batch `index` of `epoch`: from the prefetch
    /// pipeline when it is running ahead on exactly this batch, else
    /// assembled here (and the pipeline (re)started behind it).
    fn produce(&mut self, epoch: u64, index: usize) -> Result<()> {
        if index == 0 {
            self.begin_epoch(epoch);
        }
        self.produce_untimed(epoch, index)?;
        self.ctx.save_delivered(&self.batch)?;
        let len = self.len();
        if let Some(r) = &mut self.recorder {
            r.batch(self.batch.len);
            if index + 1 == len {
                let recorder = self.recorder.take().expect("checked above");
                self.telemetry = Some(recorder.finish(&self.ctx.arrays()));
                self.telemetry_epoch = Some(epoch);
            }
        }
        Ok(())
    }

    /// Starts the telemetry of an epoch and lets the context decide on its
    /// read-ahead hints from the images' residency.
    fn begin_epoch(&mut self, epoch: u64) {
        // Right after the previous epoch, its residency after is this one's
        // before: one scan of the files fewer per epoch.
        let before = match (&self.telemetry, self.telemetry_epoch) {
            (Some(t), Some(e)) if e + 1 == epoch => t.residency_after.clone(),
            _ => residencies(&self.ctx.arrays()),
        };
        // The images come first in `arrays`.
        let resident = before.first().map_or(0.0, |(_, f)| *f);
        self.ctx.begin_epoch(resident);
        self.recorder = Some(TelemetryRecorder::start_with_residency(before));
    }

    fn produce_untimed(&mut self, epoch: u64, index: usize) -> Result<()> {
        if self.prefetch == 0 {
            return self.fill(epoch, index);
        }
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
        match producer.swap(&mut self.batch) {
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
        // A hint only: a failure shows in the batch's own reads.
        let _ = self.ctx.before_plan(epoch, index);
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
