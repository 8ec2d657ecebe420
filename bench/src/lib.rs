//! npyflow's page-cache benchmark, shared by the tool's `npyflow bench`
//! and `benches/page_cache.rs` (workspace-internal, not published).
//!
//! The matrix is access order × cache state (cold / warm) × advice (the
//! kernel's default / matched to the order) × memory (unlimited / a memory
//! cgroup), measured against the device the file lives on: its queue
//! settings ([`Device`]) and its pace on the same file ([`References`]: a
//! cold sequential read, random 4 KiB reads).
//!
//! # Map
//!
//! - [`config`] — the axes, [`BenchConfig`], and the rule sizing the default
//!   memory cap ([`CapRule`]).
//! - [`run_matrix_with`] — the unlimited rows in this process, then the
//!   capped rows in a child inside a [`cgroup::MemoryCgroup`] (v1 or v2).
//!   Memory-limited rows need the program re-executed inside the cgroup,
//!   so **every binary that runs the matrix calls [`child_main`] first
//!   thing in `main`**.
//! - [`device`] — the block device under a file (`read_ahead_kb`,
//!   `max_sectors_kb`, rotational, a loop device's backing file).
//! - [`reference`](mod@reference) — the cold sequential read and the random-read
//!   reference (fio, or a built-in `pread` reader).
//! - [`Report`] — all of it together, each row as a fraction of its
//!   reference; printed as a table, or written with [`write_csv`] and
//!   [`draw_chart`] (atomically, with the umask's permissions).
//!
//! Linux only in substance: cgroups, `/proc` and `/sys` are read at run
//! time, and what is missing is reported rather than guessed.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cell;
pub mod cgroup;
mod chart;
mod child;
pub mod config;
mod csv;
pub mod device;
mod error;
mod files;
mod matrix;
pub mod reference;
mod report;
mod row;

pub use cell::run_cell;
pub use chart::draw_chart;
pub use child::child_main;
pub use config::{
    AdviceMode, BenchConfig, BenchOrder, CacheState, CapRule, Cell, MemoryLimit, MemoryMode,
};
pub use csv::write_csv;
pub use device::Device;
pub use error::{Error, ErrorKind, Result};
pub use matrix::{run_matrix, run_matrix_with, Matrix};
pub use reference::{RandomMethod, ReferenceConfig, References};
pub use report::{table, table_header, table_row, FileInfo, Report};
pub use row::{BenchRow, ReferenceKind, RowStatus};
