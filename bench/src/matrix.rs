//! Running the whole matrix: the unlimited rows in this process, then the
//! memory cap sized from what they used, then the capped rows in a child
//! inside a memory cgroup.

use std::path::Path;
use std::time::Duration;

use npyflow::cache::file_residency;
use npyflow::NpyArray;
use serde::{Deserialize, Serialize};

use crate::cell::run_cell;
use crate::cgroup::MemoryCgroup;
use crate::child::run_in_cgroup;
use crate::config::{
    AdviceMode, BenchConfig, BenchOrder, CacheState, CapRule, Cell, MemoryLimit, MemoryMode,
};
use crate::error::{Error, Result};
use crate::row::{BenchRow, RowStatus};

/// The rows of a run and the cap the capped rows ran under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// One row per cell, in [`BenchConfig::cells`] order.
    pub rows: Vec<BenchRow>,
    /// The cap and how it was sized, when the matrix has capped rows.
    pub cap: Option<CapRule>,
}

/// Runs the matrix on the `.npy` file at `path`, calling `on_row` as each
/// row is ready (for progress output). Capped rows that cannot run come back
/// as rows saying why: [`RowStatus::Skipped`] where this environment has no
/// memory cgroups and the cap is the default, [`RowStatus::Failed`]
/// otherwise.
///
/// # Errors
/// The file cannot be opened or read, or the child cannot be started.
pub fn run_matrix_with(
    path: &Path,
    config: &BenchConfig,
    mut on_row: impl FnMut(&BenchRow),
) -> Result<Matrix> {
    validate(config)?;
    let path = path.canonicalize().map_err(|e| Error::io(path, e))?;
    let cells = config.cells();
    let mut rows = Vec::with_capacity(cells.len());
    for cell in cells.iter().filter(|c| c.memory == MemoryMode::Unlimited) {
        let row = run_cell(&path, *cell, config, None)?;
        on_row(&row);
        rows.push(row);
    }
    let capped: Vec<Cell> = cells
        .into_iter()
        .filter(|c| c.memory == MemoryMode::Cgroup)
        .collect();
    if capped.is_empty() {
        return Ok(Matrix { rows, cap: None });
    }
    let cap = match config.memory_limit {
        MemoryLimit::Bytes(b) => CapRule::explicit(b),
        _ => auto_cap(&path, config, &rows)?,
    };
    match MemoryCgroup::create(cap.limit) {
        Ok(cg) => rows.extend(run_in_cgroup(&cg, &path, config, &capped, &mut on_row)?),
        Err(e) => {
            let status = if e.is_unsupported_here() && !cap.explicit {
                RowStatus::Skipped
            } else {
                RowStatus::Failed
            };
            for cell in capped {
                let row = BenchRow::missing(cell, Some(cap.limit), status, e.to_string());
                on_row(&row);
                rows.push(row);
            }
        }
    }
    Ok(Matrix {
        rows,
        cap: Some(cap),
    })
}

/// [`run_matrix_with`] without progress output.
///
/// # Errors
/// As [`run_matrix_with`].
pub fn run_matrix(path: &Path, config: &BenchConfig) -> Result<Matrix> {
    run_matrix_with(path, config, |_| {})
}

fn validate(config: &BenchConfig) -> Result<()> {
    let invalid = |name, value: String, reason: &str| {
        Err(crate::error::ErrorKind::Invalid {
            name,
            value,
            reason: reason.to_string(),
        }
        .into())
    };
    if config.batch_size == 0 {
        return invalid("batch_size", "0".into(), "must be at least 1");
    }
    if config.time_limit.is_zero() {
        return invalid("time_limit", "0 s".into(), "must be positive");
    }
    if config.memory_limit == MemoryLimit::Bytes(0) {
        return invalid("memory_limit", "0".into(), "must be positive");
    }
    Ok(())
}

/// The default cap ([`CapRule`]), from the peak anonymous memory of the
/// matched rows already run without a limit, or of a short calibration run
/// when none was.
fn auto_cap(path: &Path, config: &BenchConfig, rows: &[BenchRow]) -> Result<CapRule> {
    let measured = rows
        .iter()
        .filter(|r| r.is_measured() && r.cell.advice == AdviceMode::Matched)
        .map(|r| r.peak_anon_bytes)
        .max();
    let peak_anon = match measured {
        Some(p) => p,
        None => {
            let calibration = BenchConfig {
                time_limit: config.time_limit.min(Duration::from_secs(1)),
                ..config.clone()
            };
            let cell = Cell {
                order: BenchOrder::Sequential,
                cache: CacheState::Warm,
                advice: AdviceMode::Matched,
                memory: MemoryMode::Unlimited,
            };
            run_cell(path, cell, &calibration, None)?.peak_anon_bytes
        }
    };
    let x = NpyArray::open(path)?;
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let page = file_residency(path)?.page_size as u64;
    Ok(CapRule::auto(
        config,
        file_bytes,
        x.row_bytes() as u64,
        page,
        peak_anon,
    ))
}
