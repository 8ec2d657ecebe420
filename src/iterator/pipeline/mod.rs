//! Batch assembly: gather rows, augment and standardise them in parallel,
//! and (optionally) prepare the next batches in the background.
//!
//! Every sample's randomness comes from (seed, epoch, row), so the bytes of a
//! batch do not depend on how many threads assemble it or how far ahead the
//! prefetcher runs.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::augment::Prefetch;
use crate::cache::readahead::Readahead;
use crate::cache::stash::{Stash, View};
use crate::cache::{prefetch_rows, unmap_rows, ColdRows, PageBudget, NEARLY_CACHED};
use crate::generator::{ImageDataGenerator, Scratch, Unread};
use crate::iterator::batch::{typed_mut, Batch, Images};
use crate::iterator::order::{Order, Window};
use crate::iterator::save::SaveConfig;
use crate::iterator::shard::{Resumed, Schedule, Shard};
use crate::npy::{NpyArray, Pace, RowFrom};
use crate::rng::{SampleRng, Stream};
use crate::{ImageShape, OutputDtype, Result};

mod ahead;
mod producer;
mod store;
use ahead::{progress, stash_for, Moment};
pub(crate) use producer::Producer;
use store::Store;

/// While the images are not fully cached and no page budget is set, the
/// sequential order unmaps (not evicts: [`unmap_rows`]) each stretch of
/// this many bytes of rows once the stretch after it is done (the block
/// order unmaps each window it finished). Mapped pages count in the
/// resident set, so without it a pass over a file larger than memory grows
/// the process to whatever the cache holds (1 GiB under a 1 GiB memory
/// cgroup), and the kernel must unmap each page before it can reclaim it
/// (under a 64 MiB cgroup, a pass reading ahead with plain reads was
/// OOM-killed while its map grew).
const MAPPED_STRETCH: u64 = 8 << 20;

/// What a [`Context`] is made from: the arrays, the generator and the
/// output, and which rows each batch takes (all checked by the builder).
#[derive(Clone)]
pub(crate) struct ContextConfig {
    pub x: NpyArray,
    pub y: Option<NpyArray>,
    pub sample_weight: Option<NpyArray>,
    pub aux: Vec<NpyArray>,
    pub generator: Arc<ImageDataGenerator>,
    /// Image layout in `x` (its axes 1..4 in the data format).
    pub shape: ImageShape,
    pub dtype: OutputDtype,
    /// The subset's rows in the files (before sharding).
    pub rows: Range<usize>,
    pub batch_size: usize,
    pub drop_last: bool,
    pub order: Order,
    pub seed: u64,
    pub shard: Shard,
    /// The epoch resumed part-way, if any.
    pub resumed: Option<Resumed>,
    pub save: Option<SaveConfig>,
    /// Page-cache budget in bytes, if any.
    pub cache_budget: Option<u64>,
}

/// Everything an iterator needs to build any batch, shared with the
/// prefetch workers: the inputs (immutable) and the page-cache bookkeeping
/// of the epoch (behind its own locks, owned here).
#[derive(Debug)]
pub(crate) struct Context {
    x: NpyArray,
    y: Option<NpyArray>,
    sample_weight: Option<NpyArray>,
    aux: Vec<NpyArray>,
    generator: Arc<ImageDataGenerator>,
    shape: ImageShape,
    dims: [usize; 3],
    /// First row of the subset in the files.
    base: usize,
    /// Rows in the subset (before sharding).
    n: usize,
    batch_size: usize,
    order: Order,
    seed: u64,
    /// Which positions of each epoch's plan this iterator delivers.
    schedule: Schedule,
    dtype: OutputDtype,
    save: Option<SaveConfig>,
    /// Drops pages behind the reader to keep the cache footprint bounded.
    budget: Option<Mutex<PageBudget>>,
    /// Whether to ask the kernel to read each batch's rows ahead
    /// (`WILLNEED`): on for data not fully cached, off once it is, so warm
    /// epochs pay no syscalls.
    hints: AtomicBool,
    /// With hints on for a nearly cached file: the rows it was missing at
    /// the epoch's start, the only ones worth a hint.
    cold_rows: Mutex<Option<Arc<ColdRows>>>,
    /// The block order's windows of one epoch, for whole-block prefetch.
    windows: Mutex<Option<(u64, Arc<Vec<Window>>)>>,
    /// Reads ahead (block windows, sequential stretches) without blocking assembly.
    readahead: Readahead,
    /// The rows read ahead past the page cache (the sequential order's
    /// stretches, the block order's windows) for a cold file larger than
    /// the cache could keep ([`stash_for`]).
    stash: Option<Arc<Stash>>,
    /// The plans of the last two epochs the prefetch workers asked for
    /// (workers straddle an epoch boundary), computed once each.
    plans: Mutex<Vec<(u64, Arc<Vec<usize>>)>>,
}

impl Context {
    /// A context over `config`'s arrays; `x` must be rank 4.
    pub fn new(config: ContextConfig) -> Context {
        let stash = stash_for(&config).map(Arc::new);
        let s = config.x.shape();
        let dims = [s[1], s[2], s[3]];
        Context {
            dims,
            base: config.rows.start,
            n: config.rows.len(),
            budget: config.cache_budget.map(|b| Mutex::new(PageBudget::new(b))),
            hints: AtomicBool::new(true),
            cold_rows: Mutex::new(None),
            windows: Mutex::new(None),
            stash,
            readahead: Readahead::default(),
            plans: Mutex::new(Vec::new()),
            schedule: Schedule::new(
                config.rows.len(),
                config.shard,
                config.batch_size,
                config.drop_last,
            )
            .with_resumed(config.resumed),
            x: config.x,
            y: config.y,
            sample_weight: config.sample_weight,
            aux: config.aux,
            generator: config.generator,
            shape: config.shape,
            batch_size: config.batch_size,
            order: config.order,
            seed: config.seed,
            dtype: config.dtype,
            save: config.save,
        }
    }

    /// Whether cold passes read past the page cache ([`stash_for`]).
    pub fn past_cache(&self) -> bool {
        self.stash.is_some()
    }

    /// The image array.
    pub fn x(&self) -> &NpyArray {
        &self.x
    }

    /// Every array, images first (for telemetry).
    pub fn arrays(&self) -> Vec<&NpyArray> {
        std::iter::once(&self.x)
            .chain(self.y.iter())
            .chain(self.sample_weight.iter())
            .chain(self.aux.iter())
            .collect()
    }

    /// The generator that processes every sample.
    pub fn generator(&self) -> &ImageDataGenerator {
        &self.generator
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The access order.
    pub fn order(&self) -> Order {
        self.order
    }

    /// The seed of every random choice.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Bytes of a full batch's images (the buffer's capacity, not its length).
    pub fn batch_image_bytes(&self) -> u64 {
        let rows = self.batch_size.min(self.schedule.full_samples()) as u64;
        rows * (self.shape.len() * self.dtype.size()) as u64
    }

    /// Which positions of each epoch's plan this iterator delivers, and in
    /// how many batches.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The (subset-relative) sample indices of `epoch`, this shard only.
    pub fn plan(&self, epoch: u64) -> Vec<usize> {
        let plan = self.order.plan(self.n, self.seed, epoch);
        self.schedule.select(epoch, plan)
    }

    /// [`Context::plan`] shared between the prefetch workers.
    pub fn shared_plan(&self, epoch: u64) -> Arc<Vec<usize>> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = plans.iter().find(|(e, _)| *e == epoch) {
            return Arc::clone(p);
        }
        // Computed under the lock: the other worker needs the same plan.
        let plan = Arc::new(self.plan(epoch));
        if plans.len() >= 2 {
            plans.remove(0);
        }
        plans.push((epoch, Arc::clone(&plan)));
        plan
    }

    /// A fresh buffer for this iterator's batches.
    pub fn new_batch(&self) -> Batch {
        // No batch holds more than the epoch's samples, so an absurd
        // batch_size costs no more memory than the data itself.
        Batch::new(
            self.dtype,
            self.dims,
            self.batch_size.min(self.schedule.full_samples()),
            self.y.as_ref(),
            self.sample_weight.as_ref(),
            &self.aux,
        )
    }

    /// Decides, at the start of an epoch, whether read-ahead hints are
    /// worth their syscalls: not when the images are fully cached
    /// (`resident`, their resident fraction, is 1) and no budget is going to
    /// evict them. A nearly cached file is hinted only the rows it misses
    /// (when that scan fails, every row, as for a colder file).
    pub fn begin_epoch(&self, resident: f64) {
        let unbudgeted = self.budget.is_none();
        let cached = unbudgeted && resident >= 1.0;
        let cold = (unbudgeted && !cached && resident >= NEARLY_CACHED)
            .then(|| ColdRows::snapshot(&self.x).ok().map(Arc::new))
            .flatten();
        *self.cold_rows.lock().unwrap_or_else(|e| e.into_inner()) = cold;
        self.hints.store(!cached, Ordering::Relaxed);
    }

    /// `save_to_dir`: writes the batch being handed out (not when it is
    /// assembled: the prefetcher builds batches that may never be yielded).
    pub fn save_delivered(&self, batch: &Batch) -> Result<()> {
        match &self.save {
            Some(save) => save.save_batch(batch, self.shape, self.seed),
            None => Ok(()),
        }
    }

    /// Fills `batch` with batch `index` of `epoch`, whose plan is `plan`.
    /// `requested`: the shuffled order's rows of this batch were already
    /// asked for ([`Context::hint`]), so they are not asked for twice.
    pub fn assemble(
        &self,
        epoch: u64,
        index: usize,
        plan: &[usize],
        batch: &mut Batch,
        threads: usize,
        requested: bool,
    ) -> Result<()> {
        // A change before the batch: no work on a file that is gone.
        self.check_unchanged()?;
        let start = (index * self.batch_size).min(plan.len());
        let end = (start + self.batch_size).min(plan.len());
        // Under a budget, read-ahead the batches have passed is let go
        // (`read_ahead`: only then are requests marked).
        if self.budget.is_some() {
            self.readahead.reader_at(progress(epoch, start));
        }
        let idx = &plan[start..end];
        let mut rows: Vec<usize> = Vec::new();
        if self.hints.load(Ordering::Relaxed) || self.budget.is_some() {
            rows = idx.iter().map(|&j| self.base + j).collect();
            rows.sort_unstable();
        }
        if self.hints.load(Ordering::Relaxed) {
            match self.order {
                Order::Blocks { block_rows, window } => {
                    if start == 0 && self.stash.is_none() {
                        // The epoch's first batch is scattered over its whole
                        // window: ask for its own rows before the window's
                        // blocks so they are at the head of the device queue
                        // and the first batch does not wait for the window.
                        self.prefetch(&rows)?;
                    }
                    let windows = (block_rows, window);
                    self.prefetch_windows(epoch, start, end, windows, Moment::BeforeGather)?;
                }
                Order::Sequential => {
                    if start == 0 && self.stash.is_none() {
                        // The first batch need not wait for the stretch ahead.
                        self.prefetch(&rows)?;
                    }
                    self.read_ahead_sequential(epoch, start, end, plan);
                }
                // Many reads in flight, in file order, before the gather
                // faults on them one by one.
                Order::Shuffle if !requested => self.prefetch(&rows)?,
                Order::Shuffle => {}
            }
        }
        batch.len = idx.len();
        batch.epoch = epoch;
        batch.batch_index = index;
        batch.indices.clear();
        batch.indices.extend_from_slice(idx);
        match &mut batch.images {
            Images::F32(_) => self.fill_images::<f32>(epoch, idx, batch, threads)?,
            Images::F64(_) => self.fill_images::<f64>(epoch, idx, batch, threads)?,
            Images::F16(_) => self.fill_images::<half::f16>(epoch, idx, batch, threads)?,
            Images::BF16(_) => self.fill_images::<half::bf16>(epoch, idx, batch, threads)?,
        }
        if let (Order::Blocks { block_rows, window }, true) =
            (self.order, self.hints.load(Ordering::Relaxed))
        {
            let windows = (block_rows, window);
            self.prefetch_windows(epoch, start, end, windows, Moment::AfterGather)?;
        }
        let gather = |arr: &NpyArray, out: &mut crate::iterator::batch::Rows| -> Result<()> {
            out.set_len(idx.len());
            for (slot, &j) in idx.iter().enumerate() {
                arr.read_row_native(self.base + j, out.slot_mut(slot))?;
            }
            Ok(())
        };
        if let (Some(a), Some(r)) = (&self.y, &mut batch.y) {
            gather(a, r)?;
        }
        if let (Some(a), Some(r)) = (&self.sample_weight, &mut batch.sample_weight) {
            gather(a, r)?;
        }
        for (a, r) in self.aux.iter().zip(&mut batch.aux) {
            gather(a, r)?;
        }
        if let Some(budget) = &self.budget {
            // A poisoned lock only means another thread panicked mid-update;
            // the budget's bookkeeping is still usable.
            let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
            self.charge_budget(&mut b, epoch, start, end, &rows)?;
        } else if self.hints.load(Ordering::Relaxed) {
            self.release_mapped(epoch, start, end, plan)?;
        }
        // A change during the batch: rows read across it may mix old and new
        // bytes, or zeros where a shrunken file lost pages (`sys::Map`), so
        // the batch is an error, never delivered.
        self.check_unchanged()
    }

    /// Every input array is still the file it was when opened.
    fn check_unchanged(&self) -> Result<()> {
        self.x.check_unchanged()?;
        for a in self.y.iter().chain(&self.sample_weight).chain(&self.aux) {
            a.check_unchanged()?;
        }
        Ok(())
    }

    /// Keeps what a cold pass has mapped of `x` small (the batch at plan
    /// positions `start..end` of `plan` was just read). Block order: the
    /// blocks of the window this batch finished are unmapped (the next
    /// window, populated ahead, stays). Sequential order: when the batch
    /// crosses into a new [`MAPPED_STRETCH`], the stretch two before it is
    /// unmapped (one stretch of slack for batches other threads are still
    /// assembling; what they still read is refaulted from the cache). The
    /// uniform shuffle reads with `pread` and maps nothing.
    fn release_mapped(&self, epoch: u64, start: usize, end: usize, plan: &[usize]) -> Result<()> {
        match self.order {
            Order::Shuffle => Ok(()),
            Order::Blocks { block_rows, window } => {
                let (windows, entered) =
                    self.entered_windows(epoch, start, end, block_rows, window);
                for e in entered.into_iter().filter(|&e| e > 0) {
                    for range in self.block_ranges(&windows[e - 1], block_rows) {
                        unmap_rows(&self.x, range)?;
                    }
                }
                Ok(())
            }
            Order::Sequential => {
                let stretch = ((MAPPED_STRETCH / self.x.row_bytes().max(1) as u64) as usize).max(1);
                // Stretches whose first position this batch holds.
                for k in start.div_ceil(stretch)..end.div_ceil(stretch) {
                    if k >= 2 {
                        let (from, to) = ((k - 2) * stretch, ((k - 1) * stretch).min(plan.len()));
                        // A sequential plan is consecutive rows.
                        if from < to {
                            let rows = self.base + plan[from]..self.base + plan[to - 1] + 1;
                            unmap_rows(&self.x, rows)?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Feeds the page budget. Block order: whole blocks of the window that
    /// this batch finished (rows share pages, so dropping rows one by one
    /// would also drop parts of unread neighbours and refault them); other
    /// orders: the rows just read.
    fn charge_budget(
        &self,
        budget: &mut PageBudget,
        epoch: u64,
        start: usize,
        end: usize,
        rows: &[usize],
    ) -> Result<()> {
        let Order::Blocks { block_rows, window } = self.order else {
            return budget.touch_rows(&self.x, rows);
        };
        let (windows, entered) = self.entered_windows(epoch, start, end, block_rows, window);
        let rb = self.x.row_bytes() as u64;
        for e in entered.into_iter().filter(|&e| e > 0) {
            for range in self.block_ranges(&windows[e - 1], block_rows) {
                budget.touch(
                    &self.x,
                    self.x.data_offset() + range.start as u64 * rb,
                    range.len() as u64 * rb,
                )?;
            }
        }
        Ok(())
    }

    /// Asks the kernel to start reading batch `index` of `plan` (lookahead;
    /// the shuffled order only: the others read ahead in `assemble`).
    pub fn hint(&self, index: usize, plan: &[usize]) -> Result<()> {
        if !self.hints.load(Ordering::Relaxed) || self.order != Order::Shuffle {
            return Ok(());
        }
        let start = (index * self.batch_size).min(plan.len());
        let end = (start + self.batch_size).min(plan.len());
        let rows: Vec<usize> = plan[start..end].iter().map(|&j| self.base + j).collect();
        self.prefetch(&rows)
    }

    /// Asks the kernel to start reading the image rows `rows` (file rows),
    /// or, for a nearly cached file, only those of them it was missing.
    fn prefetch(&self, rows: &[usize]) -> Result<()> {
        let cold = self
            .cold_rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match cold {
            Some(cold) => {
                let missing: Vec<usize> =
                    rows.iter().copied().filter(|&r| cold.is_cold(r)).collect();
                prefetch_rows(&self.x, &missing)
            }
            None => prefetch_rows(&self.x, rows),
        }
    }

    fn fill_images<T: Store>(
        &self,
        epoch: u64,
        idx: &[usize],
        batch: &mut Batch,
        threads: usize,
    ) -> Result<()> {
        let sl = self.shape.len();
        // A uniform shuffle of a file not fully cached reads its rows with
        // `pread`, not through the map: every mapped page would stay in
        // the process's resident set until the kernel unmapped it to
        // reclaim it (4 GiB under a 1 GiB cgroup: peak RSS 1 GiB → 21 MiB,
        // and 13% faster on a loop device, 8.7 → 7.1 s for 640k rows).
        // The block and sequential orders read long runs of each page,
        // where the map is faster (a copy fewer).
        let pread = self.order == Order::Shuffle && self.hints.load(Ordering::Relaxed);
        // Rows in file order need no prefetch of their own: the CPU's
        // prefetcher streams them (issuing one took a sixth of a warm
        // sequential epoch's time). Nor rows read with `pread`.
        let prefetch = !pread && self.order != Order::Sequential;
        // A cold pass with a stash takes its rows from the stretches or
        // blocks read ahead into it (those it holds).
        let stash = self
            .stash
            .as_deref()
            .filter(|_| self.hints.load(Ordering::Relaxed) && !idx.is_empty());
        let mut taken: Vec<usize> = Vec::new();
        let view = match stash {
            Some(stash) => {
                taken = idx.iter().map(|&j| self.base + j).collect();
                taken.sort_unstable();
                stash.view(&taken)
            }
            None => View::default(),
        };
        let images = typed_mut::<T>(&mut batch.images).expect("batch dtype matches the context");
        let images = &mut images[..idx.len() * sl];
        // `next`: the next sample's first lines, for the generator's path to
        // prefetch while this sample is processed (see `Unread::next`).
        let one = |out: &mut [T], j: usize, next: &Prefetch<'_>| -> Result<()> {
            let row = self.base + j;
            let mut rng = SampleRng::new(self.seed, Stream::Augment, epoch, row as u64);
            // The generator reads the row itself, straight into its scratch
            // when the sample is resampled (one image copy fewer).
            let from = match view.row(row) {
                Some(bytes) => RowFrom::Bytes(bytes),
                None if pread => RowFrom::Pread,
                None => RowFrom::Map,
            };
            let mut read =
                |buf: &mut [T::Compute], place, scale, pending: Option<&Prefetch<'_>>| {
                    // The next row's lines, spread over this row's conversion.
                    let mut spread = |left: usize| {
                        if let Some(n) = pending {
                            n.issue(n.lines_left().div_ceil(left));
                        }
                    };
                    // Nothing to issue (rows in file order): no parts.
                    let pace: Option<Pace<'_>> = match pending {
                        Some(n) if n.lines_left() > 0 => Some(&mut spread),
                        _ => None,
                    };
                    self.x
                        .read_sample_placed_into(row, buf, place, scale, from, pace)
                };
            let unread = Unread {
                read: &mut read,
                next,
            };
            T::produce(out, |img| {
                T::Compute::with_scratch(|scratch| {
                    self.generator
                        .process_sample_from(img, self.shape, &mut rng, scratch, unread)
                })
            })
        };
        if idx.is_empty() || sl == 0 {
            return Ok(());
        }
        // The batch's samples in file order, each into its own slot: what
        // each comes out as depends on its row alone (its own generator),
        // and a cold file then faults in ascending order, behind the
        // kernel's read of the same rows (`hint`).
        let mut samples: Vec<(usize, &mut [T])> = idx
            .iter()
            .copied()
            .zip(images.chunks_exact_mut(sl))
            .collect();
        samples.sort_unstable_by_key(|&(j, _)| j);
        // A shuffled row is a DRAM miss: each row's first lines are
        // prefetched while the row before it is processed. They go down
        // with that sample (`Unread::next`) rather than all at once here,
        // so that a path with a loop of its own can spread them out.
        // A row's first lines where it will be read from: the stash or the map.
        let head = |j: usize| match view.row(self.base + j) {
            Some(row) => &row[..row.len().min(4096)],
            None => self.x.row_head_mapped(self.base + j),
        };
        let run = |samples: &mut [(usize, &mut [T])]| -> Result<()> {
            if prefetch {
                crate::sys::prefetch_lines(head(samples[0].0));
            }
            for k in 0..samples.len() {
                let next = match samples.get(k + 1) {
                    Some(&(j, _)) if prefetch => Prefetch::new(head(j)),
                    _ => Prefetch::default(),
                };
                let (j, img) = &mut samples[k];
                let done = one(img, *j, &next);
                // Whatever the sample's path left.
                next.issue_all();
                done?;
            }
            Ok(())
        };
        let done = if threads <= 1 || samples.len() <= 1 {
            run(&mut samples)
        } else {
            // Small images: hand rayon a few samples per task so scheduling
            // overhead stays well below the per-sample work.
            let per_task = (16_384 / sl).clamp(1, 64);
            samples.par_chunks_mut(per_task).try_for_each(run)
        };
        if let Some(stash) = stash {
            stash.release(view, &taken);
        }
        done
    }
}

/// Per-thread scratch memory, one per output type, reused for every sample
/// that thread processes (no allocation per sample in the steady state).
pub(crate) trait ScratchSlot: Sized {
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<Self>) -> R) -> R;
}

thread_local! {
    static SCRATCH_F32: RefCell<Scratch<f32>> = RefCell::new(Scratch::default());
    static SCRATCH_F64: RefCell<Scratch<f64>> = RefCell::new(Scratch::default());
}

impl ScratchSlot for f32 {
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<f32>) -> R) -> R {
        SCRATCH_F32.with(|s| f(&mut s.borrow_mut()))
    }
}

impl ScratchSlot for f64 {
    fn with_scratch<R>(f: impl FnOnce(&mut Scratch<f64>) -> R) -> R {
        SCRATCH_F64.with(|s| f(&mut s.borrow_mut()))
    }
}

#[cfg(test)]
mod tests;
