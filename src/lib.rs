//! Out-of-core, Keras-compatible batch iteration over `.npy` image datasets.
//!
//! npyflow is what Keras' `NumpyArrayIterator` + `ImageDataGenerator` would be
//! if they were memory-mapped, zero-copy, parallel and page-cache aware: the
//! arrays stay on disk, rows are gathered into one reusable batch buffer,
//! augmented with Keras' exact geometry (scipy's resampling, every fill mode,
//! spline orders 0–5) and standardised in Keras' order.
//!
//! # Map
//!
//! The primary types are at the root:
//!
//! - [`NpyArray`] — a validated, memory-mapped `.npy` (or a stored `.npz`
//!   member via [`NpzArchive`]); zero-copy views, per-sample conversion.
//! - [`ImageDataGenerator`] — Keras' options ([`GeneratorOptions`], typed,
//!   also read from Keras' JSON keyword dict), `get_random_transform`,
//!   `apply_transform`, `standardize`, streaming `fit` ([`FitConfig`]) and
//!   its [`Statistics`].
//! - [`NumpyArrayIterator`] (built by [`IteratorBuilder`]) — batches
//!   ([`Batch`]) in [`Order::Sequential`], [`Order::Shuffle`] or the
//!   page-aware [`Order::Blocks`]; subsets, equal-count [`Shard`]s, exact
//!   resume from an [`IteratorState`] (or a saved [`Position`]),
//!   prefetch, parallel assembly, per-epoch [`EpochTelemetry`]. Batches are
//!   lent, or swapped into buffers the caller keeps.
//! - [`Error`], [`ErrorKind`], [`Result`] — every failure, naming the file
//!   and the value.
//!
//! The rest is grouped in modules by role:
//!
//! - [`npy`] — the format layer: header parsing over bytes, dtypes, and
//!   crash-safe writers ([`npy::NpyWriter`], [`npy::NpzWriter`],
//!   [`npy::write_atomic`]).
//! - [`augment`] — the per-image kernels as free functions (scipy's
//!   `affine_transform`, Keras' affine matrix, flips, channel shift,
//!   brightness).
//! - [`fit`] — the streaming fit as free functions over any
//!   [`fit::SampleSource`], with its memory plan.
//! - [`cache`] — the page cache seen and steered: residency, eviction,
//!   warming, advice, a page budget, the telemetry recorder, and reading
//!   past it for files larger than it could keep.
//! - [`convert`] and [`preview`] — what the `npyflow` tool does beyond
//!   iterating: conversions into mappable `.npy` files, contact sheets.
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
//! A mapped file that shrinks turns reads of the lost pages into `SIGBUS`,
//! which would kill the process. npyflow's maps never do: a process-wide
//! handler (Linux) maps a page of zeros over a faulting page of one of
//! npyflow's own maps and records the fault, and every batch, chunk and
//! mapped row read is checked afterwards — the fault, the file's size and
//! its modification time — so a file truncated, grown or rewritten in place
//! while it is read gives [`ErrorKind::FileChanged`] and no batch read
//! across the change is ever delivered. A file replaced by rename is not a
//! change (the old inode stays open and keeps serving its bytes). Reopen
//! the path to read the new contents. A zero-copy [`NpyArray::view`] is
//! the one exception: its reads are the caller's own, so a view of a file
//! that shrank reads zeros where pages were lost
//! ([`NpyArray::check_unchanged`] reports it). Other systems have no
//! handler; there, open arrays with [`npy::SourceKind::Read`] (`pread` into
//! private buffers: identical output) where files may change.
//!
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

pub mod augment;
pub mod cache;
mod element;
mod error;
pub mod fit;
mod generator;
mod iterator;
mod layout;
pub mod npy;
mod rng;
mod simd;
mod sys;
mod tool;

pub use augment::{BrightnessMode, FillMode, TransformParams};
pub use cache::EpochTelemetry;
pub use element::{OutputDtype, OutputElement, Real};
pub use error::{Error, ErrorKind, Result};
pub use fit::FitConfig;
pub use generator::statistics::{Statistics, ZcaMatrix};
pub use generator::{
    Compat, GeneratorOptions, ImageDataGenerator, ImageMut, PreprocessingFunction, Scratch,
    ShiftRange, ZoomRange,
};
pub use iterator::batch::{Batch, Rows};
pub use iterator::order::{Order, Subset};
pub use iterator::save::SaveFormat;
pub use iterator::shard::Shard;
pub use iterator::state::IteratorState;
pub use iterator::{IteratorBuilder, NumpyArrayIterator, Position, WHITE_LIST_FORMATS};
pub use layout::{DataFormat, ImageShape};
pub use npy::{NpyArray, NpzArchive};
pub use rng::{SampleRng, Stream};
pub use tool::{convert, preview};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
