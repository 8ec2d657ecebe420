//! Streaming, out-of-core `fit`: per-channel mean and std and the ZCA matrix
//! in one pass over an array of any size.
//!
//! Keras' `fit` copies the whole array (and `rounds` augmented copies of it)
//! into memory. Here samples are read in fixed-size chunks of rows into one
//! reusable buffer, so memory is `chunk_bytes` (plus `D × D` for ZCA)
//! whatever the number of samples.
//!
//! Numerics, and why:
//! - Per-channel mean and variance: each block of rows is reduced exactly in
//!   memory (two passes over the block), and blocks are merged with Chan's
//!   pairwise update. That is as accurate as numpy's two-pass `np.std` without
//!   a second pass over the file, and unlike raw sums of squares it does not
//!   cancel when the mean is large against the spread (0..255 pixels).
//! - Covariance for ZCA: Keras centres with the per-*channel* mean, which is
//!   only known at the end. The Gram matrix is accumulated over data shifted
//!   by a per-feature estimate taken from the first chunk (so the entries stay
//!   of the order of the covariance), together with the shifted column sums;
//!   the exact centring is applied once at the end as a rank-2 correction.
//! - Determinism: blocks, tiles and merge order are fixed by the data shape,
//!   never by the number of threads, and the eigendecomposition runs on one
//!   thread, so the statistics are bit-identical for any rayon pool size.

use faer::dyn_stack::{GlobalPodBuffer, PodStack};
use faer::linalg::evd::{compute_hermitian_evd, compute_hermitian_evd_req, ComputeVectors};
use faer::linalg::matmul::matmul;
use faer::Parallelism;
use ndarray::{ArrayBase, Axis, Data, Ix4};
use rayon::prelude::*;

use crate::generator::GeneratorOptions;
use crate::layout::{DataFormat, ImageShape};
use crate::npy::NpyArray;
use crate::rng::{SampleRng, Stream};
use crate::standardize::{rescale_factor, Steps};
use crate::statistics::{Statistics, ZcaMatrix};
use crate::{Error, ErrorKind, OutputDtype, Result};

/// Side of the square tiles the covariance and the ZCA product are split in:
/// the unit of parallel work (fixed, so results do not depend on thread count).
const TILE: usize = 128;
/// Rows per block of the per-channel reduction (fixed for the same reason).
const BLOCK_ROWS: usize = 16;
/// Chunks of rows asked from storage ahead of the one being reduced.
const READ_AHEAD_CHUNKS: u64 = 8;

/// A rank-4 array `fit` reads one sample at a time: a memory-mapped
/// [`NpyArray`], an in-memory `ndarray` array, or any generated source.
pub trait SampleSource: Sync {
    /// The full shape; the first axis counts samples.
    fn shape(&self) -> &[usize];

    /// Writes sample `index`, converted to `f64`, in C order into `out`
    /// (`out.len()` is the product of `shape()[1..]`; `index < shape()[0]`).
    ///
    /// # Errors
    /// When the sample cannot be read.
    fn read_sample_into(&self, index: usize, out: &mut [f64]) -> Result<()>;

    /// Writes samples `first..first + k` into `out` (`k` whole samples, in
    /// order). The default reads them one by one with
    /// [`read_sample_into`](SampleSource::read_sample_into); a source on
    /// storage reads them in one request.
    ///
    /// # Errors
    /// When a sample cannot be read.
    fn read_samples_into(&self, first: usize, out: &mut [f64]) -> Result<()> {
        let d: usize = self.shape()[1..].iter().product();
        for (k, row) in out.chunks_exact_mut(d.max(1)).enumerate() {
            self.read_sample_into(first + k, row)?;
        }
        Ok(())
    }

    /// A hint that samples `rows` will be read soon, in order: a source on
    /// storage starts reading them now so the pass is not paced by one page
    /// fault at a time. `fit` calls it from a thread of its own, ahead of
    /// the reads. The default does nothing.
    ///
    /// # Errors
    /// When the hint cannot be given; `fit` logs it and goes on (a real
    /// storage problem shows up in the reads).
    fn prefetch(&self, rows: std::ops::Range<usize>) -> Result<()> {
        let _ = rows;
        Ok(())
    }

    /// Whether every value this source yields is exactly representable in
    /// `f32` (8- and 16-bit integers, bool, float16/32): `fit` then skips
    /// rounding the samples to `float32`. The default, `false`, is always
    /// correct.
    fn exact_in_f32(&self) -> bool {
        false
    }
}

impl SampleSource for NpyArray {
    fn shape(&self) -> &[usize] {
        NpyArray::shape(self)
    }

    fn read_sample_into(&self, index: usize, out: &mut [f64]) -> Result<()> {
        // An array opened with `allow_fortran` has rows that are not
        // contiguous samples; reading them as such would fit garbage.
        if self.header().fortran_order {
            return Err(ErrorKind::FortranOrder {
                path: self.path().to_path_buf(),
            }
            .into());
        }
        NpyArray::read_sample_into(self, index, out)
    }

    fn prefetch(&self, rows: std::ops::Range<usize>) -> Result<()> {
        crate::cache::prefetch_row_range(self, rows)
    }

    fn read_samples_into(&self, first: usize, out: &mut [f64]) -> Result<()> {
        if self.header().fortran_order {
            return Err(ErrorKind::FortranOrder {
                path: self.path().to_path_buf(),
            }
            .into());
        }
        let d = self.row_len().max(1);
        self.read_samples_pread(first, out.len() / d, out)
    }

    fn exact_in_f32(&self) -> bool {
        use crate::npy::ElemType::*;
        matches!(self.dtype().elem, Bool | U8 | I8 | U16 | I16 | F16 | F32)
    }
}

impl<S, A> SampleSource for ArrayBase<S, Ix4>
where
    S: Data<Elem = A> + Sync,
    A: Copy + Into<f64> + Sync,
{
    fn shape(&self) -> &[usize] {
        ArrayBase::shape(self)
    }

    fn read_sample_into(&self, index: usize, out: &mut [f64]) -> Result<()> {
        // `iter` walks in logical C order whatever the strides, so transposed
        // or sliced views are read correctly.
        for (o, v) in out.iter_mut().zip(self.index_axis(Axis(0), index).iter()) {
            *o = (*v).into();
        }
        Ok(())
    }
}

/// A per-sample augmentation applied during `fit(augment = true)`: it
/// transforms one image (in `f64`, memory order of the given shape) in
/// place, drawing from the sample's own random stream.
pub type AugmentFn<'a> = &'a (dyn Fn(&mut [f64], ImageShape, &mut SampleRng) -> Result<()> + Sync);

/// How [`fit`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// Fit on augmented samples (Keras' `augment`). Default `false`.
    pub augment: bool,
    /// With `augment`, how many augmented passes over the data (Keras'
    /// `rounds`; ignored without `augment`). Default 1.
    pub rounds: usize,
    /// Seed of the augmentation: sample `i` of round `r` draws from
    /// `SampleRng::new(seed, Stream::Fit, r, i)`. Default 0; a wrapper that
    /// mirrors Keras' `seed=None` passes [`fresh_seed`](crate::fresh_seed).
    pub seed: u64,
    /// Refuse ZCA when its matrices and workspace would need more bytes than
    /// this. Default 2 GiB: enough for 48×48×3 images (32×32×3 needs about
    /// 360 MiB, most of it the eigensolver's workspace); 64×64×3 is refused.
    pub zca_memory_limit: u64,
    /// Target size of the buffer samples are read into; at least one row is
    /// read at a time. Default 16 MiB.
    pub chunk_bytes: usize,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            augment: false,
            rounds: 1,
            seed: 0,
            zca_memory_limit: 2 << 30,
            chunk_bytes: 16 << 20,
        }
    }
}

/// What a fit will read and allocate, known before any data is touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FitPlan {
    /// Samples visited: `N`, or `rounds × N` with augmentation.
    pub rows: u64,
    /// Elements per sample, `D = H · W · C`.
    pub sample_len: usize,
    /// Rows read per chunk.
    pub chunk_rows: usize,
    /// Bytes of the chunk buffer (`chunk_rows × D × 8`), independent of `N`.
    pub chunk_bytes: u64,
    /// Peak bytes of the ZCA stage (covariance, eigenvectors, eigensolver
    /// workspace, result); 0 without ZCA; `u64::MAX` when it does not even fit
    /// in the address space.
    pub zca_bytes: u64,
}

/// Fits Keras' featurewise statistics in one streaming pass over `source`.
///
/// Mirrors `ImageDataGenerator.fit(x, augment, rounds, seed)` of Keras 1.1.2:
/// samples are cast to the generator dtype, multiplied by `rescale`,
/// optionally augmented (`augment`, with rounds outer and samples inner, as
/// Keras orders them), then
/// - `featurewise_center` → per-channel mean over samples, rows and columns;
/// - `featurewise_std_normalization` → per-channel population std;
/// - `zca_whitening` → `U·diag(1/sqrt(s + zca_epsilon))·Uᵀ` from the
///   eigendecomposition `U·diag(s)·Uᵀ` of the covariance of the
///   mean-centred, flattened samples (Keras takes the SVD of the same
///   symmetric matrix; singular values are `|s|` and the sign and order of
///   the vectors cancel in the product).
///
/// Keras' flag overrides are applied to `options` first (ZCA implies the
/// mean and no std). Like Keras, `preprocessing_function` and the samplewise
/// options are not applied. Without any featurewise option nothing is read
/// and the statistics are empty. Statistics are accumulated in `f64`.
///
/// `augment` transforms a sample when `config.augment` is on; `None` means
/// the identity (Keras' augmentation with every range at zero).
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] when `source` is not rank 4, is empty, or
/// `rounds` is 0 with `augment`, or the data produce non-finite statistics;
/// [`ErrorKind::MemoryLimit`] when ZCA needs more than
/// `config.zca_memory_limit` (checked before allocating); read and
/// augmentation errors.
///
/// # Examples
/// ```
/// use ndarray::Array4;
/// use npyflow::{fit, FitConfig, GeneratorOptions};
///
/// let x = Array4::from_shape_fn((10, 4, 4, 3), |(n, r, c, ch)| (n + r + c + ch) as f32);
/// let options = GeneratorOptions { featurewise_std_normalization: true, ..Default::default() };
/// let stats = fit(&options, &x, &FitConfig::default(), None)?;
/// assert_eq!(stats.mean().unwrap().len(), 3);
/// assert!((stats.mean().unwrap()[0] - 7.5).abs() < 1e-12);
/// # Ok::<(), npyflow::Error>(())
/// ```
pub fn fit<S: SampleSource + ?Sized>(
    options: &GeneratorOptions,
    source: &S,
    config: &FitConfig,
    augment: Option<AugmentFn<'_>>,
) -> Result<Statistics> {
    fit_with_plan(options, source, config, augment).map(|(stats, _)| stats)
}

/// The plan [`fit`] would follow for an array of `shape`: validates the
/// arguments and computes the memory it needs, without reading anything.
///
/// # Errors
/// The argument errors of [`fit`] (not the memory limit).
pub fn plan_fit(
    options: &GeneratorOptions,
    shape: &[usize],
    config: &FitConfig,
) -> Result<FitPlan> {
    let (n, image) = validate_shape(options, shape)?;
    if config.augment && config.rounds == 0 {
        return Err(Error::invalid(
            "rounds",
            0,
            "must be at least 1 when `augment` is on",
        ));
    }
    let rounds = if config.augment {
        config.rounds as u64
    } else {
        1
    };
    let rows = (n as u64)
        .checked_mul(rounds)
        .ok_or_else(|| Error::invalid("rounds", rounds, "samples × rounds overflows"))?;
    let d = image.len();
    let row_bytes = d.saturating_mul(8);
    let chunk_rows =
        (config.chunk_bytes / row_bytes).clamp(1, usize::try_from(rows).unwrap_or(usize::MAX));
    let zca_bytes = if Steps::from_options(options).zca {
        zca_bytes(d).unwrap_or(u64::MAX)
    } else {
        0
    };
    Ok(FitPlan {
        rows,
        sample_len: d,
        chunk_rows,
        chunk_bytes: (chunk_rows as u64).saturating_mul(row_bytes as u64),
        zca_bytes,
    })
}

/// [`fit`], also returning the plan it followed (buffer sizes actually used).
///
/// # Errors
/// As [`fit`].
pub fn fit_with_plan<S: SampleSource + ?Sized>(
    options: &GeneratorOptions,
    source: &S,
    config: &FitConfig,
    augment: Option<AugmentFn<'_>>,
) -> Result<(Statistics, FitPlan)> {
    let plan = plan_fit(options, source.shape(), config)?;
    let (n, image) = validate_shape(options, source.shape())?;
    if ![1, 3, 4].contains(&image.channels) {
        log::warn!(
            "fit: expected 1, 3 or 4 channels on the {} channel axis, found {} (array shape {:?})",
            image.format.as_str(),
            image.channels,
            source.shape()
        );
    }
    let steps = Steps::from_options(options);
    if !(steps.featurewise_center || steps.featurewise_std || steps.zca) {
        return Ok((Statistics::for_image(image), plan));
    }
    if steps.zca {
        log::info!(
            "fit: ZCA whitening of {} elements per image needs {} MiB (limit {} MiB)",
            plan.sample_len,
            plan.zca_bytes >> 20,
            config.zca_memory_limit >> 20
        );
        if plan.zca_bytes > config.zca_memory_limit {
            return Err(ErrorKind::MemoryLimit {
                what: format!(
                    "ZCA whitening of {:?} images ({} × {} matrices)",
                    image.dims(),
                    plan.sample_len,
                    plan.sample_len
                ),
                needed: plan.zca_bytes,
                limit: config.zca_memory_limit,
            }
            .into());
        }
    }
    log::info!(
        "fit: {} samples in chunks of {} rows ({} KiB)",
        plan.rows,
        plan.chunk_rows,
        plan.chunk_bytes >> 10
    );

    let d = plan.sample_len;
    let reader = Reader {
        source,
        n,
        image,
        dtype: options.dtype,
        rescale: rescale_factor(options),
        config,
        augment,
        exact: options.dtype == OutputDtype::F64 || source.exact_in_f32(),
    };
    let mut chunk = vec![0.0f64; plan.chunk_rows * d];
    let mut moments = vec![Moments::default(); image.channels];
    let mut gram = if steps.zca { Some(Gram::new(d)?) } else { None };

    // The map is advised for random access (no read-around), so without
    // hints every page would be its own major fault: a cold 4 GiB file
    // took 47 s instead of 3. Keep READ_AHEAD_CHUNKS chunks in flight,
    // asked for on a thread of their own: asking blocks once the device
    // queue is full, and the reduction must not wait on it.
    let ahead = plan.chunk_rows as u64 * READ_AHEAD_CHUNKS;
    std::thread::scope(|scope| -> Result<()> {
        let (hints, pending) = std::sync::mpsc::channel::<std::ops::Range<usize>>();
        scope.spawn(move || {
            for rows in pending {
                if let Err(e) = source.prefetch(rows) {
                    log::debug!("fit: read-ahead refused: {e}");
                }
            }
        });
        // `hints` is dropped when this closure returns, however it returns,
        // which ends the thread before the scope waits for it.
        let mut requested = 0u64;
        let mut start = 0u64;
        while start < plan.rows {
            let rows = (plan.rows - start).min(plan.chunk_rows as u64) as usize;
            let want = (start + rows as u64 + ahead).min(plan.rows);
            while requested < want {
                // Rows repeat every `n` (augmentation rounds): one range per round.
                let (first, round_end) = (requested % n as u64, n as u64 - requested % n as u64);
                let len = round_end.min(want - requested);
                let _ = hints.send(first as usize..(first + len) as usize);
                requested += len;
            }
            let buf = &mut chunk[..rows * d];
            reader.fill(buf, start)?;
            // Blocks reduce in parallel; `collect` keeps their order, so the
            // sequential merge below is the same for any thread count.
            let blocks: Vec<Vec<Moments>> = buf
                .par_chunks(BLOCK_ROWS * d)
                .map(|b| block_moments(b, image))
                .collect();
            for block in blocks {
                for (acc, m) in moments.iter_mut().zip(block) {
                    *acc = acc.merge(m);
                }
            }
            if let Some(g) = gram.as_mut() {
                g.add_rows(buf);
            }
            start += rows as u64;
        }
        Ok(())
    })?;

    let mean: Vec<f64> = moments.iter().map(|m| m.mean).collect();
    let std: Vec<f64> = moments.iter().map(|m| (m.m2 / m.n).sqrt()).collect();
    if mean.iter().chain(&std).any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "x",
            "NaN or infinity",
            "the data produce non-finite statistics",
        ));
    }
    let mut stats = Statistics::for_image(image);
    if steps.featurewise_center {
        stats = stats.with_mean(mean.clone())?;
    }
    if steps.featurewise_std {
        stats = stats.with_std(std)?;
    }
    if let Some(g) = gram {
        let sigma = g.into_covariance(&mean, image, plan.rows as f64)?;
        stats = stats.with_zca(zca_matrix(sigma, d, options.zca_epsilon)?)?;
    }
    Ok((stats, plan))
}

fn validate_shape(options: &GeneratorOptions, shape: &[usize]) -> Result<(usize, ImageShape)> {
    let &[n, a, b, c] = shape else {
        return Err(Error::invalid(
            "x",
            format!("{shape:?}"),
            "input to `fit` should have rank 4 (samples, then the three image axes)",
        ));
    };
    if n == 0 {
        return Err(Error::invalid(
            "x",
            format!("{shape:?}"),
            "cannot fit on zero samples",
        ));
    }
    match a.checked_mul(b).and_then(|ab| ab.checked_mul(c)) {
        Some(0) => Err(Error::invalid(
            "x",
            format!("{shape:?}"),
            "images have no elements",
        )),
        Some(_) => Ok((n, options.data_format.image_shape([a, b, c]))),
        None => Err(Error::invalid(
            "x",
            format!("{shape:?}"),
            "image size overflows",
        )),
    }
}

/// Reads, casts, rescales and augments rows, as Keras prepares `x` in `fit`.
struct Reader<'a, S: ?Sized> {
    source: &'a S,
    n: usize,
    image: ImageShape,
    dtype: OutputDtype,
    rescale: Option<f64>,
    config: &'a FitConfig,
    augment: Option<AugmentFn<'a>>,
    /// The source's values survive the cast to the output dtype unchanged,
    /// so that pass can be skipped (a third of the CPU time on u8 images).
    exact: bool,
}

impl<S: SampleSource + ?Sized> Reader<'_, S> {
    /// Fills `buf` with rows `start..` (row `j` is sample `j % N` of round `j / N`).
    fn fill(&self, buf: &mut [f64], start: u64) -> Result<()> {
        let d = self.image.len();
        // A few rows per task: small images cost less than rayon's
        // per-task overhead.
        let min_len = (32_768 / d.max(1)).max(1);
        buf.par_chunks_mut(d * min_len)
            .enumerate()
            .try_for_each(|(t, rows)| {
                let first = start + (t * min_len) as u64;
                // One request per run of consecutive samples (a round ends
                // a run: sample N-1 is followed by sample 0).
                let mut done = 0;
                while done < rows.len() / d {
                    let index = ((first + done as u64) % self.n as u64) as usize;
                    let run = (rows.len() / d - done).min(self.n - index);
                    let out = &mut rows[done * d..(done + run) * d];
                    self.source.read_samples_into(index, out)?;
                    done += run;
                }
                rows.chunks_exact_mut(d)
                    .enumerate()
                    .try_for_each(|(r, row)| self.finish_row(first + r as u64, row))
            })
    }

    /// Everything after the read for the sample in buffer row `j`.
    fn finish_row(&self, j: u64, row: &mut [f64]) -> Result<()> {
        let (round, index) = (j / self.n as u64, (j % self.n as u64) as usize);
        if !self.exact {
            self.round_to_dtype(row);
        }
        if let Some(r) = self.rescale {
            match self.dtype {
                // numpy multiplies float32 arrays by the float32-rounded factor.
                OutputDtype::F32 => {
                    let r = r as f32;
                    row.iter_mut().for_each(|v| *v = (*v as f32 * r) as f64);
                }
                OutputDtype::F64 => row.iter_mut().for_each(|v| *v *= r),
            }
        }
        if self.config.augment {
            if let Some(f) = self.augment {
                let mut rng = SampleRng::new(self.config.seed, Stream::Fit, round, index as u64);
                f(row, self.image, &mut rng)?;
                self.round_to_dtype(row);
            }
        }
        Ok(())
    }

    /// Keras converts `x` to the generator dtype before anything else.
    fn round_to_dtype(&self, row: &mut [f64]) {
        if self.dtype == OutputDtype::F32 {
            row.iter_mut().for_each(|v| *v = *v as f32 as f64);
        }
    }
}

/// Count, mean and sum of squared deviations of one channel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Chan et al.'s pairwise merge of two disjoint parts.
    fn merge(self, other: Moments) -> Moments {
        if other.n == 0.0 {
            return self;
        }
        if self.n == 0.0 {
            return other;
        }
        let n = self.n + other.n;
        let delta = other.mean - self.mean;
        Moments {
            n,
            mean: self.mean + delta * (other.n / n),
            m2: self.m2 + other.m2 + delta * delta * (self.n * other.n / n),
        }
    }
}

/// Exact per-channel moments of a block of rows (two passes over memory).
fn block_moments(block: &[f64], image: ImageShape) -> Vec<Moments> {
    let c = image.channels;
    let count = (block.len() / c.max(1)) as f64;
    let sum = channel_sums(block, image, None);
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let m2 = channel_sums(block, image, Some(&mean));
    mean.iter()
        .zip(m2)
        .map(|(&mean, m2)| Moments { n: count, mean, m2 })
        .collect()
}

/// Lanes of the per-channel accumulators: a multiple of 1, 2, 3, 4, 6 and 8
/// channels, so with channels last lane `i` always holds channel `i % c`.
const LANES: usize = 24;

/// Per channel of `block`: the sum of the values, or with `mean` the sum of
/// squared deviations from it. Fixed-width lane accumulators let the
/// compiler vectorise (a per-value closure call cost 3× the whole pass);
/// the summation order is fixed, so results do not depend on threads.
fn channel_sums(block: &[f64], image: ImageShape, mean: Option<&[f64]>) -> Vec<f64> {
    let c = image.channels;
    let term = |v: f64, m: f64| match mean {
        Some(_) => (v - m) * (v - m),
        None => v,
    };
    let mut out = vec![0.0; c];
    match image.format {
        DataFormat::ChannelsLast if LANES % c == 0 => {
            let lane_mean: [f64; LANES] = std::array::from_fn(|i| mean.map_or(0.0, |m| m[i % c]));
            let mut acc = [0.0; LANES];
            let chunks = block.chunks_exact(LANES);
            let rest = chunks.remainder();
            for chunk in chunks {
                for i in 0..LANES {
                    acc[i] += term(chunk[i], lane_mean[i]);
                }
            }
            // The remainder starts on channel 0 (LANES is a multiple of c).
            for (i, &v) in rest.iter().enumerate() {
                acc[i] += term(v, lane_mean[i]);
            }
            for (i, a) in acc.iter().enumerate() {
                out[i % c] += a;
            }
        }
        DataFormat::ChannelsLast => {
            for px in block.chunks_exact(c) {
                for (ch, &v) in px.iter().enumerate() {
                    out[ch] += term(v, mean.map_or(0.0, |m| m[ch]));
                }
            }
        }
        DataFormat::ChannelsFirst => {
            let plane = image.height * image.width;
            for row in block.chunks_exact(image.len()) {
                for (ch, p) in row.chunks_exact(plane).enumerate() {
                    let m = mean.map_or(0.0, |m| m[ch]);
                    let mut acc = [0.0; 8];
                    let chunks = p.chunks_exact(8);
                    let rest = chunks.remainder();
                    for chunk in chunks {
                        for i in 0..8 {
                            acc[i] += term(chunk[i], m);
                        }
                    }
                    for (i, &v) in rest.iter().enumerate() {
                        acc[i] += term(v, m);
                    }
                    out[ch] += acc.iter().sum::<f64>();
                }
            }
        }
    }
    out
}

/// One lower-triangle tile of the Gram matrix, column-major.
struct Tile {
    i0: usize,
    j0: usize,
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

/// The streaming Gram matrix of shifted rows, in lower-triangle tiles so each
/// tile is one independent parallel task (a blocked `syrk`).
struct Gram {
    d: usize,
    shift: Option<Vec<f64>>,
    sum: Vec<f64>,
    tiles: Vec<Tile>,
}

fn tile_spans(d: usize) -> impl Iterator<Item = (usize, usize)> + Clone {
    (0..d).step_by(TILE).map(move |s| (s, TILE.min(d - s)))
}

/// Elements in the lower-triangle tiles of a `d × d` matrix.
fn tile_elems(d: usize) -> Option<u64> {
    let mut total = 0u64;
    for (bi, (_, h)) in tile_spans(d).enumerate() {
        for (_, w) in tile_spans(d).take(bi + 1) {
            total = total.checked_add((h * w) as u64)?;
        }
    }
    Some(total)
}

/// Peak bytes of the ZCA stage for `d` features (see [`FitPlan::zca_bytes`]).
fn zca_bytes(d: usize) -> Option<u64> {
    let square = (d as u64).checked_mul(d as u64)?.checked_mul(8)?;
    let vectors = (d as u64).checked_mul(8 * 3)?; // shift, column sums, eigenvalues
    let workspace = compute_hermitian_evd_req::<f64>(
        d,
        ComputeVectors::Yes,
        Parallelism::None,
        Default::default(),
    )
    .ok()?;
    let workspace = workspace
        .size_bytes()
        .checked_add(workspace.align_bytes())? as u64;
    // Phases: tiles + covariance; covariance + eigenvectors + workspace;
    // eigenvectors + result. The second is always the largest.
    let assemble = tile_elems(d)?.checked_mul(8)?.checked_add(square)?;
    let evd = square.checked_mul(2)?.checked_add(workspace)?;
    assemble.max(evd).checked_add(vectors)
}

/// A zero-filled vector, or a [`ErrorKind::MemoryLimit`] error instead of an abort.
fn try_zeroed(len: usize, what: &str) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| ErrorKind::MemoryLimit {
            what: format!("{what} (the allocator refused)"),
            needed: (len as u64).saturating_mul(8),
            limit: 0,
        })?;
    v.resize(len, 0.0);
    Ok(v)
}

impl Gram {
    fn new(d: usize) -> Result<Gram> {
        let mut tiles = Vec::new();
        for (bi, (i0, rows)) in tile_spans(d).enumerate() {
            for (j0, cols) in tile_spans(d).take(bi + 1) {
                tiles.push(Tile {
                    i0,
                    j0,
                    rows,
                    cols,
                    data: try_zeroed(rows * cols, "ZCA covariance")?,
                });
            }
        }
        Ok(Gram {
            d,
            shift: None,
            sum: vec![0.0; d],
            tiles,
        })
    }

    /// Adds the rows of `buf` (row-major, `d` wide); shifts them in place.
    fn add_rows(&mut self, buf: &mut [f64]) {
        let d = self.d;
        let rows = buf.len() / d;
        let shift = self.shift.get_or_insert_with(|| {
            let mut m = vec![0.0; d];
            buf.chunks_exact(d)
                .for_each(|row| m.iter_mut().zip(row).for_each(|(m, v)| *m += v));
            m.iter_mut().for_each(|m| *m /= rows as f64);
            m
        });
        buf.par_chunks_mut(d)
            .for_each(|row| row.iter_mut().zip(shift.iter()).for_each(|(v, k)| *v -= k));
        for row in buf.chunks_exact(d) {
            self.sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
        let x = faer::mat::from_row_major_slice(buf, rows, d);
        self.tiles.par_iter_mut().for_each(|t| {
            let a = x.subcols(t.i0, t.rows).transpose();
            let b = x.subcols(t.j0, t.cols);
            let dst = faer::mat::from_column_major_slice_mut(&mut t.data, t.rows, t.cols);
            matmul(dst, a, b, Some(1.0), 1.0, Parallelism::None);
        });
    }

    /// The covariance about the per-channel `mean`, divided by `n` (Keras'
    /// `flatᵀ·flat / N` of the centred data): lower triangle, column-major.
    ///
    /// With `y = x − k` accumulated and `c = m − k` per feature,
    /// `Σ (x − m)(x − m)ᵀ = G − s·cᵀ − c·sᵀ + n·c·cᵀ`.
    fn into_covariance(self, mean: &[f64], image: ImageShape, n: f64) -> Result<Vec<f64>> {
        let d = self.d;
        let plane = image.height * image.width;
        let shift = self.shift.unwrap_or_else(|| vec![0.0; d]);
        let c: Vec<f64> = (0..d)
            .map(|f| {
                let ch = match image.format {
                    DataFormat::ChannelsLast => f % image.channels,
                    DataFormat::ChannelsFirst => f / plane,
                };
                mean[ch] - shift[f]
            })
            .collect();
        let s = &self.sum;
        let mut sigma = try_zeroed(d * d, "ZCA covariance")?;
        // Tiles are consumed one by one so their memory is released while
        // the dense matrix fills.
        for t in self.tiles {
            for jj in 0..t.cols {
                let j = t.j0 + jj;
                for ii in 0..t.rows {
                    let i = t.i0 + ii;
                    if i >= j {
                        let g = t.data[ii + jj * t.rows];
                        sigma[i + j * d] = (g - s[i] * c[j] - c[i] * s[j] + n * c[i] * c[j]) / n;
                    }
                }
            }
        }
        if sigma.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "x",
                "NaN or infinity",
                "the data produce a non-finite covariance",
            ));
        }
        Ok(sigma)
    }
}

/// `U·diag(1/sqrt(|s| + ε))·Uᵀ` from the lower triangle of the column-major
/// covariance `sigma`.
fn zca_matrix(sigma: Vec<f64>, d: usize, epsilon: f64) -> Result<ZcaMatrix> {
    let mut s = vec![0.0; d];
    let mut u = try_zeroed(d * d, "ZCA eigenvectors")?;
    {
        let req = compute_hermitian_evd_req::<f64>(
            d,
            ComputeVectors::Yes,
            Parallelism::None,
            Default::default(),
        )
        .map_err(|_| ErrorKind::MemoryLimit {
            what: "ZCA eigensolver workspace".into(),
            needed: u64::MAX,
            limit: 0,
        })?;
        let mut mem = GlobalPodBuffer::try_new(req).map_err(|_| ErrorKind::MemoryLimit {
            what: "ZCA eigensolver workspace (the allocator refused)".into(),
            needed: req.size_bytes() as u64,
            limit: 0,
        })?;
        // One thread: the result must not depend on the pool size.
        compute_hermitian_evd(
            faer::mat::from_column_major_slice(&sigma, d, d),
            faer::col::from_slice_mut(&mut s),
            Some(faer::mat::from_column_major_slice_mut(&mut u, d, d)),
            Parallelism::None,
            PodStack::new(&mut mem),
            Default::default(),
        );
    }
    drop(sigma);
    // V = U·diag(w^½) so that V·Vᵀ = U·diag(w)·Uᵀ with one product. The
    // singular values of a symmetric matrix are |eigenvalues|: taking the
    // magnitude matches Keras' SVD even for round-off-negative eigenvalues.
    for (col, &ev) in u.chunks_exact_mut(d).zip(&s) {
        let scale = (ev.abs() + epsilon).powf(-0.25);
        if !scale.is_finite() {
            return Err(Error::invalid(
                "zca_epsilon",
                epsilon,
                "the covariance is singular; use a positive zca_epsilon",
            ));
        }
        col.iter_mut().for_each(|v| *v *= scale);
    }
    let v = faer::mat::from_column_major_slice(&u, d, d);
    let mut pc = try_zeroed(d * d, "ZCA matrix")?;
    pc.par_chunks_mut(TILE * d)
        .enumerate()
        .for_each(|(b, block)| {
            let h = block.len() / d;
            let dst = faer::mat::from_row_major_slice_mut(block, h, d);
            matmul(
                dst,
                v.subrows(b * TILE, h),
                v.transpose(),
                None,
                1.0,
                Parallelism::None,
            );
        });
    drop(u);
    ZcaMatrix::from_row_major(d, pc)
}

impl crate::ImageDataGenerator {
    /// Keras' `fit(x, augment, rounds, seed)`: computes the featurewise
    /// statistics the options ask for in one streaming pass over `x` (any
    /// size: memory does not depend on the number of samples) and stores
    /// them on the generator. With `config.augment`, samples go through this
    /// generator's `random_transform` first, as in Keras.
    ///
    /// # Errors
    /// As [`fit`]: rank other than 4, a ZCA matrix beyond
    /// `config.zca_memory_limit`, unreadable data.
    pub fn fit<S: SampleSource + ?Sized>(
        &mut self,
        x: &S,
        config: &FitConfig,
    ) -> Result<&Statistics> {
        use crate::pipeline::ScratchSlot;
        let this = &*self;
        let augment = |img: &mut [f64], shape: ImageShape, rng: &mut SampleRng| -> Result<()> {
            f64::with_scratch(|scratch| this.random_transform(img, shape, rng, scratch))
        };
        let stats = fit(self.options(), x, config, Some(&augment))?;
        self.set_statistics(Some(stats));
        Ok(self.statistics().expect("set above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chan_merge_matches_two_pass() {
        let x: Vec<f64> = (0..37).map(|i| 1e6 + (i as f64 * 0.37).sin()).collect();
        let (a, b) = x.split_at(11);
        let img = ImageShape::hwc(1, 1, 1);
        let m = block_moments(a, img)[0].merge(block_moments(b, img)[0]);
        let mean = x.iter().sum::<f64>() / 37.0;
        let m2: f64 = x.iter().map(|v| (v - mean) * (v - mean)).sum();
        assert!((m.mean - mean).abs() < 1e-9);
        assert!((m.m2 - m2).abs() < 1e-9 * m2);
    }

    #[test]
    fn tiles_cover_the_lower_triangle() {
        for d in [1usize, 90, 128, 129, 300] {
            let nb = d.div_ceil(TILE) as u64;
            let full = (d * d) as u64;
            let t = tile_elems(d).unwrap();
            assert!(t >= full / 2 && t <= full, "{d}: {t}");
            assert_eq!(Gram::new(d).unwrap().tiles.len() as u64, nb * (nb + 1) / 2);
        }
    }

    #[test]
    fn plan_rejects_bad_shapes_and_refuses_huge_zca() {
        let o = GeneratorOptions {
            zca_whitening: true,
            ..Default::default()
        };
        let c = FitConfig::default();
        assert!(plan_fit(&o, &[10, 4, 4], &c).is_err());
        assert!(plan_fit(&o, &[0, 4, 4, 3], &c).is_err());
        let aug = FitConfig {
            augment: true,
            rounds: 0,
            ..FitConfig::default()
        };
        assert!(plan_fit(&o, &[10, 4, 4, 3], &aug).is_err());
        // The figures the `zca_memory_limit` docs quote.
        let needed = |h| plan_fit(&o, &[10, h, h, 3], &c).unwrap().zca_bytes;
        assert!(needed(48) <= c.zca_memory_limit && needed(64) > c.zca_memory_limit);
        assert!(
            (300 << 20..400 << 20).contains(&needed(32)),
            "{}",
            needed(32)
        );
        let p = plan_fit(&o, &[10, 224, 224, 3], &c).unwrap();
        assert!(p.zca_bytes > 2 * 150_528u64 * 150_528 * 8);
    }
}
