//! The device's own pace on the file, measured in the same run: the
//! references each order is judged against. A sequential or block order
//! cannot beat a cold sequential read of the file; a uniform shuffle cannot
//! beat the device's random 4 KiB reads divided by the pages a sample spans.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use npyflow::cache::{evict_file, file_residency};
use npyflow::NpyArray;

use crate::config::BenchOrder;
use crate::error::{Error, ErrorKind, Result};
use crate::row::{BenchRow, ReferenceKind};

/// How the random-read reference is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomMethod {
    /// fio when it is installed and works on the file, else the built-in reader.
    Auto,
    /// fio only.
    Fio,
    /// The built-in reader only.
    Builtin,
    /// Not measured.
    Off,
}

/// What to measure of the device.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceConfig {
    /// Whether to read the file once, cold, for the sequential reference. By default, yes.
    pub sequential: bool,
    /// The random-read reference. By default, [`RandomMethod::Auto`].
    pub random: RandomMethod,
    /// Seconds of random reads. By default, 3.
    pub random_seconds: f64,
    /// Reads in flight: fio's `iodepth`, the built-in reader's threads. By default, 32.
    pub queue_depth: u32,
}

impl Default for ReferenceConfig {
    fn default() -> ReferenceConfig {
        ReferenceConfig {
            sequential: true,
            random: RandomMethod::Auto,
            random_seconds: 3.0,
            queue_depth: 32,
        }
    }
}

/// The references of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct References {
    /// Cold sequential read of the file, bytes per second (buffered, 8 MiB
    /// reads, the file evicted first).
    pub sequential_bytes_per_s: Option<f64>,
    /// Random 4 KiB reads per second.
    pub random_iops: Option<f64>,
    /// How the random reads were made, or why they were not.
    pub random_method: String,
    /// Why the preferred method was not used, when it was not.
    pub random_note: Option<String>,
    /// Pages of memory one sample spans on average (rows need not be page-aligned).
    pub pages_per_sample: f64,
}

impl References {
    /// Measures the references on `path` (it is left evicted).
    ///
    /// # Errors
    /// The file cannot be opened, evicted or read sequentially. A random
    /// reference that cannot be measured is reported as such, not as an error.
    pub fn measure(path: &Path, config: &ReferenceConfig) -> Result<References> {
        let x = NpyArray::open(path)?;
        let page = file_residency(path)?.page_size as u64;
        let pages_per_sample = pages_per_sample(&x, page);
        drop(x);
        let sequential_bytes_per_s = if config.sequential {
            Some(cold_sequential_read(path)?)
        } else {
            None
        };
        let mut refs = References {
            sequential_bytes_per_s,
            pages_per_sample,
            ..References::default()
        };
        let secs = config.random_seconds;
        let qd = config.queue_depth.max(1);
        let fio_method = format!("fio randread 4 KiB, iodepth {qd}, O_DIRECT (libaio)");
        let builtin = |refs: &mut References| match builtin_randread(path, qd, secs) {
            Ok((iops, method)) => {
                refs.random_iops = Some(iops);
                refs.random_method = method;
            }
            Err(e) => {
                refs.random_method = "not measured".to_string();
                refs.random_note = Some(format!("built-in random reads failed: {e}"));
            }
        };
        match config.random {
            RandomMethod::Off => refs.random_method = "not measured".to_string(),
            RandomMethod::Builtin => builtin(&mut refs),
            RandomMethod::Fio => match fio_randread(path, qd, secs) {
                Ok(iops) => {
                    refs.random_iops = Some(iops);
                    refs.random_method = fio_method;
                }
                Err(e) => {
                    refs.random_method = "not measured".to_string();
                    refs.random_note = Some(e.to_string());
                }
            },
            RandomMethod::Auto => match fio_randread(path, qd, secs) {
                Ok(iops) => {
                    refs.random_iops = Some(iops);
                    refs.random_method = fio_method;
                }
                Err(e) => {
                    builtin(&mut refs);
                    let why = refs.random_note.take();
                    refs.random_note = Some(match why {
                        Some(w) => format!("{e}; {w}"),
                        None => e.to_string(),
                    });
                }
            },
        }
        evict_file(path)?;
        Ok(refs)
    }

    /// The sequential reference in samples per second for `row_bytes` rows.
    pub fn sequential_samples_per_s(&self, row_bytes: u64) -> Option<f64> {
        Some(self.sequential_bytes_per_s? / row_bytes.max(1) as f64)
    }

    /// The random reference in samples per second: IOPS ÷ pages per sample.
    pub fn random_samples_per_s(&self) -> Option<f64> {
        let iops = self.random_iops?;
        (self.pages_per_sample > 0.0).then(|| iops / self.pages_per_sample)
    }

    /// Sets `row` against its reference: sequential and block orders
    /// against the cold sequential read, the shuffle against random IOPS ÷
    /// pages per sample (rows of `row_bytes` bytes). Missing rows get the
    /// kind but no fraction.
    pub fn judge(&self, row: &mut BenchRow, row_bytes: u64) {
        let (kind, reference) = match row.cell.order {
            BenchOrder::Sequential | BenchOrder::Blocks => (
                ReferenceKind::Sequential,
                self.sequential_samples_per_s(row_bytes),
            ),
            BenchOrder::Shuffle => (ReferenceKind::Random, self.random_samples_per_s()),
        };
        row.reference = Some(kind);
        row.of_reference = reference
            .filter(|v| *v > 0.0 && row.is_measured())
            .map(|v| row.images_per_s / v);
    }

    /// Two lines for people.
    pub fn describe(&self, row_bytes: u64) -> String {
        let seq = match (
            self.sequential_bytes_per_s,
            self.sequential_samples_per_s(row_bytes),
        ) {
            (Some(b), Some(s)) => format!(
                "sequential reference: {:.0} MB/s = {:.0} img/s (cold buffered read, 8 MiB reads)",
                b / 1e6,
                s
            ),
            _ => "sequential reference: not measured".to_string(),
        };
        let rand = match (self.random_iops, self.random_samples_per_s()) {
            (Some(iops), Some(s)) => format!(
                "random reference: {iops:.0} IOPS = {s:.0} img/s at {:.2} pages per sample ({})",
                self.pages_per_sample, self.random_method
            ),
            _ => "random reference: not measured".to_string(),
        };
        let note = self
            .random_note
            .as_ref()
            .map(|n| format!(" [{n}]"))
            .unwrap_or_default();
        format!("{seq}\n{rand}{note}")
    }
}

/// Bandwidth of reading the whole file with 8 MiB reads after evicting it,
/// in bytes per second: the ceiling a sequential or block order can reach.
///
/// # Errors
/// The file cannot be evicted or read.
pub fn cold_sequential_read(path: &Path) -> Result<f64> {
    evict_file(path)?;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; 8 << 20];
    let start = Instant::now();
    let mut total = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    evict_file(path)?;
    Ok(total as f64 / secs)
}

/// Random 4 KiB reads per second the device serves on `path` at `iodepth`
/// over `seconds` (fio `randread`, `O_DIRECT`, libaio). The file is opened
/// read-only.
///
/// # Errors
/// [`ErrorKind::Fio`]: fio is not installed, fails, or prints no IOPS.
pub fn fio_randread(path: &Path, iodepth: u32, seconds: f64) -> Result<f64> {
    let fio = |message: String| Error::from(ErrorKind::Fio { message });
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=npyflow-randread",
        "--readonly",
        "--rw=randread",
        "--bs=4k",
        "--direct=1",
        "--ioengine=libaio",
        "--time_based",
        "--output-format=json",
    ])
    .arg(format!("--iodepth={iodepth}"))
    .arg(format!("--runtime={}ms", (seconds * 1e3).max(1.0) as u64))
    .arg(format!("--filename={}", path.display()))
    .stdin(Stdio::null());
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fio("not installed (apt-get install fio)".to_string()))
        }
        Err(e) => return Err(fio(format!("could not start: {e}"))),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(fio(format!(
            "failed: {}",
            err.lines().next().unwrap_or("no message")
        )));
    }
    // fio may print warnings before the JSON document.
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.find('{').map_or("", |i| &text[i..]);
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v["jobs"][0]["read"]["iops"].as_f64())
        .ok_or_else(|| fio("printed no read IOPS".to_string()))
}

/// The built-in random-read reference: `threads` threads each `pread` 4 KiB
/// at uniformly random page offsets for `seconds`, with `O_DIRECT` so every
/// read reaches the device (a thread per read in flight is what fio's queue
/// depth amounts to). Where the file system refuses `O_DIRECT`, buffered
/// reads of the evicted file, which small files serve partly from cache.
/// Returns the reads per second and how they were made.
///
/// # Errors
/// The file cannot be opened, evicted or read.
pub fn builtin_randread(path: &Path, threads: u32, seconds: f64) -> Result<(f64, String)> {
    const BLOCK: usize = 4096;
    let (file, how) = match open_direct(path) {
        Ok(f) => (f, "O_DIRECT"),
        Err(_) => {
            evict_file(path)?;
            let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            (f, "buffered, O_DIRECT refused")
        }
    };
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let blocks = len.div_ceil(BLOCK as u64).max(1);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.01));
    let reads = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    let errors: Vec<std::io::Error> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let (file, reads, failed) = (&file, &reads, &failed);
                s.spawn(move || -> std::io::Result<()> {
                    use std::os::unix::fs::FileExt;
                    // O_DIRECT wants the buffer aligned like the offset.
                    let mut buf = vec![0u8; 2 * BLOCK];
                    let at = buf.as_ptr().align_offset(BLOCK);
                    let slot = &mut buf[at..at + BLOCK];
                    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(t) << 32 | 0x5bd1);
                    while Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
                        let block = splitmix64(&mut state) % blocks;
                        match file.read_at(slot, block * BLOCK as u64) {
                            Ok(_) => {
                                reads.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().and_then(|r| r.err()))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    if let Some(e) = errors.into_iter().next() {
        return Err(Error::io(path, e));
    }
    let iops = reads.load(Ordering::Relaxed) as f64 / secs;
    Ok((
        iops,
        format!("built-in: {threads} threads of pread 4 KiB at random offsets, {how}"),
    ))
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> std::io::Result<std::fs::File> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// One step of splitmix64: well-mixed offsets without a dependency.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Average number of `page`-byte pages one row of `array` spans (rows need
/// not be page-aligned): turns a device's random IOPS into a samples/s
/// ceiling.
pub fn pages_per_sample(array: &NpyArray, page: u64) -> f64 {
    pages_per_row(
        array.data_offset(),
        array.row_bytes() as u64,
        array.len() as u64,
        page,
    )
}

fn pages_per_row(data_offset: u64, row_bytes: u64, rows: u64, page: u64) -> f64 {
    if row_bytes == 0 || rows == 0 || page == 0 {
        return 0.0;
    }
    // The pattern of page offsets repeats every page/gcd(row_bytes, page) rows.
    let period = (page / gcd(row_bytes, page)).min(rows);
    let total: u64 = (0..period)
        .map(|i| {
            let start = data_offset + i * row_bytes;
            (start + row_bytes - 1) / page - start / page + 1
        })
        .sum();
    total as f64 / period as f64
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_per_row_counts_straddles() {
        // 3072-byte rows after a 128-byte header: rows at 128, 3200, 6272, 9344
        // span 1, 2, 2, 2 pages, averaging 1.75 over the period of 4.
        assert_eq!(pages_per_row(128, 3072, 1000, 4096), 1.75);
        // Page-sized rows at an aligned offset span exactly one page.
        assert_eq!(pages_per_row(4096, 4096, 10, 4096), 1.0);
        // Misaligned, they span two.
        assert_eq!(pages_per_row(128, 4096, 10, 4096), 2.0);
        assert_eq!(pages_per_row(128, 0, 10, 4096), 0.0);
    }

    #[test]
    fn the_builtin_reader_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![7u8; 64 << 10]).unwrap();
        let (iops, how) = builtin_randread(&path, 4, 0.05).unwrap();
        assert!(iops > 0.0, "{iops}");
        assert!(
            how.starts_with("built-in: 4 threads of pread 4 KiB"),
            "{how}"
        );
        let seq = cold_sequential_read(&path).unwrap();
        assert!(seq > 0.0);
    }

    #[test]
    fn references_convert_to_samples_per_second() {
        let r = References {
            sequential_bytes_per_s: Some(3072e3),
            random_iops: Some(1750.0),
            random_method: "fio".into(),
            random_note: None,
            pages_per_sample: 1.75,
        };
        assert_eq!(r.sequential_samples_per_s(3072), Some(1000.0));
        assert_eq!(r.random_samples_per_s(), Some(1000.0));
        assert!(
            r.describe(3072).contains("1750 IOPS = 1000 img/s"),
            "{}",
            r.describe(3072)
        );
        assert_eq!(References::default().random_samples_per_s(), None);
    }
}
