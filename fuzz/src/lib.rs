//! The fuzz targets' helpers: scratch files, and the oracle they share with
//! the property tests (`tests/integration/oracle.rs`, included here): open
//! what the fuzzer wrote with both sources, require the same outcome, and
//! when it opens, read every row, take every view and iterate one epoch,
//! requiring identical bytes from the map and from `pread`.
//!
//! Inputs may declare any shape; each step is skipped when it would allocate
//! more than [`MAX_BYTES`], so one input never costs more than a few MB.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[allow(dead_code)]
#[path = "../../tests/integration/oracle.rs"]
mod oracle;

pub use oracle::{exercise_npz, MAX_BYTES};

/// Opens the `.npy` at `path` with both sources and exercises what opens.
pub fn exercise_npy_file(path: &Path) {
    oracle::exercise_npy(path);
}

/// A private folder for the files the targets write (in /dev/shm when there is one).
pub fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new()
            .prefix("npyflow-fuzz.")
            .tempdir_in(shm);
        builder
            .or_else(|_| tempfile::tempdir())
            .expect("a temporary folder")
    });
    dir.path().join(name)
}

/// Writes `data` to a scratch file called `name` and returns its path.
pub fn write_input(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, data).expect("writing the input file");
    path
}
