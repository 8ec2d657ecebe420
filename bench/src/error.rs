//! The benchmark's errors: one [`Error`] wrapping an [`ErrorKind`], each
//! message naming the file or the cgroup and the value involved.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// `Result` with the benchmark's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A benchmark error (boxed, so results stay one word wide).
#[derive(Debug)]
pub struct Error(Box<ErrorKind>);

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The library failed (opening, evicting, warming or iterating the file).
    #[error(transparent)]
    Npyflow(#[from] npyflow::Error),
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Creating or joining a memory cgroup needs privileges this process lacks.
    #[error("needs root (cannot create the memory cgroup {})", path.display())]
    NeedsRoot {
        /// The cgroup folder that could not be created.
        path: PathBuf,
    },
    /// No memory controller is mounted (neither cgroup v1 nor v2).
    #[error(
        "no memory cgroup controller: /proc/self/mountinfo lists neither a cgroup v1 \
         `memory` hierarchy nor a cgroup v2 one with `memory` in cgroup.controllers"
    )]
    NoMemoryController,
    /// A cgroup v2 hierarchy whose root does not hand the memory controller to children.
    #[error("{}: the memory controller cannot be enabled for child cgroups: {reason}", path.display())]
    ControllerDisabled {
        /// The `cgroup.subtree_control` file.
        path: PathBuf,
        /// Why enabling it failed.
        reason: String,
    },
    /// A file held a value the benchmark cannot read.
    #[error("{}: unexpected value {value:?}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// What it held.
        value: String,
    },
    /// The child process measuring inside the cgroup could not be started or talked to.
    #[error("the measuring child {}: {message}", exe.display())]
    Child {
        /// The re-executed program.
        exe: PathBuf,
        /// What failed.
        message: String,
    },
    /// fio is missing or failed.
    #[error("fio: {message}")]
    Fio {
        /// Why (not installed, failed with its first line of error, no IOPS printed).
        message: String,
    },
    /// The CSV file could not be written.
    #[error("{}: {source}", path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: csv::Error,
    },
    /// The chart could not be drawn or encoded.
    #[error("{}: cannot draw the chart: {message}", path.display())]
    Chart {
        /// The PNG file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A value given to the benchmark is out of its range.
    #[error("invalid {name} = {value}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
        /// The accepted range.
        reason: String,
    },
    /// The job passed to the measuring child is not valid JSON.
    #[error("bench job: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Error {
        ErrorKind::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
        .into()
    }

    /// Whether the error only says this environment cannot run memory-limited
    /// rows (not root, no memory controller), as opposed to a failure.
    pub fn is_unsupported_here(&self) -> bool {
        matches!(
            *self.0,
            ErrorKind::NeedsRoot { .. } | ErrorKind::NoMemoryController
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error(Box::new(kind))
    }
}

impl From<npyflow::Error> for Error {
    fn from(e: npyflow::Error) -> Error {
        ErrorKind::Npyflow(e).into()
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        ErrorKind::Json(e).into()
    }
}
