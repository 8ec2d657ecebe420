//! Where `fit` reads samples from: the [`SampleSource`] trait and its
//! implementations for mapped arrays and in-memory `ndarray` arrays.

use ndarray::{ArrayBase, Axis, Data, Ix4};

use crate::npy::NpyArray;
use crate::{ErrorKind, Result};

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

    /// Writes samples `first..first + k` (`k` whole samples) into `out` as
    /// their stored bytes, when this source holds `u8` values in C order:
    /// `Some`. `fit` then sums them as integers, exactly and without the
    /// `f64` copy. The default, `None`, means the source does not (and
    /// `fit` reads through [`read_samples_into`](SampleSource::read_samples_into)).
    fn read_u8_samples_into(&self, first: usize, out: &mut [u8]) -> Option<Result<()>> {
        let _ = (first, out);
        None
    }

    /// The `.npy` array this source reads, if it is one: `fit` then reads a
    /// `u8` file larger than the page cache could keep itself, straight
    /// from the device a chunk ahead of the reduction (the same
    /// statistics), and reports each chunk to
    /// [`rows_read`](SampleSource::rows_read). The default, `None`, reads
    /// through the other methods.
    fn as_npy(&self) -> Option<&NpyArray> {
        None
    }

    /// Called when `fit` has read `rows` samples of [`as_npy`](SampleSource::as_npy)'s
    /// array itself (for a progress count). The default does nothing.
    fn rows_read(&self, rows: usize) {
        let _ = rows;
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
        // Reads, not `WILLNEED` hints: the pass is in file order, and large
        // reads keep up with a device whose read-ahead is small (fit of 4 GiB
        // under a 1 GiB cgroup: 2.98 → 2.03 s on a loop device with 128 KiB
        // read-ahead, 4.60 → 2.69 s on the virtio disk).
        crate::cache::load_row_range(self, rows)
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

    fn read_u8_samples_into(&self, first: usize, out: &mut [u8]) -> Option<Result<()>> {
        let plain = self.dtype().elem == crate::npy::ElemType::U8 && !self.header().fortran_order;
        plain.then(|| self.read_rows_raw_pread(first, out))
    }

    fn as_npy(&self) -> Option<&NpyArray> {
        Some(self)
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
