//! Shards with equal counts, and which positions of each epoch's plan this
//! iterator delivers.
//!
//! Every rank computes the same plan of an epoch (a pure function of the
//! order, the seed and the epoch) and takes a disjoint contiguous slice of
//! it, so ranks agree without talking to each other. Every rank also takes
//! the *same number* of samples and batches: a rank that runs out of batches
//! first leaves the others waiting in the epoch's last collective for ever.
//!
//! The positions an epoch delivers form its *segment*: the whole plan
//! (`0..n`), or, in an epoch resumed from an
//! [`IteratorState`](crate::IteratorState), the positions not yet delivered.
//! Over `count` ranks, a segment of `len` positions gives each rank
//! - `ceil(len / count)` positions by default: the segment is extended to
//!   `count × ceil(len / count)` positions by wrapping around to its start,
//!   as PyTorch's `DistributedSampler` pads, so up to `count − 1` samples
//!   are delivered twice;
//! - `floor(len / count)` with `drop_last`: the segment's last
//!   `len mod count` positions are left out.
//!
//! Rank `r` takes the positions `r × per .. (r + 1) × per` of the extended
//! segment. A sample's augmentation is keyed by (seed, epoch, row), so its
//! pixels are the same whichever rank delivers it, in any world size.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One part of a dataset split across `count` workers (PyTorch's
/// `DistributedSampler` use case): worker `index` gets a contiguous slice of
/// every epoch's global plan, so shards are disjoint and agree on the
/// permutation without talking to each other, and every shard has the same
/// number of samples (see [`Shard::len`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This worker's index, `0..count`.
    pub index: usize,
    /// Number of workers.
    pub count: usize,
}

impl Shard {
    /// The whole dataset.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// A validated shard.
    ///
    /// # Errors
    /// When `count == 0` or `index >= count`.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::invalid(
                "shard",
                format!("({index}, {count})"),
                "need 0 <= index < count",
            ));
        }
        Ok(Shard { index, count })
    }

    /// Samples every shard takes of `n`: `ceil(n / count)` (the last shards
    /// padded by wrapping around to the plan's start), or `floor(n / count)`
    /// with `drop_last` (the plan's last `n mod count` positions left out).
    ///
    /// ```
    /// use npyflow::Shard;
    ///
    /// let s = Shard::new(2, 3)?;
    /// assert_eq!((s.len(10, false), s.len(10, true)), (4, 3));
    /// # Ok::<(), npyflow::Error>(())
    /// ```
    pub fn len(&self, n: usize, drop_last: bool) -> usize {
        let count = self.count.max(1);
        if drop_last {
            n / count
        } else {
            n.div_ceil(count)
        }
    }

    /// True when this shard takes nothing of a dataset of `n`.
    pub fn is_empty(&self, n: usize, drop_last: bool) -> bool {
        self.len(n, drop_last) == 0
    }

    /// The positions `[start, end)` of the global plan (length `n`) this
    /// shard takes; a position `p >= n` is padding and stands for `p mod n`.
    ///
    /// ```
    /// use npyflow::Shard;
    ///
    /// // 10 samples over 3 ranks: 4 each, the last rank wraps around to 0 and 1.
    /// assert_eq!(Shard::new(2, 3)?.range(10, false), (8, 12));
    /// assert_eq!(Shard::new(2, 3)?.range(10, true), (6, 9));
    /// # Ok::<(), npyflow::Error>(())
    /// ```
    pub fn range(&self, n: usize, drop_last: bool) -> (usize, usize) {
        let per = self.len(n, drop_last);
        (self.index * per, (self.index + 1) * per)
    }
}

/// An epoch resumed part-way: the positions of its plan still to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resumed {
    /// The epoch.
    pub epoch: u64,
    /// Sorted, disjoint, non-empty ranges of positions.
    pub ranges: Arc<[Range<usize>]>,
}

impl Resumed {
    /// Positions in all.
    fn len(&self) -> usize {
        self.ranges.iter().map(|r| r.len()).sum()
    }
}

/// Which positions of each epoch's plan this iterator delivers, in how many
/// batches: the shard's slice of the epoch's segment (the module docs have
/// the rule). Pure arithmetic, shared by the iterator and its prefetch
/// workers.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    /// Samples in the subset (the plan's length).
    n: usize,
    shard: Shard,
    batch_size: usize,
    drop_last: bool,
    resumed: Option<Resumed>,
}

impl Schedule {
    /// The schedule of full epochs of `n` samples.
    pub fn new(n: usize, shard: Shard, batch_size: usize, drop_last: bool) -> Schedule {
        Schedule {
            n,
            shard,
            batch_size,
            drop_last,
            resumed: None,
        }
    }

    /// This schedule with `resumed` as the segment of its epoch (`None`: every
    /// epoch full).
    pub fn with_resumed(&self, resumed: Option<Resumed>) -> Schedule {
        Schedule {
            resumed,
            ..self.clone()
        }
    }

    /// The shard.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Whether short shards and batches are dropped.
    pub fn drop_last(&self) -> bool {
        self.drop_last
    }

    /// The resumed segment of `epoch`, if `epoch` is the resumed one.
    pub fn resumed_in(&self, epoch: u64) -> Option<&Resumed> {
        self.resumed.as_ref().filter(|r| r.epoch == epoch)
    }

    /// Positions in the segment of `epoch`.
    pub fn segment_len(&self, epoch: u64) -> usize {
        self.resumed_in(epoch).map_or(self.n, Resumed::len)
    }

    /// Samples this rank delivers in `epoch`.
    pub fn samples(&self, epoch: u64) -> usize {
        self.shard.len(self.segment_len(epoch), self.drop_last)
    }

    /// Batches this rank delivers in `epoch`.
    pub fn batches(&self, epoch: u64) -> usize {
        num_batches(self.samples(epoch), self.batch_size, self.drop_last)
    }

    /// Samples this rank delivers in a full epoch (no fewer than in a
    /// resumed one).
    pub fn full_samples(&self) -> usize {
        self.shard.len(self.n, self.drop_last)
    }

    /// Batches this rank delivers in a full epoch.
    pub fn full_batches(&self) -> usize {
        num_batches(self.full_samples(), self.batch_size, self.drop_last)
    }

    /// The segment's positions of `epoch`, flattened (`None` for the whole
    /// plan, where a position is its own index).
    fn flat(&self, epoch: u64) -> Option<Vec<usize>> {
        self.resumed_in(epoch)
            .map(|r| r.ranges.iter().flat_map(|r| r.clone()).collect())
    }

    /// This rank's part of `plan`, the plan of `epoch`, in delivery order.
    pub fn select(&self, epoch: u64, plan: Vec<usize>) -> Vec<usize> {
        let flat = self.flat(epoch);
        if flat.is_none() && self.shard.count == 1 {
            // Keras' case: the whole plan, nothing padded (`drop_last` only
            // drops the last short batch).
            return plan;
        }
        let len = flat.as_ref().map_or(self.n, Vec::len);
        let (start, end) = self.shard.range(len, self.drop_last);
        (start..end)
            .map(|i| {
                let j = i % len;
                plan[flat.as_ref().map_or(j, |f| f[j])]
            })
            .collect()
    }

    /// The first position of the plan this rank delivers in `epoch` (0 when
    /// it delivers none).
    pub fn first_position(&self, epoch: u64) -> usize {
        let len = self.segment_len(epoch);
        if len == 0 {
            return 0;
        }
        let j = self.shard.range(len, self.drop_last).0 % len;
        match self.resumed_in(epoch) {
            None => j,
            Some(r) => {
                let mut j = j;
                for range in r.ranges.iter() {
                    if j < range.len() {
                        return range.start + j;
                    }
                    j -= range.len();
                }
                0
            }
        }
    }

    /// The position after batch `pos` in an endless walk over epochs.
    pub fn advance(&self, (epoch, batch): (u64, usize)) -> (u64, usize) {
        if batch + 1 >= self.batches(epoch) {
            (epoch + 1, 0)
        } else {
            (epoch, batch + 1)
        }
    }

    /// The position `steps` batches after `pos` (see [`Schedule::advance`]),
    /// in time independent of `steps`.
    pub fn advance_by(&self, pos: (u64, usize), steps: usize) -> (u64, usize) {
        let (mut epoch, mut batch) = pos;
        let mut steps = steps;
        let full = self.full_batches();
        loop {
            if steps == 0 {
                return (epoch, batch);
            }
            let len = self.batches(epoch);
            // Steps to the next epoch's start (one from past the end).
            let to_next = if batch < len { len - batch } else { 1 };
            if steps < to_next {
                return (epoch, batch + steps);
            }
            steps -= to_next;
            epoch += 1;
            batch = 0;
            // Whole full epochs at once, up to the resumed one.
            let limit = match &self.resumed {
                Some(r) if r.epoch >= epoch => r.epoch - epoch,
                _ => u64::MAX,
            };
            // An epoch without batches still takes one step.
            let whole = ((steps / full.max(1)) as u64).min(limit);
            epoch += whole;
            steps -= whole as usize * full.max(1);
        }
    }
}

/// Number of batches for `n` samples: `ceil(n / batch_size)`, or
/// `floor(n / batch_size)` with `drop_last`.
pub(crate) fn num_batches(n: usize, batch_size: usize, drop_last: bool) -> usize {
    if batch_size == 0 {
        return 0;
    }
    if drop_last {
        n / batch_size
    } else {
        n.div_ceil(batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Order;

    #[test]
    fn batch_counts() {
        assert_eq!(num_batches(8, 3, false), 3);
        assert_eq!(num_batches(8, 3, true), 2);
        assert_eq!(num_batches(0, 3, false), 0);
        assert_eq!(num_batches(9, 3, true), 3);
    }

    fn is_permutation(v: &[usize], n: usize) -> bool {
        let mut s = v.to_vec();
        s.sort_unstable();
        s == (0..n).collect::<Vec<_>>()
    }

    #[test]
    fn shards_have_equal_counts_and_cover_everything() {
        for n in [0, 1, 5, 10, 101] {
            for count in 1..6 {
                let plan = Order::Shuffle.plan(n, 5, 2);
                let mut padded = Vec::new();
                let mut dropped = Vec::new();
                for index in 0..count {
                    let s = Shard::new(index, count).unwrap();
                    let p = Order::Shuffle.shard_plan(n, 5, 2, s, false);
                    assert_eq!(p.len(), n.div_ceil(count), "n={n} count={count}");
                    padded.extend(p);
                    let d = Order::Shuffle.shard_plan(n, 5, 2, s, true);
                    assert_eq!(d.len(), n / count);
                    dropped.extend(d);
                }
                // Padding repeats the plan from its start, dropping cuts its tail.
                let wrap: Vec<usize> = (0..padded.len()).map(|i| plan[i % n.max(1)]).collect();
                assert_eq!(padded, wrap);
                assert!(is_permutation(&padded[..n], n));
                assert_eq!(dropped, plan[..n / count * count]);
            }
        }
        assert!(Shard::new(2, 2).is_err());
        assert!(Shard::new(0, 0).is_err());
    }

    #[test]
    fn padding_wraps_around_more_than_once_when_ranks_outnumber_samples() {
        let s = |i| Schedule::new(2, Shard::new(i, 5).unwrap(), 1, false);
        let got: Vec<Vec<usize>> = (0..5).map(|i| s(i).select(0, vec![7, 9])).collect();
        assert_eq!(got, [[7], [9], [7], [9], [7]]);
        assert_eq!(s(3).first_position(0), 1);
    }

    /// The epoch `epoch` resumed at the positions `[start, end)` of `ranges`.
    fn resumed(epoch: u64, ranges: &[(usize, usize)]) -> Option<Resumed> {
        Some(Resumed {
            epoch,
            ranges: ranges.iter().map(|&(a, b)| a..b).collect(),
        })
    }

    #[test]
    fn a_resumed_epoch_takes_its_segment_then_epochs_are_full() {
        let plan: Vec<usize> = (100..110).collect();
        let s = Schedule::new(10, Shard::new(1, 2).unwrap(), 2, false)
            .with_resumed(resumed(3, &[(1, 3), (6, 9)]));
        // Segment [1, 2, 6, 7, 8]: 3 each, rank 1 takes [7, 8] and wraps to 1.
        assert_eq!(s.select(3, plan.clone()), [107, 108, 101]);
        assert_eq!((s.samples(3), s.batches(3)), (3, 2));
        assert_eq!(s.first_position(3), 7);
        assert_eq!(s.select(4, plan.clone()), [105, 106, 107, 108, 109]);
        assert_eq!((s.samples(4), s.batches(4)), (5, 3));
        let d = Schedule {
            drop_last: true,
            ..s.clone()
        };
        // floor(5 / 2) = 2: rank 1 takes [6, 7] (8 dropped), one batch.
        assert_eq!(d.select(3, plan), [106, 107]);
        assert_eq!(d.batches(3), 1);
    }

    /// The constant-time walk lands where stepping one batch at a time does,
    /// from inside an epoch, from past its end, with no batches and across a
    /// resumed epoch (shorter, or with none).
    #[test]
    fn advance_by_equals_stepping() {
        for n in [0, 1, 3, 14] {
            for batch_size in [1, 2, 5] {
                let plain = Schedule::new(n, Shard::ALL, batch_size, false);
                let schedules = [
                    plain.clone(),
                    plain.with_resumed(resumed(4, &[(0, 1)])),
                    plain.with_resumed(resumed(6, &[(1, 2), (3, 4)])),
                    Schedule {
                        drop_last: true,
                        ..plain.with_resumed(resumed(5, &[(0, 1)]))
                    },
                ];
                for s in schedules {
                    for start in [(0, 0), (3, 1), (5, 6), (2, 9), (7, 0)] {
                        let mut pos = start;
                        for steps in 0..60 {
                            assert_eq!(
                                s.advance_by(start, steps),
                                pos,
                                "{start:?} +{steps}, n={n} batch={batch_size} {:?}",
                                s.resumed
                            );
                            pos = s.advance(pos);
                        }
                    }
                }
            }
        }
    }
}
