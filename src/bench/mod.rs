//! The page-cache benchmark as a library, so `benches/page_cache.rs` and the
//! tool's `bench` subcommand run the same matrix: access order × cache state
//! (cold / warm) × advice (the kernel's default / matched to the order) ×
//! memory (unlimited / a memory cgroup), plus the device limits the results
//! are judged against (fio random reads, a cold sequential read).
//!
//! Memory-limited cells re-execute the running program inside a fresh
//! memory cgroup (root only), because a cgroup limit applies to a whole
//! process: a binary that calls [`run_matrix`] must call [`child_main`]
//! first thing in `main`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cache::telemetry::{EpochTelemetry, TelemetryRecorder};
use crate::cache::{evict_array, evict_file, warm_file};
use crate::{
    Error, GeneratorOptions, ImageDataGenerator, NpyArray, NumpyArrayIterator, Order, Result,
};

mod cgroup;
#[cfg(feature = "plot")]
mod chart;

pub use cgroup::MemoryCgroup;
#[cfg(feature = "plot")]
pub use chart::draw_chart;

/// The access orders compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchOrder {
    /// File order.
    Sequential,
    /// A uniform permutation (Keras' `shuffle=True`).
    Shuffle,
    /// The page-aware block shuffle, sized by [`BenchConfig::block_bytes`].
    Blocks,
}

/// Page-cache state before a timed epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheState {
    /// Evicted (`posix_fadvise DONTNEED`) before the epoch.
    Cold,
    /// Evicted, then read through once by the measuring process (under a
    /// memory limit only the part that fits stays, as in a second epoch).
    Warm,
}

/// How the rows are read: the kernel left to itself, or npyflow's I/O strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdviceMode {
    /// `MADV_NORMAL` (read-around on every fault) and a plain gather: rows
    /// faulted one by one in plan order on one thread, no hints — what
    /// `np.load(mmap_mode='r')[indices]` does.
    Kernel,
    /// The iterator: advice matched to the order, `WILLNEED` for each
    /// batch's rows in file order, parallel assembly and the prefetch
    /// pipeline ([`BenchConfig::threads`], [`BenchConfig::prefetch_batches`]).
    Matched,
}

/// Memory available to the measuring process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMode {
    /// No limit beyond the machine's.
    Unlimited,
    /// A memory cgroup of [`BenchConfig::cgroup_limit`] bytes.
    Cgroup,
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// Access order.
    pub order: BenchOrder,
    /// Cache state before the epoch.
    pub cache: CacheState,
    /// Kernel hints.
    pub advice: AdviceMode,
    /// Memory limit.
    pub memory: MemoryMode,
}

/// What to measure and how.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Orders to run. By default, all three.
    pub orders: Vec<BenchOrder>,
    /// Cache states. By default, cold and warm.
    pub caches: Vec<CacheState>,
    /// Advice modes. By default, both.
    pub advice: Vec<AdviceMode>,
    /// Memory cgroup limit in bytes for the limited half of the matrix;
    /// `None` runs unlimited cells only. By default a quarter of the file.
    pub cgroup_limit: Option<u64>,
    /// Samples per batch. By default, 64.
    pub batch_size: usize,
    /// Assembly threads (0 = all cores). By default, 0.
    pub threads: usize,
    /// Batches the iterator prepares ahead with [`AdviceMode::Matched`]. By default, 2.
    pub prefetch_batches: usize,
    /// Bytes of the block order's active window. By default 32 MiB, at most
    /// a quarter of the cgroup limit.
    pub block_bytes: u64,
    /// Blocks in the block order's active window. By default, 8.
    pub window: usize,
    /// Cap on one cell's epoch; slower cells report the part done. By default, 10 s.
    pub time_limit: Duration,
    /// Seed of the orders. By default, 1.
    pub seed: u64,
}

impl BenchConfig {
    /// The defaults for a file of `file_bytes` bytes.
    pub fn for_file(file_bytes: u64) -> BenchConfig {
        BenchConfig {
            orders: vec![
                BenchOrder::Sequential,
                BenchOrder::Shuffle,
                BenchOrder::Blocks,
            ],
            caches: vec![CacheState::Cold, CacheState::Warm],
            advice: vec![AdviceMode::Kernel, AdviceMode::Matched],
            cgroup_limit: Some(file_bytes / 4),
            batch_size: 64,
            threads: 0,
            prefetch_batches: 2,
            block_bytes: 32 << 20,
            window: 8,
            time_limit: Duration::from_secs(10),
            seed: 1,
        }
    }

    /// Every cell of the configured matrix, unlimited cells first.
    pub fn cells(&self) -> Vec<Cell> {
        let memories: &[MemoryMode] = if self.cgroup_limit.is_some() {
            &[MemoryMode::Unlimited, MemoryMode::Cgroup]
        } else {
            &[MemoryMode::Unlimited]
        };
        let mut cells = Vec::new();
        for &memory in memories {
            for &order in &self.orders {
                for &cache in &self.caches {
                    for &advice in &self.advice {
                        cells.push(Cell {
                            order,
                            cache,
                            advice,
                            memory,
                        });
                    }
                }
            }
        }
        cells
    }
}

/// One measured (or skipped) cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// The cell.
    pub cell: Cell,
    /// The memory limit in bytes, for cgroup cells.
    pub limit: Option<u64>,
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
    /// Why the cell was not measured, when it was not.
    pub skipped: Option<String>,
}

impl BenchRow {
    fn skipped(cell: Cell, limit: Option<u64>, reason: String) -> BenchRow {
        BenchRow {
            cell,
            limit,
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
            skipped: Some(reason),
        }
    }

    /// A short label such as `shuffle/cold/matched/cgroup`.
    pub fn label(&self) -> String {
        let c = &self.cell;
        format!(
            "{}/{}/{}/{}",
            name(c.order),
            name(c.cache),
            name(c.advice),
            name(c.memory)
        )
    }
}

/// The serde name of a unit enum value (`"shuffle"`, `"cold"`...).
fn name<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The environment variable that turns a re-executed program into the
/// measuring child of a cgroup run.
const CHILD_ENV: &str = "NPYFLOW_BENCH_CHILD";
/// Prefix of the child's result lines on stdout (anything else is ignored).
const ROW_PREFIX: &str = "npyflow-bench-row ";

#[derive(Serialize, Deserialize)]
struct ChildJob {
    path: PathBuf,
    config: BenchConfig,
    cells: Vec<Cell>,
}

/// Runs the matrix on the `.npy` file at `path`, calling `on_row` as each
/// row is ready (for progress output). Cgroup cells that cannot run (not
/// root, no memory controller) come back as skipped rows with the reason.
///
/// # Errors
/// The file cannot be opened or read; the child process fails.
pub fn run_matrix_with(
    path: &Path,
    config: &BenchConfig,
    mut on_row: impl FnMut(&BenchRow),
) -> Result<Vec<BenchRow>> {
    let path = path.canonicalize().map_err(|e| Error::io(path, e))?;
    let cells = config.cells();
    let mut rows = Vec::with_capacity(cells.len());
    for cell in cells.iter().filter(|c| c.memory == MemoryMode::Unlimited) {
        let row = run_cell(&path, *cell, config)?;
        on_row(&row);
        rows.push(row);
    }
    let limited: Vec<Cell> = cells
        .into_iter()
        .filter(|c| c.memory == MemoryMode::Cgroup)
        .collect();
    if let (Some(limit), false) = (config.cgroup_limit, limited.is_empty()) {
        match MemoryCgroup::create(limit) {
            Ok(cg) => {
                let job = ChildJob {
                    path: path.clone(),
                    config: config.clone(),
                    cells: limited,
                };
                rows.extend(run_child(&cg, &job, &mut on_row)?);
            }
            Err(reason) => {
                for cell in limited {
                    let row = BenchRow::skipped(cell, Some(limit), reason.clone());
                    on_row(&row);
                    rows.push(row);
                }
            }
        }
    }
    Ok(rows)
}

/// [`run_matrix_with`] without progress output.
///
/// # Errors
/// As [`run_matrix_with`].
pub fn run_matrix(path: &Path, config: &BenchConfig) -> Result<Vec<BenchRow>> {
    run_matrix_with(path, config, |_| {})
}

/// Spawns this program again, moves it into `cg`, lets it run `job` and
/// collects its rows from stdout.
fn run_child(
    cg: &MemoryCgroup,
    job: &ChildJob,
    on_row: &mut impl FnMut(&BenchRow),
) -> Result<Vec<BenchRow>> {
    let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
    let job_json = serde_json::to_string(job)
        .map_err(|e| Error::invalid("bench job", "json", e.to_string()))?;
    let mut child = Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, job_json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(&exe, e))?;
    // The child waits for a line on stdin, so nothing it reads is charged
    // outside the cgroup; a failed move must not leave it waiting.
    let moved = cg.add(child.id());
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(if moved.is_ok() { b"go\n" } else { b"stop\n" });
    }
    let mut rows = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if let Some(json) = line.strip_prefix(ROW_PREFIX) {
                if let Ok(row) = serde_json::from_str::<BenchRow>(json) {
                    on_row(&row);
                    rows.push(row);
                }
            }
        }
    }
    let status = child.wait().map_err(|e| Error::io(&exe, e))?;
    if let Err(e) = moved {
        return Err(Error::io(cg.path(), e));
    }
    // A child killed by the OOM killer or failing mid-way reports what it
    // finished; the missing cells say why.
    for cell in &job.cells {
        if !rows.iter().any(|r| r.cell == *cell) {
            let why =
                format!("the child measuring in the cgroup exited with {status} before this cell");
            let row = BenchRow::skipped(*cell, Some(cg.limit()), why);
            on_row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// When this process is the measuring child of a cgroup run, runs the cells
/// it was given, prints their rows, and returns the exit code; otherwise
/// returns `None` at once. Call it first thing in `main` of any program that
/// calls [`run_matrix`].
pub fn child_main() -> Option<i32> {
    let job = std::env::var(CHILD_ENV).ok()?;
    let mut go = String::new();
    let _ = std::io::stdin().read_line(&mut go);
    if go.trim() != "go" {
        return Some(1);
    }
    let job: ChildJob = match serde_json::from_str(&job) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("npyflow bench child: bad job: {e}");
            return Some(2);
        }
    };
    let stdout = std::io::stdout();
    for cell in job.cells {
        match run_cell(&job.path, cell, &job.config) {
            Ok(row) => {
                let json = serde_json::to_string(&row).unwrap_or_default();
                let mut out = stdout.lock();
                let _ = writeln!(out, "{ROW_PREFIX}{json}");
                let _ = out.flush();
            }
            Err(e) => {
                eprintln!("npyflow bench child: {e}");
                return Some(2);
            }
        }
    }
    Some(0)
}

/// Runs one cell in this process (whatever memory limit it is under).
///
/// # Errors
/// The file cannot be opened, evicted, warmed or read.
pub fn run_cell(path: &Path, cell: Cell, config: &BenchConfig) -> Result<BenchRow> {
    // Open first, then evict: parsing the header faults in the file's first
    // page, and with MADV_NORMAL still in force that fault reads
    // read_ahead_kb around it (8 MiB on some disks) — a "cold" file would
    // start partly warm.
    let x = NpyArray::open(path)?;
    evict_array(&x)?;
    if cell.cache == CacheState::Warm {
        warm_file(path)?;
    }
    let limit = if cell.memory == MemoryMode::Cgroup {
        config.cgroup_limit
    } else {
        None
    };
    let order = match cell.order {
        BenchOrder::Sequential => Order::Sequential,
        BenchOrder::Shuffle => Order::Shuffle,
        BenchOrder::Blocks => {
            let budget = limit.map_or(config.block_bytes, |l| config.block_bytes.min(l / 4));
            Order::blocks_for_budget(budget, x.row_bytes(), config.window)
        }
    };
    let t = match cell.advice {
        AdviceMode::Kernel => plain_gather(&x, order, config)?,
        AdviceMode::Matched => iterate(&x, order, config)?,
    };
    let secs = t.wall.as_secs_f64().max(1e-9);
    let row = BenchRow {
        cell,
        limit,
        samples: t.samples,
        epoch_fraction: t.samples as f64 / x.len().max(1) as f64,
        seconds: secs,
        images_per_s: t.throughput,
        mb_per_s: t.samples as f64 * x.row_bytes() as f64 / secs / 1e6,
        bytes_read: t.bytes_read,
        major_faults: t.major_faults,
        first_batch_ms: t.time_to_first_batch.as_secs_f64() * 1e3,
        peak_anon_bytes: t.peak_anon_bytes,
        residency_after: t.residency_after.first().map_or(f64::NAN, |r| r.1),
        skipped: None,
    };
    Ok(row)
}

/// Samples rescaled to `[0, 1]` as f32: the shuffle + rescale workload, so
/// the bytes are converted and written but no augmentation hides the I/O.
const RESCALE: f32 = 1.0 / 255.0;

/// [`AdviceMode::Kernel`]: what `np.load(mmap_mode='r')[batch_indices]`
/// does — `MADV_NORMAL`, rows faulted one at a time in plan order by one
/// thread, no hints.
fn plain_gather(x: &NpyArray, order: Order, config: &BenchConfig) -> Result<EpochTelemetry> {
    if let Some(m) = x.map() {
        m.advise(memmap2::Advice::Normal)
            .map_err(|e| Error::io(x.path(), e))?;
    }
    let plan = order.plan(x.len(), config.seed, 0);
    let bs = config.batch_size.max(1);
    let mut batch = vec![0f32; bs * x.row_len()];
    let mut recorder = TelemetryRecorder::start(&[x]);
    let deadline = Instant::now() + config.time_limit;
    for rows in plan.chunks(bs) {
        for (slot, &r) in batch.chunks_exact_mut(x.row_len().max(1)).zip(rows) {
            x.read_sample_into(r, slot)?;
            slot.iter_mut().for_each(|v| *v *= RESCALE);
        }
        recorder.batch(rows.len());
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok(recorder.finish(&[x]))
}

/// [`AdviceMode::Matched`]: the iterator with its own I/O strategy
/// (advice for the order at build, `WILLNEED` for each batch's rows in file
/// order, parallel assembly, the prefetch pipeline).
fn iterate(x: &NpyArray, order: Order, config: &BenchConfig) -> Result<EpochTelemetry> {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        rescale: Some(f64::from(RESCALE)),
        ..Default::default()
    })?;
    let mut it = NumpyArrayIterator::builder(x.clone())
        .batch_size(config.batch_size.max(1))
        .order(order)
        .seed(config.seed)
        .threads(config.threads)
        .prefetch(config.prefetch_batches)
        .generator(generator)
        .build()?;
    // Our own recorder rather than the iterator's: a cell cut by the time
    // limit never reaches the end of the epoch the iterator reports on.
    let mut recorder = TelemetryRecorder::start(&[x]);
    let deadline = Instant::now() + config.time_limit;
    while let Some(batch) = it.next_in_epoch()? {
        recorder.batch(batch.len());
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok(recorder.finish(&[x]))
}

/// The rows as an aligned text table, skipped cells with their reason.
pub fn table(rows: &[BenchRow]) -> String {
    let mut s = format!(
        "{:<11} {:<5} {:<7} {:<14} {:>11} {:>9} {:>10} {:>10} {:>9} {:>9} {:>6}\n",
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
        "epoch"
    );
    for r in rows {
        let c = &r.cell;
        let memory = match r.limit {
            Some(l) if c.memory == MemoryMode::Cgroup => format!("cgroup {} MiB", l >> 20),
            _ => name(c.memory),
        };
        let head = format!(
            "{:<11} {:<5} {:<7} {:<14}",
            name(c.order),
            name(c.cache),
            name(c.advice),
            memory
        );
        match &r.skipped {
            Some(why) => s += &format!("{head} skipped: {why}\n"),
            None => {
                s += &format!(
                    "{head} {:>11.0} {:>9.1} {:>10.1} {:>10} {:>9.1} {:>9.1} {:>5.0}%\n",
                    r.images_per_s,
                    r.mb_per_s,
                    r.bytes_read as f64 / 1e6,
                    r.major_faults,
                    r.first_batch_ms,
                    r.peak_anon_bytes as f64 / (1u64 << 20) as f64,
                    r.epoch_fraction * 100.0
                )
            }
        }
    }
    s
}

/// Writes the rows as CSV (one header line; skipped cells have empty figures).
///
/// # Errors
/// The file cannot be written.
pub fn write_csv(rows: &[BenchRow], path: &Path) -> Result<()> {
    let mut s = String::from(
        "order,cache,advice,memory,limit_bytes,samples,epoch_fraction,seconds,images_per_s,mb_per_s,\
         bytes_read,major_faults,first_batch_ms,peak_anon_bytes,residency_after,skipped\n",
    );
    for r in rows {
        let c = &r.cell;
        let limit = r.limit.map(|l| l.to_string()).unwrap_or_default();
        let head = format!(
            "{},{},{},{},{limit}",
            name(c.order),
            name(c.cache),
            name(c.advice),
            name(c.memory)
        );
        match &r.skipped {
            Some(why) => s += &format!("{head},,,,,,,,,,,\"{}\"\n", why.replace('"', "'")),
            None => {
                s += &format!(
                    "{head},{},{:.4},{:.4},{:.1},{:.2},{},{},{:.3},{},{:.4},\n",
                    r.samples,
                    r.epoch_fraction,
                    r.seconds,
                    r.images_per_s,
                    r.mb_per_s,
                    r.bytes_read,
                    r.major_faults,
                    r.first_batch_ms,
                    r.peak_anon_bytes,
                    r.residency_after
                )
            }
        }
    }
    std::fs::write(path, s).map_err(|e| Error::io(path, e))
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

/// Random 4 KiB reads per second the device serves on `path` at
/// `iodepth` (fio `randread`, `O_DIRECT`, libaio), or why it could not be
/// measured (fio missing or failing). The file is opened read-only.
pub fn fio_randread(path: &Path, iodepth: u32, seconds: u32) -> std::result::Result<f64, String> {
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=npyflow-randread",
        "--readonly",
        "--rw=randread",
        "--bs=4k",
        "--direct=1",
    ])
    .arg("--ioengine=libaio")
    .arg(format!("--iodepth={iodepth}"))
    .arg(format!("--runtime={seconds}"))
    .args(["--time_based", "--output-format=json"])
    .arg(format!("--filename={}", path.display()))
    .stdin(Stdio::null());
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("fio is not installed (apt-get install fio)".to_string())
        }
        Err(e) => return Err(format!("fio could not start: {e}")),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "fio failed: {}",
            err.lines().next().unwrap_or("no message")
        ));
    }
    // fio may print warnings before the JSON document.
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.find('{').map(|i| &text[i..]).unwrap_or("");
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v["jobs"][0]["read"]["iops"].as_f64())
        .ok_or_else(|| "fio printed no read IOPS".to_string())
}

/// Average number of pages one row of `array` spans (rows need not be
/// page-aligned): turns a device's random IOPS into a samples/s ceiling.
pub fn pages_per_sample(array: &NpyArray) -> f64 {
    let page = crate::sys::page_size() as u64;
    let rb = array.row_bytes() as u64;
    let n = array.len() as u64;
    if rb == 0 || n == 0 {
        return 0.0;
    }
    // The pattern of page offsets repeats every page/gcd(rb, page) rows.
    let period = (page / gcd(rb, page)).min(n);
    let total: u64 = (0..period)
        .map(|i| {
            let start = array.data_offset() + i * rb;
            (start + rb - 1) / page - start / page + 1
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
