//! The pipeline: identical bytes whatever the thread count, prefetch depth
//! or order re-creation; every index once per epoch with prefetch on.

use npyflow::{
    GeneratorOptions, ImageDataGenerator, NumpyArrayIterator, Order, Position, ShiftRange,
    ZoomRange,
};

use crate::util::{epoch_bytes, image_bytes, images_u8, worst_residency};

fn augmenting() -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 20.0,
        width_shift_range: ShiftRange::Float(0.1),
        height_shift_range: ShiftRange::Float(0.1),
        shear_range: 10.0,
        zoom_range: ZoomRange::Scalar(0.1),
        horizontal_flip: true,
        channel_shift_range: 5.0,
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn same_bytes_for_any_threads_and_prefetch() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 37, 12, 10, 3);
    for order in [
        Order::Sequential,
        Order::Shuffle,
        Order::Blocks {
            block_rows: 5,
            window: 2,
        },
    ] {
        let mut reference = None;
        for threads in [1, 2, 3, 8] {
            for prefetch in [0, 1, 3, 4] {
                let mut it = augmenting()
                    .flow(x.clone())
                    .order(order)
                    .seed(77)
                    .batch_size(8)
                    .threads(threads)
                    .prefetch(prefetch)
                    .build()
                    .unwrap();
                // Two epochs: the second must differ from the first (new draws).
                let e0 = epoch_bytes(&mut it);
                let e1 = epoch_bytes(&mut it);
                let mut seen: Vec<usize> = e0.iter().flat_map(|(i, _)| i.clone()).collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..37).collect::<Vec<_>>());
                match &reference {
                    None => reference = Some((e0, e1)),
                    Some((r0, r1)) => {
                        assert!(
                            r0 == &e0 && r1 == &e1,
                            "{order:?} threads={threads} prefetch={prefetch} differs"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn restored_position_matches_an_uninterrupted_run_with_prefetch() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 30, 6, 6, 1);
    let build = || {
        augmenting()
            .flow(x.clone())
            .order(Order::Blocks {
                block_rows: 4,
                window: 2,
            })
            .seed(5)
            .batch_size(7)
            .prefetch(3)
            .build()
            .unwrap()
    };
    let mut a = build();
    let all: Vec<Vec<u8>> = (0..11)
        .map(|_| image_bytes(a.next_batch().unwrap()))
        .collect();
    let mut b = build();
    b.set_position(Position { epoch: 1, batch: 2 }); // 5 batches per epoch: batch 7 overall
    let rest: Vec<Vec<u8>> = (7..11)
        .map(|_| image_bytes(b.next_batch().unwrap()))
        .collect();
    assert_eq!(rest, all[7..]);
    // get() between next_batch() calls does not disturb the stream.
    let mut c = build();
    c.next_batch().unwrap();
    let g = image_bytes(c.get(4).unwrap());
    assert_eq!(g, all[4]);
    assert_eq!(image_bytes(c.next_batch().unwrap()), all[1]);
}

#[test]
fn telemetry_is_recorded_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 100, 8, 8, 3);
    let mut it = NumpyArrayIterator::builder(x.clone())
        .batch_size(16)
        .shuffle(true)
        .seed(2)
        .build()
        .unwrap();
    assert!(it.last_epoch_telemetry().is_none());
    npyflow::cache::evict_array(&x).unwrap();
    it.for_each_in_epoch(|_| Ok(())).unwrap();
    let t = it.last_epoch_telemetry().unwrap().clone();
    assert_eq!(t.samples, 100);
    assert_eq!(t.batches, 7);
    assert!(t.throughput > 0.0 && t.wall > std::time::Duration::ZERO);
    assert!(t.time_to_first_batch <= t.wall);
    assert!(t.peak_anon_bytes > 0, "RssAnon is readable on Linux");
    assert_eq!(t.residency_after.len(), 1);
    assert!(t.residency_after[0].1 > 0.0, "the epoch read the file");
    let json = serde_json::to_value(&t).unwrap();
    assert!(json["throughput"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_cache_budget_smaller_than_a_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 10, 32, 32, 3);
    let e = NumpyArrayIterator::builder(x)
        .batch_size(8)
        .cache_budget(4096)
        .build()
        .unwrap_err();
    assert!(
        matches!(e.kind(), npyflow::ErrorKind::MemoryLimit { .. }),
        "{e}"
    );
}

#[test]
fn the_cache_budget_bounds_residency_while_iterating() {
    // 4 MiB of images, a 512 KiB budget: mincore-measured residency of the
    // file must stay near the budget at every batch, in every order.
    let dir = tempfile::Builder::new()
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let x = images_u8(dir.path(), 1024, 32, 32, 4);
    let budget = 512 * 1024u64;
    for order in [
        Order::Sequential,
        Order::Shuffle,
        Order::Blocks {
            block_rows: 16,
            window: 2,
        },
    ] {
        npyflow::cache::evict_array(&x).unwrap();
        let before = npyflow::cache::residency_of(&x).unwrap().resident_bytes();
        if before > budget {
            println!(
                "skipped: eviction does not work on this filesystem ({before} bytes stay resident)"
            );
            return;
        }
        let worst = worst_residency(&x, order, 16, budget);
        // Slack: one batch of rows plus the kernel's read-ahead window.
        let slack = 16 * 32 * 32 * 4 + 256 * 1024;
        assert!(
            worst <= budget + slack,
            "{order:?}: {worst} resident bytes over a {budget} budget"
        );
    }
}

/// The pipeline reads each row straight into the resampler's edge-replicated
/// copy (f32, `nearest`, small images): the batches hold, to the bit, what
/// the generator makes of the image in hand with the same draws (channel
/// shift included), through the map and through `pread` alike.
#[test]
fn batches_equal_the_generator_on_the_image_in_hand() {
    use npyflow::npy::{NpyArray, OpenOptions, SourceKind};
    use npyflow::{ImageShape, SampleRng, Scratch, Stream};
    let dir = tempfile::tempdir().unwrap();
    let (n, h, w, c) = (21, 12, 10, 3);
    let path = images_u8(dir.path(), n, h, w, c).path().to_path_buf();
    let shape = ImageShape::hwc(h, w, c);
    let reference = NpyArray::open(&path).unwrap();
    let (g, mut scratch) = (augmenting(), Scratch::default());
    for source in [SourceKind::Mmap, SourceKind::Read] {
        let options = OpenOptions {
            source,
            ..Default::default()
        };
        let x = NpyArray::open_with(&path, options).unwrap();
        let mut it = augmenting()
            .flow(x)
            .order(Order::Shuffle)
            .seed(9)
            .batch_size(4)
            .threads(2)
            .build()
            .unwrap();
        for epoch in 0..2u64 {
            let batches = epoch_bytes(&mut it);
            for (indices, bytes) in batches {
                let got: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_ne_bytes(b.try_into().unwrap()))
                    .collect();
                for (k, &row) in indices.iter().enumerate() {
                    let mut image = vec![0f32; shape.len()];
                    reference.read_sample_into(row, &mut image).unwrap();
                    let mut rng = SampleRng::new(9, Stream::Augment, epoch, row as u64);
                    g.process_sample(&mut image, shape, &mut rng, &mut scratch)
                        .unwrap();
                    let got = &got[k * shape.len()..(k + 1) * shape.len()];
                    let same = got
                        .iter()
                        .zip(&image)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{source:?} epoch {epoch} row {row}");
                }
            }
        }
    }
}
