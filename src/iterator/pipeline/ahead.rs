//! Reading ahead of the batches in file order (the sequential order's
//! stretches) and by windows of blocks (the block order): what is asked
//! for, when, and whether it goes into the stash past the page cache or
//! through it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Context, ContextConfig};
use crate::cache::outgrown_room;
use crate::cache::readahead::Fetch;
use crate::cache::stash::Stash;
use crate::iterator::order::{block_windows, Order, Window};
use crate::Result;

/// How far the sequential order reads ahead of the batch being assembled
/// (less with a page budget: a quarter of it).
const SEQUENTIAL_AHEAD: u64 = 16 << 20;

/// The sequential order reads ahead in pieces of this size: large enough
/// for the device to stream, small enough to keep the stretch ahead full.
const SEQUENTIAL_STEP: u64 = 2 << 20;

/// Windows of the block order larger than this are read ahead through the
/// page cache, not into the stash (which holds the window being taken and
/// the next: two and a half times this in the process's memory at most).
const STASH_WINDOW: u64 = 64 << 20;

/// The stash for a pass in file order, or by windows of blocks, over a file
/// larger than the page cache could keep ([`outgrown_room`]), holding at
/// most a quarter of that room. None for the uniform shuffle (one row at a
/// time); with a page budget (it counts the pages read through the map);
/// for a shard (the other shards' processes read the same stretches:
/// through the page cache a machine's shards share one read); or for
/// block windows over [`STASH_WINDOW`] or whose two and a half do not fit.
///
/// (Reading two windows ahead was faster before the reads paced their
/// prefetches, 3.46 → 2.96 s cold on a loop device; after, it was not,
/// 1.78 s one ahead against 2.00 s two ahead, medians of 8, `dd` 1.10 s,
/// and it maps half as much again.)
pub(super) fn stash_for(config: &ContextConfig) -> Option<Stash> {
    if config.cache_budget.is_some() || config.shard.count > 1 || config.order == Order::Shuffle {
        return None;
    }
    let room = outgrown_room(&config.x)? / 4;
    match config.order {
        Order::Blocks { block_rows, window } => {
            let bytes = (block_rows as u64)
                .saturating_mul(window as u64)
                .saturating_mul(config.x.row_bytes() as u64);
            // The window being taken, the next one being read, and half
            // a window of slack for batches still finishing the last.
            let cap = (5 * bytes / 2).max(3 * SEQUENTIAL_STEP);
            if bytes > STASH_WINDOW || cap > room {
                return None;
            }
            // Buffers for two windows before reads wait to reuse one.
            Some(Stash::with_cap(cap as usize).mapping_at_most(2 * window, 2 * bytes as usize))
        }
        // Four times what the order reads ahead, or less (it then reads
        // ahead a quarter of the cap).
        _ => Some(Stash::with_cap((4 * SEQUENTIAL_AHEAD).min(room) as usize)),
    }
}

/// Where the reader is: batch positions `position` of `epoch`'s plan, as
/// one number that grows through the epochs (the marks of
/// [`crate::cache::readahead::Readahead::request_until`]).
pub(super) fn progress(epoch: u64, position: usize) -> u64 {
    const POSITION_BITS: u32 = 40;
    let position = (position as u64).min((1 << POSITION_BITS) - 1);
    epoch.min((1 << (64 - POSITION_BITS)) - 1) << POSITION_BITS | position
}

/// When in a batch's making [`Context::prefetch_windows`] is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Moment {
    /// Before the epoch's plan is looked up ([`Context::before_plan`]).
    BeforePlan,
    /// Before the batch's rows are gathered.
    BeforeGather,
    /// After they are.
    AfterGather,
}

impl Context {
    /// Called before batch `index` of `epoch` looks up the epoch's plan:
    /// the block order reading into the stash asks for an epoch's first
    /// window here, so that the reads start while the plan is made.
    pub fn before_plan(&self, epoch: u64, index: usize) -> Result<()> {
        match self.order {
            Order::Blocks { block_rows, window } if self.hints.load(Ordering::Relaxed) => {
                let start = index.saturating_mul(self.batch_size);
                let windows = (block_rows, window);
                self.prefetch_windows(epoch, start, start + 1, windows, Moment::BeforePlan)
            }
            _ => Ok(()),
        }
    }

    /// Block order: the windows of `epoch` and the ones this batch (plan
    /// positions `start..end`) enters, i.e. whose first position lies in it.
    pub(super) fn entered_windows(
        &self,
        epoch: u64,
        start: usize,
        end: usize,
        block_rows: usize,
        window: usize,
    ) -> (Arc<Vec<Window>>, Vec<usize>) {
        let windows = {
            let mut cache = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            if cache.as_ref().map(|c| c.0) != Some(epoch) {
                *cache = Some((
                    epoch,
                    Arc::new(block_windows(self.n, block_rows, window, self.seed, epoch)),
                ));
            }
            Arc::clone(&cache.as_ref().expect("set above").1)
        };
        // This batch's positions in the global plan (a shard takes a slice of
        // it; a resumed epoch's segment has gaps and a padded one wraps
        // around, where these hints are only approximate).
        let offset = self.schedule.first_position(epoch);
        let (first, last) = (offset + start, offset + end);
        let mut entered = Vec::new();
        if first < last {
            let find = |pos: usize| windows.partition_point(|w| w.end <= pos);
            let (w_first, w_last) = (find(first), find(last - 1));
            if start == 0 {
                entered.push(w_first);
            }
            for (e, win) in windows.iter().enumerate().take(w_last + 1).skip(w_first) {
                if win.start >= first && !entered.contains(&e) {
                    entered.push(e);
                }
            }
        }
        (windows, entered)
    }

    /// The file rows of every block of `win`, as contiguous ranges.
    pub(super) fn block_ranges<'a>(
        &'a self,
        win: &'a Window,
        block_rows: usize,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
        win.blocks.iter().map(move |&b| {
            self.base + b * block_rows..self.base + ((b + 1) * block_rows).min(self.n)
        })
    }

    /// Block order: when a batch enters a window of blocks, ask for every
    /// block of the *next* window as whole contiguous ranges (the first
    /// batch of an epoch also asks for its own window). Reads stay large
    /// and mostly sequential, a window ahead of the gather, instead of one
    /// small request per row. `windows`: the order's rows per block and
    /// blocks per window.
    ///
    /// Called at three moments of a batch ([`Moment`]). Through the page
    /// cache everything is asked for before the gather. Into the stash a
    /// first batch's own window is asked for before the epoch's plan is
    /// made (tens of milliseconds for a million rows, which the reads need
    /// not wait for), and the next window after the gather, once the batch
    /// has let go of the window it finished, so that its reads reuse that
    /// window's buffers (asked for before, the reads found none free and
    /// mapped fresh ones, all through the epoch).
    pub(super) fn prefetch_windows(
        &self,
        epoch: u64,
        start: usize,
        end: usize,
        (block_rows, window): (usize, usize),
        moment: Moment,
    ) -> Result<()> {
        let stashed = self.stash.is_some();
        let ask_next = match moment {
            Moment::BeforePlan => false,
            Moment::BeforeGather => !stashed,
            Moment::AfterGather => stashed,
        };
        let ask_own = start == 0
            && match moment {
                Moment::BeforePlan => stashed,
                Moment::BeforeGather => !stashed,
                Moment::AfterGather => false,
            };
        if !ask_next && !ask_own {
            return Ok(());
        }
        let (windows, entered) = self.entered_windows(epoch, start, end, block_rows, window);
        let mut targets: Vec<usize> = Vec::new();
        if ask_next {
            targets.extend(entered.iter().map(|e| e + 1));
        }
        if ask_own {
            targets.extend(entered.first().copied());
        }
        targets.sort_unstable();
        targets.dedup();
        let blocks = || {
            targets
                .iter()
                .filter_map(|&t| windows.get(t))
                .flat_map(|win| self.block_ranges(win, block_rows))
        };
        if let Some(stash) = &self.stash {
            stash.prepare(block_rows.saturating_mul(self.x.row_bytes()));
            // Read whole blocks into the stash, one request each.
            for range in blocks() {
                stash.expect(range.clone());
                self.readahead
                    .request(&self.x, range, Fetch::Stash(Arc::clone(stash)));
            }
            return Ok(());
        }
        // Every block of the window asked for at once (the device works on
        // all of them), then mapped one by one, so that the window's shuffled
        // rows are read without a page fault each. Under a budget, only
        // while the batches are not past the window (positions of this
        // rank's plan).
        let offset = self.schedule.first_position(epoch);
        for fetch in [Fetch::Hint, Fetch::Map] {
            for win in targets.iter().filter_map(|&t| windows.get(t)) {
                let until = progress(epoch, win.end.saturating_sub(offset));
                for range in self.block_ranges(win, block_rows) {
                    self.read_ahead(range, fetch.clone(), until);
                }
            }
        }
        Ok(())
    }

    /// Queues `rows` to be read ahead as `fetch` says: under a page budget,
    /// only while the batches are not at `until` yet (rows read after the
    /// budget let them go would stay in the page cache past it).
    fn read_ahead(&self, rows: std::ops::Range<usize>, fetch: Fetch, until: u64) {
        match self.budget {
            Some(_) => self.readahead.request_until(&self.x, rows, fetch, until),
            None => self.readahead.request(&self.x, rows, fetch),
        }
    }

    /// Sequential order: keep [`SEQUENTIAL_AHEAD`] bytes of rows read ahead
    /// of the batch at plan positions `start..end` by the read-ahead thread,
    /// in steps of [`SEQUENTIAL_STEP`] bytes: each batch asks for the steps
    /// that start in its own positions shifted that far ahead; the first
    /// also for the stretch before it. Plain reads, not hints: on a device
    /// with a small read-ahead `WILLNEED` (and the kernel's own read-ahead
    /// of a map, paced by page faults) ran at 41% of the device's
    /// sequential read, large reads at its speed.
    pub(super) fn read_ahead_sequential(
        &self,
        epoch: u64,
        start: usize,
        end: usize,
        plan: &[usize],
    ) {
        let rb = self.x.row_bytes().max(1) as u64;
        let mut bytes = SEQUENTIAL_AHEAD;
        if let Some(stash) = &self.stash {
            bytes = bytes.min(stash.cap() as u64 / 4);
        }
        if let Some(budget) = &self.budget {
            // Read-ahead is outside the budget's count: keep it a fraction.
            let b = budget.lock().unwrap_or_else(|e| e.into_inner()).budget();
            bytes = bytes.min(b / 4);
        }
        let step = ((SEQUENTIAL_STEP.min(bytes) / rb) as usize).max(1);
        let ahead = ((bytes / rb) as usize).max(end - start).div_ceil(step) * step;
        // A sequential plan is consecutive rows, so positions map to a range.
        let rows = |from: usize, to: usize| {
            let (from, to) = (from.min(plan.len()), to.min(plan.len()));
            (from < to).then(|| self.base + plan[from]..self.base + plan[to - 1] + 1)
        };
        // Steps start at multiples of `step`, and `ahead` is one: with the
        // first batch's stretch before it, every position is asked for
        // exactly once, in the same pieces each time (the stash finds a
        // stretch by its rows).
        let first = if start == 0 {
            0
        } else {
            (start + ahead).div_ceil(step) * step
        };
        for p in (first..end + ahead).step_by(step) {
            let Some(r) = rows(p, p + step) else {
                continue;
            };
            match &self.stash {
                Some(stash) => {
                    stash.expect(r.clone());
                    self.readahead
                        .request(&self.x, r, Fetch::Stash(Arc::clone(stash)));
                }
                None => self.read_ahead(r, Fetch::Read, progress(epoch, p + step)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::progress;

    #[test]
    fn progress_grows_through_positions_and_epochs() {
        let marks = [
            progress(0, 0),
            progress(0, 1),
            progress(0, 1_398_101),
            progress(1, 0),
            progress(1, 7),
            progress(2, 0),
        ];
        assert!(
            marks.is_sorted() && marks.windows(2).all(|w| w[0] < w[1]),
            "{marks:?}"
        );
        // Out of range positions and epochs saturate rather than wrap.
        assert!(progress(0, usize::MAX) < progress(1, 0));
        assert_eq!(progress(u64::MAX, usize::MAX), u64::MAX);
    }
}
