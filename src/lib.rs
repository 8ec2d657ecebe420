//! npyflow (crate docs written at the end)
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]

mod augment;
mod element;
mod error;
mod generator;
mod layout;
pub mod npy;
mod rng;
mod sys;

pub use element::{OutputDtype, Real};
pub use error::{Error, ErrorKind, Result};
pub use augment::{affine_transform, keras_affine, Affine2, FillMode, ResampleScratch};
pub use generator::{GeneratorOptions, ImageDataGenerator, Scratch, ShiftRange, ZoomRange};
pub use npy::{NpyArray, NpzArchive};
pub use layout::{DataFormat, ImageShape};
pub use rng::{fresh_seed, SampleRng, Stream};
