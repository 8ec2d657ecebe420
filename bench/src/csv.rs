//! The rows as CSV (the `csv` crate, so quoting is right), one line per
//! row with the run's device and references repeated on each, so a file of
//! several runs concatenated stays self-describing.

use std::path::Path;

use serde::Serialize;

use crate::config::name;
use crate::error::{Error, ErrorKind, Result};
use crate::files::write_atomic;
use crate::report::Report;

/// One CSV line. The first sixteen columns are those of earlier versions;
/// figures of missing rows are empty.
#[derive(Serialize)]
struct Record<'a> {
    order: String,
    cache: String,
    advice: String,
    memory: String,
    limit_bytes: Option<u64>,
    samples: Option<u64>,
    epoch_fraction: Option<f64>,
    seconds: Option<f64>,
    images_per_s: Option<f64>,
    mb_per_s: Option<f64>,
    bytes_read: Option<u64>,
    major_faults: Option<u64>,
    first_batch_ms: Option<f64>,
    peak_anon_bytes: Option<u64>,
    residency_after: Option<f64>,
    skipped: Option<&'a str>,
    status: String,
    reference: Option<String>,
    of_reference: Option<f64>,
    device: Option<&'a str>,
    read_ahead_kb: Option<u64>,
    max_sectors_kb: Option<u64>,
    rotational: Option<bool>,
    sequential_ref_bytes_per_s: Option<f64>,
    random_ref_iops: Option<f64>,
    random_ref_method: &'a str,
    pages_per_sample: f64,
}

/// Writes the report's rows as CSV at `path`, atomically and with the
/// umask's permissions.
///
/// # Errors
/// The file cannot be written.
pub fn write_csv(report: &Report, path: &Path) -> Result<()> {
    let csv_error = |source| {
        Error::from(ErrorKind::Csv {
            path: path.to_path_buf(),
            source,
        })
    };
    write_atomic(path, |file| {
        let mut w = csv::Writer::from_writer(file);
        let block = report.device.block.as_ref();
        let refs = &report.references;
        for r in &report.rows {
            let m = r.is_measured();
            let c = &r.cell;
            let rec = Record {
                order: name(c.order),
                cache: name(c.cache),
                advice: name(c.advice),
                memory: name(c.memory),
                limit_bytes: r.limit,
                samples: m.then_some(r.samples),
                epoch_fraction: m.then_some(r.epoch_fraction),
                seconds: m.then_some(r.seconds),
                images_per_s: m.then_some(r.images_per_s),
                mb_per_s: m.then_some(r.mb_per_s),
                bytes_read: m.then_some(r.bytes_read),
                major_faults: m.then_some(r.major_faults),
                first_batch_ms: m.then_some(r.first_batch_ms),
                peak_anon_bytes: m.then_some(r.peak_anon_bytes),
                residency_after: m.then_some(r.residency_after),
                skipped: r.skipped.as_deref(),
                status: name(r.status),
                reference: r.reference.map(name),
                of_reference: r.of_reference,
                device: block.map(|b| b.name.as_str()),
                read_ahead_kb: block.and_then(|b| b.read_ahead_kb),
                max_sectors_kb: block.and_then(|b| b.max_sectors_kb),
                rotational: block.and_then(|b| b.rotational),
                sequential_ref_bytes_per_s: refs.sequential_bytes_per_s,
                random_ref_iops: refs.random_iops,
                random_ref_method: &refs.random_method,
                pages_per_sample: refs.pages_per_sample,
            };
            w.serialize(rec).map_err(csv_error)?;
        }
        w.flush().map_err(|e| Error::io(path, e))?;
        Ok(())
    })
}
