//! Output element types: the float types batches are produced in.

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
}

impl OutputDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            OutputDtype::F32 => 4,
            OutputDtype::F64 => 8,
        }
    }
}

impl std::str::FromStr for OutputDtype {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "float32" | "f32" => Ok(OutputDtype::F32),
            "float64" | "f64" => Ok(OutputDtype::F64),
            other => Err(crate::Error::invalid(
                "dtype",
                format!("{other:?}"),
                "expected \"float32\" or \"float64\"",
            )),
        }
    }
}

/// A float type images are processed and produced in: `f32` or `f64`.
///
/// Kernels are generic over it so that a `float64` iterator computes in
/// double precision end to end, as Keras does with `dtype='float64'`.
pub trait Real:
    num_traits::Float
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
    /// The matching [`OutputDtype`].
    const DTYPE: OutputDtype;
    /// Rounds an `f64` to this type (round to nearest, as numpy's `astype`).
    fn from_f64_lossy(v: f64) -> Self;
    /// Widens to `f64`.
    fn to_f64_lossless(self) -> f64;
    /// An 8-bit value, exactly (a direct conversion: through `f64` the
    /// compiler does not vectorise image conversion loops).
    fn from_byte(v: u8) -> Self;
}

impl Real for f32 {
    const DTYPE: OutputDtype = OutputDtype::F32;
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
    const DTYPE: OutputDtype = OutputDtype::F64;
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
