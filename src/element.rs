//! Output element types: the float types batches are produced in, and the
//! float types images are computed in.

use serde::{Deserialize, Serialize};

/// The dtype of produced image batches (Keras' `dtype`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputDtype {
    /// 32-bit float (Keras' default `float32`).
    #[default]
    #[serde(rename = "float32", alias = "f32")]
    F32,
    /// 64-bit float (`float64`).
    #[serde(rename = "float64", alias = "f64")]
    F64,
    /// IEEE 754 half precision (`float16`, [`half::f16`]): computed in
    /// `f32` and rounded once, to nearest even, as the batch is stored.
    #[serde(rename = "float16", alias = "f16")]
    F16,
    /// bfloat16 ([`half::bf16`], `ml_dtypes.bfloat16` in Python; not a
    /// Keras dtype): computed in `f32` and rounded once, to nearest even,
    /// as the batch is stored.
    #[serde(rename = "bfloat16", alias = "bf16")]
    BF16,
}

impl OutputDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            OutputDtype::F32 => 4,
            OutputDtype::F64 => 8,
            OutputDtype::F16 | OutputDtype::BF16 => 2,
        }
    }

    /// The dtype values are computed in before they are stored: the half
    /// types are computed in `f32` (one rounding, at the store), so every
    /// other step (statistics, rescale factors) is the `float32` one.
    pub(crate) fn compute(self) -> OutputDtype {
        match self {
            OutputDtype::F64 => OutputDtype::F64,
            OutputDtype::F32 | OutputDtype::F16 | OutputDtype::BF16 => OutputDtype::F32,
        }
    }

    /// numpy's name of the dtype (`ml_dtypes`' for bfloat16).
    pub fn name(self) -> &'static str {
        match self {
            OutputDtype::F32 => "float32",
            OutputDtype::F64 => "float64",
            OutputDtype::F16 => "float16",
            OutputDtype::BF16 => "bfloat16",
        }
    }
}

impl std::str::FromStr for OutputDtype {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "float32" | "f32" => Ok(OutputDtype::F32),
            "float64" | "f64" => Ok(OutputDtype::F64),
            "float16" | "f16" => Ok(OutputDtype::F16),
            "bfloat16" | "bf16" => Ok(OutputDtype::BF16),
            other => Err(crate::Error::invalid(
                "dtype",
                format!("{other:?}"),
                "expected \"float32\", \"float64\", \"float16\" or \"bfloat16\"",
            )),
        }
    }
}

/// A type batches hold their images in: `f32`, `f64`, [`half::f16`] or
/// [`half::bf16`] (what [`Batch::images`](crate::Batch::images) takes).
/// Sealed: the pipeline knows how to produce each of them.
pub trait OutputElement: bytemuck::Pod + Send + Sync + std::fmt::Debug + sealed::Sealed {
    /// The matching [`OutputDtype`].
    const DTYPE: OutputDtype;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

impl OutputElement for f32 {
    const DTYPE: OutputDtype = OutputDtype::F32;
}

impl OutputElement for f64 {
    const DTYPE: OutputDtype = OutputDtype::F64;
}

impl OutputElement for half::f16 {
    const DTYPE: OutputDtype = OutputDtype::F16;
}

impl OutputElement for half::bf16 {
    const DTYPE: OutputDtype = OutputDtype::BF16;
}

/// A float type images are processed in: `f32` or `f64` (the half types
/// are produced from `f32`).
///
/// Kernels are generic over it so that a `float64` iterator computes in
/// double precision end to end, as Keras does with `dtype='float64'`.
pub trait Real:
    OutputElement
    + num_traits::Float
    + num_traits::FromPrimitive
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + std::iter::Sum
    + Default
    + Send
    + Sync
    + std::fmt::Debug
    + bytemuck::Pod
    + 'static
{
    /// Rounds an `f64` to this type (round to nearest, as numpy's `astype`).
    fn from_f64_lossy(v: f64) -> Self;
    /// Widens to `f64`.
    fn to_f64_lossless(self) -> f64;
    /// An 8-bit value, exactly (a direct conversion: through `f64` the
    /// compiler does not vectorise image conversion loops).
    fn from_byte(v: u8) -> Self;
}

impl Real for f32 {
    #[inline]
    fn from_f64_lossy(v: f64) -> f32 {
        v as f32
    }
    #[inline]
    fn to_f64_lossless(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_byte(v: u8) -> f32 {
        f32::from(v)
    }
}

impl Real for f64 {
    #[inline]
    fn from_f64_lossy(v: f64) -> f64 {
        v
    }
    #[inline]
    fn to_f64_lossless(self) -> f64 {
        self
    }
    #[inline]
    fn from_byte(v: u8) -> f64 {
        f64::from(v)
    }
}
