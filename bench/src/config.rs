//! What the matrix measures: its axes, one cell, the settings, and the rule
//! that sizes the default memory cap.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// A memory cgroup (see [`MemoryLimit`]).
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

impl Cell {
    /// A short label such as `shuffle/cold/matched/cgroup`.
    pub fn label(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            name(self.order),
            name(self.cache),
            name(self.advice),
            name(self.memory)
        )
    }
}

/// The serde name of a unit enum value (`"shuffle"`, `"cold"`...).
pub(crate) fn name<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The memory cap of the cgroup half of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryLimit {
    /// No cgroup rows.
    Off,
    /// Sized by [`CapRule`] from the working set measured in the same run.
    /// Where this process cannot create a memory cgroup (not root, no
    /// memory controller), the cgroup rows are reported as skipped.
    Auto,
    /// Exactly this many bytes; a cgroup that cannot be created fails the rows.
    Bytes(u64),
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
    /// The cgroup half of the matrix. By default, [`MemoryLimit::Auto`].
    pub memory_limit: MemoryLimit,
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

impl Default for BenchConfig {
    fn default() -> BenchConfig {
        BenchConfig {
            orders: vec![
                BenchOrder::Sequential,
                BenchOrder::Shuffle,
                BenchOrder::Blocks,
            ],
            caches: vec![CacheState::Cold, CacheState::Warm],
            advice: vec![AdviceMode::Kernel, AdviceMode::Matched],
            memory_limit: MemoryLimit::Auto,
            batch_size: 64,
            threads: 0,
            prefetch_batches: 2,
            block_bytes: 32 << 20,
            window: 8,
            time_limit: Duration::from_secs(10),
            seed: 1,
        }
    }
}

impl BenchConfig {
    /// Every cell of the configured matrix, unlimited cells first.
    pub fn cells(&self) -> Vec<Cell> {
        let memories: &[MemoryMode] = match self.memory_limit {
            MemoryLimit::Off => &[MemoryMode::Unlimited],
            _ => &[MemoryMode::Unlimited, MemoryMode::Cgroup],
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

    /// Rows of the file in flight in the matched iterator: the batches
    /// prepared ahead, the one being assembled and the one the caller holds.
    pub fn rows_in_flight(&self) -> u64 {
        (self.prefetch_batches as u64 + 2) * self.batch_size.max(1) as u64
    }
}

/// How the default memory cap is sized, with the figures of this run.
///
/// The cap must leave the benchmark room to run, or the kernel kills it
/// instead of evicting pages and the rows measure nothing:
///
/// > cap = working set + [`RUNTIME_BYTES`] + the file ÷ [`FILE_SHARE`],
/// > rounded up to a MiB, where the working set is the peak anonymous
/// > memory of the matched rows run without a limit plus the file pages of
/// > the rows in flight ((prefetch + 2) × batch size rows).
///
/// So a quarter of the file fits in the cache beside the benchmark: the
/// rows measure a dataset four times larger than the memory left for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapRule {
    /// The cap in bytes.
    pub limit: u64,
    /// Whether the user set the cap (the other figures are then zero).
    pub explicit: bool,
    /// Peak anonymous memory of the matched rows without a limit.
    pub peak_anon_bytes: u64,
    /// File pages of the rows in flight.
    pub in_flight_bytes: u64,
    /// Room for the re-executed program itself.
    pub runtime_bytes: u64,
    /// The share of the file that fits in the cache.
    pub file_share_bytes: u64,
}

/// Room for what the measuring child is charged besides its heap and the
/// file: its code and stacks, page tables, the kernel's bookkeeping of the
/// mapped file.
pub const RUNTIME_BYTES: u64 = 16 << 20;

/// The divisor of the file's size in the default cap: a quarter of the file
/// is cached beside the working set.
pub const FILE_SHARE: u64 = 4;

/// The rule in one sentence, for `--help` and the report.
pub const CAP_RULE: &str = "peak anonymous memory of the unlimited matched rows + the file \
     pages of the batches in flight + 16 MiB for the program + a quarter of the file, rounded \
     up to a MiB";

impl CapRule {
    /// The default cap for a file of `file_bytes` whose rows take
    /// `row_bytes`, given the measured `peak_anon_bytes`.
    pub fn auto(
        config: &BenchConfig,
        file_bytes: u64,
        row_bytes: u64,
        page_bytes: u64,
        peak_anon_bytes: u64,
    ) -> CapRule {
        let page = page_bytes.max(1);
        // A row that is not page-aligned touches one page more.
        let row_pages = row_bytes.div_ceil(page) + 1;
        let in_flight_bytes = (config.rows_in_flight() * row_pages * page).min(file_bytes);
        let file_share_bytes = file_bytes / FILE_SHARE;
        let sum = peak_anon_bytes + in_flight_bytes + RUNTIME_BYTES + file_share_bytes;
        CapRule {
            limit: sum.div_ceil(1 << 20) << 20,
            explicit: false,
            peak_anon_bytes,
            in_flight_bytes,
            runtime_bytes: RUNTIME_BYTES,
            file_share_bytes,
        }
    }

    /// A cap the user set.
    pub fn explicit(limit: u64) -> CapRule {
        CapRule {
            limit,
            explicit: true,
            peak_anon_bytes: 0,
            in_flight_bytes: 0,
            runtime_bytes: 0,
            file_share_bytes: 0,
        }
    }

    /// The cap and how it was sized, for people.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        if self.explicit {
            return format!("memory cap: {:.0} MiB (set by the user)", mib(self.limit));
        }
        format!(
            "memory cap: {:.0} MiB = peak anon {:.1} MiB + in flight {:.1} MiB + program {:.0} MiB \
             + 1/{FILE_SHARE} of the file {:.1} MiB, rounded up",
            mib(self.limit),
            mib(self.peak_anon_bytes),
            mib(self.in_flight_bytes),
            mib(self.runtime_bytes),
            mib(self.file_share_bytes)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_matrix_has_24_cells_unlimited_first() {
        let c = BenchConfig::default();
        let cells = c.cells();
        assert_eq!(cells.len(), 24);
        assert!(cells[..12]
            .iter()
            .all(|c| c.memory == MemoryMode::Unlimited));
        assert!(cells[12..].iter().all(|c| c.memory == MemoryMode::Cgroup));
        assert_eq!(cells[0].label(), "sequential/cold/kernel/unlimited");
        assert_eq!(cells[23].label(), "blocks/warm/matched/cgroup");
        let off = BenchConfig {
            memory_limit: MemoryLimit::Off,
            ..BenchConfig::default()
        };
        assert_eq!(off.cells().len(), 12);
    }

    #[test]
    fn the_default_cap_is_never_below_the_working_set() {
        let c = BenchConfig::default();
        // The 1.8 MB file that got "cgroup 0 MiB": 600 rows of 3 KiB.
        let file = 1_843_328;
        let r = CapRule::auto(&c, file, 3072, 4096, 3 << 20);
        // 4 batches of 64 rows, 2 pages each, but never more than the file.
        assert_eq!(r.in_flight_bytes, file.min(4 * 64 * 2 * 4096));
        assert_eq!(r.file_share_bytes, file / 4);
        let sum = (3 << 20) + r.in_flight_bytes + RUNTIME_BYTES + file / 4;
        assert!(r.limit >= sum && r.limit < sum + (1 << 20), "{r:?}");
        assert_eq!(r.limit % (1 << 20), 0);
        assert_eq!(r.limit, 22 << 20);
        // A 224x224x3 f32 batch of 64 is 37 MiB: the anonymous peak dominates.
        let big = CapRule::auto(&c, 4 << 30, 150_528, 4096, 145 << 20);
        assert!(big.limit >= (145 << 20) + (1 << 30) + RUNTIME_BYTES);
        assert!(
            big.describe().contains("peak anon 145.0 MiB"),
            "{}",
            big.describe()
        );
        assert_eq!(
            CapRule::explicit(64 << 20).describe(),
            "memory cap: 64 MiB (set by the user)"
        );
    }
}
