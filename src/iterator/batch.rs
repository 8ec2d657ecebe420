//! `Batch`: the one reusable buffer an iterator fills and lends out.

use ndarray::{ArrayView4, ArrayViewD, IxDyn};

use crate::npy::{ElemType, Element, NpyArray};
use crate::{Error, OutputDtype, Real, Result};

/// Image storage of a batch in the output dtype.
#[derive(Debug)]
pub(crate) enum Images {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Rows gathered from an auxiliary array (y, sample weights, misc inputs),
/// kept in their own dtype, native byte order.
#[derive(Debug)]
pub struct Rows {
    elem: ElemType,
    row_shape: Vec<usize>,
    row_bytes: usize,
    len: usize,
    /// u64 words so that every element type's view is aligned.
    words: Vec<u64>,
}

impl Rows {
    pub(crate) fn for_array(a: &NpyArray, capacity: usize) -> Rows {
        Rows {
            elem: a.dtype().elem,
            row_shape: a.shape().get(1..).unwrap_or(&[]).to_vec(),
            row_bytes: a.row_bytes(),
            len: 0,
            words: vec![0; (a.row_bytes() * capacity).div_ceil(8)],
        }
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }

    pub(crate) fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let rb = self.row_bytes;
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.words)[i * rb..(i + 1) * rb]
    }

    /// Element type of the source array.
    pub fn elem(&self) -> ElemType {
        self.elem
    }

    /// Number of rows in this batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shape of the gathered rows: `(len, ...row shape)`.
    pub fn shape(&self) -> Vec<usize> {
        std::iter::once(self.len)
            .chain(self.row_shape.iter().copied())
            .collect()
    }

    /// The raw native-endian bytes of the gathered rows.
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len * self.row_bytes]
    }

    /// A typed view (`bool` rows are viewed as `u8`).
    ///
    /// # Errors
    /// When `T` is not the rows' element type.
    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        if T::ELEM != self.elem && !(T::ELEM == ElemType::U8 && self.elem == ElemType::Bool) {
            return Err(Error::invalid(
                "T",
                std::any::type_name::<T>(),
                format!("rows hold {}", self.elem),
            ));
        }
        let data: &[T] = bytemuck::try_cast_slice(self.bytes()).map_err(|e| {
            Error::invalid(
                "T",
                std::any::type_name::<T>(),
                format!("cannot view rows: {e:?}"),
            )
        })?;
        ArrayViewD::from_shape(IxDyn(&self.shape()), data)
            .map_err(|e| Error::invalid("shape", format!("{:?}", self.shape()), e.to_string()))
    }

    /// The rows converted to `f64` (any element type), flattened.
    pub fn to_f64(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.len * self.row_shape.iter().product::<usize>()];
        crate::npy::cast_into(self.bytes(), crate::npy::Dtype::native(self.elem), &mut out);
        out
    }
}

/// One batch: images in the output dtype, plus the matching rows of y,
/// sample weights and auxiliary arrays. Filled in place by the iterator,
/// reused for every batch (no allocation per batch in the steady state).
#[derive(Debug)]
pub struct Batch {
    pub(crate) images: Images,
    pub(crate) dims: [usize; 3],
    pub(crate) len: usize,
    pub(crate) indices: Vec<usize>,
    pub(crate) y: Option<Rows>,
    pub(crate) sample_weight: Option<Rows>,
    pub(crate) aux: Vec<Rows>,
    pub(crate) epoch: u64,
    pub(crate) batch_index: usize,
}

impl Batch {
    pub(crate) fn new(
        dtype: OutputDtype,
        dims: [usize; 3],
        capacity: usize,
        y: Option<&NpyArray>,
        w: Option<&NpyArray>,
        aux: &[NpyArray],
    ) -> Batch {
        let n = capacity * dims.iter().product::<usize>();
        Batch {
            images: match dtype {
                OutputDtype::F32 => Images::F32(vec![0.0; n]),
                OutputDtype::F64 => Images::F64(vec![0.0; n]),
            },
            dims,
            len: 0,
            indices: Vec::with_capacity(capacity),
            y: y.map(|a| Rows::for_array(a, capacity)),
            sample_weight: w.map(|a| Rows::for_array(a, capacity)),
            aux: aux.iter().map(|a| Rows::for_array(a, capacity)).collect(),
            epoch: 0,
            batch_index: 0,
        }
    }

    /// Number of samples in this batch (the last batch may be shorter).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The epoch this batch belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// This batch's index within its epoch.
    pub fn batch_index(&self) -> usize {
        self.batch_index
    }

    /// Sample indices (relative to the subset, as Keras' `j`) in batch order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The output dtype of the images.
    pub fn dtype(&self) -> OutputDtype {
        match self.images {
            Images::F32(_) => OutputDtype::F32,
            Images::F64(_) => OutputDtype::F64,
        }
    }

    /// Shape of the image batch: `(len, a, b, c)` in the iterator's data format.
    pub fn shape(&self) -> [usize; 4] {
        [self.len, self.dims[0], self.dims[1], self.dims[2]]
    }

    /// The images as `T` (`f32` or `f64`, whichever the iterator produces).
    ///
    /// # Errors
    /// When `T` is not the iterator's output dtype.
    pub fn images<T: Real>(&self) -> Result<ArrayView4<'_, T>> {
        let data = typed::<T>(&self.images).ok_or_else(|| {
            Error::invalid(
                "T",
                std::any::type_name::<T>(),
                format!("batch holds {:?}", self.dtype()),
            )
        })?;
        let n = self.len * self.dims.iter().product::<usize>();
        ArrayView4::from_shape(self.shape(), &data[..n])
            .map_err(|e| Error::invalid("shape", format!("{:?}", self.shape()), e.to_string()))
    }

    /// The `f32` images; `None` for an `f64` iterator.
    pub fn images_f32(&self) -> Option<ArrayView4<'_, f32>> {
        self.images::<f32>().ok()
    }

    /// The `f64` images; `None` for an `f32` iterator.
    pub fn images_f64(&self) -> Option<ArrayView4<'_, f64>> {
        self.images::<f64>().ok()
    }

    /// The images' raw native-endian bytes (for writing to `.npy`).
    pub fn image_bytes(&self) -> &[u8] {
        let n = self.len * self.dims.iter().product::<usize>();
        match &self.images {
            Images::F32(v) => bytemuck::cast_slice(&v[..n]),
            Images::F64(v) => bytemuck::cast_slice(&v[..n]),
        }
    }

    /// Targets for these samples, if the iterator has `y`.
    pub fn y(&self) -> Option<&Rows> {
        self.y.as_ref()
    }

    /// Sample weights for these samples (kept even without `y`, unlike Keras).
    pub fn sample_weight(&self) -> Option<&Rows> {
        self.sample_weight.as_ref()
    }

    /// Rows of the auxiliary arrays passed alongside `x`, in order.
    pub fn aux(&self) -> &[Rows] {
        &self.aux
    }

    /// Address of the image buffer: stable across batches (the buffer is reused).
    pub fn buffer_ptr(&self) -> *const u8 {
        match &self.images {
            Images::F32(v) => v.as_ptr() as *const u8,
            Images::F64(v) => v.as_ptr() as *const u8,
        }
    }
}

/// The image storage as `T` when `T` is its element type.
pub(crate) fn typed<T: Real>(images: &Images) -> Option<&[T]> {
    match (images, T::DTYPE) {
        (Images::F32(v), OutputDtype::F32) => Some(bytemuck::cast_slice(v)),
        (Images::F64(v), OutputDtype::F64) => Some(bytemuck::cast_slice(v)),
        _ => None,
    }
}

/// Mutable counterpart of [`typed`].
pub(crate) fn typed_mut<T: Real>(images: &mut Images) -> Option<&mut [T]> {
    match (images, T::DTYPE) {
        (Images::F32(v), OutputDtype::F32) => Some(bytemuck::cast_slice_mut(v)),
        (Images::F64(v), OutputDtype::F64) => Some(bytemuck::cast_slice_mut(v)),
        _ => None,
    }
}
