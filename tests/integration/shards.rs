//! Shards with equal counts: every rank delivers as many samples and
//! batches, together the epoch's plan (padded by wrapping around, or cut
//! with `drop_last`), and a sample's pixels never depend on the world size.

use std::collections::HashMap;

use npyflow::{
    GeneratorOptions, ImageDataGenerator, NpyArray, NumpyArrayIterator, Order, Position,
};

use crate::util::{image_bytes, images_u8};

fn augmenting() -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 30.0,
        width_shift_range: npyflow::ShiftRange::Float(0.2),
        zoom_range: npyflow::ZoomRange::Scalar(0.2),
        horizontal_flip: true,
        ..Default::default()
    })
    .unwrap()
}

/// Every sample of one epoch of `it`, one batch after another:
/// (batch count, [(index, pixel bytes)]).
fn epoch(it: &mut NumpyArrayIterator, epoch: u64) -> (usize, Vec<(usize, Vec<u8>)>) {
    it.set_position(Position { epoch, batch: 0 });
    let mut batches = 0;
    let mut samples = Vec::new();
    while let Some(b) = it.next_in_epoch().unwrap() {
        batches += 1;
        let bytes = image_bytes(b);
        let per = bytes.len() / b.len();
        for (slot, &i) in b.indices().iter().enumerate() {
            samples.push((i, bytes[slot * per..(slot + 1) * per].to_vec()));
        }
    }
    (batches, samples)
}

fn build(x: &NpyArray, rank: usize, world: usize, drop_last: bool) -> NumpyArrayIterator {
    NumpyArrayIterator::builder(x.clone())
        .generator(augmenting())
        .batch_size(4)
        .shuffle(true)
        .seed(7)
        .shard(rank, world)
        .drop_last(drop_last)
        .threads(2)
        .build()
        .unwrap()
}

#[test]
fn every_rank_delivers_as_much_and_pixels_do_not_depend_on_the_world() {
    let dir = tempfile::tempdir().unwrap();
    let n = 23;
    let x = images_u8(dir.path(), n, 9, 7, 3);
    let (_, single) = epoch(&mut build(&x, 0, 1, false), 1);
    let pixels: HashMap<usize, Vec<u8>> = single.iter().cloned().collect();
    let plan = Order::Shuffle.plan(n, 7, 1);
    assert_eq!(single.iter().map(|s| s.0).collect::<Vec<_>>(), plan);
    for world in 1..=5 {
        for drop_last in [false, true] {
            let per = if drop_last {
                n / world
            } else {
                n.div_ceil(world)
            };
            let batches = if drop_last { per / 4 } else { per.div_ceil(4) };
            let mut delivered = Vec::new();
            for rank in 0..world {
                let mut it = build(&x, rank, world, drop_last);
                assert_eq!((it.num_samples(), it.len()), (per, batches));
                let (count, samples) = epoch(&mut it, 1);
                assert_eq!(count, batches, "world {world} rank {rank} drop {drop_last}");
                let taken = if drop_last { batches * 4 } else { per };
                assert_eq!(samples.len(), taken);
                // The rank's contiguous slice of the plan (its first `taken`).
                let slice: Vec<usize> = (rank * per..rank * per + taken)
                    .map(|p| plan[p % n])
                    .collect();
                assert_eq!(samples.iter().map(|s| s.0).collect::<Vec<_>>(), slice);
                for (i, bytes) in samples {
                    assert!(
                        pixels[&i] == bytes,
                        "sample {i}, world {world}, rank {rank}"
                    );
                    delivered.push(i);
                }
            }
            if !drop_last {
                // Together: the whole epoch, the padding repeating its start.
                assert_eq!(delivered[..n], plan[..]);
                assert_eq!(delivered[n..], plan[..world * per - n]);
            }
        }
    }
}

#[test]
fn more_ranks_than_samples_wrap_around_again() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 2, 3, 3, 1);
    let plan = Order::Shuffle.plan(2, 7, 0);
    for rank in 0..5 {
        let mut it = build(&x, rank, 5, false);
        let (batches, samples) = epoch(&mut it, 0);
        assert_eq!((batches, samples.len()), (1, 1));
        assert_eq!(samples[0].0, plan[rank % 2]);
        // With drop_last, nobody gets anything, and nobody waits.
        let mut it = build(&x, rank, 5, true);
        assert_eq!((it.len(), epoch(&mut it, 0).0), (0, 0));
    }
}
