//! Crash-safe writers: `.npy` streamed into a temporary file beside the
//! destination and renamed only when complete, and stored `.npz` archives.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::dtype::{Dtype, ElemType};
use super::header::header_bytes;
use crate::{Error, ErrorKind, Result};

/// Creates a temporary file in `path`'s folder, so the final rename is atomic
/// (same filesystem) and an interrupted write never leaves a partial file at `path`.
pub(crate) fn temp_beside(path: &Path) -> Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{stem}."))
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))
}

/// Moves a completed temporary file to `path` (atomic rename, after fsync).
pub(crate) fn persist(tmp: NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Streams a C-order `.npy` file: header first, then rows in order.
///
/// Nothing appears at the destination until [`NpyWriter::finish`] succeeds;
/// dropping the writer early deletes the temporary file.
pub struct NpyWriter {
    path: PathBuf,
    out: BufWriter<NamedTempFile>,
    expected: u64,
    written: u64,
}

impl NpyWriter {
    /// Starts a file at `path` for an array of `dtype` and `shape`.
    ///
    /// # Errors
    /// I/O errors (unwritable folder...), or an overflowing shape.
    pub fn create(path: impl AsRef<Path>, dtype: Dtype, shape: &[usize]) -> Result<NpyWriter> {
        let path = path.as_ref().to_path_buf();
        let expected = shape
            .iter()
            .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| ErrorKind::SizeOverflow {
                path: path.clone(),
                shape: shape.iter().map(|&d| d as u64).collect(),
            })?;
        let tmp = temp_beside(&path)?;
        let mut out = BufWriter::with_capacity(1 << 20, tmp);
        out.write_all(&header_bytes(dtype, shape))
            .map_err(|e| Error::io(&path, e))?;
        Ok(NpyWriter {
            path,
            out,
            expected,
            written: 0,
        })
    }

    /// Appends raw element bytes (already in the declared dtype and byte order).
    ///
    /// # Errors
    /// I/O errors, or more bytes than the shape holds.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        if self.written > self.expected {
            return Err(Error::invalid(
                "data",
                self.written,
                format!(
                    "more bytes than the declared {} for {}",
                    self.expected,
                    self.path.display()
                ),
            ));
        }
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Bytes still expected before the array is complete.
    pub fn remaining(&self) -> u64 {
        self.expected - self.written
    }

    /// Checks completeness, flushes, fsyncs and renames into place.
    ///
    /// # Errors
    /// I/O errors, or fewer bytes written than the shape holds.
    pub fn finish(self) -> Result<()> {
        if self.written != self.expected {
            return Err(Error::invalid(
                "data",
                self.written,
                format!(
                    "{} expects {} data bytes",
                    self.path.display(),
                    self.expected
                ),
            ));
        }
        let tmp = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        persist(tmp, &self.path)
    }
}

/// Writes a whole native-endian array in one call.
///
/// # Errors
/// As [`NpyWriter`].
pub fn write_npy(
    path: impl AsRef<Path>,
    elem: ElemType,
    shape: &[usize],
    bytes: &[u8],
) -> Result<()> {
    let mut w = NpyWriter::create(path, Dtype::native(elem), shape)?;
    w.write_bytes(bytes)?;
    w.finish()
}

/// Writes an `.npz` archive with stored (uncompressed, hence mappable) members.
pub struct NpzWriter {
    path: PathBuf,
    zip: zip::ZipWriter<NamedTempFile>,
}

impl NpzWriter {
    /// Starts an archive at `path` (written to a temporary file until [`NpzWriter::finish`]).
    ///
    /// # Errors
    /// I/O errors.
    pub fn create(path: impl AsRef<Path>) -> Result<NpzWriter> {
        let path = path.as_ref().to_path_buf();
        let tmp = temp_beside(&path)?;
        Ok(NpzWriter {
            path,
            zip: zip::ZipWriter::new(tmp),
        })
    }

    /// Adds member `name` (`.npy` is appended) holding native-endian `bytes`.
    ///
    /// # Errors
    /// I/O errors, or `bytes` not matching `shape`.
    pub fn add_raw(
        &mut self,
        name: &str,
        elem: ElemType,
        shape: &[usize],
        bytes: &[u8],
    ) -> Result<()> {
        let n: usize = shape.iter().product::<usize>() * elem.size();
        if n != bytes.len() {
            return Err(Error::invalid(
                "data",
                bytes.len(),
                format!("member `{name}` of shape {shape:?} needs {n} bytes"),
            ));
        }
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        let io = |e: std::io::Error| Error::io(&self.path, e);
        self.zip
            .start_file(format!("{name}.npy"), opts)
            .map_err(|e| Error::io(&self.path, std::io::Error::other(e)))?;
        self.zip
            .write_all(&header_bytes(Dtype::native(elem), shape))
            .map_err(io)?;
        self.zip.write_all(bytes).map_err(io)
    }

    /// Adds an `f64` member.
    ///
    /// # Errors
    /// As [`NpzWriter::add_raw`].
    pub fn add_f64(&mut self, name: &str, shape: &[usize], data: &[f64]) -> Result<()> {
        self.add_raw(name, ElemType::F64, shape, bytemuck::cast_slice(data))
    }

    /// Finishes the archive and renames it into place.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        let mut tmp = self
            .zip
            .finish()
            .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        tmp.flush().map_err(|e| Error::io(&path, e))?;
        tmp.rewind().map_err(|e| Error::io(&path, e))?;
        persist(tmp, &path)
    }
}

/// Opens `path` for writing through a temporary file; call [`persist`] when
/// done (for a caller that must order the renames of several files).
pub(crate) fn create_atomic(path: &Path) -> Result<(NamedTempFile, File)> {
    let tmp = temp_beside(path)?;
    let f = tmp.reopen().map_err(|e| Error::io(path, e))?;
    Ok((tmp, f))
}

/// Writes the file at `path` whole or not at all: `write` fills a temporary
/// file in the same folder, which is then synced and renamed over `path`.
/// When `write` fails, nothing changes at `path` and the temporary file is
/// removed (a killed process can leave a hidden `.NAME.*.partial` file
/// behind, safe to delete). Every file npyflow writes goes this way.
///
/// # Errors
/// [`ErrorKind::Io`] naming `path`: the folder is not writable, `write`
/// failed (its error), or the rename failed.
///
/// # Examples
/// ```
/// use std::io::Write;
///
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("classes.txt");
/// npyflow::npy::write_atomic(&path, |file| file.write_all(b"cat\ndog\n"))?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "cat\ndog\n");
///
/// // A failed write leaves the old contents.
/// let failed = npyflow::npy::write_atomic(&path, |file| {
///     file.write_all(b"half")?;
///     Err(std::io::Error::other("disk full"))
/// });
/// assert!(failed.is_err());
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "cat\ndog\n");
/// # Ok::<(), npyflow::Error>(())
/// ```
pub fn write_atomic(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    let mut tmp = temp_beside(path)?;
    write(tmp.as_file_mut()).map_err(|e| Error::io(path, e))?;
    persist(tmp, path)
}
