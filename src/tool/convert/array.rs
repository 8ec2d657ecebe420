//! `.npy` → `.npy` rewrite: dtype cast, scaling, native byte order, C order.

use std::fmt;
use std::path::{Path, PathBuf};

use super::cast::cast_elements;
use super::{chunk_rows, Progress};
use crate::npy::{Dtype, ElemType, NpyArray, NpyWriter, OpenOptions};
use crate::{Error, Result};

/// Options for [`convert_array`].
#[derive(Clone, Copy, Default)]
pub struct ConvertArrayOptions<'a> {
    /// Output element type. By default, the input's.
    pub dtype: Option<ElemType>,
    /// Multiply every value by this factor (in float64) before the cast,
    /// e.g. `1/255` with `dtype = float32`. By default, no scaling.
    pub scale: Option<f64>,
    /// Called with `(bytes done, bytes total)` of output data after each chunk.
    pub progress: Option<Progress<'a>>,
}

impl fmt::Debug for ConvertArrayOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConvertArrayOptions")
            .field("dtype", &self.dtype)
            .field("scale", &self.scale)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// What [`convert_array`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertArrayReport {
    /// The output file.
    pub path: PathBuf,
    /// The input's dtype and byte order.
    pub from: Dtype,
    /// The output's dtype (always native byte order).
    pub to: Dtype,
    /// The shape (unchanged).
    pub shape: Vec<usize>,
    /// True when the input was in Fortran order (the output is C order).
    pub was_fortran: bool,
}

/// Rewrites the `.npy` file `input` as `output`: C order, native byte order,
/// optionally cast to another dtype after an optional scaling, with numpy's
/// `astype` rules (integers wrap; floats truncate toward zero, saturating
/// out of range, NaN to 0; anything to bool is `x != 0`).
///
/// Streams a chunk of output rows at a time (memory does not depend on the
/// array's size). A Fortran-order input is read with strided accesses: for a
/// chunk of output rows, each run of consecutive first-axis indices is
/// contiguous in the file, so the file is read once, in runs as long as the
/// chunk. The output goes to a temporary file beside `output`, renamed only
/// when complete; `output` may be `input` itself.
///
/// # Errors
/// The open errors of [`NpyArray::open`] (except Fortran order); I/O errors
/// (including an unwritable destination); [`crate::ErrorKind::InvalidArgument`]
/// for a non-finite `scale`.
pub fn convert_array(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    options: &ConvertArrayOptions<'_>,
) -> Result<ConvertArrayReport> {
    let (input, output) = (input.as_ref(), output.as_ref());
    if let Some(s) = options.scale.filter(|s| !s.is_finite()) {
        return Err(Error::invalid("scale", s, "must be a finite number"));
    }
    let array = NpyArray::open_with(
        input,
        OpenOptions {
            allow_fortran: true,
            ..OpenOptions::default()
        },
    )?;
    let from = array.dtype();
    let to = Dtype::native(options.dtype.unwrap_or(from.elem));
    let shape = array.shape().to_vec();
    let fortran = array.header().fortran_order;
    let data = array.data_bytes().ok_or_else(|| {
        Error::invalid(
            "source",
            "read",
            "the converter reads through the memory map",
        )
    })?;
    let rows = array.len();
    let row_len = array.row_len();
    let (in_row, out_row) = (row_len * from.size(), row_len * to.size());
    let total_out = (rows * out_row) as u64;

    let mut writer = NpyWriter::create(output, to, &shape)?;
    let chunk = chunk_rows(in_row.max(out_row));
    let mut out_buf = vec![0u8; chunk.min(rows) * out_row];
    let mut gather = Vec::new();
    let mut r0 = 0;
    while r0 < rows && row_len > 0 {
        let r1 = (r0 + chunk).min(rows);
        let n = r1 - r0;
        let src: &[u8] = if fortran && shape.len() > 1 {
            gather.resize(n * in_row, 0);
            gather_fortran(data, &shape, from.size(), r0, r1, &mut gather);
            &gather
        } else {
            &data[r0 * in_row..r1 * in_row]
        };
        let dst = &mut out_buf[..n * out_row];
        cast_elements(src, from, dst, to.elem, options.scale);
        writer.write_bytes(dst)?;
        if let Some(p) = options.progress {
            p((r1 * out_row) as u64, total_out);
        }
        r0 = r1;
    }
    writer.finish()?;
    Ok(ConvertArrayReport {
        path: output.to_path_buf(),
        from,
        to,
        shape,
        was_fortran: fortran,
    })
}

/// Copies rows `r0..r1` of the Fortran-order `data` into `out` in C order
/// (raw element bytes, stored byte order).
///
/// In Fortran order the element `(i, rest)` lives at
/// `i + n0 * fortran_index(rest)`: for a fixed `rest`, the rows `r0..r1`
/// are one contiguous run. Walking `rest` in Fortran order reads the file
/// front to back; each run is scattered to its C-order column in `out`.
fn gather_fortran(
    data: &[u8],
    shape: &[usize],
    esize: usize,
    r0: usize,
    r1: usize,
    out: &mut [u8],
) {
    let n0 = shape[0];
    let rest = &shape[1..];
    let row_len: usize = rest.iter().product();
    // C-order strides (in elements) of the trailing axes within one row.
    let mut c_stride = vec![1usize; rest.len()];
    for a in (0..rest.len().saturating_sub(1)).rev() {
        c_stride[a] = c_stride[a + 1] * rest[a + 1];
    }
    let mut idx = vec![0usize; rest.len()];
    let mut c_index = 0usize;
    let run = (r1 - r0) * esize;
    for f_index in 0..row_len {
        let start = (r0 + n0 * f_index) * esize;
        let src = &data[start..start + run];
        for (k, e) in src.chunks_exact(esize).enumerate() {
            let o = ((k * row_len) + c_index) * esize;
            out[o..o + esize].copy_from_slice(e);
        }
        // Next `rest` index in Fortran order: the first trailing axis fastest.
        for a in 0..rest.len() {
            idx[a] += 1;
            c_index += c_stride[a];
            if idx[a] < rest[a] {
                break;
            }
            c_index -= c_stride[a] * rest[a];
            idx[a] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_gather_matches_c_order() {
        // shape (3, 2, 4); value = C-order flat index.
        let shape = [3usize, 2, 4];
        let n: usize = shape.iter().product();
        let mut fortran = vec![0u8; n];
        for i in 0..3 {
            for j in 0..2 {
                for k in 0..4 {
                    let c = (i * 2 + j) * 4 + k;
                    let f = i + 3 * (j + 2 * k);
                    fortran[f] = c as u8;
                }
            }
        }
        for (r0, r1) in [(0, 3), (1, 2), (2, 3)] {
            let mut out = vec![0u8; (r1 - r0) * 8];
            gather_fortran(&fortran, &shape, 1, r0, r1, &mut out);
            let want: Vec<u8> = ((r0 * 8) as u8..(r1 * 8) as u8).collect();
            assert_eq!(out, want, "rows {r0}..{r1}");
        }
    }
}
