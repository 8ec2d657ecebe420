//! Zero-copy views of a mapped array as `ndarray` arrays of its own
//! element type.

use ndarray::{ArrayViewD, IxDyn};

use super::array::NpyArray;
use super::dtype::ElemType;
use crate::{Error, ErrorKind, Result};

/// An element type a zero-copy view can be taken as (`bool` arrays are viewed as `u8`).
pub trait Element: bytemuck::Pod {
    /// The `.npy` element type this Rust type matches.
    const ELEM: ElemType;
}

macro_rules! element {
    ($($t:ty => $e:ident),*) => {$(impl Element for $t { const ELEM: ElemType = ElemType::$e; })*};
}
element!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64, i64 => I64,
         half::f16 => F16, f32 => F32, f64 => F64);

impl NpyArray {
    /// A zero-copy view of the whole array.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when `T` is not the stored type or the
    /// data is not native-endian or the array is read with `pread`;
    /// [`ErrorKind::Misaligned`] when the data is not aligned for `T`
    /// (possible for `.npz` members).
    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        let dtype = self.dtype();
        let ok_type =
            T::ELEM == dtype.elem || (T::ELEM == ElemType::U8 && dtype.elem == ElemType::Bool);
        if !ok_type {
            return Err(Error::invalid(
                "T",
                std::any::type_name::<T>(),
                format!("{} holds {}", self.name(), dtype),
            ));
        }
        if !dtype.is_native() {
            return Err(Error::invalid(
                "T",
                std::any::type_name::<T>(),
                format!(
                    "{} is not native-endian; read rows with read_sample_into or convert it",
                    self.name()
                ),
            ));
        }
        let bytes = self.data_bytes().ok_or_else(|| {
            Error::invalid(
                "source",
                "read",
                "zero-copy views need the memory-mapped source",
            )
        })?;
        let data: &[T] = bytemuck::try_cast_slice(bytes).map_err(|_| {
            Error::from(ErrorKind::Misaligned {
                path: self.path().to_path_buf(),
                offset: self.data_offset(),
                align: std::mem::align_of::<T>(),
            })
        })?;
        ArrayViewD::from_shape(IxDyn(self.shape()), data)
            .map_err(|e| Error::invalid("shape", format!("{:?}", self.shape()), e.to_string()))
    }

    /// A zero-copy view of row `i` (shape = the array's shape without its first axis).
    ///
    /// # Errors
    /// As [`NpyArray::view`], plus [`ErrorKind::IndexOutOfRange`].
    pub fn sample_view<T: Element>(&self, i: usize) -> Result<ArrayViewD<'_, T>> {
        if i >= self.len() || self.shape().is_empty() {
            return Err(ErrorKind::IndexOutOfRange {
                index: i,
                len: self.len(),
            }
            .into());
        }
        Ok(self.view::<T>()?.index_axis_move(ndarray::Axis(0), i))
    }
}
