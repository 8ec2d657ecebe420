//! `Batch`: the buffer an iterator fills, lends out or swaps with the caller.

use ndarray::{ArrayView4, ArrayViewD, ArrayViewMut4, IxDyn};

use half::{bf16, f16};

use crate::npy::{ElemType, Element, NpyArray};
use crate::{Error, OutputDtype, OutputElement, Result};

/// Image storage of a batch in the output dtype.
#[derive(Debug)]
pub(crate) enum Images {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
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

    /// Whether `other` holds rows of the same array layout and capacity.
    fn same_layout(&self, other: &Rows) -> bool {
        self.elem == other.elem
            && self.row_shape == other.row_shape
            && self.words.len() == other.words.len()
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

    /// The gathered rows' bytes, writeable: [`bytes`](Rows::bytes) for a
    /// caller that edits a batch it owns in place, or hands the memory to
    /// another owner that may write it (the Python package's numpy arrays).
    /// The slice starts 8-byte aligned.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.len * self.row_bytes;
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.words)[..n]
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
/// sample weights and auxiliary arrays.
///
/// An iterator either lends its own batch ([`NumpyArrayIterator::next_in_epoch`],
/// [`next_batch`](crate::NumpyArrayIterator::next_batch), [`get`](crate::NumpyArrayIterator::get):
/// valid until the next call, no allocation per batch) or swaps the next
/// batch into one the caller owns ([`NumpyArrayIterator::next_into`],
/// [`get_into`](crate::NumpyArrayIterator::get_into): the caller keeps it as long
/// as it likes). Buffers for the second way come from
/// [`NumpyArrayIterator::new_batch`].
///
/// # Examples
/// ```
/// use npyflow::npy::{write_npy, ElemType};
/// use npyflow::{NpyArray, NumpyArrayIterator};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("x.npy");
/// // 5 images of 2×2 pixels, 1 channel; values 0..20.
/// let data: Vec<u8> = (0..20).collect();
/// write_npy(&path, ElemType::U8, &[5, 2, 2, 1], &data)?;
/// let mut it = NumpyArrayIterator::builder(NpyArray::open(&path)?)
///     .batch_size(2)
///     .build()?;
/// let batch = it.next_batch()?;
/// assert_eq!(batch.shape(), [2, 2, 2, 1]);
/// assert_eq!(batch.indices(), &[0, 1]);
/// let images = batch.images::<f32>()?; // an ndarray view
/// assert_eq!(images[[1, 0, 1, 0]], 5.0);
/// // The raw values, e.g. to write them out.
/// let values: &[f32] = images.as_slice().unwrap();
/// assert_eq!(values.len(), 8);
/// assert!(batch.images::<f64>().is_err()); // not this iterator's dtype
/// # Ok::<(), npyflow::Error>(())
/// ```
///
/// [`NumpyArrayIterator::next_in_epoch`]: crate::NumpyArrayIterator::next_in_epoch
/// [`NumpyArrayIterator::next_into`]: crate::NumpyArrayIterator::next_into
/// [`NumpyArrayIterator::new_batch`]: crate::NumpyArrayIterator::new_batch
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
                OutputDtype::F16 => Images::F16(vec![f16::ZERO; n]),
                OutputDtype::BF16 => Images::BF16(vec![bf16::ZERO; n]),
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

    /// Empties the batch (an iterator with no samples hands these out).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.indices.clear();
        for r in self
            .y
            .iter_mut()
            .chain(&mut self.sample_weight)
            .chain(&mut self.aux)
        {
            r.set_len(0);
        }
    }

    /// Elements the image buffer holds (capacity × image size).
    fn image_capacity(&self) -> usize {
        match &self.images {
            Images::F32(v) => v.len(),
            Images::F64(v) => v.len(),
            Images::F16(v) => v.len(),
            Images::BF16(v) => v.len(),
        }
    }

    /// Checks that `other` can stand in for this batch: same dtype, image
    /// dims and capacity, and the same y / sample-weight / auxiliary rows.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// naming `batch`, describing both.
    pub(crate) fn check_layout(&self, other: &Batch) -> Result<()> {
        let rows_match = |a: &Option<Rows>, b: &Option<Rows>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_layout(b),
            _ => false,
        };
        let same = self.dtype() == other.dtype()
            && self.dims == other.dims
            && self.image_capacity() == other.image_capacity()
            && rows_match(&self.y, &other.y)
            && rows_match(&self.sample_weight, &other.sample_weight)
            && self.aux.len() == other.aux.len()
            && self
                .aux
                .iter()
                .zip(&other.aux)
                .all(|(a, b)| a.same_layout(b));
        if same {
            return Ok(());
        }
        Err(Error::invalid(
            "batch",
            other.describe(),
            format!(
                "not a batch of this iterator, which needs {} (make one with `new_batch`)",
                self.describe()
            ),
        ))
    }

    /// The layout, for error messages.
    fn describe(&self) -> String {
        let rows = |r: &Rows| format!("{} {:?}", r.elem, r.row_shape);
        let size = self.dims.iter().product::<usize>().max(1);
        format!(
            "{:?} images {:?} × {}, y: {}, sample_weight: {}, aux: [{}]",
            self.dtype(),
            self.dims,
            self.image_capacity() / size,
            self.y.as_ref().map_or("none".into(), rows),
            self.sample_weight.as_ref().map_or("none".into(), rows),
            self.aux.iter().map(rows).collect::<Vec<_>>().join(", ")
        )
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
            Images::F16(_) => OutputDtype::F16,
            Images::BF16(_) => OutputDtype::BF16,
        }
    }

    /// Shape of the image batch: `(len, a, b, c)` in the iterator's data format.
    pub fn shape(&self) -> [usize; 4] {
        [self.len, self.dims[0], self.dims[1], self.dims[2]]
    }

    /// The images as `T` (`f32`, `f64`, [`half::f16`] or [`half::bf16`],
    /// whichever the iterator produces):
    /// a C-order view of `(len, a, b, c)`, so `as_slice()` always gives the
    /// values (and `bytemuck::cast_slice` their bytes).
    ///
    /// # Errors
    /// When `T` is not the iterator's output dtype.
    pub fn images<T: OutputElement>(&self) -> Result<ArrayView4<'_, T>> {
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

    /// The images as `T`, writeable: [`images`](Batch::images) for a caller
    /// that edits a batch it owns in place (e.g. one from
    /// [`next_into`](crate::NumpyArrayIterator::next_into)), or hands the
    /// memory to another owner that may write it (the Python package's
    /// numpy arrays). The next `next_into` / `get_into` that takes this
    /// batch overwrites whatever was written.
    ///
    /// ```
    /// use npyflow::npy::{write_npy, ElemType};
    /// use npyflow::{NpyArray, NumpyArrayIterator};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("x.npy");
    /// write_npy(&path, ElemType::U8, &[3, 1, 2, 1], &[0u8, 1, 2, 3, 4, 5])?;
    /// let mut it = NumpyArrayIterator::builder(NpyArray::open(&path)?)
    ///     .batch_size(2)
    ///     .build()?;
    /// let mut batch = it.new_batch();
    /// assert!(it.next_into(&mut batch)?);
    /// batch.images_mut::<f32>()?.mapv_inplace(|v| v * 10.0);
    /// assert_eq!(batch.images::<f32>()?.as_slice().unwrap(), [0.0, 10.0, 20.0, 30.0]);
    /// assert!(batch.images_mut::<f64>().is_err()); // not this iterator's dtype
    /// # Ok::<(), npyflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// When `T` is not the iterator's output dtype.
    pub fn images_mut<T: OutputElement>(&mut self) -> Result<ArrayViewMut4<'_, T>> {
        let shape = self.shape();
        let dtype = self.dtype();
        let n = self.len * self.dims.iter().product::<usize>();
        let data = typed_mut::<T>(&mut self.images).ok_or_else(|| {
            Error::invalid(
                "T",
                std::any::type_name::<T>(),
                format!("batch holds {dtype:?}"),
            )
        })?;
        ArrayViewMut4::from_shape(shape, &mut data[..n])
            .map_err(|e| Error::invalid("shape", format!("{shape:?}"), e.to_string()))
    }

    /// Targets for these samples, if the iterator has `y`.
    pub fn y(&self) -> Option<&Rows> {
        self.y.as_ref()
    }

    /// [`y`](Batch::y), writeable (see [`images_mut`](Batch::images_mut)).
    pub fn y_mut(&mut self) -> Option<&mut Rows> {
        self.y.as_mut()
    }

    /// Sample weights for these samples (kept even without `y`, unlike Keras).
    pub fn sample_weight(&self) -> Option<&Rows> {
        self.sample_weight.as_ref()
    }

    /// [`sample_weight`](Batch::sample_weight), writeable (see
    /// [`images_mut`](Batch::images_mut)).
    pub fn sample_weight_mut(&mut self) -> Option<&mut Rows> {
        self.sample_weight.as_mut()
    }

    /// Rows of the auxiliary arrays passed alongside `x`, in order.
    pub fn aux(&self) -> &[Rows] {
        &self.aux
    }

    /// [`aux`](Batch::aux), writeable (see [`images_mut`](Batch::images_mut)).
    pub fn aux_mut(&mut self) -> &mut [Rows] {
        &mut self.aux
    }
}

/// The image storage as `T` when `T` is its element type.
pub(crate) fn typed<T: OutputElement>(images: &Images) -> Option<&[T]> {
    match (images, T::DTYPE) {
        (Images::F32(v), OutputDtype::F32) => Some(bytemuck::cast_slice(v)),
        (Images::F64(v), OutputDtype::F64) => Some(bytemuck::cast_slice(v)),
        (Images::F16(v), OutputDtype::F16) => Some(bytemuck::cast_slice(v)),
        (Images::BF16(v), OutputDtype::BF16) => Some(bytemuck::cast_slice(v)),
        _ => None,
    }
}

/// Mutable counterpart of [`typed`].
pub(crate) fn typed_mut<T: OutputElement>(images: &mut Images) -> Option<&mut [T]> {
    match (images, T::DTYPE) {
        (Images::F32(v), OutputDtype::F32) => Some(bytemuck::cast_slice_mut(v)),
        (Images::F64(v), OutputDtype::F64) => Some(bytemuck::cast_slice_mut(v)),
        (Images::F16(v), OutputDtype::F16) => Some(bytemuck::cast_slice_mut(v)),
        (Images::BF16(v), OutputDtype::BF16) => Some(bytemuck::cast_slice_mut(v)),
        _ => None,
    }
}
