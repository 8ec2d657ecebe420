//! npyflow's errors as Python exceptions of the conventional type, with
//! npyflow's message:
//!
//! | npyflow | Python |
//! |---|---|
//! | `Io` | the `OSError` subclass of the errno (`FileNotFoundError`, `PermissionError`, `IsADirectoryError`...), `errno`/`strerror`/`filename` set |
//! | `FileChanged` | `npyflow.FileChangedError` (an `OSError`) |
//! | `Image` | `OSError` |
//! | `MemoryLimit` | `MemoryError` |
//! | every other kind (bad files, bad values, shapes, class split, missing statistics, index) | `ValueError` |

use std::path::Path;

use npyflow::{Error, ErrorKind};
use pyo3::exceptions::{PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

pyo3::create_exception!(
    npyflow,
    FileChangedError,
    PyOSError,
    "A mapped file changed size (truncated or rewritten) while npyflow read it."
);

/// Converts an npyflow error into the Python exception it stands for.
pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match e.into_kind() {
        ErrorKind::Io { path, source } => io_error(&path, &source, message),
        ErrorKind::FileChanged { .. } => FileChangedError::new_err(message),
        // Not a regular file (a FIFO, a device): an OSError, as Python's own
        // `open` of a folder is one (IsADirectoryError).
        ErrorKind::Image { .. } | ErrorKind::NotAFile { .. } => PyOSError::new_err(message),
        ErrorKind::MemoryLimit { .. } => PyMemoryError::new_err(message),
        ErrorKind::BadMagic { .. }
        | ErrorKind::BadHeader { .. }
        | ErrorKind::UnsupportedDtype { .. }
        | ErrorKind::FortranOrder { .. }
        | ErrorKind::SizeOverflow { .. }
        | ErrorKind::Truncated { .. }
        | ErrorKind::Misaligned { .. }
        | ErrorKind::Npz { .. }
        | ErrorKind::CompressedMember { .. }
        | ErrorKind::ChecksumMismatch { .. }
        | ErrorKind::InvalidArgument { .. }
        | ErrorKind::ShapeMismatch { .. }
        | ErrorKind::ClassSplit { .. }
        | ErrorKind::IndexOutOfRange { .. }
        | ErrorKind::MissingStatistics { .. } => PyValueError::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// `OSError(errno, strerror, filename)`: Python picks the subclass from the
/// errno (`FileNotFoundError` for ENOENT...), and `str()` reads as Python's
/// own file errors do (`[Errno 2] No such file or directory: 'x.npy'`).
fn io_error(path: &Path, source: &std::io::Error, message: String) -> PyErr {
    /// EISDIR, the same number on Linux, macOS and Windows' C runtime.
    const EISDIR: i32 = 21;
    match source.raw_os_error() {
        Some(errno) => {
            let text = std::io::Error::from_raw_os_error(errno).to_string();
            // Rust appends " (os error N)"; Python's strerror has no suffix.
            let strerror = match text.rfind(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            PyOSError::new_err((errno, strerror, path.display().to_string()))
        }
        // A folder given for a file: IsADirectoryError, with npyflow's
        // text (which names the arrays inside) as its strerror.
        None if source.kind() == std::io::ErrorKind::IsADirectory => {
            PyOSError::new_err((EISDIR, source.to_string(), path.display().to_string()))
        }
        None => PyOSError::new_err(message),
    }
}

/// `Result<T, npyflow::Error>` → `PyResult<T>`.
pub trait IntoPy<T> {
    /// The Python exception for the error, if any.
    fn py_err(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPy<T> for npyflow::Result<T> {
    fn py_err(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
