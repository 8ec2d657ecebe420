//! `NpyArray`: one `.npy` array (a file or an `.npz` member), memory-mapped
//! or read with `pread`, validated at open.

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::cast::{cast_into, cast_scaled_into, cast_scaled_paced, copy_native, Pace};
use super::dtype::Dtype;
use super::header::{parse_header, Header, HeaderProblem, MAX_HEADER_BYTES};
use crate::layout::Placement;
use crate::{sys, Error, ErrorKind, Real, Result};

/// How array bytes are fetched from storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// Memory-map the file (zero-copy views, page-cache telemetry). The default.
    #[default]
    Mmap,
    /// Read rows with `pread` into private buffers. Slower, but safe on
    /// filesystems where mapping is unwise (network filesystems, files that
    /// other processes rewrite): a shrinking file gives an I/O error, never SIGBUS.
    Read,
}

/// Options for [`NpyArray::open_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// Map or read. By default, map.
    pub source: SourceKind,
    /// Accept Fortran-order arrays (only raw byte access is meaningful then;
    /// the converter uses this to rewrite them in C order). By default, rejected.
    pub allow_fortran: bool,
}

/// Where an array's bytes are: its file (and, inside an `.npz`, its member
/// name), the file's map, and the stretch of the file that holds the array.
pub(crate) struct Parts {
    /// The file's path, for messages.
    pub path: PathBuf,
    /// The member's name, for arrays inside an `.npz`.
    pub member: Option<String>,
    /// The open file.
    pub file: File,
    /// The whole file mapped (`None` for the `pread` source).
    pub map: Option<Arc<sys::Map>>,
    /// Where the array (its header) starts in the file.
    pub base: u64,
    /// The array's length in bytes, header included.
    pub len: u64,
    /// The file's length when it was opened.
    pub file_len: u64,
}

pub(crate) struct Inner {
    path: PathBuf,
    member: Option<String>,
    file: File,
    map: Option<Arc<sys::Map>>,
    /// Offset of the `.npy` bytes inside the file (non-zero for `.npz` members).
    base: u64,
    header: Header,
    file_len: u64,
    row_len: usize,
    row_bytes: usize,
    /// Borrowed memory holding the data (arrays built with
    /// [`NpyArray::from_memory`]); `None` for files.
    memory: Option<MemoryOwner>,
    /// The file's modification time when it was opened: a rewrite in place
    /// that keeps the size changes it.
    modified: Option<SystemTime>,
}

/// What keeps the bytes of an in-memory array alive (see [`NpyArray::from_memory`]).
pub type MemoryOwner = Box<dyn AsRef<[u8]> + Send + Sync>;

/// Where [`NpyArray::read_sample_placed_into`] takes a row's bytes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RowFrom<'a> {
    /// The map when the array has one, else `pread`.
    Map,
    /// `pread`, even when the file is mapped (nothing mapped into the
    /// process).
    Pread,
    /// These bytes, already read (one row's worth).
    Bytes(&'a [u8]),
}

/// A memory-mapped (or `pread`) `.npy` array, validated at open.
///
/// Cheap to clone (shared map) and `Send + Sync`: several iterators may share
/// one map across threads.
///
/// See the crate docs, "Safety of memory maps", for what must hold while a
/// file is mapped.
///
/// # Examples
/// ```
/// use npyflow::npy::{write_npy, ElemType, OpenOptions, SourceKind};
/// use npyflow::NpyArray;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("x.npy");
/// // 3 images of 2×2 pixels, 1 channel, as `np.save` writes uint8.
/// write_npy(&path, ElemType::U8, &[3, 2, 2, 1], &(0..12).collect::<Vec<u8>>())?;
///
/// let x = NpyArray::open(&path)?; // mapped: nothing is read yet
/// assert_eq!((x.shape(), x.len(), x.row_bytes()), (&[3, 2, 2, 1][..], 3, 4));
/// let view = x.view::<u8>()?; // zero-copy, as numpy's mmap_mode="r"
/// assert_eq!(view[[2, 1, 0, 0]], 10);
/// let mut sample = [0f32; 4];
/// x.read_sample_into(1, &mut sample)?; // one sample, converted
/// assert_eq!(sample, [4.0, 5.0, 6.0, 7.0]);
///
/// // Where files may change under the reader: `pread` into private buffers.
/// let read = NpyArray::open_with(&path, OpenOptions { source: SourceKind::Read, ..Default::default() })?;
/// assert_eq!(read.data_bytes(), None); // nothing mapped
/// # Ok::<(), npyflow::Error>(())
/// ```
#[derive(Clone)]
pub struct NpyArray {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NpyArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyArray")
            .field("path", &self.inner.path)
            .field("member", &self.inner.member)
            .field("dtype", &self.inner.header.dtype)
            .field("shape", &self.inner.header.shape)
            .finish()
    }
}

impl NpyArray {
    /// Opens a `.npy` file, memory-mapped.
    ///
    /// # Errors
    /// I/O errors, and one [`ErrorKind`] per validation: bad magic, bad
    /// header, unsupported dtype, size overflow, truncated data, misaligned
    /// data, Fortran order.
    pub fn open(path: impl AsRef<Path>) -> Result<NpyArray> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens a `.npy` file with explicit options.
    ///
    /// # Errors
    /// As [`NpyArray::open`].
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<NpyArray> {
        let path = path.as_ref();
        let (file, file_len) = super::open::open_data_file(path)?;
        let map = match options.source {
            SourceKind::Mmap => Some(Arc::new(
                sys::map_readonly(&file).map_err(|e| Error::io(path, e))?,
            )),
            SourceKind::Read => None,
        };
        let parts = Parts {
            path: path.to_path_buf(),
            member: None,
            file,
            map,
            base: 0,
            len: file_len,
            file_len,
        };
        Self::from_parts(parts, options)
    }

    /// Builds an array over the bytes `parts` locate (the whole file, or an
    /// npz member).
    pub(crate) fn from_parts(parts: Parts, options: OpenOptions) -> Result<NpyArray> {
        let Parts {
            path,
            member,
            file,
            map,
            base,
            len,
            file_len,
        } = parts;
        if let Some(m) = &map {
            // Before the first touch: with the kernel's default read-around,
            // the fault that reads the header would pull up to `read_ahead_kb`
            // (8 MiB here) of data into the cache just by opening the file.
            // The iterator re-advises for its order.
            let _ = m.advise(sys::FileAdvice::Random);
        }
        let header = {
            let head: Vec<u8>;
            let bytes: &[u8] = match &map {
                Some(m) => {
                    let start = base as usize;
                    &m[start..start + len as usize]
                }
                None => {
                    // Read the preamble, then as much header as it announces (bounded).
                    let want = len.min(MAX_HEADER_BYTES as u64) as usize;
                    let mut buf = vec![0u8; want];
                    let n = sys::read_up_to(&file, &mut buf, base, usize::MAX)
                        .map_err(|e| Error::io(&path, e))?;
                    buf.truncate(n);
                    head = buf;
                    &head
                }
            };
            parse_header(bytes).map_err(|p: HeaderProblem| p.at(&path))?
        };
        if header.fortran_order && !options.allow_fortran {
            return Err(ErrorKind::FortranOrder { path }.into());
        }
        let expected = (header.data_offset as u64).saturating_add(header.data_len as u64);
        if len < expected {
            return Err(ErrorKind::Truncated {
                path,
                expected,
                found: len,
            }
            .into());
        }
        // A stand-alone .npy written by numpy has its data 64-byte aligned; a
        // misaligned one is malformed. Inside an .npz numpy does not align
        // members, so there we accept any offset (rows are read byte-wise and
        // only zero-copy `view` insists on alignment).
        let data_start = base + header.data_offset as u64;
        if member.is_none() && !data_start.is_multiple_of(header.dtype.size() as u64) {
            return Err(ErrorKind::Misaligned {
                path,
                offset: data_start,
                align: header.dtype.size(),
            }
            .into());
        }
        let row_len = header.shape.iter().skip(1).product::<usize>();
        let row_bytes = row_len * header.dtype.size();
        let modified = modified_time(&file);
        Ok(NpyArray {
            inner: Arc::new(Inner {
                path,
                member,
                file,
                map,
                base,
                header,
                file_len,
                row_len,
                row_bytes,
                memory: None,
                modified,
            }),
        })
    }

    /// The array around an already validated header.
    pub(super) fn assemble(
        path: PathBuf,
        file: File,
        map: Option<Arc<sys::Map>>,
        base: u64,
        header: Header,
        file_len: u64,
        memory: Option<MemoryOwner>,
    ) -> NpyArray {
        let row_len = header.shape.iter().skip(1).product::<usize>();
        let row_bytes = row_len * header.dtype.size();
        let modified = modified_time(&file);
        NpyArray {
            inner: Arc::new(Inner {
                path,
                member: None,
                file,
                map,
                base,
                header,
                file_len,
                row_len,
                row_bytes,
                memory,
                modified,
            }),
        }
    }

    /// The file this array lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The `.npz` member name, for arrays inside an archive.
    pub fn member(&self) -> Option<&str> {
        self.inner.member.as_deref()
    }

    /// A display name: the path, plus `:member` for `.npz` members.
    pub fn name(&self) -> String {
        match &self.inner.member {
            Some(m) => format!("{}:{m}", self.inner.path.display()),
            None => self.inner.path.display().to_string(),
        }
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.inner.header
    }

    /// Element type and byte order.
    pub fn dtype(&self) -> Dtype {
        self.inner.header.dtype
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        &self.inner.header.shape
    }

    /// Number of rows (samples): the first axis, or 1 for a 0-d array.
    pub fn len(&self) -> usize {
        self.inner.header.shape.first().copied().unwrap_or(1)
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements per row (product of all axes after the first).
    pub fn row_len(&self) -> usize {
        self.inner.row_len
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.inner.row_bytes
    }

    /// Offset of the first data byte in the file.
    pub fn data_offset(&self) -> u64 {
        self.inner.base + self.inner.header.data_offset as u64
    }

    /// Number of data bytes.
    pub fn data_len(&self) -> usize {
        self.inner.header.data_len
    }

    /// How the array is read.
    ///
    /// Arrays over memory ([`NpyArray::from_memory`]) report `Mmap`: their
    /// rows are read in place, as a map's are.
    pub fn source_kind(&self) -> SourceKind {
        if self.inner.map.is_some() || self.inner.memory.is_some() {
            SourceKind::Mmap
        } else {
            SourceKind::Read
        }
    }

    pub(crate) fn file(&self) -> &File {
        &self.inner.file
    }

    pub(crate) fn map(&self) -> Option<&sys::Map> {
        self.inner.map.as_deref()
    }

    /// The data bytes straight from the map (`None` for the `pread` source).
    pub fn data_bytes(&self) -> Option<&[u8]> {
        if let Some(mem) = &self.inner.memory {
            return Some(&(**mem).as_ref()[..self.inner.header.data_len]);
        }
        let m = self.inner.map.as_ref()?;
        let start = self.data_offset() as usize;
        Some(&m[start..start + self.inner.header.data_len])
    }

    /// Row `i`'s bytes straight from the map (`None` for the `pread` source).
    ///
    /// # Panics
    /// When `i >= len()` (a caller bug).
    pub fn row_bytes_mapped(&self, i: usize) -> Option<&[u8]> {
        assert!(
            i < self.len(),
            "row {i} out of range for {} rows",
            self.len()
        );
        let rb = self.inner.row_bytes;
        self.data_bytes().map(|d| &d[i * rb..(i + 1) * rb])
    }

    /// The bytes of row `i` worth loading into the CPU caches ahead of its
    /// read ([`sys::prefetch_head`]) in the map (empty for `pread` arrays
    /// or rows out of range).
    pub(crate) fn row_head_mapped(&self, i: usize) -> &[u8] {
        let row = (i < self.len()).then(|| self.row_bytes_mapped(i)).flatten();
        row.map_or(&[], sys::prefetch_head)
    }

    /// Errors when the file changed since it was opened: its size or
    /// modification time differ (truncated, grown or rewritten in place), or
    /// a read of the map faulted on a page the file lost (which read zeros).
    /// Cheap (one `fstat` and one atomic load); the iterator calls it before
    /// and after each batch, so no batch read across a change is delivered.
    /// A file replaced by a rename is not a change: the old inode stays open.
    ///
    /// # Errors
    /// [`ErrorKind::FileChanged`] or an I/O error.
    pub fn check_unchanged(&self) -> Result<()> {
        let meta = self
            .inner
            .file
            .metadata()
            .map_err(|e| Error::io(&self.inner.path, e))?;
        let faulted = self.inner.map.as_ref().is_some_and(|m| m.faulted());
        if faulted
            || meta.len() != self.inner.file_len
            || meta.modified().ok() != self.inner.modified
        {
            return Err(ErrorKind::FileChanged {
                path: self.inner.path.clone(),
                expected: self.inner.file_len,
                found: meta.len(),
            }
            .into());
        }
        Ok(())
    }

    /// After a read through the map: [`ErrorKind::FileChanged`] if it (or
    /// any earlier one) read a page the file had lost, so the zeros that
    /// read returned go nowhere. One atomic load: cheap enough per row,
    /// where a size check per row (an `fstat`) would not be.
    fn check_mapped_read(&self) -> Result<()> {
        match &self.inner.map {
            Some(m) if m.faulted() => self.check_unchanged(),
            _ => Ok(()),
        }
    }

    /// `pread` of exactly `out.len()` bytes at `offset`. Falling short means
    /// the file shrank after the last [`NpyArray::check_unchanged`] (a
    /// truncation racing the read): reported as that, not as a bare end of
    /// file.
    fn pread_exact(&self, out: &mut [u8], offset: u64) -> Result<()> {
        if let Some(data) = self.inner.memory.as_ref().and(self.data_bytes()) {
            // In memory, "reading" at an offset is a copy (offsets count from
            // the data, which starts at 0).
            let start = offset as usize;
            out.copy_from_slice(&data[start..start + out.len()]);
            return Ok(());
        }
        match sys::read_exact_at(&self.inner.file, out, offset) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.check_unchanged()?;
                Err(Error::io(&self.inner.path, e))
            }
            r => r.map_err(|e| Error::io(&self.inner.path, e)),
        }
    }

    /// Reads the whole data region through, a chunk at a time with
    /// `pread` (never through the map, so a file that shrank gives an
    /// error rather than a fault), and returns its length in bytes.
    /// `progress` receives `(bytes read, data bytes)` after each chunk.
    ///
    /// A `.npy` file has no checksum: this proves that every data byte the
    /// header promises can be read now (no short file, no unreadable
    /// sector) and that the file did not change meanwhile. For the CRC-32
    /// of `.npz` members see [`crate::NpzArchive::verify`].
    ///
    /// # Errors
    /// I/O errors; [`ErrorKind::FileChanged`] when the file shrank or was
    /// rewritten since it was opened.
    pub fn verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<u64> {
        let total = self.data_len() as u64;
        if self.inner.memory.is_some() {
            progress(total, total);
            return Ok(total);
        }
        self.check_unchanged()?;
        let mut buf = chunk_buffer(total);
        let mut done = 0u64;
        while done < total {
            let n = (total - done).min(buf.len() as u64) as usize;
            self.pread_exact(&mut buf[..n], self.data_offset() + done)?;
            done += n as u64;
            progress(done, total);
        }
        self.check_unchanged()?;
        Ok(total)
    }

    /// Copies row `i`'s raw bytes (stored byte order) into `out`.
    ///
    /// # Errors
    /// I/O errors of the `pread` source.
    ///
    /// # Panics
    /// When `i >= len()` or `out.len() != row_bytes()` (caller bugs).
    pub fn read_row_raw(&self, i: usize, out: &mut [u8]) -> Result<()> {
        assert_eq!(out.len(), self.inner.row_bytes, "read_row_raw: buffer size");
        match self.row_bytes_mapped(i) {
            Some(src) => {
                out.copy_from_slice(src);
                self.check_mapped_read()?;
            }
            None => {
                let off = self.data_offset() + (i * self.inner.row_bytes) as u64;
                self.pread_exact(out, off)?;
            }
        }
        Ok(())
    }

    /// Rows `first..first + count` converted to `T`, in C order, into `out`,
    /// read with one `pread` of their bytes whatever the source: for
    /// streaming passes (`fit`), where a map would cost a page fault per
    /// 4 KiB and a `pread` per chunk costs one call.
    ///
    /// # Errors
    /// I/O errors; [`ErrorKind::FileChanged`] for a file that shrank (no
    /// `SIGBUS` on this path).
    ///
    /// # Panics
    /// When the rows are out of range or `out.len() != count * row_len()`.
    pub(crate) fn read_samples_pread<T: Real>(
        &self,
        first: usize,
        count: usize,
        out: &mut [T],
    ) -> Result<()> {
        assert!(
            first + count <= self.len(),
            "rows {first}+{count} out of range"
        );
        assert_eq!(
            out.len(),
            count * self.inner.row_len,
            "read_samples_pread: buffer size"
        );
        thread_local!(static BYTES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) });
        BYTES.with(|b| -> Result<()> {
            let mut b = b.borrow_mut();
            b.resize(count * self.inner.row_bytes, 0);
            let off = self.data_offset() + (first * self.inner.row_bytes) as u64;
            self.pread_exact(&mut b, off)?;
            // A streaming pass reads a file for minutes: a rewrite in place
            // meanwhile would mix two datasets into one statistic.
            self.check_unchanged()?;
            cast_scaled_into(&b, self.dtype(), out, None);
            Ok(())
        })
    }

    /// The stored bytes of rows `first..`, as many as fill `out` (whole
    /// rows), read with one `pread` whatever the source (as
    /// [`NpyArray::read_samples_pread`]).
    ///
    /// # Errors
    /// I/O errors; [`ErrorKind::FileChanged`] for a file that shrank.
    ///
    /// # Panics
    /// When `out` is not whole rows inside the array (a caller bug).
    pub(crate) fn read_rows_raw_pread(&self, first: usize, out: &mut [u8]) -> Result<()> {
        let rb = self.inner.row_bytes.max(1);
        assert!(
            out.len().is_multiple_of(rb) && first + out.len() / rb <= self.len(),
            "read_rows_raw_pread: rows out of range"
        );
        self.pread_exact(out, self.data_offset() + (first * rb) as u64)?;
        self.check_unchanged()
    }

    /// Copies row `i` into `out` in native byte order (for typed views of y, weights, aux).
    ///
    /// # Errors
    /// I/O errors of the `pread` source.
    ///
    /// # Panics
    /// As [`NpyArray::read_row_raw`].
    pub fn read_row_native(&self, i: usize, out: &mut [u8]) -> Result<()> {
        let dtype = self.dtype();
        match self.row_bytes_mapped(i) {
            Some(src) => {
                copy_native(src, dtype, out);
                self.check_mapped_read()?;
            }
            None => {
                self.read_row_raw(i, out)?;
                if !dtype.is_native() {
                    out.chunks_exact_mut(dtype.size()).for_each(|c| c.reverse());
                }
            }
        }
        Ok(())
    }

    /// Converts row `i` (any dtype, any byte order) into `out` as `T`.
    ///
    /// # Errors
    /// I/O errors of the `pread` source.
    ///
    /// # Panics
    /// When `i >= len()` or `out.len() != row_len()` (caller bugs).
    pub fn read_sample_into<T: Real>(&self, i: usize, out: &mut [T]) -> Result<()> {
        self.read_sample_scaled_into(i, out, None)
    }

    /// [`NpyArray::read_sample_into`], each value then multiplied by
    /// `T(scale)` when given, in the same pass (Keras' `rescale` on a
    /// sample that is not resampled).
    pub(crate) fn read_sample_scaled_into<T: Real>(
        &self,
        i: usize,
        out: &mut [T],
        scale: Option<f64>,
    ) -> Result<()> {
        assert_eq!(
            out.len(),
            self.inner.row_len,
            "read_sample_into: buffer size"
        );
        self.read_sample_placed_into(
            i,
            out,
            Placement::contiguous(out.len()),
            scale,
            RowFrom::Map,
            None,
        )
    }

    /// [`NpyArray::read_sample_scaled_into`] into the runs of `out` that
    /// `place` names (each run converted as it is read: no extra copy),
    /// from where `from` says, each run in parts with `pace` called before
    /// each when given ([`Pace`]).
    ///
    /// # Panics
    /// When `i >= len()`, `place` does not fit `row_len()` elements in
    /// `out`, or `from`'s bytes are not one row (caller bugs).
    pub(crate) fn read_sample_placed_into<T: Real>(
        &self,
        i: usize,
        out: &mut [T],
        place: Placement,
        scale: Option<f64>,
        from: RowFrom<'_>,
        mut pace: Option<Pace<'_>>,
    ) -> Result<()> {
        let dtype = self.dtype();
        let mut cast = |src: &[u8], out: &mut [T]| {
            let runs = place.runs(out, self.inner.row_len);
            for (src, run) in src.chunks_exact(place.run.max(1) * dtype.size()).zip(runs) {
                let pace = pace.as_mut().map(|p| &mut **p as Pace<'_>);
                cast_scaled_paced(src, dtype, run, scale, pace);
            }
        };
        let mapped = match from {
            RowFrom::Bytes(src) => {
                assert_eq!(src.len(), self.inner.row_bytes, "one row's bytes");
                cast(src, out);
                return Ok(());
            }
            RowFrom::Map => self.row_bytes_mapped(i),
            RowFrom::Pread => None,
        };
        match mapped {
            Some(src) => {
                cast(src, out);
                self.check_mapped_read()?;
            }
            None => {
                thread_local!(static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) });
                BUF.with(|b| -> Result<()> {
                    let mut b = b.borrow_mut();
                    b.resize(self.inner.row_bytes, 0);
                    let off = self.data_offset() + (i * self.inner.row_bytes) as u64;
                    self.pread_exact(&mut b, off)?;
                    cast(&b, out);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Reads the whole array as `f64` (for small arrays: labels, statistics).
    ///
    /// # Errors
    /// I/O errors of the `pread` source.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        let mut out = vec![0f64; self.inner.header.num_elements];
        if self.inner.row_len == 0 {
            return Ok(out);
        }
        if self.shape().is_empty() {
            let mut raw = vec![0u8; self.dtype().size()];
            match self.data_bytes() {
                Some(d) => raw.copy_from_slice(d),
                None => sys::read_exact_at(&self.inner.file, &mut raw, self.data_offset())
                    .map_err(|e| Error::io(&self.inner.path, e))?,
            }
            cast_into(&raw, self.dtype(), &mut out);
            return Ok(out);
        }
        for (i, chunk) in out.chunks_exact_mut(self.inner.row_len).enumerate() {
            self.read_sample_into(i, chunk)?;
        }
        Ok(out)
    }
}

/// `file`'s modification time, where the system keeps one.
fn modified_time(file: &File) -> Option<SystemTime> {
    file.metadata().and_then(|m| m.modified()).ok()
}

/// Bytes read per step of a verification (`NpyArray::verify`, the `.npz`
/// CRC checks): large enough that the per-call cost vanishes, small enough
/// that progress moves on slow disks.
const VERIFY_CHUNK: usize = 1 << 20;

/// A buffer of one verification chunk, or less for data smaller than one.
pub(super) fn chunk_buffer(total: u64) -> Vec<u8> {
    vec![0u8; (total.min(VERIFY_CHUNK as u64) as usize).max(1)]
}
