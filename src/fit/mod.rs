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

use rayon::prelude::*;

use crate::cache::direct::read_runs;
use crate::generator::standardize::{rescale_factor, Steps};
use crate::generator::statistics::Statistics;
use crate::generator::{Compat, GeneratorOptions};
use crate::layout::ImageShape;
use crate::npy::NpyArray;
use crate::rng::{SampleRng, Stream};
use crate::{Error, ErrorKind, OutputDtype, Result};

/// Rows per block of the per-channel reduction (fixed for the same reason).
const BLOCK_ROWS: usize = 16;
/// Chunks of rows asked from storage ahead of the one being reduced.
const READ_AHEAD_CHUNKS: u64 = 8;
/// Bytes per read when `fit` reads a file past the page cache.
const DIRECT_READ: usize = 8 << 20;

mod moments;
mod source;
mod zca;

use moments::{block_moments, block_moments_u8, u8_moments_apply, Moments};
pub use source::SampleSource;
use zca::{zca_bytes, zca_matrix, Gram, ZcaRule};

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
    /// mirrors Keras' `seed=None` draws a seed of its own.
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
///   the vectors cancel in the product). With [`Compat::Keras3`], Keras 3's
///   formula: `U·diag(sqrt(n)/(σ + zca_epsilon))·Uᵀ` over the `min(n, D)`
///   largest singular values `σ = sqrt(n·s)` of the centred data (its thin
///   SVD: no null space when `n < D`).
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
/// use npyflow::fit::fit;
/// use npyflow::{FitConfig, GeneratorOptions};
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
        // The half dtypes are computed in float32 (rounded at the store).
        dtype: options.dtype.compute(),
        rescale: rescale_factor(options),
        config,
        augment,
        exact: options.dtype == OutputDtype::F64 || source.exact_in_f32(),
    };
    let mut moments = vec![Moments::default(); image.channels];
    let mut gram = if steps.zca { Some(Gram::new(d)?) } else { None };
    // u8 images with nothing applied before the moments (no rescale, no
    // augmentation, no ZCA): summed as integers straight from their bytes,
    // exact and without the f64 copy (which, with the two f64 passes over
    // it, would be most of fit's CPU time).
    let raw = gram.is_none()
        && reader.rescale.is_none()
        && !config.augment
        && u8_moments_apply(image)
        && source.read_u8_samples_into(0, &mut []).is_some();
    // A `.npy` file larger than the page cache could keep: read straight
    // into the chunk buffers, a chunk ahead of the reduction.
    let direct = raw
        .then(|| source.as_npy())
        .flatten()
        .and_then(|a| Some((a, crate::cache::outgrown_room(a)?)));
    if let Some((array, room)) = direct {
        // Two reads' buffers: at most an eighth of the room.
        let read = (DIRECT_READ as u64).min(room / 16) as usize;
        moments = direct_u8_moments(array, &plan, image, read, |rows| source.rows_read(rows))?;
    } else {
        let mut chunk = vec![0.0f64; if raw { 0 } else { plan.chunk_rows * d }];
        let mut bytes = vec![0u8; if raw { plan.chunk_rows * d } else { 0 }];

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
                    let (first, round_end) =
                        (requested % n as u64, n as u64 - requested % n as u64);
                    let len = round_end.min(want - requested);
                    let _ = hints.send(first as usize..(first + len) as usize);
                    requested += len;
                }
                // Blocks reduce in parallel; `collect` keeps their order, so the
                // sequential merge below is the same for any thread count.
                let blocks: Vec<Vec<Moments>> = if raw {
                    let buf = &mut bytes[..rows * d];
                    reader.fill_u8(buf, start)?;
                    buf.par_chunks(BLOCK_ROWS * d)
                        .map(|b| block_moments_u8(b, image))
                        .collect()
                } else {
                    let buf = &mut chunk[..rows * d];
                    reader.fill(buf, start)?;
                    let blocks = buf
                        .par_chunks(BLOCK_ROWS * d)
                        .map(|b| block_moments(b, image))
                        .collect();
                    // After the moments: it works on the rows in place.
                    if let Some(g) = gram.as_mut() {
                        g.add_rows(buf);
                    }
                    blocks
                };
                for block in blocks {
                    for (acc, m) in moments.iter_mut().zip(block) {
                        *acc = acc.merge(m);
                    }
                }
                start += rows as u64;
            }
            Ok(())
        })?;
    }

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
        let rule = match options.compat {
            Compat::KerasPreprocessing => ZcaRule::Keras,
            Compat::Keras3 => ZcaRule::Keras3 {
                rows: plan.rows,
                single: options.dtype == OutputDtype::F32,
            },
        };
        stats = stats.with_zca(zca_matrix(sigma, d, options.zca_epsilon, rule)?)?;
    }
    Ok((stats, plan))
}

/// The moments of a `u8` array's samples, read straight from the device
/// into two buffers ([`read_runs`]): one read on a thread of its own while
/// the other is reduced, each about `read_bytes`; `rows_read` hears of each
/// read. The same
/// chunks and blocks as the buffered pass, so the same bits.
fn direct_u8_moments(
    array: &NpyArray,
    plan: &FitPlan,
    image: ImageShape,
    read_bytes: usize,
    rows_read: impl Fn(usize),
) -> Result<Vec<Moments>> {
    let (n, d, chunk) = (array.len(), plan.sample_len.max(1), plan.chunk_rows.max(1));
    // Each read takes whole chunks, about `read_bytes` of them (a chunk of
    // `u8` rows is an eighth of the `f64` buffer the plan sized it for:
    // 2 MiB by default, too little per request to stream a fast device).
    let run = chunk * (read_bytes / (chunk * d)).max(1);
    let mut moments = vec![Moments::default(); image.channels];
    read_runs(array, 0..n, run, |piece| {
        for bytes in piece.bytes().chunks(chunk * d) {
            let blocks: Vec<Vec<Moments>> = bytes
                .par_chunks(BLOCK_ROWS * d)
                .map(|b| block_moments_u8(b, image))
                .collect();
            for block in blocks {
                for (acc, m) in moments.iter_mut().zip(block) {
                    *acc = acc.merge(m);
                }
            }
        }
        rows_read(piece.rows().len());
        Ok(())
    })?;
    Ok(moments)
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

    /// Fills `buf` with the bytes of samples `start..` (no rounds: only
    /// without augmentation), for a source that gives them.
    fn fill_u8(&self, buf: &mut [u8], start: u64) -> Result<()> {
        let d = self.image.len().max(1);
        // Bytes are an eighth of `fill`'s f64 values: bigger tasks.
        let min_len = (262_144 / d).max(1);
        buf.par_chunks_mut(d * min_len)
            .enumerate()
            .try_for_each(|(t, rows)| {
                let first = start as usize + t * min_len;
                self.source
                    .read_u8_samples_into(first, rows)
                    .unwrap_or_else(|| {
                        Err(Error::invalid(
                            "source",
                            "read_u8_samples_into",
                            "gave bytes once, then stopped",
                        ))
                    })
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
                _ => row.iter_mut().for_each(|v| *v *= r),
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
        use crate::iterator::pipeline::ScratchSlot;
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

    #[test]
    fn direct_reads_give_the_buffered_statistics_bit_for_bit() {
        use crate::npy::{write_npy, ElemType};
        let dir = tempfile::tempdir().unwrap();
        let (n, d) = (1000, 6 * 5 * 3);
        let data: Vec<u8> = (0..n * d).map(|i| ((i * 37) ^ (i / 91)) as u8).collect();
        let path = dir.path().join("x.npy");
        write_npy(&path, ElemType::U8, &[n, 6, 5, 3], &data).unwrap();
        let x = NpyArray::open(&path).unwrap();
        let options = GeneratorOptions {
            featurewise_center: true,
            featurewise_std_normalization: true,
            ..Default::default()
        };
        // Chunks of 37 rows: the blocks of 16 rows restart at each chunk.
        let config = FitConfig {
            chunk_bytes: 37 * d * 8,
            ..FitConfig::default()
        };
        // The file fits in memory: the buffered pass.
        let (stats, plan) = fit_with_plan(&options, &x, &config, None).unwrap();
        assert_eq!(plan.chunk_rows, 37);
        let image = crate::layout::DataFormat::ChannelsLast.image_shape([6, 5, 3]);
        for read_bytes in [1, 2 * 37 * d + 5, 1 << 20] {
            let counted = std::sync::atomic::AtomicUsize::new(0);
            let moments = direct_u8_moments(&x, &plan, image, read_bytes, |rows| {
                counted.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
            })
            .unwrap();
            let mean: Vec<f64> = moments.iter().map(|m| m.mean).collect();
            let std: Vec<f64> = moments.iter().map(|m| (m.m2 / m.n).sqrt()).collect();
            assert_eq!(Some(&mean[..]), stats.mean(), "reads of {read_bytes} bytes");
            assert_eq!(Some(&std[..]), stats.std(), "reads of {read_bytes} bytes");
            assert_eq!(counted.into_inner(), n);
        }
    }
}
