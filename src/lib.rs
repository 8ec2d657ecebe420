//! Out-of-core, Keras-compatible batch iteration over `.npy` image datasets.
//!
//! npyflow is what Keras' `NumpyArrayIterator` + `ImageDataGenerator` would be
//! if they were memory-mapped, zero-copy, parallel and page-cache aware: the
//! arrays stay on disk, rows are gathered into one reusable batch buffer,
//! augmented with Keras' exact geometry (scipy's resampling, every fill mode,
//! spline orders 0–5) and standardised in Keras' order.
//!
//! # Brief overview
//!
//! - [`NpyArray`] — a validated, memory-mapped `.npy` (or a stored `.npz`
//!   member via [`NpzArchive`]); zero-copy views, per-sample conversion.
//! - [`ImageDataGenerator`] — Keras' options ([`GeneratorOptions`], also read
//!   from Keras-style JSON), `get_random_transform`, `apply_transform`,
//!   `standardize`, streaming [`fit`](fn@fit) and [`Statistics`].
//! - [`NumpyArrayIterator`] — batches ([`Batch`]) in [`Order::Sequential`],
//!   [`Order::Shuffle`] or the page-aware [`Order::Blocks`]; subsets, shards,
//!   saved positions, prefetch, parallel assembly.
//! - [`npy`] — the format layer: header parsing over bytes, dtypes, and
//!   crash-safe writers ([`npy::NpyWriter`], [`npy::NpzWriter`]).
//! - [`bench`](mod@bench) — the page-cache benchmark as a library; with the `plot`
//!   feature, `bench::draw_chart` draws its PNG chart.
//!
//! # Example
//!
//! ```
//! use npyflow::npy::{write_npy, ElemType};
//! use npyflow::{GeneratorOptions, ImageDataGenerator, NpyArray, ShiftRange};
//!
//! # fn main() -> npyflow::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! // 10 RGB images of 8×8, as numpy would save them.
//! let path = dir.path().join("x.npy");
//! write_npy(&path, ElemType::U8, &[10, 8, 8, 3], &vec![128u8; 10 * 8 * 8 * 3])?;
//!
//! let x = NpyArray::open(&path)?; // mapped, nothing loaded
//! let generator = ImageDataGenerator::new(GeneratorOptions {
//!     rotation_range: 20.0,
//!     width_shift_range: ShiftRange::Float(0.1),
//!     horizontal_flip: true,
//!     rescale: Some(1.0 / 255.0),
//!     ..Default::default()
//! })?;
//! let mut it = generator.flow(x).batch_size(4).seed(1).build()?;
//! assert_eq!(it.len(), 3); // ceil(10 / 4)
//! while let Some(batch) = it.next_in_epoch()? {
//!     let images = batch.images::<f32>()?; // (≤4, 8, 8, 3), reused buffer
//!     assert!(images.iter().all(|v| (0.0..=1.0).contains(v)));
//! }
//! # Ok(()) }
//! ```
//!
//! # Safety of memory maps
//!
//! Opening an array is a safe call with a documented contract: **the file
//! must not be truncated or rewritten in place while it is mapped.** A mapped
//! file that shrinks turns reads of the lost pages into `SIGBUS`. npyflow
//! checks each file's size before every batch and returns
//! [`ErrorKind::FileChanged`] when it shrank. That catches a truncation
//! between batches of a synchronous iterator, but not one that lands while a
//! batch is being gathered — and with prefetch on (the default), batches are
//! gathered on background threads while the caller works, so the unchecked
//! window is the whole background assembly (measured: 3–10 SIGBUS in 40
//! truncations mid-epoch). A file replaced by rename is harmless (the old
//! inode stays mapped); a same-size rewrite in place is not detected. Where
//! other processes may change files, or on network filesystems, open arrays
//! with [`npy::SourceKind::Read`] (`pread` into private buffers: identical
//! output, a clean error instead of a signal).
//! All `unsafe` code lives in one private module (`sys`), each block with a
//! `// SAFETY:` note. The AVX2 path of the bilinear kernel has none: it
//! uses `pulp`'s safe intrinsics and run-time dispatch, and writes the very
//! bits of the portable code.
//!
//! # Differences from Keras
//!
//! Deliberate, and listed in the README: randomness is per (seed, epoch,
//! sample) and reproducible across thread counts; `sample_weight` is sliced by
//! `subset` and kept without `y`; featurewise options without statistics are
//! an error; `batch_size` 0 is an error; input is converted per sample.
//!
//! # Limitations
//!
//! Element types: bool, (u)int8–64, float16/32/64. Complex, object, string
//! and structured dtypes are refused with [`ErrorKind::UnsupportedDtype`].
//! Fortran-order arrays must be rewritten (`npyflow convert array`).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]

mod augment;
pub mod bench;
mod cache;
mod element;
mod error;
mod fit;
mod generator;
mod iterator;
mod layout;
pub mod npy;
mod rng;
mod sys;
mod tool;

pub use augment::{
    affine_transform, keras_affine, Affine2, FillMode, Interpolation, ResampleScratch,
};
pub use augment::{
    apply_brightness_shift, apply_channel_shift, flip_horizontal, flip_vertical, BrightnessMode,
    TransformParams,
};
pub use cache::telemetry::{anon_rss_bytes, EpochTelemetry, ProcessIo, TelemetryRecorder};
pub use cache::{
    advise_for_order, evict_array, evict_file, file_residency, prefetch_row_range, prefetch_rows,
    residency_of, resident_fraction, warm_file, AccessPattern, PageBudget, Residency,
};
pub use element::{OutputDtype, Real};
pub use error::{Error, ErrorKind, Result};
pub use fit::{fit, fit_with_plan, plan_fit, AugmentFn, FitConfig, FitPlan, SampleSource};
pub use generator::standardize::{standardize, standardize_with_scratch};
pub use generator::statistics::{Statistics, ZcaMatrix};
pub use generator::{GeneratorOptions, ImageDataGenerator, Scratch, ShiftRange, ZoomRange};
pub use generator::{ImageMut, PreprocessingFunction};
pub use iterator::batch::{Batch, Rows};
pub use iterator::order::{
    epoch_plan, global_plan, num_batches, subset_range, Order, Shard, Subset,
};
pub use iterator::save::{save_image, SaveConfig, SaveFormat};
pub use iterator::{
    IteratorBuilder, NumpyArrayIterator, Position, AUTO_PREFETCH_BYTES, WHITE_LIST_FORMATS,
};
pub use layout::{DataFormat, ImageShape};
pub use npy::{NpyArray, NpzArchive};
pub use rng::{fresh_seed, SampleRng, Stream};
pub use tool::convert::{
    cast_elements, convert_array, convert_images, extract_npz, list_image_folder,
    npz_member_header, ColorMode, ConvertArrayOptions, ConvertArrayReport, ExtractedMember,
    ImageConvertOptions, ImageConvertReport, ImageFolder, Progress, ResizeFilter, SkippedImage,
};
pub use tool::preview::{contact_sheet, write_preview, PreviewOptions, PreviewReport};
pub use tool::synth::{write_synthetic, SynthOptions, SynthPaths, SYNTH_CLASSES};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
