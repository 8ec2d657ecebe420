//! Epoch plans: which rows, in which order. Pure arithmetic, no I/O.
//!
//! A plan lists subset-relative sample indices for one epoch. It is a pure
//! function of (order, n, seed, epoch, shard), so any batch of any epoch can
//! be recomputed — that is what makes `get(i)`, saved positions and
//! multi-process sharding reproducible.

use serde::{Deserialize, Serialize};

use crate::iterator::shard::Shard;
use crate::rng::{SampleRng, Stream};
use crate::{Error, Result};

/// The order rows are visited in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// File order (Keras with `shuffle=False`). Best for the page cache.
    #[default]
    Sequential,
    /// A uniform random permutation per epoch (Keras with `shuffle=True`).
    Shuffle,
    /// Page-aware block shuffle (FFCV's QUASI_RANDOM idea on a plain `.npy`):
    /// rows are cut into contiguous blocks, the block order is shuffled, and
    /// `window` blocks at a time are pooled and their rows shuffled together.
    /// Only `window` blocks are being read at any moment, so reads stay
    /// mostly sequential and the working set is `window × block_rows` rows.
    Blocks {
        /// Rows per block (at least 1).
        block_rows: usize,
        /// Blocks shuffled together (at least 1).
        window: usize,
    },
}

impl Order {
    /// A block order whose active window (`window` blocks) fits `budget_bytes`
    /// for rows of `row_bytes` bytes. Blocks of at least 1 row.
    pub fn blocks_for_budget(budget_bytes: u64, row_bytes: usize, window: usize) -> Order {
        let window = window.max(1);
        let rows = budget_bytes / (row_bytes.max(1) as u64) / window as u64;
        Order::Blocks {
            block_rows: rows.max(1) as usize,
            window,
        }
    }

    /// The plan of `epoch` over `n` samples: which sample comes at each
    /// position, a permutation of `0..n` (`0..n` itself for
    /// [`Order::Sequential`]). A pure function of its arguments, the same
    /// in every process and version (the golden tests pin it).
    ///
    /// ```
    /// use npyflow::Order;
    ///
    /// assert_eq!(Order::Sequential.plan(4, 7, 0), [0, 1, 2, 3]);
    /// let p = Order::Shuffle.plan(10, 7, 0);
    /// assert_eq!(p, Order::Shuffle.plan(10, 7, 0));
    /// assert_ne!(p, Order::Shuffle.plan(10, 7, 1)); // a new permutation per epoch
    /// ```
    pub fn plan(self, n: usize, seed: u64, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        match self {
            Order::Sequential => {}
            Order::Shuffle => SampleRng::new(seed, Stream::Permutation, epoch, 0).shuffle(&mut idx),
            Order::Blocks { block_rows, window } => {
                let block_rows = block_rows.max(1);
                idx.clear();
                for (w, win) in block_windows(n, block_rows, window, seed, epoch)
                    .iter()
                    .enumerate()
                {
                    for &b in &win.blocks {
                        idx.extend(b * block_rows..((b + 1) * block_rows).min(n));
                    }
                    SampleRng::new(seed, Stream::Permutation, epoch, w as u64 + 1)
                        .shuffle(&mut idx[win.start..win.end]);
                }
            }
        }
        idx
    }

    /// The part of [`Order::plan`] that `shard` iterates: its contiguous
    /// slice of the epoch's plan, padded by wrapping around to the plan's
    /// start or, with `drop_last`, cut (see [`Shard::len`]).
    ///
    /// ```
    /// use npyflow::{Order, Shard};
    ///
    /// let whole = Order::Shuffle.plan(10, 3, 2);
    /// let first = Order::Shuffle.shard_plan(10, 3, 2, Shard::new(0, 2)?, false);
    /// let second = Order::Shuffle.shard_plan(10, 3, 2, Shard::new(1, 2)?, false);
    /// assert_eq!([first, second].concat(), whole);
    /// // 10 over 3 ranks: 4 each, the last one padded with the plan's first two.
    /// let last = Order::Shuffle.shard_plan(10, 3, 2, Shard::new(2, 3)?, false);
    /// assert_eq!(last, [&whole[8..], &whole[..2]].concat());
    /// # Ok::<(), npyflow::Error>(())
    /// ```
    pub fn shard_plan(
        self,
        n: usize,
        seed: u64,
        epoch: u64,
        shard: Shard,
        drop_last: bool,
    ) -> Vec<usize> {
        let plan = self.plan(n, seed, epoch);
        let (a, b) = shard.range(n, drop_last);
        (a..b).map(|p| plan[p % n]).collect()
    }

    /// Keras' `shuffle` flag as an order.
    pub fn from_shuffle(shuffle: bool) -> Order {
        if shuffle {
            Order::Shuffle
        } else {
            Order::Sequential
        }
    }

    /// True for the orders that read the file mostly front to back.
    pub fn is_sequential_like(&self) -> bool {
        !matches!(self, Order::Shuffle)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Order::Blocks { block_rows, window } = *self {
            if block_rows == 0 || window == 0 {
                return Err(Error::invalid(
                    "order",
                    format!("blocks(block_rows={block_rows}, window={window})"),
                    "block_rows and window must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

/// One window of the block order: the blocks read together and the
/// positions `[start, end)` of the global plan their rows occupy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub blocks: Vec<usize>,
    pub start: usize,
    pub end: usize,
}

/// The windows of [`Order::Blocks`] for `epoch`, in plan order. Cheap
/// (one entry per block), so the pipeline can recompute it to prefetch
/// whole blocks a window ahead of the reader.
pub(crate) fn block_windows(
    n: usize,
    block_rows: usize,
    window: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Window> {
    let block_rows = block_rows.max(1);
    let blocks = n.div_ceil(block_rows);
    let mut block_order: Vec<usize> = (0..blocks).collect();
    SampleRng::new(seed, Stream::Blocks, epoch, 0).shuffle(&mut block_order);
    let mut pos = 0;
    block_order
        .chunks(window.max(1))
        .map(|group| {
            let rows: usize = group
                .iter()
                .map(|&b| ((b + 1) * block_rows).min(n) - b * block_rows)
                .sum();
            let w = Window {
                blocks: group.to_vec(),
                start: pos,
                end: pos + rows,
            };
            pos += rows;
            w
        })
        .collect()
}

/// Keras' split: `split = int(n * validation_split)`; validation is
/// `[0, split)`, training `[split, n)`. Returns `(offset, len)` of the subset.
pub(crate) fn subset_range(n: usize, validation_split: f64, subset: Subset) -> (usize, usize) {
    // Keras multiplies in float and truncates.
    let split = ((n as f64) * validation_split) as usize;
    let split = split.min(n);
    match subset {
        Subset::All => (0, n),
        Subset::Validation => (0, split),
        Subset::Training => (split, n - split),
    }
}

/// Which part of the data an iterator covers (Keras' `subset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subset {
    /// Everything (Keras' `subset=None`).
    #[default]
    All,
    /// The rows after the first `int(n × validation_split)`.
    Training,
    /// The first `int(n × validation_split)` rows.
    Validation,
}

impl std::str::FromStr for Subset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Subset> {
        match s {
            "training" => Ok(Subset::Training),
            "validation" => Ok(Subset::Validation),
            "none" | "all" => Ok(Subset::All),
            other => Err(Error::invalid(
                "subset",
                format!("{other:?}"),
                "Invalid subset name; expected \"training\" or \"validation\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_permutation(v: &[usize], n: usize) -> bool {
        let mut s = v.to_vec();
        s.sort_unstable();
        s == (0..n).collect::<Vec<_>>()
    }

    #[test]
    fn every_order_is_a_permutation() {
        for n in [0, 1, 2, 7, 100, 1001] {
            for order in [
                Order::Sequential,
                Order::Shuffle,
                Order::Blocks {
                    block_rows: 1,
                    window: 1,
                },
                Order::Blocks {
                    block_rows: 16,
                    window: 3,
                },
                Order::Blocks {
                    block_rows: 5000,
                    window: 2,
                },
            ] {
                let p = order.plan(n, 42, 3);
                assert!(is_permutation(&p, n), "{order:?} n={n}");
            }
        }
    }

    #[test]
    fn shuffle_depends_on_seed_and_epoch_only() {
        let a = Order::Shuffle.plan(50, 1, 0);
        assert_eq!(a, Order::Shuffle.plan(50, 1, 0));
        assert_ne!(a, Order::Shuffle.plan(50, 1, 1));
        assert_ne!(a, Order::Shuffle.plan(50, 2, 0));
        assert_ne!(a, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn blocks_keep_the_window_local() {
        let (block_rows, window) = (10, 2);
        let p = Order::Blocks { block_rows, window }.plan(100, 9, 0);
        // Each run of window*block_rows positions touches exactly `window` blocks.
        for chunk in p.chunks(block_rows * window) {
            let mut blocks: Vec<usize> = chunk.iter().map(|i| i / block_rows).collect();
            blocks.sort_unstable();
            blocks.dedup();
            assert_eq!(blocks.len(), window);
        }
        assert_ne!(p, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn split_follows_keras() {
        // int(10 * 0.25) = 2
        assert_eq!(subset_range(10, 0.25, Subset::Validation), (0, 2));
        assert_eq!(subset_range(10, 0.25, Subset::Training), (2, 8));
        assert_eq!(subset_range(10, 0.0, Subset::Validation), (0, 0));
        assert_eq!(subset_range(10, 0.0, Subset::All), (0, 10));
        // float truncation: 3 * 0.7 = 2.0999999999999996 -> 2
        assert_eq!(subset_range(3, 0.7, Subset::Validation), (0, 2));
    }
}
