//! One row of results: a measured cell, or a cell that did not run and why.

use serde::{Deserialize, Serialize};

use crate::config::Cell;

/// Whether a row was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// Measured (possibly cut short by the time limit: see `epoch_fraction`).
    Measured,
    /// Not run because this environment cannot run it and nobody asked for
    /// it explicitly (memory-limited rows without root): not a failure.
    Skipped,
    /// Should have run and did not (killed by the OOM killer, the child
    /// failed, a cgroup the user asked for could not be created): the run
    /// fails.
    Failed,
}

/// Which device reference a row is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceKind {
    /// The cold sequential read (sequential and block orders), in bytes/s.
    Sequential,
    /// The random-read IOPS divided by the pages per sample (shuffle), in samples/s.
    Random,
}

/// One measured (or missing) cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// The cell.
    pub cell: Cell,
    /// The memory limit in bytes, for cgroup cells.
    pub limit: Option<u64>,
    /// Measured, skipped or failed.
    pub status: RowStatus,
    /// Samples yielded before the end of the epoch or the time limit.
    pub samples: u64,
    /// Share of the epoch done (below 1 when the time limit cut it).
    pub epoch_fraction: f64,
    /// Wall seconds.
    pub seconds: f64,
    /// Images per second.
    pub images_per_s: f64,
    /// Sample bytes delivered per second, in MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Bytes fetched from storage (`/proc/self/io`).
    pub bytes_read: u64,
    /// Major page faults.
    pub major_faults: u64,
    /// Milliseconds to the first batch.
    pub first_batch_ms: f64,
    /// Peak anonymous memory in bytes.
    pub peak_anon_bytes: u64,
    /// Resident fraction of the data after the epoch.
    pub residency_after: f64,
    /// The device reference this row is judged against, once known.
    #[serde(default)]
    pub reference: Option<ReferenceKind>,
    /// The row's speed as a fraction of its reference (1.0 = the device's pace).
    #[serde(default)]
    pub of_reference: Option<f64>,
    /// Why the row is missing, when it is.
    pub skipped: Option<String>,
}

impl BenchRow {
    /// A row that did not run.
    pub fn missing(cell: Cell, limit: Option<u64>, status: RowStatus, reason: String) -> BenchRow {
        BenchRow {
            cell,
            limit,
            status,
            samples: 0,
            epoch_fraction: 0.0,
            seconds: 0.0,
            images_per_s: 0.0,
            mb_per_s: 0.0,
            bytes_read: 0,
            major_faults: 0,
            first_batch_ms: 0.0,
            peak_anon_bytes: 0,
            residency_after: 0.0,
            reference: None,
            of_reference: None,
            skipped: Some(reason),
        }
    }

    /// A short label such as `shuffle/cold/matched/cgroup`.
    pub fn label(&self) -> String {
        self.cell.label()
    }

    /// Whether the row holds measurements.
    pub fn is_measured(&self) -> bool {
        self.status == RowStatus::Measured
    }
}
