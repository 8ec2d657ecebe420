//! The one error type of the crate: `Error(Box<ErrorKind>)`.
//!
//! Every variant names the file (where there is one) and the offending value,
//! so a message read in a training log says what to fix without a debugger.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A specialised `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from npyflow. Cheap to move (one box); inspect it with [`Error::kind`].
pub struct Error(Box<ErrorKind>);

impl Error {
    /// Wraps a kind into an error.
    pub fn new(kind: ErrorKind) -> Error {
        Error(Box::new(kind))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Unwraps the kind.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// Shorthand for an [`ErrorKind::Io`] error on `path`.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::new(ErrorKind::Io {
            path: path.as_ref().to_path_buf(),
            source,
        })
    }

    /// Shorthand for an [`ErrorKind::OutOfMemory`] error.
    pub fn out_of_memory(what: impl Into<String>, bytes: u64) -> Error {
        Error::new(ErrorKind::OutOfMemory {
            what: what.into(),
            bytes,
        })
    }

    /// Shorthand for an [`ErrorKind::InvalidArgument`] error.
    pub fn invalid(
        name: &'static str,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Error {
        Error::new(ErrorKind::InvalidArgument {
            name,
            value: value.to_string(),
            reason: reason.into(),
        })
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error::new(kind)
    }
}

/// The kinds of [`Error`]. New kinds may be added in minor releases.
#[non_exhaustive]
#[derive(Debug)]
pub enum ErrorKind {
    /// An operating-system error while touching `path`.
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file does not start with the `\x93NUMPY` magic string.
    BadMagic {
        /// The file involved.
        path: PathBuf,
        /// The first bytes actually found (at most 6).
        found: Vec<u8>,
    },
    /// The `.npy` header is malformed (version, length, dictionary syntax, keys).
    BadHeader {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, quoting the offending text.
        reason: String,
    },
    /// The element type is not one npyflow reads (objects, strings, structured, complex...).
    UnsupportedDtype {
        /// The file involved.
        path: PathBuf,
        /// The dtype descriptor as written in the header, e.g. `'<c8'`.
        descr: String,
    },
    /// The array is stored in Fortran (column-major) order.
    FortranOrder {
        /// The file involved.
        path: PathBuf,
    },
    /// The shape's element count or byte size does not fit in 64 bits / the address space.
    SizeOverflow {
        /// The file involved.
        path: PathBuf,
        /// The shape from the header.
        shape: Vec<u64>,
    },
    /// The file holds fewer data bytes than the header promises.
    Truncated {
        /// The file involved.
        path: PathBuf,
        /// Bytes the header promises (header + data).
        expected: u64,
        /// Bytes actually present.
        found: u64,
    },
    /// The data does not start at an offset aligned for the element type.
    Misaligned {
        /// The file involved.
        path: PathBuf,
        /// The data's byte offset in the file.
        offset: u64,
        /// The alignment the element type needs.
        align: usize,
    },
    /// A `.npz` archive is unreadable or a member is missing.
    Npz {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The input is not a regular file: a FIFO, a socket or a device,
    /// which cannot be mapped or read at an offset (a FIFO would also block
    /// until a writer appears).
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it is instead, e.g. `a FIFO (named pipe)`.
        file_type: &'static str,
    },
    /// A `.npz` member's bytes do not match the CRC-32 its archive records:
    /// the archive is damaged.
    ChecksumMismatch {
        /// The archive.
        path: PathBuf,
        /// The member's name inside the archive.
        member: String,
        /// The CRC-32 the archive records for the member.
        expected: u32,
        /// The CRC-32 of the member's bytes as read.
        found: u32,
    },
    /// A `.npz` member is compressed and cannot be mapped.
    CompressedMember {
        /// The archive.
        path: PathBuf,
        /// The member's name inside the archive.
        member: String,
    },
    /// The file changed while it was being read: truncated, grown or
    /// rewritten in place (a replacement by rename is not a change).
    FileChanged {
        /// The file involved.
        path: PathBuf,
        /// The size when it was opened.
        expected: u64,
        /// The size now (the same when it was rewritten in place).
        found: u64,
    },
    /// An argument or option has a value npyflow cannot accept.
    InvalidArgument {
        /// The argument's name (Keras' name where there is one).
        name: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Arrays that must agree in length or shape do not.
    ShapeMismatch {
        /// Which arrays, in Keras' wording.
        what: String,
        /// The expected shape or length.
        expected: Vec<usize>,
        /// The shape or length found.
        found: Vec<usize>,
    },
    /// The training and validation subsets have different sets of classes.
    ClassSplit {
        /// Distinct labels in the validation part.
        validation: usize,
        /// Distinct labels in the training part.
        training: usize,
    },
    /// `get(index)` beyond the number of batches.
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The number of batches.
        len: usize,
    },
    /// A featurewise option or ZCA is on but `fit` statistics are missing.
    MissingStatistics {
        /// Which statistic (`mean`, `std`, `zca`).
        what: &'static str,
    },
    /// A memory limit would be exceeded (ZCA matrix, cache budget...).
    MemoryLimit {
        /// What needs the memory.
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// An image could not be decoded, encoded or written.
    Image {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An allocation sized by an argument or a file failed: the memory is
    /// not there (or the allocator refused the size outright).
    OutOfMemory {
        /// What the memory was for, naming the value that sized it.
        what: String,
        /// Bytes asked for.
        bytes: u64,
    },
    /// A file was not written because the process is being interrupted
    /// (see [`crate::npy::abandon_writes`]).
    Interrupted {
        /// The destination left unwritten.
        path: PathBuf,
    },
}

/// `bytes` with a binary unit for messages: `1.5 GiB`, `512 B`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn quote_bytes(b: &[u8]) -> String {
    b.iter().map(|c| format!("\\x{c:02x}")).collect()
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
        match self {
            Io { path, source } => write!(f, "{}: {source}", path.display()),
            BadMagic { path, found } => write!(
                f,
                "{}: not a .npy file (expected magic \\x93NUMPY, found \"{}\")",
                path.display(),
                quote_bytes(found)
            ),
            BadHeader { path, reason } => write!(f, "{}: bad .npy header: {reason}", path.display()),
            UnsupportedDtype { path, descr } => write!(
                f,
                "{}: unsupported dtype {descr} (npyflow reads bool, u8, i8, u16, i16, u32, i32, u64, i64, f16, f32, f64)",
                path.display()
            ),
            FortranOrder { path } => write!(
                f,
                "{}: array is in Fortran order; rewrite it in C order with `npyflow convert array {} OUT.npy`",
                path.display(),
                path.display()
            ),
            SizeOverflow { path, shape } if shape.len() > 16 => write!(
                f,
                "{}: shape {:?} (and {} more dimensions, {} in all) overflows the addressable size",
                path.display(),
                &shape[..16],
                shape.len() - 16,
                shape.len()
            ),
            SizeOverflow { path, shape } => {
                write!(f, "{}: shape {shape:?} overflows the addressable size", path.display())
            }
            Truncated { path, expected, found } => write!(
                f,
                "{}: file is truncated: header promises {expected} bytes, file has {found}",
                path.display()
            ),
            Misaligned { path, offset, align } => write!(
                f,
                "{}: data offset {offset} is not aligned to {align} bytes for its dtype",
                path.display()
            ),
            Npz { path, reason } => write!(f, "{}: {reason}", path.display()),
            NotAFile { path, file_type } => write!(
                f,
                "{}: is {file_type}, not a regular file; npyflow reads .npy and .npz files",
                path.display()
            ),
            ChecksumMismatch { path, member, expected, found } => write!(
                f,
                "{}: member `{member}` is damaged: CRC-32 expected {expected:08x}, found {found:08x}; re-create or re-download the archive",
                path.display()
            ),
            CompressedMember { path, member } => write!(
                f,
                "{}: member `{member}` is compressed and cannot be memory-mapped; extract it with `npyflow convert npz {} --out DIR`",
                path.display(),
                path.display()
            ),
            FileChanged { path, expected, found } if expected == found => write!(
                f,
                "{}: file changed while being read (rewritten in place, {found} bytes); reopen it to read the new contents",
                path.display()
            ),
            FileChanged { path, expected, found } => write!(
                f,
                "{}: file changed while being read: size was {expected} bytes, now {found}; reopen it to read the new contents",
                path.display()
            ),
            InvalidArgument { name, value, reason } => write!(f, "invalid `{name}` = {value}: {reason}"),
            ShapeMismatch { what, expected, found } => {
                write!(f, "{what}: expected {expected:?}, found {found:?}")
            }
            ClassSplit { validation, training } => write!(
                f,
                "Training and validation subsets have different number of classes after the split \
                 ({validation} distinct in validation, {training} in training). If your numpy arrays \
                 are sorted by the label, you might want to shuffle them (or set ignore_class_split)"
            ),
            IndexOutOfRange { index, len } => write!(
                f,
                "asked to retrieve batch {index}, but the iterator has length {len}"
            ),
            MissingStatistics { what } => write!(
                f,
                "the generator uses featurewise {what} but has no fitted statistics; call `fit` or load statistics first"
            ),
            MemoryLimit { what, needed, limit } => write!(
                f,
                "{what} needs {needed} bytes, more than the configured limit of {limit} bytes"
            ),
            Image { path, reason } => write!(f, "{}: {reason}", path.display()),
            OutOfMemory { what, bytes } => write!(
                f,
                "cannot allocate {bytes} bytes ({}) for {what}: not enough memory",
                human_bytes(*bytes)
            ),
            Interrupted { path } => write!(
                f,
                "{}: not written: the process is being interrupted",
                path.display()
            ),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?})", self.0)
    }
}

/// A zeroed buffer of `len` elements, or [`ErrorKind::OutOfMemory`] naming
/// `what` when the allocator cannot provide it (instead of aborting the
/// process): for every buffer whose size comes from an argument or a file.
pub(crate) fn try_zeroed<T: Clone + Default>(
    len: usize,
    what: impl FnOnce() -> String,
) -> Result<Vec<T>> {
    let bytes = (len as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::out_of_memory(what(), bytes))?;
    v.resize(len, T::default());
    Ok(v)
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            ErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Whether `bytes` can be allocated now (reserved and released again,
/// without touching the memory), else [`ErrorKind::OutOfMemory`] naming
/// `what`: for memory that a dependency allocates without a way to fail.
pub(crate) fn check_allocation(bytes: u64, what: impl FnOnce() -> String) -> Result<()> {
    let fits = usize::try_from(bytes)
        .ok()
        .is_some_and(|n| Vec::<u8>::new().try_reserve_exact(n).is_ok());
    if fits {
        Ok(())
    } else {
        Err(Error::out_of_memory(what(), bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(120_000_000_000), "111.8 GiB");
    }

    #[test]
    fn an_impossible_buffer_is_an_error_naming_its_size() {
        let e =
            try_zeroed::<u8>(usize::MAX / 2, || "a test buffer (--size 1x1)".into()).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::OutOfMemory { bytes, .. } if *bytes == (usize::MAX / 2) as u64)
        );
        assert!(e.to_string().starts_with("cannot allocate 9223372036854775807 bytes (8192.0 PiB) for a test buffer (--size 1x1)"), "{e}");
        assert_eq!(try_zeroed::<u32>(3, String::new).unwrap(), [0, 0, 0]);
        assert!(check_allocation(1 << 20, String::new).is_ok());
        let e = check_allocation(u64::MAX, || "everything".into()).unwrap_err();
        assert!(e.to_string().contains("for everything"), "{e}");
    }
}
