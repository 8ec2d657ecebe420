//! Exact resume: an [`IteratorState`] saved part-way and loaded into an
//! iterator with other threads, prefetch, batch size or number of ranks
//! delivers exactly the samples (and pixels) of the uninterrupted run.

use std::collections::HashMap;

use npyflow::{
    ErrorKind, GeneratorOptions, ImageDataGenerator, IteratorState, NpyArray, NumpyArrayIterator,
    Order,
};
use proptest::prelude::*;

use crate::util::{image_bytes, images_u8};

const SEED: u64 = 31;

fn augmenting() -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 25.0,
        height_shift_range: npyflow::ShiftRange::Float(0.2),
        horizontal_flip: true,
        ..Default::default()
    })
    .unwrap()
}

struct Setup {
    batch_size: usize,
    rank: usize,
    world: usize,
    threads: usize,
    prefetch: usize,
    drop_last: bool,
}

const BASE: Setup = Setup {
    batch_size: 4,
    rank: 0,
    world: 1,
    threads: 1,
    prefetch: 0,
    drop_last: false,
};

fn build(x: &NpyArray, s: &Setup) -> NumpyArrayIterator {
    NumpyArrayIterator::builder(x.clone())
        .generator(augmenting())
        .order(Order::Shuffle)
        .seed(SEED)
        .batch_size(s.batch_size)
        .shard(s.rank, s.world)
        .threads(s.threads)
        .prefetch(s.prefetch)
        .drop_last(s.drop_last)
        .build()
        .unwrap()
}

/// A delivered sample: (epoch, index, pixel bytes).
type Sample = (u64, usize, Vec<u8>);

/// The samples of the next `batches` batches (crossing epochs).
fn take(it: &mut NumpyArrayIterator, batches: usize) -> Vec<Sample> {
    let mut out = Vec::new();
    for _ in 0..batches {
        let b = it.next_batch().unwrap();
        let bytes = image_bytes(b);
        let per = bytes.len() / b.len().max(1);
        for (slot, &i) in b.indices().iter().enumerate() {
            out.push((b.epoch(), i, bytes[slot * per..(slot + 1) * per].to_vec()));
        }
    }
    out
}

/// The samples of the rest of the current epoch, and how many batches.
fn rest_of_epoch(it: &mut NumpyArrayIterator) -> (usize, Vec<Sample>) {
    let mut out = Vec::new();
    let mut batches = 0;
    while let Some(b) = it.next_in_epoch().unwrap() {
        batches += 1;
        let bytes = image_bytes(b);
        let per = bytes.len() / b.len();
        for (slot, &i) in b.indices().iter().enumerate() {
            out.push((b.epoch(), i, bytes[slot * per..(slot + 1) * per].to_vec()));
        }
    }
    (batches, out)
}

fn json_round_trip(state: &IteratorState) -> IteratorState {
    serde_json::from_str(&serde_json::to_string(state).unwrap()).unwrap()
}

#[test]
fn mid_epoch_with_other_threads_and_prefetch_continues_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 22, 8, 6, 3);
    let mut a = build(&x, &BASE);
    take(&mut a, 3);
    let state = a.state();
    assert_eq!(state.epoch, 0);
    // 12 of the 22 delivered: the plan's positions 12.. remain.
    assert_eq!(state.remaining, Some(vec![[12, 22]]));
    let expected = take(&mut a, 10);
    for (threads, prefetch) in [(1, 0), (2, 0), (2, 5), (1, 3)] {
        let mut b = build(
            &x,
            &Setup {
                threads,
                prefetch,
                ..BASE
            },
        );
        b.load_state(&json_round_trip(&state)).unwrap();
        assert_eq!(b.len(), 3, "the resumed epoch has 10 samples left");
        assert!(
            take(&mut b, 10) == expected,
            "threads {threads} prefetch {prefetch}"
        );
    }
}

#[test]
fn at_an_epoch_boundary_the_state_is_the_next_epoch_whole() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 10, 5, 5, 1);
    let mut a = build(&x, &BASE);
    rest_of_epoch(&mut a);
    let state = a.state();
    assert_eq!((state.epoch, state.remaining.clone()), (1, None));
    // The same after Keras' on_epoch_end on a fresh epoch.
    let mut k = build(&x, &BASE);
    k.on_epoch_end();
    assert_eq!(k.state(), state);
    let expected = take(&mut a, 6);
    let mut b = build(&x, &BASE);
    b.load_state(&state).unwrap();
    assert!(take(&mut b, 6) == expected);
}

#[test]
fn another_batch_size_rebatches_the_rest_of_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 21, 6, 6, 3);
    let mut a = build(&x, &BASE);
    let before = take(&mut a, 2);
    let state = a.state();
    let (_, rest) = rest_of_epoch(&mut a);
    let next = rest_of_epoch(
        &mut build(
            &x,
            &Setup {
                batch_size: 5,
                ..BASE
            },
        )
        .tap_epoch(1),
    );
    let mut b = build(
        &x,
        &Setup {
            batch_size: 5,
            ..BASE
        },
    );
    b.load_state(&state).unwrap();
    let (batches, resumed) = rest_of_epoch(&mut b);
    // 13 samples left: batches of 5, 5 and 3.
    assert_eq!(batches, 3);
    assert!(resumed == rest);
    assert_eq!(before.len() + resumed.len(), 21);
    // The next epoch is whole, in batches of 5.
    assert!(rest_of_epoch(&mut b) == next);
}

trait TapEpoch {
    fn tap_epoch(self, epoch: u64) -> Self;
}

impl TapEpoch for NumpyArrayIterator {
    fn tap_epoch(mut self, epoch: u64) -> Self {
        self.set_position(npyflow::Position { epoch, batch: 0 });
        self
    }
}

#[test]
fn saving_again_in_a_resumed_epoch_and_resuming_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 30, 4, 4, 1);
    let mut a = build(&x, &BASE);
    let mut delivered = take(&mut a, 2);
    let first = a.state();
    let expected = {
        let mut rest = take(&mut a, 6);
        rest.truncate(30 - 8);
        rest
    };
    let mut b = build(
        &x,
        &Setup {
            batch_size: 3,
            ..BASE
        },
    );
    b.load_state(&first).unwrap();
    delivered.extend(take(&mut b, 2));
    let second = b.state();
    // Positions 8..14 went in two batches of 3: 14..30 remain.
    assert_eq!(second.remaining, Some(vec![[14, 30]]));
    let mut c = build(
        &x,
        &Setup {
            batch_size: 7,
            ..BASE
        },
    );
    c.load_state(&second).unwrap();
    delivered.extend(rest_of_epoch(&mut c).1);
    assert!(delivered[8..] == expected[..]);
    assert_eq!(delivered.len(), 30);
}

#[test]
fn batches_taken_by_index_leave_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 14, 4, 4, 1);
    let mut a = build(&x, &BASE);
    let plan = Order::Shuffle.plan(14, SEED, 0);
    let state = a.state_after_batches(&[2, 0, 2]);
    assert_eq!(state.remaining, Some(vec![[4, 8], [12, 14]]));
    let got_1 = a.get(1).unwrap().indices().to_vec();
    let got_3 = a.get(3).unwrap().indices().to_vec();
    let mut b = build(&x, &BASE);
    b.load_state(&state).unwrap();
    let (batches, rest) = rest_of_epoch(&mut b);
    assert_eq!(batches, 2);
    let rest: Vec<usize> = rest.iter().map(|s| s.1).collect();
    assert_eq!(rest, [got_1, got_3].concat());
    assert_eq!(rest, [&plan[4..8], &plan[12..]].concat());
    // Every batch taken: the next epoch, whole.
    let done = a.state_after_batches(&[0, 1, 2, 3]);
    assert_eq!((done.epoch, done.remaining), (1, None));
}

#[test]
fn states_of_other_data_or_order_are_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 12, 4, 4, 1);
    let mut a = build(&x, &BASE);
    let good = a.state();
    let check = |a: &mut NumpyArrayIterator, state: IteratorState, field: &str, words: &str| {
        let e = a.load_state(&state).unwrap_err();
        let ErrorKind::InvalidArgument { name, .. } = e.kind() else {
            panic!("{e}")
        };
        assert_eq!(*name, field);
        assert!(e.to_string().contains(words), "{e}");
    };
    check(
        &mut a,
        IteratorState {
            samples: 13,
            ..good.clone()
        },
        "state.samples",
        "over 13 samples, this one has 12",
    );
    check(
        &mut a,
        IteratorState {
            order: Order::Sequential,
            ..good.clone()
        },
        "state.order",
        "in order Sequential, this one is in order Shuffle",
    );
    check(
        &mut a,
        IteratorState {
            version: 2,
            ..good.clone()
        },
        "state.version",
        "reads version 1",
    );
    for bad in [
        vec![[3, 3]],
        vec![[5, 9], [2, 4]],
        vec![[10, 13]],
        vec![[1, 4], [3, 6]],
        vec![],
    ] {
        check(
            &mut a,
            IteratorState {
                remaining: Some(bad),
                ..good.clone()
            },
            "state.remaining",
            "",
        );
    }
    // Nothing changed on error.
    assert_eq!(a.state(), good);
}

/// Reference pixels: every sample of `epoch` from the uninterrupted
/// single-process run.
fn reference(x: &NpyArray, epoch: u64) -> HashMap<usize, Vec<u8>> {
    let (_, samples) = rest_of_epoch(&mut build(x, &BASE).tap_epoch(epoch));
    samples.into_iter().map(|(_, i, p)| (i, p)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Elastic resume: W ranks take k batches each in lockstep and save
    /// (all the same state); W' ranks with batch size B' load it. The epoch
    /// then delivers every sample once plus only the padding that equalises
    /// the ranks, every rank as many batches, with the pixels of the
    /// uninterrupted run; with drop_last and unchanged W and B, exactly the
    /// uninterrupted epoch's samples.
    #[test]
    fn elastic_resume_delivers_every_sample_with_its_pixels(
        n in 1usize..30,
        world in 1usize..5,
        world2 in 1usize..5,
        batch in 1usize..6,
        batch2 in 1usize..6,
        k in 0usize..5,
        drop_last in any::<bool>(),
        same in any::<bool>(),
    ) {
        let (world2, batch2) = if same { (world, batch) } else { (world2, batch2) };
        let dir = tempfile::tempdir().unwrap();
        let x = images_u8(dir.path(), n, 3, 4, 1);
        let pixels = reference(&x, 0);
        let setup = |rank, world, batch_size| Setup { rank, world, batch_size, drop_last, ..BASE };
        let mut before = Vec::new();
        let mut states = Vec::new();
        for rank in 0..world {
            let mut it = build(&x, &setup(rank, world, batch));
            let k = k.min(it.len());
            before.extend(take(&mut it, k));
            states.push(it.state());
        }
        prop_assert!(states.iter().all(|s| *s == states[0]));
        let state = json_round_trip(&states[0]);
        let mut after = Vec::new();
        let mut counts = Vec::new();
        for rank in 0..world2 {
            let mut it = build(&x, &setup(rank, world2, batch2));
            it.load_state(&state).unwrap();
            if state.epoch == 0 {
                let (batches, samples) = rest_of_epoch(&mut it);
                counts.push((batches, samples.len()));
                after.extend(samples);
            }
        }
        prop_assert!(counts.iter().all(|c| *c == counts[0]), "{:?}", counts);
        for (epoch, i, p) in before.iter().chain(&after) {
            prop_assert_eq!(*epoch, 0);
            prop_assert!(pixels[i] == *p, "sample {}", i);
        }
        let mut all: Vec<usize> = before.iter().chain(&after).map(|s| s.1).collect();
        all.sort_unstable();
        let mut distinct = all.clone();
        distinct.dedup();
        if !drop_last {
            // Every sample, and no more repeats than padding needs: at most
            // W - 1 before the save and W' - 1 after.
            prop_assert_eq!(distinct, (0..n).collect::<Vec<_>>());
            prop_assert!(all.len() - n < world + world2, "{} of {}", all.len(), n);
        } else {
            prop_assert_eq!(distinct.len(), all.len(), "nothing twice");
            if same {
                // What the uninterrupted epoch delivers, exactly.
                let mut whole = Vec::new();
                for rank in 0..world {
                    let (_, s) = rest_of_epoch(&mut build(&x, &setup(rank, world, batch)));
                    whole.extend(s.into_iter().map(|s| s.1));
                }
                whole.sort_unstable();
                prop_assert_eq!(all, whole);
            }
        }
    }
}
