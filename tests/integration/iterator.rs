//! The iterator: Keras' upstream tests (keras-behaviour §5.1–5.3) ported,
//! plus the deliberate fixes, the reusable buffer, sharding and positions.

use npyflow::npy::ElemType;
use npyflow::{
    ErrorKind, GeneratorOptions, ImageDataGenerator, NumpyArrayIterator, Order, OutputDtype,
    Position, Subset,
};

use crate::util::{images_u8, labels, write};

fn gen_with_split(split: f64) -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        validation_split: split,
        ..Default::default()
    })
    .unwrap()
}

fn y_of(b: &npyflow::Batch) -> Vec<i64> {
    b.y()
        .unwrap()
        .view::<i64>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn unshuffled_batches_follow_keras_composition() {
    // §5.2 items 1, 2, 13: 8 samples, batch 3 -> [0,1,2] [3,4,5] [6,7]; len 3.
    let dir = tempfile::tempdir().unwrap();
    for c in [1, 3, 4] {
        let x = images_u8(dir.path(), 8, 20, 20, c);
        let y = labels(dir.path(), "y.npy", &(0..8).collect::<Vec<_>>());
        let w = write(
            dir.path(),
            "w.npy",
            ElemType::F64,
            &[8],
            &(1..=8).map(|v| v as f64).collect::<Vec<_>>(),
        );
        let mut it = NumpyArrayIterator::builder(x)
            .y(y)
            .sample_weight(w)
            .batch_size(3)
            .build()
            .unwrap();
        assert_eq!(it.len(), 3);
        let b = it.next_batch().unwrap();
        assert_eq!(b.shape(), [3, 20, 20, c]);
        assert_eq!(y_of(b), vec![0, 1, 2]);
        let w: Vec<f64> = b
            .sample_weight()
            .unwrap()
            .view::<f64>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(w, vec![1.0, 2.0, 3.0]);
        assert_eq!(y_of(it.next_batch().unwrap()), vec![3, 4, 5]);
        let last = it.next_batch().unwrap();
        assert_eq!(last.len(), 2, "the last partial batch is returned as-is");
        assert_eq!(y_of(last), vec![6, 7]);
        // next() crosses into a new epoch forever.
        assert_eq!(y_of(it.next_batch().unwrap()), vec![0, 1, 2]);
        assert_eq!(it.position(), Position { epoch: 1, batch: 1 });
        assert_eq!(y_of(it.get(0).unwrap()), vec![0, 1, 2]);
    }
}

#[test]
fn images_are_the_source_rows_converted() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 5, 4, 3, 2);
    let src = x.view::<u8>().unwrap().to_owned();
    for dtype in [OutputDtype::F32, OutputDtype::F64] {
        let mut it = NumpyArrayIterator::builder(x.clone())
            .batch_size(2)
            .shuffle(true)
            .seed(3)
            .dtype(dtype)
            .build()
            .unwrap();
        while let Some(b) = it.next_in_epoch().unwrap() {
            for (slot, &j) in b.indices().iter().enumerate() {
                let want: Vec<f64> = src
                    .index_axis(ndarray::Axis(0), j)
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                let got: Vec<f64> = match dtype {
                    OutputDtype::F32 => b
                        .images::<f32>()
                        .unwrap()
                        .index_axis(ndarray::Axis(0), slot)
                        .iter()
                        .map(|&v| v as f64)
                        .collect(),
                    _ => b
                        .images::<f64>()
                        .unwrap()
                        .index_axis(ndarray::Axis(0), slot)
                        .iter()
                        .copied()
                        .collect(),
                };
                assert_eq!(got, want);
            }
        }
        assert!(
            it.next_in_epoch().unwrap().is_some(),
            "a new epoch starts after None"
        );
    }
}

#[test]
fn shuffled_with_seed_differs_from_file_order_and_repeats() {
    // §5.2 item 3 and 14, made deterministic: same seed => same epochs.
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 8, 2, 2, 1);
    let y = labels(dir.path(), "y.npy", &(0..8).collect::<Vec<_>>());
    let run = |seed| {
        let mut it = NumpyArrayIterator::builder(x.clone())
            .y(y.clone())
            .batch_size(3)
            .shuffle(true)
            .seed(seed)
            .build()
            .unwrap();
        (0..6)
            .map(|_| y_of(it.next_batch().unwrap()))
            .collect::<Vec<_>>()
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
    assert_ne!(a[0], vec![0, 1, 2]);
    assert_ne!(a[0..3], a[3..6], "each epoch is a new permutation");
    // get(i) is stable within an epoch; on_epoch_end reshuffles.
    let mut it = NumpyArrayIterator::builder(x)
        .y(y)
        .batch_size(3)
        .shuffle(true)
        .seed(123)
        .build()
        .unwrap();
    let first = y_of(it.get(0).unwrap());
    assert_eq!(first, y_of(it.get(0).unwrap()));
    it.on_epoch_end();
    assert_ne!(first, y_of(it.get(0).unwrap()));
}

#[test]
fn aux_arrays_pass_through_and_length_mismatches_are_keras_errors() {
    // §5.2 items 5, 6, 8, 9, 11, 12.
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 8, 3, 3, 3);
    let misc1 = write(
        dir.path(),
        "m1.npy",
        ElemType::F32,
        &[8],
        &(0..8).map(|v| v as f32 * 0.5).collect::<Vec<_>>(),
    );
    let misc2 = write(
        dir.path(),
        "m2.npy",
        ElemType::U16,
        &[8, 3, 3],
        &(0..72u16).collect::<Vec<_>>(),
    );
    let mut it = NumpyArrayIterator::builder(x.clone())
        .aux(misc1.clone())
        .aux(misc2)
        .batch_size(2)
        .build()
        .unwrap();
    for k in 0..3 {
        let b = it.next_batch().unwrap();
        let m1: Vec<f32> = b.aux()[0].view::<f32>().unwrap().iter().copied().collect();
        assert_eq!(m1, vec![k as f32, k as f32 + 0.5]);
        let m2 = b.aux()[1].view::<u16>().unwrap();
        assert_eq!(m2.shape(), &[2, 3, 3]);
        assert_eq!(m2[[1, 2, 2]], ((2 * k + 1) * 9 + 8) as u16);
    }
    let bad = write(dir.path(), "m9.npy", ElemType::F32, &[9], &[0f32; 9]);
    let e = NumpyArrayIterator::builder(x.clone())
        .aux(bad)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("All of the arrays in"), "{e}");
    let y9 = labels(dir.path(), "y9.npy", &[0; 9]);
    let e = NumpyArrayIterator::builder(x.clone())
        .aux(misc1)
        .y(y9.clone())
        .build()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("`x` (images tensor) and `y` (labels) "),
        "{e}"
    );
    let e = NumpyArrayIterator::builder(x)
        .sample_weight(y9)
        .build()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("`x` (images tensor) and `sample_weight`"),
        "{e}"
    );
}

#[test]
fn rank_batch_size_and_shard_errors() {
    // §5.3 item 4: a rank-1 array is refused.
    let dir = tempfile::tempdir().unwrap();
    let flat = write(
        dir.path(),
        "flat.npy",
        ElemType::I64,
        &[32],
        &(0..32i64).collect::<Vec<_>>(),
    );
    let e = NumpyArrayIterator::builder(flat).build().unwrap_err();
    assert!(e.to_string().contains("should have rank 4"), "{e}");
    let x = images_u8(dir.path(), 4, 2, 2, 1);
    let e = NumpyArrayIterator::builder(x.clone())
        .batch_size(0)
        .build()
        .unwrap_err();
    assert!(matches!(
        e.kind(),
        ErrorKind::InvalidArgument {
            name: "batch_size",
            ..
        }
    ));
    assert!(NumpyArrayIterator::builder(x.clone())
        .shard(3, 3)
        .build()
        .is_err());
    let mut it = NumpyArrayIterator::builder(x)
        .batch_size(3)
        .build()
        .unwrap();
    assert!(matches!(
        it.get(2).unwrap_err().kind(),
        ErrorKind::IndexOutOfRange { index: 2, len: 2 }
    ));
}

#[test]
fn validation_split_subsets_and_class_check() {
    // §5.3 item 2.
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 8, 2, 2, 1);
    let sorted = labels(dir.path(), "sorted.npy", &[0, 0, 0, 0, 1, 1, 1, 1]);
    let e = NumpyArrayIterator::builder(x.clone())
        .y(sorted.clone())
        .generator(gen_with_split(0.5))
        .subset(Subset::Validation)
        .build()
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "Training and validation subsets have different number of classes after the split"
        ),
        "{e}"
    );
    // ignore_class_split (Keras 3) lets it through.
    NumpyArrayIterator::builder(x.clone())
        .y(sorted)
        .generator(gen_with_split(0.5))
        .subset(Subset::Validation)
        .ignore_class_split(true)
        .build()
        .unwrap();
    let mixed = labels(dir.path(), "mixed.npy", &[0, 0, 1, 1, 0, 0, 1, 1]);
    let w = write(
        dir.path(),
        "w.npy",
        ElemType::F32,
        &[8],
        &(10..18).map(|v| v as f32).collect::<Vec<_>>(),
    );
    for (subset, want_y, want_w) in [
        (
            Subset::Validation,
            vec![0, 0, 1, 1],
            vec![10.0, 11.0, 12.0, 13.0],
        ),
        (
            Subset::Training,
            vec![0, 0, 1, 1],
            vec![14.0, 15.0, 16.0, 17.0],
        ),
    ] {
        let mut it = NumpyArrayIterator::builder(x.clone())
            .y(mixed.clone())
            .sample_weight(w.clone())
            .generator(gen_with_split(0.5))
            .subset(subset)
            .batch_size(8)
            .build()
            .unwrap();
        let b = it.next_batch().unwrap();
        assert_eq!(y_of(b), want_y);
        // Deliberate fix 2: weights are sliced with the subset.
        let w: Vec<f32> = b
            .sample_weight()
            .unwrap()
            .view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(w, want_w);
        assert_eq!(
            b.indices(),
            &[0, 1, 2, 3],
            "indices are subset-relative, as Keras' j"
        );
    }
    assert!("foo".parse::<Subset>().is_err());
    // validation_split = 0: the validation subset is empty and next() yields empty batches.
    let mut it = NumpyArrayIterator::builder(x)
        .subset(Subset::Validation)
        .build()
        .unwrap();
    assert_eq!(it.len(), 0);
    assert!(it.next_batch().unwrap().is_empty());
}

#[test]
fn weights_are_kept_without_y() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 4, 2, 2, 1);
    let w = write(
        dir.path(),
        "w.npy",
        ElemType::F64,
        &[4],
        &[0.5f64, 1.5, 2.5, 3.5],
    );
    let mut it = NumpyArrayIterator::builder(x)
        .sample_weight(w)
        .batch_size(4)
        .build()
        .unwrap();
    let b = it.next_batch().unwrap();
    assert!(b.y().is_none());
    assert_eq!(
        b.sample_weight().unwrap().to_f64(),
        vec![0.5, 1.5, 2.5, 3.5]
    );
}

#[test]
fn one_buffer_is_reused_for_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 50, 4, 4, 3);
    let mut it = NumpyArrayIterator::builder(x.clone())
        .batch_size(8)
        .shuffle(true)
        .seed(1)
        .prefetch(0)
        .build()
        .unwrap();
    let ptr = it.next_batch().unwrap().images::<f32>().unwrap().as_ptr();
    for _ in 0..20 {
        assert_eq!(
            it.next_batch().unwrap().images::<f32>().unwrap().as_ptr(),
            ptr
        );
    }
    assert_eq!(it.get(3).unwrap().images::<f32>().unwrap().as_ptr(), ptr);
    // With prefetch, depth + 1 buffers circulate and none is ever added.
    let mut it = NumpyArrayIterator::builder(x)
        .batch_size(8)
        .shuffle(true)
        .seed(1)
        .prefetch(2)
        .build()
        .unwrap();
    let mut ptrs = std::collections::HashSet::new();
    for _ in 0..40 {
        ptrs.insert(it.next_batch().unwrap().images::<f32>().unwrap().as_ptr() as usize);
    }
    assert!(ptrs.len() <= 3, "{} buffers", ptrs.len());
}

#[test]
fn positions_restore_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 20, 2, 2, 1);
    let y = labels(dir.path(), "y.npy", &(0..20).collect::<Vec<_>>());
    let build = || {
        NumpyArrayIterator::builder(x.clone())
            .y(y.clone())
            .batch_size(3)
            .order(Order::Shuffle)
            .seed(9)
            .build()
            .unwrap()
    };
    let mut a = build();
    let all: Vec<Vec<i64>> = (0..17).map(|_| y_of(a.next_batch().unwrap())).collect();
    let mut b = build();
    for _ in 0..9 {
        b.next_batch().unwrap();
    }
    let saved = serde_json::to_string(&b.position()).unwrap();
    let mut c = build();
    c.set_position(serde_json::from_str(&saved).unwrap());
    let rest: Vec<Vec<i64>> = (9..17).map(|_| y_of(c.next_batch().unwrap())).collect();
    assert_eq!(rest, all[9..]);
}

#[test]
fn drop_last_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 10, 2, 2, 1);
    let y = labels(dir.path(), "y.npy", &(0..10).collect::<Vec<_>>());
    let mut it = NumpyArrayIterator::builder(x.clone())
        .y(y.clone())
        .batch_size(3)
        .drop_last(true)
        .build()
        .unwrap();
    assert_eq!(it.len(), 3);
    let mut seen = 0;
    it.for_each_in_epoch(|b| {
        assert_eq!(b.len(), 3);
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 3);
    // Three shards of one shuffled epoch partition the data, in the global order.
    let mut all = Vec::new();
    for k in 0..3 {
        let mut it = NumpyArrayIterator::builder(x.clone())
            .y(y.clone())
            .batch_size(2)
            .shuffle(true)
            .seed(4)
            .shard(k, 3)
            .build()
            .unwrap();
        it.for_each_in_epoch(|b| {
            all.extend(y_of(b));
            Ok(())
        })
        .unwrap();
    }
    let global = Order::Shuffle.plan(10, 4, 0);
    assert_eq!(all, global.iter().map(|&i| i as i64).collect::<Vec<_>>());
}

#[test]
fn rescale_only_generator_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(
        dir.path(),
        "x.npy",
        ElemType::U8,
        &[1, 1, 2, 1],
        &[255u8, 51],
    );
    let g = ImageDataGenerator::new(GeneratorOptions {
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    })
    .unwrap();
    let mut it = NumpyArrayIterator::builder(x).generator(g).build().unwrap();
    let b = it.next_batch().unwrap();
    let v: Vec<f32> = b.images::<f32>().unwrap().iter().copied().collect();
    assert_eq!(
        v,
        vec![
            255f32 * (1.0f64 / 255.0) as f32,
            51f32 * (1.0f64 / 255.0) as f32
        ]
    );
}

#[test]
fn channels_first_batches_keep_the_stored_layout() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 3, 3, 5, 6);
    let mut it = NumpyArrayIterator::builder(x)
        .data_format(npyflow::DataFormat::ChannelsFirst)
        .build()
        .unwrap();
    assert_eq!(it.next_batch().unwrap().shape(), [3, 3, 5, 6]);
}

#[test]
fn featurewise_needs_statistics_and_fit_provides_them() {
    // Deliberate fix 3: no statistics is an error, not a warning.
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 16, 5, 4, 3);
    let opts = GeneratorOptions {
        featurewise_center: true,
        featurewise_std_normalization: true,
        rescale: Some(1.0 / 255.0),
        dtype: OutputDtype::F64,
        ..Default::default()
    };
    let mut g = ImageDataGenerator::new(opts).unwrap();
    let mut it = g.flow(x.clone()).batch_size(16).build().unwrap();
    let e = it.next_batch().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::MissingStatistics { .. }),
        "{e}"
    );
    // keras-behaviour §5.3 item 11: after fit, a whole-dataset batch has mean 0 and std 1 per channel.
    g.fit(&x, &npyflow::FitConfig::default()).unwrap();
    let mut it = g.flow(x).batch_size(16).build().unwrap();
    let b = it.next_batch().unwrap();
    let imgs = b.images::<f64>().unwrap();
    for c in 0..3 {
        let v: Vec<f64> = imgs
            .index_axis(ndarray::Axis(3), c)
            .iter()
            .copied()
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let std = (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!(mean.abs() < 1e-6, "channel {c} mean {mean}");
        assert!((1.0 - std).abs() < 1e-5, "channel {c} std {std}");
    }
}

#[test]
fn save_to_dir_writes_every_final_image_and_checks_the_folder_first() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 5, 6, 4, 3);
    let out = dir.path().join("saved");
    for format in [
        npyflow::SaveFormat::Png,
        npyflow::SaveFormat::Jpeg,
        npyflow::SaveFormat::Bmp,
        npyflow::SaveFormat::Tiff,
    ] {
        let mut it = NumpyArrayIterator::builder(x.clone())
            .batch_size(2)
            .save_to_dir(&out, "pre", format)
            .seed(1)
            .prefetch(4)
            .build()
            .unwrap();
        it.for_each_in_epoch(|_| Ok(())).unwrap();
        // Let the prefetcher run ahead into the next epoch: nothing it
        // builds but does not yield may be saved.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let ext = format.extension();
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(ext))
            .collect();
        names.sort();
        assert_eq!(names.len(), 5, "{names:?}");
        for n in &names {
            assert!(
                n.starts_with("pre_") && n.len() == format!("pre_0_0000.{ext}").len(),
                "{n}"
            );
            let img = image::open(out.join(n)).unwrap();
            assert_eq!((img.width(), img.height()), (4, 6));
        }
    }
    // An unwritable destination fails at build time, before any batch.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = NumpyArrayIterator::builder(x)
        .save_to_dir(&file, "", npyflow::SaveFormat::Png)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("not-a-dir"), "{e}");
}
