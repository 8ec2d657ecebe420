//! Concurrency: which types cross threads, several iterators sharing one map
//! across threads, and every `&self` method of arrays, archives and the
//! generator called from several threads at once — each compared with a
//! single-threaded run of the same calls.

use std::path::Path;
use std::sync::Barrier;

use npyflow::npy::{ElemType, NpyArray, NpzArchive, NpzWriter, OpenOptions, SourceKind};
use npyflow::{
    Batch, GeneratorOptions, ImageDataGenerator, ImageShape, NumpyArrayIterator, Order, SampleRng,
    Scratch, ShiftRange, Statistics, Stream, ZoomRange,
};

use crate::util::image_bytes;

const THREADS: usize = 6;

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn shared_types_are_send_and_sync() {
    // Shared between threads by reference or clone.
    send_sync::<NpyArray>();
    send_sync::<NpzArchive>();
    send_sync::<ImageDataGenerator>();
    send_sync::<GeneratorOptions>();
    send_sync::<Statistics>();
    send_sync::<Batch>();
    send_sync::<npyflow::Error>();
    // Owned by one thread at a time (it holds channels to its prefetcher),
    // but movable to a worker thread.
    send::<NumpyArrayIterator>();
    send::<npyflow::IteratorBuilder>();
}

fn augmenting() -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 15.0,
        width_shift_range: ShiftRange::Float(0.15),
        zoom_range: ZoomRange::Scalar(0.1),
        horizontal_flip: true,
        channel_shift_range: 4.0,
        fill_mode: npyflow::FillMode::Reflect,
        ..Default::default()
    })
    .unwrap()
}

fn images(dir: &Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("x.npy");
    let data: Vec<u8> = (0..n * 10 * 9 * 3).map(|k| (k * 13 % 253) as u8).collect();
    npyflow::npy::write_npy(&path, ElemType::U8, &[n, 10, 9, 3], &data).unwrap();
    path
}

/// The configuration of iterator `k`: a different order, seed, threads and
/// prefetch per `k`, so the shared map is read in many patterns at once.
fn iterator(x: &NpyArray, k: usize) -> NumpyArrayIterator {
    let order = match k % 3 {
        0 => Order::Sequential,
        1 => Order::Shuffle,
        _ => Order::Blocks {
            block_rows: 3,
            window: 2,
        },
    };
    NumpyArrayIterator::builder(x.clone())
        .generator(augmenting())
        .batch_size(4 + k % 3)
        .order(order)
        .seed(k as u64)
        .threads(1 + k % 2)
        .prefetch(k % 3)
        .build()
        .unwrap()
}

fn two_epochs(it: &mut NumpyArrayIterator) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..2 {
        it.for_each_in_epoch(|b| {
            out.push(image_bytes(b));
            Ok(())
        })
        .unwrap();
    }
    out
}

#[test]
fn iterators_sharing_one_map_across_threads_match_a_single_threaded_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = images(dir.path(), 29);
    for source in [SourceKind::Mmap, SourceKind::Read] {
        let x = NpyArray::open_with(
            &path,
            OpenOptions {
                source,
                ..Default::default()
            },
        )
        .unwrap();
        let alone: Vec<_> = (0..THREADS)
            .map(|k| two_epochs(&mut iterator(&x, k)))
            .collect();
        let barrier = Barrier::new(THREADS);
        let together: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|k| {
                    let (x, barrier) = (x.clone(), &barrier);
                    s.spawn(move || {
                        let mut it = iterator(&x, k);
                        barrier.wait();
                        two_epochs(&mut it)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for k in 0..THREADS {
            assert!(
                alone[k] == together[k],
                "{source:?}: iterator {k} differs when run beside others"
            );
        }
    }
}

#[test]
fn an_iterator_moved_to_another_thread_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let x = NpyArray::open(images(dir.path(), 17)).unwrap();
    let reference = two_epochs(&mut iterator(&x, 4));
    let mut it = iterator(&x, 4);
    let mut got = vec![image_bytes(it.next_in_epoch().unwrap().unwrap())];
    // Mid-epoch, with its prefetcher running, the iterator moves to another
    // thread: the rest of this epoch and the next one follow unchanged.
    let rest = std::thread::spawn(move || {
        let mut out = Vec::new();
        for _ in 0..2 {
            it.for_each_in_epoch(|b| {
                out.push(image_bytes(b));
                Ok(())
            })
            .unwrap();
        }
        out
    })
    .join()
    .unwrap();
    got.extend(rest);
    assert!(
        got == reference,
        "batches changed when the iterator changed threads"
    );
}

/// What one thread computes with every `&self` read method of an array.
fn array_calls(x: &NpyArray, offset: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut f32_row = vec![0f32; x.row_len()];
    let mut f64_row = vec![0f64; x.row_len()];
    let mut raw = vec![0u8; x.row_bytes()];
    for step in 0..3 * x.len() {
        let i = (step * 7 + offset) % x.len();
        x.read_sample_into(i, &mut f32_row).unwrap();
        x.read_sample_into(i, &mut f64_row).unwrap();
        x.read_row_raw(i, &mut raw).unwrap();
        x.check_unchanged().unwrap();
        out.extend(f32_row.iter().map(|v| v.to_bits() as u64));
        out.extend(f64_row.iter().map(|v| v.to_bits()));
        out.extend(raw.iter().map(|&b| b as u64));
        if x.source_kind() == SourceKind::Mmap {
            let v = x.view::<u16>().unwrap();
            let s = x.sample_view::<u16>(i).unwrap();
            out.extend(s.iter().map(|&v| v as u64));
            out.push(v.iter().map(|&v| v as u64).sum());
        }
    }
    out.extend(x.to_vec_f64().unwrap().iter().map(|v| v.to_bits()));
    out
}

#[test]
fn array_methods_called_from_several_threads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let data: Vec<u16> = (0..40 * 6 * 5).map(|k| (k * 17) as u16).collect();
    npyflow::npy::write_npy(
        &path,
        ElemType::U16,
        &[40, 6, 5],
        bytemuck::cast_slice(&data),
    )
    .unwrap();
    for source in [SourceKind::Mmap, SourceKind::Read] {
        let x = NpyArray::open_with(
            &path,
            OpenOptions {
                source,
                ..Default::default()
            },
        )
        .unwrap();
        let alone: Vec<_> = (0..THREADS).map(|k| array_calls(&x, k)).collect();
        let barrier = Barrier::new(THREADS);
        let together: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|k| {
                    let (x, barrier) = (&x, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        array_calls(x, k)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(alone == together, "{source:?}: concurrent reads differ");
        // And the values are the file's.
        let mut row = vec![0f64; 30];
        x.read_sample_into(39, &mut row).unwrap();
        assert_eq!(row[29], data[39 * 30 + 29] as f64);
    }
}

#[test]
fn npz_members_opened_and_read_from_several_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.npz");
    let mut z = NpzWriter::create(&path).unwrap();
    for m in 0..4 {
        let data: Vec<f64> = (0..12 * 5).map(|k| (k * (m + 1)) as f64).collect();
        z.add_f64(&format!("m{m}"), &[12, 5], &data).unwrap();
    }
    z.finish().unwrap();
    for source in [SourceKind::Mmap, SourceKind::Read] {
        let archive = NpzArchive::open_with(
            &path,
            OpenOptions {
                source,
                ..Default::default()
            },
        )
        .unwrap();
        let sums: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|k| {
                    let archive = &archive;
                    s.spawn(move || {
                        archive
                            .array(&format!("m{}", k % 4))
                            .unwrap()
                            .to_vec_f64()
                            .unwrap()
                            .iter()
                            .sum()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (k, sum) in sums.iter().enumerate() {
            assert_eq!(
                *sum,
                (0..60).map(|v| (v * (k % 4 + 1)) as f64).sum::<f64>(),
                "{source:?} member {k}"
            );
        }
    }
}

/// One thread's use of a shared generator: draw, apply, standardise.
fn generator_calls(g: &ImageDataGenerator, k: usize) -> Vec<u32> {
    let shape = ImageShape::hwc(7, 6, 3);
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    for i in 0..20 {
        let mut rng = SampleRng::new(5, Stream::Augment, 0, (k * 100 + i) as u64);
        let mut image: Vec<f32> = (0..shape.len())
            .map(|v| ((v * 11 + i) % 256) as f32)
            .collect();
        let params = g.get_random_transform(shape, &mut rng);
        g.apply_transform(&mut image, shape, &params, &mut scratch)
            .unwrap();
        g.standardize(&mut image, shape).unwrap();
        g.process_sample(&mut image, shape, &mut rng, &mut scratch)
            .unwrap();
        out.extend(image.iter().map(|v| v.to_bits()));
    }
    out
}

#[test]
fn one_generator_used_from_several_threads_at_once() {
    let g = ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 40.0,
        shear_range: 10.0,
        zoom_range: ZoomRange::Scalar(0.3),
        height_shift_range: ShiftRange::Pixels(2),
        vertical_flip: true,
        brightness_range: Some([0.5, 1.5]),
        samplewise_center: true,
        samplewise_std_normalization: true,
        interpolation_order: 3,
        fill_mode: npyflow::FillMode::Wrap,
        ..Default::default()
    })
    .unwrap();
    let alone: Vec<_> = (0..THREADS).map(|k| generator_calls(&g, k)).collect();
    let barrier = Barrier::new(THREADS);
    let together: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|k| {
                let (g, barrier) = (&g, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    generator_calls(g, k)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        alone == together,
        "a shared generator gives different results under concurrency"
    );
}
