//! A run's results together: the file, its device, the device references,
//! the cap and the rows, each row set against its reference. Printed as a
//! table, serialised as JSON, written as CSV and drawn as a chart.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{name, CapRule, MemoryMode};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::reference::References;
use crate::row::{BenchRow, ReferenceKind, RowStatus};

/// The file measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Samples (rows).
    pub samples: u64,
    /// Bytes per sample.
    pub row_bytes: u64,
}

impl FileInfo {
    /// Reads the size and shape of the `.npy` at `path`.
    ///
    /// # Errors
    /// The file cannot be opened as a `.npy`.
    pub fn of(path: &Path) -> Result<FileInfo> {
        let x = npyflow::NpyArray::open(path)?;
        let bytes = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        Ok(FileInfo {
            path: path.to_path_buf(),
            bytes,
            samples: x.len() as u64,
            row_bytes: x.row_bytes() as u64,
        })
    }
}

/// Everything one run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The file.
    pub file: FileInfo,
    /// The device under it.
    pub device: Device,
    /// The device's pace on the file.
    pub references: References,
    /// The memory cap of the capped rows.
    pub cap: Option<CapRule>,
    /// The rows, each with its reference fraction filled in.
    pub rows: Vec<BenchRow>,
}

impl Report {
    /// Puts a run together and sets each row against its reference
    /// ([`References::judge`]).
    pub fn new(file: FileInfo, device: Device, references: References, matrix: Matrix) -> Report {
        let mut rows = matrix.rows;
        for r in &mut rows {
            references.judge(r, file.row_bytes);
        }
        Report {
            file,
            device,
            references,
            cap: matrix.cap,
            rows,
        }
    }

    /// Rows that should have run and did not.
    pub fn failed(&self) -> impl Iterator<Item = &BenchRow> {
        self.rows.iter().filter(|r| r.status == RowStatus::Failed)
    }

    /// The lines above the table: file, device, references, cap.
    pub fn summary(&self) -> String {
        let f = &self.file;
        let mut s = format!(
            "{}: {:.2} MiB, {} samples of {} bytes\ndevice: {}\n{}",
            f.path.display(),
            f.bytes as f64 / (1u64 << 20) as f64,
            f.samples,
            f.row_bytes,
            self.device.describe(),
            self.references.describe(f.row_bytes)
        );
        if let Some(cap) = &self.cap {
            s += &format!("\n{}", cap.describe());
        }
        s
    }

    /// The summary, the table and, when rows are missing, what to do.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n{}", self.summary(), table(&self.rows));
        let failed = self.failed().count();
        if failed > 0 {
            s += &format!("{failed} row(s) that should have run did not (see \"not run\" above)\n");
        }
        s
    }
}

/// The table's column titles.
pub fn table_header() -> String {
    format!(
        "{:<11} {:<5} {:<7} {:<16} {:>11} {:>9} {:>10} {:>10} {:>9} {:>9} {:>6} {:>11}",
        "order",
        "cache",
        "advice",
        "memory",
        "img/s",
        "MB/s",
        "read MB",
        "maj.fault",
        "1st ms",
        "anon MiB",
        "epoch",
        "of ref"
    )
}

/// One row of the table (no line break).
pub fn table_row(r: &BenchRow) -> String {
    let c = &r.cell;
    let memory = match r.limit {
        Some(l) if c.memory == MemoryMode::Cgroup => format!("cgroup {} MiB", l >> 20),
        _ => name(c.memory),
    };
    let head = format!(
        "{:<11} {:<5} {:<7} {:<16}",
        name(c.order),
        name(c.cache),
        name(c.advice),
        memory
    );
    if !r.is_measured() {
        let why = r.skipped.as_deref().unwrap_or("no reason recorded");
        return format!("{head} not run: {why}");
    }
    let of_ref = match (r.of_reference, r.reference) {
        (Some(f), Some(ReferenceKind::Sequential)) => format!("{:.0}% seq", f * 100.0),
        (Some(f), Some(ReferenceKind::Random)) => format!("{:.0}% rand", f * 100.0),
        _ => "-".to_string(),
    };
    format!(
        "{head} {:>11.0} {:>9.1} {:>10.1} {:>10} {:>9.1} {:>9.1} {:>5.0}% {:>11}",
        r.images_per_s,
        r.mb_per_s,
        r.bytes_read as f64 / 1e6,
        r.major_faults,
        r.first_batch_ms,
        r.peak_anon_bytes as f64 / (1u64 << 20) as f64,
        r.epoch_fraction * 100.0,
        of_ref
    )
}

/// The rows as an aligned text table, missing rows with their reason.
pub fn table(rows: &[BenchRow]) -> String {
    let mut s = table_header();
    s.push('\n');
    for r in rows {
        s += &table_row(r);
        s.push('\n');
    }
    s
}
