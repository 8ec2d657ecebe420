//! Per-epoch telemetry: what an epoch cost in time, storage reads, page
//! faults, page-cache residency and anonymous memory.
//!
//! Users of memory-mapped datasets keep filing "memory leak" reports because
//! RSS counts cached file pages (nanoGPT #287, the PyTorch forum): splitting
//! storage reads, residency and *anonymous* memory makes the difference
//! visible. Every source is read best-effort: a missing `/proc` file or a
//! failing call reports zeros, never an error or a panic.

use std::fmt;
use std::time::{Duration, Instant};

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use crate::{cache, sys, NpyArray};

/// What one epoch cost. Serialises (for `--json`) with durations in seconds
/// and residency as `[{"file": ..., "fraction": ...}]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EpochTelemetry {
    /// Samples yielded.
    pub samples: u64,
    /// Batches yielded.
    pub batches: u64,
    /// Wall time from start to finish.
    #[serde(rename = "wall_seconds", serialize_with = "seconds")]
    pub wall: Duration,
    /// Samples per second of wall time.
    pub throughput: f64,
    /// Wall time until the first batch was ready.
    #[serde(rename = "time_to_first_batch_seconds", serialize_with = "seconds")]
    pub time_to_first_batch: Duration,
    /// Bytes this process made the kernel fetch from storage
    /// (`read_bytes` of `/proc/self/io`; 0 where the kernel does not expose it).
    pub bytes_read: u64,
    /// Bytes passed through `read`-like calls, cached or not (`rchar`);
    /// memory-mapped access does not count here.
    pub rchar: u64,
    /// Major page faults: mapped pages that had to come from storage (getrusage).
    pub major_faults: u64,
    /// Resident fraction of each array's data before the epoch, by name.
    #[serde(serialize_with = "residency_list")]
    pub residency_before: Vec<(String, f64)>,
    /// Resident fraction of each array's data after the epoch, by name.
    #[serde(serialize_with = "residency_list")]
    pub residency_after: Vec<(String, f64)>,
    /// Highest anonymous resident memory seen (`RssAnon`), in bytes.
    pub peak_anon_bytes: u64,
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn residency_list<S: Serializer>(
    v: &[(String, f64)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Entry<'a> {
        file: &'a str,
        fraction: f64,
    }
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (file, fraction) in v {
        seq.serialize_element(&Entry {
            file,
            fraction: *fraction,
        })?;
    }
    seq.end()
}

/// Bytes with a binary unit, for humans.
fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn percent(f: f64) -> String {
    if f.is_finite() {
        format!("{:.1}%", f * 100.0)
    } else {
        "n/a".to_string()
    }
}

impl fmt::Display for EpochTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wall = self.wall.as_secs_f64();
        writeln!(
            f,
            "samples            {} in {} batches",
            self.samples, self.batches
        )?;
        writeln!(
            f,
            "wall time          {wall:.3} s ({:.0} samples/s), first batch after {:.1} ms",
            self.throughput,
            self.time_to_first_batch.as_secs_f64() * 1e3
        )?;
        let rate = if wall > 0.0 {
            self.bytes_read as f64 / wall / 1e6
        } else {
            0.0
        };
        writeln!(
            f,
            "read from storage  {} ({rate:.1} MB/s), {} major faults, {} through read()",
            human_bytes(self.bytes_read),
            self.major_faults,
            human_bytes(self.rchar)
        )?;
        write!(
            f,
            "peak anon memory   {}",
            human_bytes(self.peak_anon_bytes)
        )?;
        for (name, before) in &self.residency_before {
            let after = self
                .residency_after
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .unwrap_or(f64::NAN);
            write!(
                f,
                "\nresident           {} -> {}  {name}",
                percent(*before),
                percent(after)
            )?;
        }
        Ok(())
    }
}

/// A snapshot of `/proc/self/io` (whole process, all threads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessIo {
    /// Bytes fetched from storage on behalf of this process.
    pub read_bytes: u64,
    /// Bytes returned by `read`-like calls.
    pub rchar: u64,
}

impl ProcessIo {
    /// The current counters; zeros where `/proc/self/io` is missing or unreadable.
    pub fn now() -> ProcessIo {
        let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        ProcessIo {
            read_bytes: proc_field(&text, "read_bytes:"),
            rchar: proc_field(&text, "rchar:"),
        }
    }
}

/// Anonymous resident memory of this process in bytes (`RssAnon` of
/// `/proc/self/status`); 0 where unavailable.
pub(crate) fn anon_rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // The kernel reports kB (KiB).
    proc_field(&text, "RssAnon:").saturating_mul(1024)
}

/// File pages mapped into this process and resident, in bytes (`RssFile`
/// of `/proc/self/status`); 0 where unavailable.
#[cfg(test)]
pub(crate) fn file_rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    proc_field(&text, "RssFile:").saturating_mul(1024)
}

/// The first number after `key` at the start of a line; 0 if absent.
fn proc_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Resident fraction of each array's data; NaN where it cannot be measured.
pub(crate) fn residencies(arrays: &[&NpyArray]) -> Vec<(String, f64)> {
    arrays
        .iter()
        .map(|a| (a.name(), cache::resident_fraction(a).unwrap_or(f64::NAN)))
        .collect()
}

/// Reading `/proc/self/status` costs microseconds; at hundreds of thousands
/// of samples per second a read per batch would show in the throughput, so
/// samples are spaced by at least this much.
const ANON_SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// Collects an [`EpochTelemetry`] while an iterator runs one epoch:
/// [`start`](TelemetryRecorder::start), [`first_batch`](TelemetryRecorder::first_batch)
/// when the first batch is ready, [`batch`](TelemetryRecorder::batch) after
/// each batch, [`finish`](TelemetryRecorder::finish).
#[derive(Clone, Debug)]
pub struct TelemetryRecorder {
    started: Instant,
    first: Option<Duration>,
    samples: u64,
    batches: u64,
    io: ProcessIo,
    faults: u64,
    residency_before: Vec<(String, f64)>,
    peak_anon: u64,
    last_anon_sample: Instant,
}

impl TelemetryRecorder {
    /// Snapshots counters and residency of `arrays`, then starts the clock
    /// (so the `mincore` scan is not billed to the epoch).
    pub fn start(arrays: &[&NpyArray]) -> TelemetryRecorder {
        Self::start_with_residency(residencies(arrays))
    }

    /// [`start`](TelemetryRecorder::start) with the residency before the
    /// epoch already measured (e.g. the previous epoch's residency after
    /// it, a moment ago): a residency scan fewer per epoch.
    pub fn start_with_residency(residency_before: Vec<(String, f64)>) -> TelemetryRecorder {
        let peak_anon = anon_rss_bytes();
        let io = ProcessIo::now();
        let faults = sys::major_faults();
        let now = Instant::now();
        TelemetryRecorder {
            started: now,
            first: None,
            samples: 0,
            batches: 0,
            io,
            faults,
            residency_before,
            peak_anon,
            last_anon_sample: now,
        }
    }

    /// Marks the first batch as ready; later calls do nothing.
    pub fn first_batch(&mut self) {
        if self.first.is_none() {
            self.first = Some(self.started.elapsed());
            self.sample_anon();
        }
    }

    /// Counts a finished batch of `samples` samples (marks the first batch
    /// too, if [`first_batch`](TelemetryRecorder::first_batch) was not called).
    pub fn batch(&mut self, samples: usize) {
        self.first_batch();
        self.samples += samples as u64;
        self.batches += 1;
        if self.last_anon_sample.elapsed() >= ANON_SAMPLE_EVERY {
            self.sample_anon();
        }
    }

    fn sample_anon(&mut self) {
        self.peak_anon = self.peak_anon.max(anon_rss_bytes());
        self.last_anon_sample = Instant::now();
    }

    /// The telemetry so far, as [`finish`](TelemetryRecorder::finish) would
    /// report it now, while recording goes on.
    pub fn snapshot(&self, arrays: &[&NpyArray]) -> EpochTelemetry {
        self.clone().finish(arrays)
    }

    /// Stops the clock and measures the deltas and residency after the epoch.
    pub fn finish(mut self, arrays: &[&NpyArray]) -> EpochTelemetry {
        let wall = self.started.elapsed();
        let io = ProcessIo::now();
        let faults = sys::major_faults();
        self.sample_anon();
        let secs = wall.as_secs_f64();
        EpochTelemetry {
            samples: self.samples,
            batches: self.batches,
            wall,
            throughput: if secs > 0.0 {
                self.samples as f64 / secs
            } else {
                0.0
            },
            time_to_first_batch: self.first.unwrap_or(wall),
            bytes_read: io.read_bytes.saturating_sub(self.io.read_bytes),
            rchar: io.rchar.saturating_sub(self.io.rchar),
            major_faults: faults.saturating_sub(self.faults),
            residency_before: self.residency_before,
            residency_after: residencies(arrays),
            peak_anon_bytes: self.peak_anon,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse_and_default_to_zero() {
        let io = "rchar: 6976\nwchar: 0\nread_bytes: 4096\n";
        assert_eq!(proc_field(io, "rchar:"), 6976);
        assert_eq!(proc_field(io, "read_bytes:"), 4096);
        assert_eq!(proc_field(io, "missing:"), 0);
        assert_eq!(proc_field("RssAnon:\t     156 kB\n", "RssAnon:"), 156);
        assert_eq!(proc_field("RssAnon: garbage\n", "RssAnon:"), 0);
        assert_eq!(proc_field("", "rchar:"), 0);
    }

    #[test]
    fn display_and_json_are_readable() {
        let t = EpochTelemetry {
            samples: 128,
            batches: 2,
            wall: Duration::from_millis(500),
            throughput: 256.0,
            time_to_first_batch: Duration::from_millis(3),
            bytes_read: 3 << 20,
            residency_before: vec![("x.npy".into(), 0.0)],
            residency_after: vec![("x.npy".into(), 1.0)],
            ..Default::default()
        };
        let text = t.to_string();
        assert!(text.contains("128 in 2 batches"), "{text}");
        assert!(text.contains("3.0 MiB"), "{text}");
        assert!(text.contains("0.0% -> 100.0%  x.npy"), "{text}");
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["wall_seconds"], 0.5);
        assert_eq!(json["throughput"], 256.0);
        assert_eq!(json["residency_after"][0]["file"], "x.npy");
        assert_eq!(json["residency_after"][0]["fraction"], 1.0);
    }

    #[test]
    fn recorder_counts_batches() {
        let mut r = TelemetryRecorder::start(&[]);
        r.batch(64);
        r.batch(10);
        let t = r.finish(&[]);
        assert_eq!((t.samples, t.batches), (74, 2));
        assert!(t.time_to_first_batch <= t.wall);
        assert!(t.peak_anon_bytes > 0 || !std::path::Path::new("/proc/self/status").exists());
    }
}
