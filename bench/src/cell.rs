//! Measuring one cell in this process, whatever memory limit it runs under.

use std::path::Path;
use std::time::Instant;

use npyflow::cache::{advise_for_order, evict_array, warm_file, AccessPattern, TelemetryRecorder};
use npyflow::{
    EpochTelemetry, GeneratorOptions, ImageDataGenerator, NpyArray, NumpyArrayIterator, Order,
};

use crate::config::{AdviceMode, BenchConfig, BenchOrder, CacheState, Cell};
use crate::error::Result;
use crate::row::{BenchRow, RowStatus};

/// Runs one cell in this process; `limit` is the memory cap this process
/// runs under, if any (it sizes the block order's window).
///
/// # Errors
/// The file cannot be opened, evicted, warmed or read.
pub fn run_cell(
    path: &Path,
    cell: Cell,
    config: &BenchConfig,
    limit: Option<u64>,
) -> Result<BenchRow> {
    // Open first, then evict: parsing the header faults in the file's first
    // page, and with MADV_NORMAL still in force that fault reads
    // read_ahead_kb around it (8 MiB on some disks) — a "cold" file would
    // start partly warm.
    let x = NpyArray::open(path)?;
    evict_array(&x)?;
    if cell.cache == CacheState::Warm {
        warm_file(path)?;
    }
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
    Ok(BenchRow {
        cell,
        limit,
        status: RowStatus::Measured,
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
        reference: None,
        of_reference: None,
        skipped: None,
    })
}

/// Samples rescaled to `[0, 1]` as f32: the shuffle + rescale workload, so
/// the bytes are converted and written but no augmentation hides the I/O.
const RESCALE: f32 = 1.0 / 255.0;

/// [`AdviceMode::Kernel`]: what `np.load(mmap_mode='r')[batch_indices]`
/// does — `MADV_NORMAL`, rows faulted one at a time in plan order by one
/// thread, no hints.
fn plain_gather(x: &NpyArray, order: Order, config: &BenchConfig) -> Result<EpochTelemetry> {
    advise_for_order(x, AccessPattern::Normal)?;
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
