//! The state that resumes a run exactly: the seed, the epoch, and which
//! positions of the epoch's plan are still to be delivered.
//!
//! The state is global, not per rank: ranks that advance in lockstep (the
//! same number of batches each, which the equal-count shards guarantee)
//! all save the same state, and it can be loaded with another number of
//! ranks, batch size, thread count or prefetch depth. The positions the
//! ranks delivered are known from the batch count alone: each rank took
//! `min(batches × batch_size, per)` positions from the start of its slice
//! of the epoch's segment (see [`shard`](super::shard)).

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::iterator::order::Order;
use crate::iterator::shard::{Resumed, Schedule};
use crate::{Error, Result};

/// Where a run stands, enough to continue it exactly: what
/// [`NumpyArrayIterator::state`](crate::NumpyArrayIterator::state) saves and
/// [`NumpyArrayIterator::load_state`](crate::NumpyArrayIterator::load_state)
/// restores (serde, a few bytes of JSON).
///
/// Loading it into an iterator over the same samples in the same order
/// delivers exactly the samples (and pixels) an uninterrupted run would have:
/// the rest of the epoch (re-batched and re-sharded for the loading
/// iterator's batch size and shards), then full epochs. With padded shards,
/// the union over ranks of what was delivered before and after the save is
/// every sample of the epoch once, plus the padding that equalises the
/// ranks; with `drop_last`, the same when the batch size and the number of
/// ranks are unchanged (a changed one drops the new remainder's own tail).
///
/// ```
/// use npyflow::npy::{write_npy, ElemType};
/// use npyflow::{IteratorState, NpyArray, NumpyArrayIterator, Order};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("x.npy");
/// write_npy(&path, ElemType::U8, &[10, 2, 2, 1], &(0..40u8).collect::<Vec<_>>())?;
/// let build = |batch_size| {
///     NumpyArrayIterator::builder(NpyArray::open(&path)?)
///         .shuffle(true)
///         .seed(1)
///         .batch_size(batch_size)
///         .build()
/// };
/// let mut it = build(3)?;
/// it.next_batch()?;
/// it.next_batch()?; // 6 of the epoch's 10 samples delivered
/// let saved = serde_json::to_string(&it.state()).unwrap();
///
/// // Another process, batches of 4: the epoch's last 4 samples, then full epochs.
/// let mut resumed = build(4)?;
/// resumed.load_state(&serde_json::from_str::<IteratorState>(&saved).unwrap())?;
/// let rest = resumed.next_in_epoch()?.unwrap().indices().to_vec();
/// assert_eq!(rest, Order::Shuffle.plan(10, 1, 0)[6..]);
/// assert!(resumed.next_in_epoch()?.is_none());
/// assert_eq!(resumed.len(), 3); // epoch 1: ceil(10 / 4)
/// # Ok::<(), npyflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IteratorState {
    /// The format's version ([`IteratorState::VERSION`]).
    pub version: u32,
    /// The seed of every random choice.
    pub seed: u64,
    /// The order, which shapes every plan (checked when loading).
    pub order: Order,
    /// Samples in the iterator's subset, before sharding (checked when loading).
    pub samples: usize,
    /// The epoch to continue.
    pub epoch: u64,
    /// The positions of the epoch's plan still to be delivered, as sorted
    /// disjoint half-open ranges `[start, end)`; `None` for the whole epoch.
    pub remaining: Option<Vec<[usize; 2]>>,
}

impl IteratorState {
    /// The version this build writes and reads.
    pub const VERSION: u32 = 1;

    /// Checks the state against an iterator over `samples` samples in
    /// `order`, and returns its resumed epoch (`None`: a full epoch).
    pub(crate) fn resumed(&self, samples: usize, order: Order) -> Result<Option<Resumed>> {
        if self.version != Self::VERSION {
            return Err(Error::invalid(
                "state.version",
                self.version,
                format!("this version of npyflow reads version {}", Self::VERSION),
            ));
        }
        if self.samples != samples {
            return Err(Error::invalid(
                "state.samples",
                self.samples,
                format!(
                    "the state is of an iterator over {} samples, this one has {samples}",
                    self.samples
                ),
            ));
        }
        if self.order != order {
            return Err(Error::invalid(
                "state.order",
                format!("{:?}", self.order),
                format!(
                    "the state is of an iterator in order {:?}, this one is in order {order:?}",
                    self.order
                ),
            ));
        }
        let Some(remaining) = &self.remaining else {
            return Ok(None);
        };
        let mut ranges: Vec<Range<usize>> = Vec::with_capacity(remaining.len());
        for &[start, end] in remaining {
            let after = ranges.last().map_or(0, |r| r.end);
            if start >= end || start < after || end > samples {
                return Err(Error::invalid(
                    "state.remaining",
                    format!("[{start}, {end}]"),
                    format!("ranges must be non-empty, sorted, disjoint and within 0..{samples}"),
                ));
            }
            match ranges.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => ranges.push(start..end),
            }
        }
        if ranges.is_empty() {
            return Err(Error::invalid(
                "state.remaining",
                "[]",
                "nothing remains: a finished epoch is saved as the next one, with `remaining` null",
            ));
        }
        if ranges.len() == 1 && ranges[0] == (0..samples) {
            return Ok(None);
        }
        Ok(Some(Resumed {
            epoch: self.epoch,
            ranges: ranges.into(),
        }))
    }
}

impl Schedule {
    /// The epoch to continue and its positions still to be delivered
    /// (`None`: all) once the batches `done` (ranges of batch indices) of
    /// `epoch` have been delivered, every rank having taken the same ones.
    pub fn progress(&self, epoch: u64, done: &[Range<usize>]) -> (u64, Option<Vec<Range<usize>>>) {
        let batches = self.batches(epoch);
        let done: Vec<Range<usize>> = done
            .iter()
            .map(|b| b.start.min(batches)..b.end.min(batches))
            .filter(|b| !b.is_empty())
            .collect();
        if complement(done.clone(), batches).is_empty() {
            // Finished (with `drop_last`, what was left out is not owed).
            return (epoch + 1, None);
        }
        let resumed = self.resumed_in(epoch);
        if done.is_empty() {
            // Nothing taken: the segment as it is, nothing dropped yet.
            return (epoch, resumed.map(|r| r.ranges.to_vec()));
        }
        let len = self.segment_len(epoch);
        let (count, size) = (self.shard().count, self.batch_size());
        let per = self.shard().len(len, self.drop_last());
        // Every rank's taken part of the extended segment, as indices into
        // the segment (the padding wraps around to its start).
        let mut taken: Vec<Range<usize>> = Vec::new();
        for rank in 0..count {
            for b in &done {
                let start = rank * per + b.start * size;
                let end = rank * per + (b.end * size).min(per);
                if end - start >= len {
                    taken.push(0..len);
                    continue;
                }
                let (start, end) = (start % len, start % len + (end - start));
                if end <= len {
                    taken.push(start..end);
                } else {
                    taken.push(start..len);
                    taken.push(0..end - len);
                }
            }
        }
        // What the epoch delivers in all: with `drop_last`, not the tail.
        let owed = if self.drop_last() { count * per } else { len };
        let left = complement(taken, owed);
        let positions = match resumed {
            None => left,
            Some(r) => to_positions(&r.ranges, &left),
        };
        if positions.is_empty() {
            (epoch + 1, None)
        } else {
            (epoch, Some(positions))
        }
    }
}

/// `0..owed` without the union of `done`, as sorted disjoint ranges.
fn complement(mut done: Vec<Range<usize>>, owed: usize) -> Vec<Range<usize>> {
    done.sort_unstable_by_key(|r| r.start);
    let mut left = Vec::new();
    let mut at = 0;
    for r in done {
        if r.start > at {
            left.push(at..r.start.min(owed));
        }
        at = at.max(r.end);
        if at >= owed {
            break;
        }
    }
    if at < owed {
        left.push(at..owed);
    }
    left.retain(|r| !r.is_empty());
    left
}

/// The positions at the segment indices `indices` (sorted disjoint ranges)
/// of a segment made of the positions `ranges`, as sorted disjoint ranges.
fn to_positions(ranges: &Arc<[Range<usize>]>, indices: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut offset = 0;
    for r in ranges.iter() {
        let span = offset..offset + r.len();
        for i in indices {
            let (a, b) = (i.start.max(span.start), i.end.min(span.end));
            if a < b {
                let p = r.start + (a - offset)..r.start + (b - offset);
                match out.last_mut() {
                    Some(last) if last.end == p.start => last.end = p.end,
                    _ => out.push(p),
                }
            }
        }
        offset = span.end;
    }
    out
}
