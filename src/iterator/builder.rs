//! `IteratorBuilder`: the iterator's options, and `build`, which checks
//! them in Keras' order and sets up what iterating needs.
//!
//! `build` runs one step per concern: the arrays' lengths (Keras' checks and
//! messages, in Keras' order), the subset and its class check, the image
//! shape, the page cache (advice and budget), then the threads and the
//! prefetch depth.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::{advise_for_order, AccessPattern};
use crate::generator::ImageDataGenerator;
use crate::iterator::order::{subset_range, Order, Subset};
use crate::iterator::pipeline::{Context, ContextConfig};
use crate::iterator::save::{SaveConfig, SaveFormat};
use crate::iterator::shard::Shard;
use crate::iterator::NumpyArrayIterator;
use crate::layout::{DataFormat, ImageShape};
use crate::npy::NpyArray;
use crate::rng::fresh_seed;
use crate::{Error, ErrorKind, OutputDtype, Result};

/// Builds a [`NumpyArrayIterator`]; every setter documents its default.
///
/// # Examples
/// ```
/// use npyflow::npy::{write_npy, ElemType};
/// use npyflow::{NpyArray, NumpyArrayIterator, Order};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let (x_path, y_path) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
/// write_npy(&x_path, ElemType::U8, &[10, 4, 4, 3], &[0u8; 480])?;
/// let labels: Vec<u8> = (0..10u8).map(|i| i % 2).collect();
/// write_npy(&y_path, ElemType::U8, &[10], &labels)?;
/// let mut it = NumpyArrayIterator::builder(NpyArray::open(&x_path)?)
///     .y(NpyArray::open(&y_path)?)
///     .batch_size(4)
///     .order(Order::Shuffle)
///     .seed(42)
///     .threads(1)
///     .build()?;
/// assert_eq!((it.len(), it.num_samples()), (3, 10));
/// let batch = it.next_batch()?;
/// assert_eq!(batch.y().unwrap().len(), 4);
/// # Ok::<(), npyflow::Error>(())
/// ```
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
    /// Buffer memory the default prefetch depth may take (see
    /// [`IteratorBuilder::prefetch`]).
    pub const AUTO_PREFETCH_BYTES: u64 = 32 << 20;

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

    /// Keras' `shuffle` argument, kept under Keras' name: the same as
    /// [`order`](IteratorBuilder::order)`(`[`Order::from_shuffle`]`(shuffle))`,
    /// i.e. [`Order::Shuffle`] or [`Order::Sequential`]. Whichever of the
    /// two setters is called last wins. By default, false
    /// ([`ImageDataGenerator::flow`] sets true, as Keras' `flow`).
    ///
    /// Both exist on purpose: `shuffle` is what Keras code (and the Python
    /// binding's keyword) says; `order` is the general form, which also
    /// reaches the page-aware [`Order::Blocks`].
    pub fn shuffle(self, shuffle: bool) -> Self {
        self.order(Order::from_shuffle(shuffle))
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

    /// Drop the last, shorter batch of each epoch and, with
    /// [`shard`](IteratorBuilder::shard), the plan's last `n mod count`
    /// samples instead of padding the shards to equal lengths. By default,
    /// false (Keras keeps the short batch).
    pub fn drop_last(mut self, yes: bool) -> Self {
        self.drop_last = yes;
        self
    }

    /// Iterate only part `index` of `count` of every epoch: a contiguous
    /// slice of the epoch's plan, of the same length on every part (padded
    /// by wrapping around, or cut with [`drop_last`](IteratorBuilder::drop_last);
    /// see [`Shard::len`]). By default, everything.
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

    /// Threads assembling each batch; 0 = all cores, or one fewer when the
    /// samples are only converted (no random transforms, preprocessing
    /// function or ZCA) and the file is read past the page cache: the
    /// kernel's side of the reads then needs a core. By default, 0. Output
    /// is identical for any value.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Batches prepared ahead in the background; 0 = none (each batch is
    /// assembled when asked for, over all threads). By default, as many as
    /// fit in [`AUTO_PREFETCH_BYTES`](IteratorBuilder::AUTO_PREFETCH_BYTES)
    /// of buffers, from 2 up to 4 per thread (2 when the file is read past
    /// the page cache): small batches need several in flight so that the
    /// threads never wait for the caller to hand a buffer back, large ones
    /// are fine with 2 (docs/PERFORMANCE.md has the measurements).
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
    /// `x` other than 4; `batch_size == 0`; a bad shard or block order; a
    /// class set that differs between the subsets; images without pixels;
    /// an unwritable `save_to_dir`; a cache budget smaller than one batch.
    pub fn build(mut self) -> Result<NumpyArrayIterator> {
        let generator = self.generator.take().unwrap_or_default();
        self.check_lengths()?;
        let rows = self.subset_rows(&generator)?;
        self.check_rank()?;
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "must be at least 1"));
        }
        let shard = Shard::new(self.shard.index, self.shard.count)?;
        self.order.validate()?;
        let shape = self.image_shape(&generator)?;
        if let Some(save) = &self.save {
            save.prepare()?;
        }
        self.advise_cache()?;
        let config = ContextConfig {
            dtype: self.dtype.unwrap_or(generator.options().dtype),
            seed: self.seed.unwrap_or_else(fresh_seed),
            x: self.x,
            y: self.y,
            sample_weight: self.sample_weight,
            aux: self.aux,
            generator,
            shape,
            rows,
            batch_size: self.batch_size,
            drop_last: self.drop_last,
            order: self.order,
            shard,
            resumed: None,
            save: self.save,
            cache_budget: self.cache_budget,
        };
        let ctx = Context::new(config.clone());
        let light = ctx.past_cache() && config.generator.converts_only();
        let (pool, threads) = thread_pool(self.threads, light)?;
        let prefetch = self
            .prefetch
            .unwrap_or_else(|| auto_prefetch(ctx.batch_image_bytes(), threads, ctx.past_cache()));
        // The pipeline allocates its batches without a way to fail.
        crate::error::check_allocation(
            (prefetch as u64)
                .saturating_add(2)
                .saturating_mul(ctx.batch_image_bytes()),
            || {
                format!("{prefetch} batches prefetched and 2 in use, of {} bytes of images each (prefetch {prefetch})", ctx.batch_image_bytes())
            },
        )?;
        Ok(NumpyArrayIterator::new(
            config, ctx, pool, threads, prefetch,
        ))
    }

    /// Keras' length checks, in Keras' order and words: the auxiliary
    /// arrays, `y`, then `sample_weight` against `x`.
    fn check_lengths(&self) -> Result<()> {
        let n = self.x.len();
        for a in &self.aux {
            if a.len() != n {
                return Err(ErrorKind::ShapeMismatch {
                    what: format!(
                        "All of the arrays in `x` should have the same length. Found a pair with: len(x[0]) = {n}, len({}) = {}",
                        a.name(),
                        a.len()
                    ),
                    expected: vec![n],
                    found: vec![a.len()],
                }
                .into());
            }
        }
        let pairs = [
            ("`y` (labels)", "y", &self.y),
            ("`sample_weight`", "sample_weight", &self.sample_weight),
        ];
        for (what, name, array) in pairs {
            if let Some(a) = array.as_ref().filter(|a| a.len() != n) {
                return Err(ErrorKind::ShapeMismatch {
                    what: format!(
                        "`x` (images tensor) and {what} should have the same length. Found: x.shape = {:?}, {name}.shape = {:?}",
                        self.x.shape(),
                        a.shape()
                    ),
                    expected: vec![n],
                    found: vec![a.len()],
                }
                .into());
            }
        }
        Ok(())
    }

    /// The rows of the subset in the files, after Keras' check that both
    /// subsets hold the same classes (unless told to skip it).
    fn subset_rows(&self, generator: &ImageDataGenerator) -> Result<std::ops::Range<usize>> {
        let n = self.x.len();
        let split = generator.options().validation_split;
        let (base, len) = subset_range(n, split, self.subset);
        if self.subset != Subset::All && !self.ignore_class_split {
            if let Some(y) = &self.y {
                check_classes(y, subset_range(n, split, Subset::Validation).1)?;
            }
        }
        Ok(base..base + len)
    }

    /// Keras' rank check on `x`.
    fn check_rank(&self) -> Result<()> {
        if self.x.shape().len() == 4 {
            return Ok(());
        }
        Err(ErrorKind::ShapeMismatch {
            what: format!(
                "Input data in `NumpyArrayIterator` should have rank 4. You passed an array with shape {:?} ({})",
                self.x.shape(),
                self.x.name()
            ),
            expected: vec![4],
            found: vec![self.x.shape().len()],
        }
        .into())
    }

    /// The image layout of `x` (rank 4) in the data format; images must
    /// have pixels, and channel counts other than 1, 3 or 4 are warned about.
    fn image_shape(&self, generator: &ImageDataGenerator) -> Result<ImageShape> {
        let data_format = self.data_format.unwrap_or(generator.options().data_format);
        let s = self.x.shape();
        let shape = data_format.image_shape([s[1], s[2], s[3]]);
        if shape.is_empty() {
            return Err(Error::invalid(
                "x",
                format!("shape {s:?}"),
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
        Ok(shape)
    }

    /// Matches the kernel's read-ahead to the order, and checks that a
    /// page budget holds at least one batch.
    fn advise_cache(&self) -> Result<()> {
        // No read-ahead for uniform shuffles (read-around would pull
        // ~128 KiB per faulting row and thrash a cache smaller than the
        // file), forward for the others — except under a page budget,
        // where the kernel's sequential window (up to twice read_ahead_kb,
        // here 16 MiB) would overrun the budget and our own bounded
        // read-ahead does the work.
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
        Ok(())
    }
}

/// The iterator's own thread pool and its size: `requested` threads, or
/// by default (0) all cores, one fewer for a `light` pass (samples only
/// converted, [`ImageDataGenerator::converts_only`], and read past the page
/// cache).
///
/// Such a pass waits on the device, and the kernel's side of the reads
/// needs a core of its own: a loop device's copy, an encrypted disk's
/// decryption, a network file system's receive. With every core
/// assembling, the pass slowed the device it waited for. Cold, 4 GiB under
/// a 1 GiB cgroup on a loop device (2 cores, rescale only), 1 thread
/// against 2: the block order 1.34 s against 1.86 s, the sequential order
/// 0.97 s against 1.17 s (medians of 5, `dd` 1.15 s). One thread converts
/// 3.5 GB/s of 32×32×3 `u8`; where samples are augmented the cores are the
/// limit and all of them assemble (rotation and shift, 1 thread against 2:
/// 6.54 s against 4.33 s).
fn thread_pool(requested: usize, light: bool) -> Result<(Arc<rayon::ThreadPool>, usize)> {
    let threads = match requested {
        0 if light => rayon::current_num_threads().saturating_sub(1).max(1),
        0 => rayon::current_num_threads(),
        n => n,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("npyflow-{i}"))
        .build()
        .map_err(|e| Error::invalid("threads", threads, e.to_string()))?;
    Ok((Arc::new(pool), threads))
}

/// The default prefetch depth for full batches of `batch_bytes` of images:
/// as many as fit in [`IteratorBuilder::AUTO_PREFETCH_BYTES`], from 2 up
/// to 4 per thread, or 2 per thread for a pass read past the page cache.
///
/// Such a pass shares the memory bus with the device's copy (a loop
/// device's, or the DMA of a disk), and the batches' stores are most of
/// its traffic (a 32×32×3 `u8` row is 12 KiB of `float32`): with fewer
/// buffers in turn they stay in the cores' caches. Cold, 4 GiB under a
/// 1 GiB cgroup on a loop device, 8 → 4 buffers: the block order 2.44 →
/// 2.03 s, the sequential order 1.45 → 1.23 s (medians of 5, `dd` 1.29 s).
/// A cached file gained nothing from it (a warm shuffle: 0.83–0.94 s with
/// 8, 0.90–1.26 s with 4), and keeps the deeper default.
fn auto_prefetch(batch_bytes: u64, threads: usize, past_cache: bool) -> usize {
    let per_thread = if past_cache { 2 } else { 4 };
    (IteratorBuilder::AUTO_PREFETCH_BYTES / batch_bytes.max(1))
        .clamp(2, per_thread * threads as u64) as usize
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

// The builder's entry points live here, beside it, so that the iterator's
// module does not depend on its builder (the builder depends on the iterator).
impl NumpyArrayIterator {
    /// Starts a builder over images `x`.
    pub fn builder(x: NpyArray) -> IteratorBuilder {
        IteratorBuilder::new(x)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_light_pass_past_the_page_cache_leaves_a_core_by_default() {
        let cores = rayon::current_num_threads();
        assert_eq!(thread_pool(0, false).unwrap().1, cores);
        assert_eq!(thread_pool(0, true).unwrap().1, (cores - 1).max(1));
        assert_eq!(thread_pool(3, true).unwrap().1, 3);
        assert_eq!(thread_pool(1, false).unwrap().0.current_num_threads(), 1);
    }

    #[test]
    fn auto_prefetch_fills_the_budget_within_its_bounds() {
        // 32×32×3 f32 images, batches of 32: 384 KiB a batch.
        assert_eq!(auto_prefetch(32 * 3072 * 4, 2, false), 8);
        assert_eq!(auto_prefetch(32 * 3072 * 4, 1, false), 4);
        // Past the page cache: 2 per thread.
        assert_eq!(auto_prefetch(32 * 3072 * 4, 2, true), 4);
        // 224×224×3 f32, batches of 64: 38.5 MB, more than the budget.
        assert_eq!(auto_prefetch(64 * 150_528 * 4, 8, false), 2);
        assert_eq!(auto_prefetch(64 * 150_528 * 4, 8, true), 2);
        // Tiny or empty batches.
        assert_eq!(auto_prefetch(0, 3, false), 12);
    }
}
