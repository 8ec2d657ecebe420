//! The page cache, seen and steered for our files: residency (what vmtouch
//! and fincore show, via `mincore`), eviction and warming, access advice
//! matched to the iteration order, row prefetch, and a page budget that drops
//! pages behind the reader.
//!
//! Everything here is advice to the kernel or a measurement: no function
//! changes what a read returns, so a failing hint never corrupts a batch.
//!
//! The [`TelemetryRecorder`] measures what an epoch cost
//! ([`EpochTelemetry`]); iterators record their own, and a program that
//! reads files its own way (a benchmark's baseline) can use one too.
//!
//! A caveat shared with vmtouch: since Linux 5.2, `mincore` reports the page
//! cache of a file only to processes that own the file or could open it for
//! writing (or are privileged); for other files it reports only the pages
//! mapped by this process, so residency reads low.

pub(crate) mod direct;
pub(crate) mod readahead;
pub(crate) mod stash;
pub(crate) mod telemetry;

#[cfg(test)]
use telemetry::file_rss_bytes;
pub use telemetry::{EpochTelemetry, ProcessIo, TelemetryRecorder};

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::sys::{self, FileAdvice};
use crate::{Error, NpyArray, Result};

/// Which pages of a file range are in the page cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Residency {
    /// Pages in the range.
    pub pages: usize,
    /// Pages of the range that are resident.
    pub resident: usize,
    /// The page size the map is counted in.
    pub page_size: usize,
    /// One entry per page, `true` when resident.
    pub map: Vec<bool>,
}

impl Residency {
    fn from_map(map: Vec<bool>) -> Residency {
        let resident = map.iter().filter(|&&r| r).count();
        Residency {
            pages: map.len(),
            resident,
            page_size: sys::page_size(),
            map,
        }
    }

    /// Resident share of the range, `0.0..=1.0` (0 for an empty range).
    pub fn fraction(&self) -> f64 {
        if self.pages == 0 {
            0.0
        } else {
            self.resident as f64 / self.pages as f64
        }
    }

    /// Resident bytes (resident pages × page size).
    pub fn resident_bytes(&self) -> u64 {
        self.resident as u64 * self.page_size as u64
    }

    /// The resident fraction of each of `buckets` equal slices of the range,
    /// front to back: which parts of the file are cached. Fewer entries
    /// when the range has fewer pages than `buckets`; none when `buckets` is 0.
    pub fn summary(&self, buckets: usize) -> Vec<f64> {
        let buckets = buckets.min(self.pages);
        (0..buckets)
            .map(|b| {
                let lo = b * self.pages / buckets;
                let hi = (b + 1) * self.pages / buckets;
                let slice = &self.map[lo..hi];
                slice.iter().filter(|&&r| r).count() as f64 / slice.len().max(1) as f64
            })
            .collect()
    }

    /// A one-line chart of [`Residency::summary`] in vmtouch's style:
    /// `O` fully resident, `o` partly, a space for none, e.g. `[OOOo    ]`.
    pub fn chart(&self, buckets: usize) -> String {
        let cells: String = self
            .summary(buckets)
            .into_iter()
            .map(|f| {
                if f >= 1.0 {
                    'O'
                } else if f > 0.0 {
                    'o'
                } else {
                    ' '
                }
            })
            .collect();
        format!("[{cells}]")
    }
}

/// Residency of an array's data region (header excluded).
///
/// Arrays read with `pread` have no map of their own; their file is mapped
/// briefly for the measurement (mapping reads nothing).
///
/// # Errors
/// I/O errors from mapping or `mincore`.
pub fn residency_of(array: &NpyArray) -> Result<Residency> {
    let offset = array.data_offset() as usize;
    let len = array.data_len();
    let map = match array.map() {
        Some(m) => sys::residency(m, offset, len),
        None => {
            if len == 0 {
                return Ok(Residency::from_map(Vec::new()));
            }
            sys::map_readonly(array.file()).and_then(|m| sys::residency(&m, offset, len))
        }
    };
    map.map(Residency::from_map)
        .map_err(|e| Error::io(array.path(), e))
}

/// The resident fraction of an array's data region (header excluded), as
/// [`Residency::fraction`] (0 for an empty array).
///
/// Cheaper than [`residency_of`] when only the number matters: the kernel
/// counts with `cachestat` (about 6 ms for a 4 GiB file against 50–75 ms for
/// a `mincore` scan) and `mincore` is the fallback on kernels before 6.5.
///
/// # Errors
/// I/O errors from the kernel calls.
pub fn resident_fraction(array: &NpyArray) -> Result<f64> {
    let len = array.data_len() as u64;
    if len == 0 {
        return Ok(0.0);
    }
    match sys::cachestat(array.file(), array.data_offset(), len) {
        Ok(Some((cached, pages))) => Ok(cached as f64 / pages.max(1) as f64),
        Ok(None) => residency_of(array).map(|r| r.fraction()),
        Err(e) => Err(Error::io(array.path(), e)),
    }
}

/// Residency of a whole file (`vmtouch FILE`). An empty file has 0 pages.
///
/// # Errors
/// The file cannot be opened or mapped.
pub fn file_residency(path: impl AsRef<Path>) -> Result<Residency> {
    let path = path.as_ref();
    let (file, len) = crate::npy::open_data_file(path)?;
    let len = len as usize;
    if len == 0 {
        return Ok(Residency::from_map(Vec::new()));
    }
    // Only mincore looks at the map, never a load, so a concurrent
    // truncation cannot fault us here.
    let map = sys::map_readonly(&file).map_err(|e| Error::io(path, e))?;
    sys::residency(&map, 0, len)
        .map(Residency::from_map)
        .map_err(|e| Error::io(path, e))
}

/// Drops a file's clean pages from the page cache (`vmtouch -e`).
///
/// Dirty pages are written back first (`fdatasync`), because the kernel never
/// evicts dirty pages: without it a freshly written file would stay cached.
/// Pages that some process (including this one) has mapped and touched stay
/// resident; use [`evict_array`] for arrays this process maps.
///
/// # Errors
/// The file cannot be opened, synced or advised.
pub fn evict_file(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let (file, _) = crate::npy::open_data_file(path)?;
    evict_open(&file).map_err(|e| Error::io(path, e))
}

fn evict_open(file: &File) -> std::io::Result<()> {
    file.sync_data()?;
    sys::fadvise(file, 0, 0, FileAdvice::DontNeed)
}

/// Evicts the file behind `array`, first unmapping this map's pages so the
/// kernel may drop them (other maps of the file keep theirs).
///
/// # Errors
/// As [`evict_file`].
pub fn evict_array(array: &NpyArray) -> Result<()> {
    if let Some(m) = array.map() {
        sys::drop_mapped(m, 0, m.len()).map_err(|e| Error::io(array.path(), e))?;
    }
    evict_open(array.file()).map_err(|e| Error::io(array.path(), e))
}

/// The file bytes `start..end` of rows `rows` of `array`, clamped to the
/// array; `None` when no row is left (or rows are empty).
fn row_span(array: &NpyArray, rows: std::ops::Range<usize>) -> Option<(u64, u64)> {
    let end = rows.end.min(array.len());
    let rb = array.row_bytes() as u64;
    (rows.start < end && rb > 0).then(|| {
        let base = array.data_offset();
        (base + rows.start as u64 * rb, base + end as u64 * rb)
    })
}

/// The memory the page cache could use for this process
/// ([`sys::cache_room`]: available memory, the memory cgroup's limit), when
/// `array`'s data is larger: a pass in file order then evicts every page
/// before the next epoch comes back to it. `None` when the data fits or
/// the room cannot be read. Readers past the cache size their own buffers
/// from the room too, since they take from the same memory.
pub(crate) fn outgrown_room(array: &NpyArray) -> Option<u64> {
    sys::cache_room().filter(|&room| array.data_len() as u64 > room)
}

/// Drops this process's mappings of rows `rows` of `array` (not the pages:
/// they stay in the page cache, and the next read maps them again with a
/// minor fault; pages shared with neighbouring rows go too). Bounds what a
/// pass over a large file keeps mapped: mapped file pages count in the
/// process's resident set, and the kernel must unmap each one (a
/// reverse-map walk and a TLB shootdown) before it can reclaim it under
/// memory pressure, where unmapped cache pages go cheaply.
///
/// # Errors
/// The kernel rejects the advice (never for a valid open array on Linux).
pub(crate) fn unmap_rows(array: &NpyArray, rows: std::ops::Range<usize>) -> Result<()> {
    match (array.map(), row_span(array, rows)) {
        (Some(m), Some((start, end))) => {
            sys::drop_mapped(m, start as usize, (end - start) as usize)
                .map_err(|e| Error::io(array.path(), e))
        }
        _ => Ok(()),
    }
}

/// Drops rows `rows` of `array` from the page cache (and this process's
/// mappings of them): what a [`PageBudget`] does to the regions it lets
/// go, for rows read after the budget let them go.
///
/// # Errors
/// The kernel rejects the advice.
pub(crate) fn drop_rows(array: &NpyArray, rows: std::ops::Range<usize>) -> Result<()> {
    match row_span(array, rows) {
        Some((start, end)) => {
            drop_range(array, start, end - start).map_err(|e| Error::io(array.path(), e))
        }
        None => Ok(()),
    }
}

/// Reads a file through so it is resident (`vmtouch -t`), as far as memory
/// allows. Plain large reads rather than `WILLNEED`, because `WILLNEED` is
/// asynchronous and silently partial under memory pressure: when this
/// returns, the reads have completed.
///
/// # Errors
/// The file cannot be opened or read.
pub fn warm_file(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let (mut file, _) = crate::npy::open_data_file(path)?;
    let _ = sys::fadvise(&file, 0, 0, FileAdvice::Sequential);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
}

/// How an iteration will walk an array's rows; picks the kernel hints.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AccessPattern {
    /// Front to back: large read-ahead.
    #[default]
    Sequential,
    /// Uniformly random rows: no read-ahead and no read-around, which would
    /// otherwise pull ~128 KiB per faulting row and thrash a cache smaller
    /// than the file (numpy #13172).
    Random,
    /// Contiguous blocks visited in random order (the page-aware block
    /// shuffle): no read-ahead on faults; the iterator prefetches whole
    /// blocks a window ahead instead.
    Blocks,
    /// The kernel's defaults (`MADV_NORMAL`: read-around on every fault):
    /// what `np.load(mmap_mode='r')` gets, the baseline the benchmark
    /// compares the iterator's own hints against.
    Normal,
}

/// Advises the kernel for `pattern`: `madvise` on the array's map (faults)
/// and `posix_fadvise` on its file (`pread` and the read-ahead state shared
/// with the map).
///
/// The map is shared by clones of the array, so the advice applies to all
/// of them; the last call wins.
///
/// # Errors
/// The kernel rejects the advice (never for a valid open array on Linux).
pub fn advise_for_order(array: &NpyArray, pattern: AccessPattern) -> Result<()> {
    // Sequential: forward-only read-ahead (MADV_NORMAL's read-around also
    // reads *behind* a fault, re-reading pages a budget has just dropped).
    // Blocks: no read-ahead at all on faults — the iterator asks for whole
    // blocks a window ahead itself, and fault read-ahead (`read_ahead_kb`,
    // 8 MiB on some disks) on top of that thrashes a small memory cap.
    let advice = match pattern {
        AccessPattern::Sequential => FileAdvice::Sequential,
        AccessPattern::Random | AccessPattern::Blocks => FileAdvice::Random,
        AccessPattern::Normal => FileAdvice::Normal,
    };
    let io = |e| Error::io(array.path(), e);
    if let Some(m) = array.map() {
        m.advise(advice).map_err(io)?;
    }
    sys::fadvise(array.file(), 0, 0, advice).map_err(io)
}

/// Below this resident share of a file, every row of a batch is hinted;
/// at or above it (and below 1), only the rows a residency snapshot shows
/// missing ([`ColdRows`]). A snapshot goes stale as pages are evicted during
/// the epoch, and a stale "resident" row is then a synchronous fault; at
/// 99% resident, each page read in evicts about one other, so such faults
/// stay around the missing 1%. Far below it (a file larger than memory),
/// most rows the snapshot calls resident would be gone by the time they are
/// read, and hinting them all is what keeps the device busy.
pub(crate) const NEARLY_CACHED: f64 = 0.99;

/// The rows of an array that were not wholly in the page cache when the
/// snapshot was taken. A nearly cached file (see [`NEARLY_CACHED`]) hints
/// only these: a `WILLNEED` is a syscall per row, which for small images
/// costs about as much as assembling the row, so hinting every row would
/// halve the speed of a warm dataset for the sake of a few evicted pages.
#[derive(Debug)]
pub(crate) struct ColdRows {
    /// One entry per page of the data region, from the page holding its first byte.
    resident: Vec<bool>,
    page: u64,
    /// File offset of the first page of `resident`.
    base: u64,
    data_offset: u64,
    row_bytes: u64,
}

impl ColdRows {
    /// Snapshots the residency of `array`'s data (a `mincore` scan).
    ///
    /// # Errors
    /// I/O errors from mapping or `mincore`.
    pub fn snapshot(array: &NpyArray) -> Result<ColdRows> {
        let page = sys::page_size() as u64;
        Ok(ColdRows {
            resident: residency_of(array)?.map,
            page,
            base: array.data_offset() / page * page,
            data_offset: array.data_offset(),
            row_bytes: array.row_bytes() as u64,
        })
    }

    /// Whether some page of `row` was not resident. Rows outside the
    /// snapshot count as cold (hinting them is the safe side).
    pub fn is_cold(&self, row: usize) -> bool {
        let start = self.data_offset + row as u64 * self.row_bytes;
        let end = start + self.row_bytes.max(1);
        let first = ((start - self.base) / self.page) as usize;
        let last = ((end - 1 - self.base) / self.page) as usize;
        match self.resident.get(first..=last) {
            Some(pages) => !pages.iter().all(|&r| r),
            None => true,
        }
    }
}

/// Starts reading `rows` of `array` into the page cache without waiting
/// (`POSIX_FADV_WILLNEED`). Rows are sorted and adjacent rows coalesced into
/// one request, so a batch becomes a few large reads or many small ones in
/// flight at once — the device's queue depth, not one faulting thread,
/// sets the pace. Out-of-range rows are ignored.
///
/// # Errors
/// The kernel rejects the advice.
pub fn prefetch_rows(array: &NpyArray, rows: &[usize]) -> Result<()> {
    if array.row_bytes() == 0 || rows.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<usize> = rows.iter().copied().filter(|&r| r < array.len()).collect();
    sorted.sort_unstable();
    let mut run: Option<(usize, usize)> = None;
    for r in sorted {
        run = match run {
            Some((lo, hi)) if r <= hi + 1 => Some((lo, hi.max(r))),
            Some((lo, hi)) => {
                prefetch_row_range(array, lo..hi + 1)?;
                Some((r, r))
            }
            None => Some((r, r)),
        };
    }
    match run {
        Some((lo, hi)) => prefetch_row_range(array, lo..hi + 1),
        None => Ok(()),
    }
}

/// Starts reading the contiguous rows `rows` of `array` (one request, e.g.
/// a whole block of the block order as it is about to enter the window).
/// The range is clamped to the array.
///
/// # Errors
/// The kernel rejects the advice.
pub fn prefetch_row_range(array: &NpyArray, rows: std::ops::Range<usize>) -> Result<()> {
    match row_span(array, rows) {
        Some((start, end)) => {
            willneed(array, start, end - start).map_err(|e| Error::io(array.path(), e))
        }
        None => Ok(()),
    }
}

/// Asks for `len` bytes at `offset` in pieces the kernel reads whole
/// ([`sys::hint_limit`]: it silently drops what a hint asks beyond the
/// device's read-ahead or request size).
fn willneed(array: &NpyArray, offset: u64, len: u64) -> std::io::Result<()> {
    let piece = sys::hint_limit(array.file());
    let end = offset.saturating_add(len);
    let mut at = offset;
    while at < end {
        let n = piece.min(end - at);
        sys::fadvise(array.file(), at, n, FileAdvice::WillNeed)?;
        at += n;
    }
    Ok(())
}

/// Reads the contiguous rows `rows` of `array` and maps them into the
/// process (clamped to the array), waiting for them: asked for first with
/// device-sized `WILLNEED` hints, so the device works on the whole range at
/// once, then populated piece by piece ([`sys::Map::populate`]). For the
/// block order's windows, whose rows are then read in shuffled order: each
/// row read through an unpopulated map was a page fault of its own (3.5–4 s
/// of system time per 4 GiB on the virtio disk). Without a map, or where
/// the kernel cannot populate, the hints alone.
///
/// # Errors
/// The kernel rejects the hints.
pub(crate) fn map_row_range(array: &NpyArray, rows: std::ops::Range<usize>) -> Result<()> {
    prefetch_row_range(array, rows.clone())?;
    let (Some(map), Some((start, end))) = (array.map(), row_span(array, rows)) else {
        return Ok(());
    };
    let (mut at, stop) = (start as usize, end as usize);
    while at < stop {
        let n = (stop - at).min(LOAD_PIECE);
        if let Err(e) = map.populate(at, n) {
            // Unsupported here, or the file shrank: the rows will fault
            // (and the reader reports a shrunken file).
            log::debug!("populating {} refused: {e}", array.name());
            return Ok(());
        }
        at += n;
    }
    Ok(())
}

/// The size of one read of [`load_row_range`] (and of the reading thread's
/// buffer): large enough for the kernel to stream the device, small
/// enough to keep a memory-capped process's anonymous memory low.
const LOAD_PIECE: usize = 2 << 20;

/// Reads the contiguous rows `rows` of `array` into the page cache with
/// plain buffered reads of up to 2 MiB, discarding the bytes, and returns
/// once they are in (clamped to the array). For a reader thread ahead of
/// a pass in file order: the kernel serves a large `pread` at the device's
/// sequential speed whatever its `read_ahead_kb`, where `WILLNEED` hints ran
/// at 41% of it on a RAM-backed loop device with 128 KiB read-ahead and
/// 2–3 s of system time per 4 GiB (see docs/PERFORMANCE.md).
///
/// # Errors
/// The read fails (a short file is not an error: the pass itself reports it).
pub(crate) fn load_row_range(array: &NpyArray, rows: std::ops::Range<usize>) -> Result<()> {
    let Some((mut at, stop)) = row_span(array, rows) else {
        return Ok(());
    };
    thread_local!(static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        while at < stop {
            let n = (stop - at).min(LOAD_PIECE as u64) as usize;
            if scratch.len() < n {
                scratch.resize(n, 0);
            }
            match sys::read_at(array.file(), &mut scratch[..n], at) {
                Ok(0) => break,
                Ok(got) => at += got as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(array.path(), e)),
            }
        }
        Ok(())
    })
}

/// One page-aligned file range read through the budget.
struct Region {
    array: NpyArray,
    start: u64,
    end: u64,
}

impl Region {
    fn same_file(&self, array: &NpyArray) -> bool {
        // Clones share one open file, so the descriptor identifies the array
        // while the region's clone keeps it open.
        sys::file_key(self.array.file()) == sys::file_key(array.file())
    }
}

/// Keeps the pages a reader has touched under a byte budget by dropping the
/// oldest ones (`MADV_DONTNEED` on the map, then `POSIX_FADV_DONTNEED`):
/// the loader's page-cache footprint stays bounded on a laptop, like FFCV's
/// process cache but with the kernel doing the caching.
///
/// Call [`PageBudget::touch`] after reading each region, in reading order.
/// Bytes are counted in whole pages, so rows sharing a page are counted
/// twice when not adjacent in time: the footprint errs low, never high.
///
/// Bound: residency of the touched files stays within the budget plus the
/// newest region plus the kernel's read-ahead window ahead of the reader
/// (none under [`AccessPattern::Random`], which the array has by default).
/// Pages that other processes keep mapped cannot be dropped.
pub struct PageBudget {
    budget: u64,
    held: u64,
    page: u64,
    regions: VecDeque<Region>,
}

impl std::fmt::Debug for PageBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBudget")
            .field("budget", &self.budget)
            .field("held", &self.held)
            .field("regions", &self.regions.len())
            .finish()
    }
}

impl PageBudget {
    /// A budget of `bytes` (0 drops every region as soon as a newer one is touched).
    pub fn new(bytes: u64) -> PageBudget {
        PageBudget {
            budget: bytes,
            held: 0,
            page: sys::page_size() as u64,
            regions: VecDeque::new(),
        }
    }

    /// The budget in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes touched and not yet dropped (whole pages).
    pub fn resident_bytes(&self) -> u64 {
        self.held
    }

    /// Records that `array`'s file bytes `offset..offset + len` (file
    /// offsets, as [`NpyArray::data_offset`]) were just read, then drops the
    /// oldest regions if the budget is exceeded. Dropping goes down to 7/8
    /// of the budget, so the drop syscalls come in sorted, coalesced groups
    /// rather than one pair per touch.
    ///
    /// # Errors
    /// The kernel rejects the drop advice.
    pub fn touch(&mut self, array: &NpyArray, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let start = offset / self.page * self.page;
        let end = offset.saturating_add(len).div_ceil(self.page) * self.page;
        match self.regions.back_mut() {
            // Sequential readers extend one region instead of queueing a row
            // each, up to an eighth of the budget, so that dropping whole
            // regions from the front can always get back under the budget.
            Some(last)
                if last.same_file(array)
                    && start >= last.start
                    && start <= last.end
                    && end.max(last.end) - last.start <= (self.budget / 8).max(self.page) =>
            {
                self.held += end.saturating_sub(last.end);
                last.end = last.end.max(end);
            }
            _ => {
                self.held += end - start;
                self.regions.push_back(Region {
                    array: array.clone(),
                    start,
                    end,
                });
            }
        }
        if self.held > self.budget {
            self.shrink_to(self.budget - self.budget / 8, 1)?;
        }
        Ok(())
    }

    /// [`PageBudget::touch`] for whole rows of `array`, in the order given.
    ///
    /// # Errors
    /// As [`PageBudget::touch`].
    pub fn touch_rows(&mut self, array: &NpyArray, rows: &[usize]) -> Result<()> {
        let rb = array.row_bytes() as u64;
        for &r in rows {
            self.touch(array, array.data_offset() + r as u64 * rb, rb)?;
        }
        Ok(())
    }

    /// Drops every region (end of an epoch, or before a cold measurement).
    ///
    /// # Errors
    /// As [`PageBudget::touch`].
    pub fn release_all(&mut self) -> Result<()> {
        self.shrink_to(0, 0)
    }

    /// Drops oldest regions until at most `target` bytes are held, keeping
    /// at least `keep` newest regions.
    fn shrink_to(&mut self, target: u64, keep: usize) -> Result<()> {
        let mut dropped = Vec::new();
        while self.held > target && self.regions.len() > keep {
            if let Some(r) = self.regions.pop_front() {
                self.held -= r.end - r.start;
                dropped.push(r);
            }
        }
        dropped.sort_by_key(|r| (sys::file_key(r.array.file()), r.start));
        let mut i = 0;
        while i < dropped.len() {
            let (start, mut end) = (dropped[i].start, dropped[i].end);
            let mut j = i + 1;
            while j < dropped.len()
                && dropped[j].same_file(&dropped[i].array)
                && dropped[j].start <= end
            {
                end = end.max(dropped[j].end);
                j += 1;
            }
            drop_range(&dropped[i].array, start, end - start)
                .map_err(|e| Error::io(dropped[i].array.path(), e))?;
            i = j;
        }
        Ok(())
    }
}

fn drop_range(array: &NpyArray, offset: u64, len: u64) -> std::io::Result<()> {
    if let Some(m) = array.map() {
        sys::drop_mapped(m, offset as usize, len as usize)?;
    }
    sys::fadvise(array.file(), offset, len, FileAdvice::DontNeed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dropping the map takes the file's pages out of the resident set and
    /// leaves them cached and readable: the same bytes come back.
    #[cfg(target_os = "linux")]
    #[test]
    fn unmapping_rows_shrinks_the_resident_set_and_keeps_the_bytes() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("x.npy");
        let (n, rb) = (64usize, 256 << 10);
        let data: Vec<u8> = (0..n * rb).map(|k| (k % 253) as u8).collect();
        crate::npy::write_npy(&path, crate::npy::ElemType::U8, &[n, rb], &data).unwrap();
        let x = NpyArray::open(&path).unwrap();
        let sum = |x: &NpyArray| -> u64 {
            let mut row = vec![0u8; rb];
            (0..n)
                .map(|i| {
                    x.read_row_native(i, &mut row).unwrap();
                    row.iter().map(|&b| b as u64).sum::<u64>()
                })
                .sum()
        };
        let want: u64 = data.iter().map(|&b| b as u64).sum();
        assert_eq!(sum(&x), want);
        let mapped = file_rss_bytes();
        unmap_rows(&x, 0..n).unwrap();
        let after = file_rss_bytes();
        // 16 MiB were mapped and read; at least 15 MiB of them go.
        assert!(mapped >= after + (15 << 20), "RssFile {mapped} -> {after}");
        assert_eq!(sum(&x), want);
        assert!(
            residency_of(&x).unwrap().fraction() > 0.99,
            "evicted, not unmapped"
        );
    }

    /// Evicting the pages of some rows marks those rows, and the rows that
    /// share their pages, cold, and no others: rows straddling pages, and
    /// small rows of which one ends exactly where an evicted page starts.
    #[test]
    fn cold_rows_are_the_rows_on_evicted_pages() {
        for (n, rb, evict) in [(40usize, 3000usize, 10..12), (400, 64, 130..190)] {
            // Under target/: /tmp may be tmpfs, where nothing is ever evicted.
            let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
            let path = dir.path().join("x.npy");
            let data: Vec<u8> = (0..n * rb).map(|k| (k % 251) as u8).collect();
            crate::npy::write_npy(&path, crate::npy::ElemType::U8, &[n, rb], &data).unwrap();
            let x = NpyArray::open(&path).unwrap();
            let page = sys::page_size() as u64;
            let off = x.data_offset();
            let lo = (off + (evict.start * rb) as u64) / page * page;
            let hi = (off + (evict.end * rb) as u64).div_ceil(page) * page;
            // Evict all, then read back page by page all but `lo..hi`
            // (without read-ahead, so the cache holds single pages: a
            // partial eviction would skip the large folios a plain read
            // makes).
            evict_array(&x).unwrap();
            sys::fadvise(x.file(), 0, 0, FileAdvice::Random).unwrap();
            let len = x.data_offset() + x.data_len() as u64;
            let mut buf = vec![0u8; page as usize];
            for at in (0..len)
                .step_by(page as usize)
                .filter(|&at| at < lo || at >= hi)
            {
                let n = page.min(len - at) as usize;
                sys::read_exact_at(x.file(), &mut buf[..n], at).unwrap();
            }
            let after = residency_of(&x).unwrap();
            let base = off / page * page;
            let expected: Vec<bool> = (0..after.pages as u64)
                .map(|p| !(lo..hi).contains(&(base + p * page)))
                .collect();
            if after.map != expected {
                eprintln!("skipping: this file system does not evict single pages");
                return;
            }
            let cold = ColdRows::snapshot(&x).unwrap();
            for r in 0..n {
                let (start, end) = (off + (r * rb) as u64, off + ((r + 1) * rb) as u64);
                let on_evicted = start < hi && end > lo;
                assert_eq!(cold.is_cold(r), on_evicted, "row {r} of {rb} bytes");
            }
            // Past the snapshot: cold, so it would be hinted.
            assert!(cold.is_cold(100 * n));
        }
    }

    #[test]
    fn summary_and_chart_bucket_the_map() {
        let r = Residency::from_map(vec![true, true, true, true, true, false, false, false]);
        assert_eq!(r.resident, 5);
        assert_eq!(r.fraction(), 5.0 / 8.0);
        assert_eq!(r.summary(4), vec![1.0, 1.0, 0.5, 0.0]);
        assert_eq!(r.chart(4), "[OOo ]");
        assert_eq!(r.summary(100).len(), 8);
        assert!(Residency::default().summary(3).is_empty());
        assert_eq!(Residency::default().fraction(), 0.0);
    }
}
