//! `.npy` → `.npy` rewrite: dtype cast, scaling, native byte order, C order,
//! and a row order shared by several arrays (shuffling images and labels together).

use std::fmt;
use std::path::{Path, PathBuf};

use super::cast::cast_elements;
use super::{chunk_rows, Progress};
use crate::cache::direct::read_runs;
use crate::cache::readahead::{Fetch, Readahead};
use crate::cache::{outgrown_room, unmap_rows};
use crate::npy::{persist_all, Dtype, ElemType, NpyArray, NpyWriter, OpenOptions};
use crate::{Error, ErrorKind, Order, Result};

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

/// One array of [`convert_arrays`]: `input` rewritten as `output`.
#[derive(Clone, Copy, Debug)]
pub struct ArrayJob<'a> {
    /// The `.npy` to read.
    pub input: &'a Path,
    /// Where to write it; may be `input` itself.
    pub output: &'a Path,
    /// Its dtype, scaling and progress.
    pub options: ConvertArrayOptions<'a>,
}

/// The row order that `seed` shuffles `n` rows into: the permutation of
/// the first shuffled epoch of an iterator with the same seed
/// ([`Order::Shuffle`]`.plan(n, seed, 0)`).
///
/// # Examples
/// ```
/// use npyflow::convert::shuffled_rows;
///
/// let p = shuffled_rows(5, 7);
/// assert_eq!(p, npyflow::Order::Shuffle.plan(5, 7, 0));
/// let mut sorted = p.clone();
/// sorted.sort();
/// assert_eq!(sorted, [0, 1, 2, 3, 4]);
/// ```
pub fn shuffled_rows(n: usize, seed: u64) -> Vec<usize> {
    Order::Shuffle.plan(n, seed, 0)
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
/// for a non-finite `scale`; [`crate::ErrorKind::OutOfMemory`] when a
/// chunk of rows does not fit in memory.
pub fn convert_array(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    options: &ConvertArrayOptions<'_>,
) -> Result<ConvertArrayReport> {
    let job = ArrayJob {
        input: input.as_ref(),
        output: output.as_ref(),
        options: *options,
    };
    let mut reports = convert_arrays(&[job], None)?;
    Ok(reports.remove(0))
}

/// Rewrites several arrays as [`convert_array`] does, each with its own
/// dtype and scaling, with their rows in one order: `rows[k]` is the input
/// row written as output row `k` (e.g. [`shuffled_rows`], so images and
/// their labels are shuffled together), or file order for `None`.
///
/// Every output is renamed into place only when all are complete, and all
/// together, so they never disagree: an interruption leaves either every
/// output as before or every output new. Inputs and outputs may coincide
/// (in-place shuffles).
///
/// # Errors
/// As [`convert_array`]; [`crate::ErrorKind::ShapeMismatch`] when the
/// arrays differ in length; [`crate::ErrorKind::InvalidArgument`] when
/// `rows` is not as long as the arrays or names a row beyond them.
pub fn convert_arrays(
    jobs: &[ArrayJob<'_>],
    rows: Option<&[usize]>,
) -> Result<Vec<ConvertArrayReport>> {
    let mut arrays = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Some(s) = job.options.scale.filter(|s| !s.is_finite()) {
            return Err(Error::invalid("scale", s, "must be a finite number"));
        }
        let array = NpyArray::open_with(
            job.input,
            OpenOptions {
                allow_fortran: true,
                ..OpenOptions::default()
            },
        )?;
        if let Some(first) = arrays.first() {
            let first: &NpyArray = first;
            if array.len() != first.len() {
                return Err(ErrorKind::ShapeMismatch {
                    what: format!(
                        "rows of {} and {} (converted in one order)",
                        jobs[0].input.display(),
                        job.input.display()
                    ),
                    expected: vec![first.len()],
                    found: vec![array.len()],
                }
                .into());
            }
        }
        arrays.push(array);
    }
    if let (Some(rows), Some(first)) = (rows, arrays.first()) {
        if rows.len() != first.len() {
            return Err(Error::invalid(
                "rows",
                rows.len(),
                format!("{} has {} rows", jobs[0].input.display(), first.len()),
            ));
        }
        if let Some(&bad) = rows.iter().find(|&&r| r >= first.len()) {
            return Err(Error::invalid(
                "rows",
                bad,
                format!("{} has {} rows", jobs[0].input.display(), first.len()),
            ));
        }
    }
    let mut done = Vec::with_capacity(jobs.len());
    let mut reports = Vec::with_capacity(jobs.len());
    for (job, array) in jobs.iter().zip(&arrays) {
        let (writer, report) = convert_one(array, job, rows)?;
        done.push(writer.finish_later()?);
        reports.push(report);
    }
    persist_all(done)?;
    Ok(reports)
}

/// Writes `array` converted into a writer left unfinished.
/// A conversion in file order drops its map of the source every this many
/// chunks (see [`convert_one`]).
const UNMAP_EVERY_CHUNKS: usize = 8;

fn convert_one(
    array: &NpyArray,
    job: &ArrayJob<'_>,
    order: Option<&[usize]>,
) -> Result<(NpyWriter, ConvertArrayReport)> {
    let (input, output, options) = (job.input, job.output, &job.options);
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
    let in_file_order = order.is_none() && !fortran && row_len > 0;
    // A file larger than the page cache could keep, in file order, is read
    // past the cache (below), its chunk and the next within an eighth of
    // the cache's room, as is the output buffer: this process's memory
    // comes out of the same room.
    let direct = in_file_order.then(|| outgrown_room(array)).flatten();
    let mut chunk = chunk_rows(in_row.max(out_row)).min(rows);
    if let Some(room) = direct {
        chunk = chunk.min(((room / 8) as usize / in_row.max(out_row).max(1)).max(1));
    }
    let mut out_buf = crate::error::try_zeroed::<u8>(chunk.saturating_mul(out_row), || {
        format!(
            "{chunk} rows of {out_row} bytes of {} converted at once",
            input.display()
        )
    })?;
    // Rows are gathered first when they are not one contiguous run.
    let gathers = (fortran && shape.len() > 1) || order.is_some();
    let mut gather = Vec::new();
    if gathers {
        gather = crate::error::try_zeroed::<u8>(chunk.saturating_mul(in_row), || {
            format!(
                "{chunk} rows of {in_row} bytes of {} gathered at once",
                input.display()
            )
        })?;
    }
    if let Some(p) = options.progress {
        p(0, total_out);
    }
    // Past the page cache: straight from the device into two buffers, the
    // next chunk on a thread of its own while this one is converted.
    if direct.is_some() {
        read_runs(array, 0..rows, chunk, |piece| {
            let dst = &mut out_buf[..piece.rows().len() * out_row];
            cast_elements(piece.bytes(), from, dst, to.elem, options.scale);
            // As below: a change while reading may have mixed old and new bytes.
            array.check_unchanged()?;
            writer.write_bytes(dst)?;
            if let Some(p) = options.progress {
                p((piece.rows().end * out_row) as u64, total_out);
            }
            Ok(())
        })?;
    } else {
        // In file order, the chunk after the one being converted is read by a
        // thread of its own (large reads: a hint-paced map ran at a fraction of
        // a fast device's sequential read); what was converted is unmapped as it
        // goes, so the map never holds more than a few chunks of the file.
        let readahead = in_file_order.then(Readahead::default);
        if let Some(ra) = &readahead {
            ra.request(array, 0..chunk.min(rows), Fetch::Read);
        }
        let mut r0 = 0;
        while r0 < rows && row_len > 0 {
            let r1 = (r0 + chunk).min(rows);
            if let Some(ra) = &readahead {
                ra.request(array, r1..(r1 + chunk).min(rows), Fetch::Read);
            }
            let n = r1 - r0;
            let src: &[u8] = if gathers {
                let gather = &mut gather[..n * in_row];
                match order {
                    Some(order) => {
                        for (k, &i) in order[r0..r1].iter().enumerate() {
                            let dst = &mut gather[k * in_row..(k + 1) * in_row];
                            if fortran && shape.len() > 1 {
                                gather_fortran(data, &shape, from.size(), i, i + 1, dst);
                            } else {
                                dst.copy_from_slice(&data[i * in_row..(i + 1) * in_row]);
                            }
                        }
                    }
                    None => gather_fortran(data, &shape, from.size(), r0, r1, gather),
                }
                gather
            } else {
                &data[r0 * in_row..r1 * in_row]
            };
            let dst = &mut out_buf[..n * out_row];
            cast_elements(src, from, dst, to.elem, options.scale);
            // Before these rows reach the output: the source changing under the
            // map may have handed us zeros or a mix of old and new bytes.
            array.check_unchanged()?;
            writer.write_bytes(dst)?;
            if let Some(p) = options.progress {
                p((r1 * out_row) as u64, total_out);
            }
            if readahead.is_some() && (r0 / chunk) % UNMAP_EVERY_CHUNKS == UNMAP_EVERY_CHUNKS - 1 {
                unmap_rows(array, 0..r1)?;
            }
            r0 = r1;
        }
    }
    Ok((
        writer,
        ConvertArrayReport {
            path: output.to_path_buf(),
            from,
            to,
            shape,
            was_fortran: fortran,
        },
    ))
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
