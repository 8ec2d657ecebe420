//! Batches the caller owns: `new_batch`, `next_into` and `get_into` give
//! the lending API's bytes, a kept batch is never written again, and a
//! batch of another layout is an error.

use npyflow::npy::ElemType;
use npyflow::{
    Batch, ErrorKind, GeneratorOptions, ImageDataGenerator, NpyArray, NumpyArrayIterator,
    OutputDtype, ShiftRange,
};

use crate::util::{image_bytes, images_u8, labels, write};

/// Everything a batch holds, as bytes: images, indices, position, y,
/// sample weights and auxiliary rows.
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    images: Vec<u8>,
    indices: Vec<usize>,
    epoch: u64,
    batch_index: usize,
    rows: Vec<Vec<u8>>,
}

fn snapshot(b: &Batch) -> Snapshot {
    Snapshot {
        images: image_bytes(b),
        indices: b.indices().to_vec(),
        epoch: b.epoch(),
        batch_index: b.batch_index(),
        rows: b
            .y()
            .into_iter()
            .chain(b.sample_weight())
            .chain(b.aux())
            .map(|r| r.bytes().to_vec())
            .collect(),
    }
}

/// 23 images of 6×5×3 with labels, weights and one auxiliary array.
struct Data {
    dir: tempfile::TempDir,
    x: NpyArray,
    y: NpyArray,
    w: NpyArray,
    aux: NpyArray,
}

fn data() -> Data {
    let dir = tempfile::tempdir().unwrap();
    let n = 23;
    let x = images_u8(dir.path(), n, 6, 5, 3);
    let y = labels(dir.path(), "y.npy", &(0..n as i64).collect::<Vec<_>>());
    let w = write(
        dir.path(),
        "w.npy",
        ElemType::F32,
        &[n],
        &(0..n).map(|i| i as f32 * 0.5).collect::<Vec<_>>(),
    );
    let aux = write(
        dir.path(),
        "aux.npy",
        ElemType::U16,
        &[n, 2],
        &(0..2 * n as u16).collect::<Vec<_>>(),
    );
    Data { dir, x, y, w, aux }
}

/// A shuffled, augmented iterator: the pipeline's every stage matters.
fn iterator(d: &Data, prefetch: usize, threads: usize) -> NumpyArrayIterator {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 30.0,
        width_shift_range: ShiftRange::Float(0.2),
        horizontal_flip: true,
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    })
    .unwrap();
    generator
        .flow(d.x.clone())
        .y(d.y.clone())
        .sample_weight(d.w.clone())
        .aux(d.aux.clone())
        .batch_size(4)
        .seed(9)
        .prefetch(prefetch)
        .threads(threads)
        .build()
        .unwrap()
}

/// Two epochs through the lending API.
fn lent(it: &mut NumpyArrayIterator) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for _ in 0..2 {
        while let Some(b) = it.next_in_epoch().unwrap() {
            out.push(snapshot(b));
        }
    }
    out
}

/// Two epochs through `next_into`, keeping every batch.
fn owned(it: &mut NumpyArrayIterator) -> Vec<Batch> {
    let mut kept = Vec::new();
    let mut batch = it.new_batch();
    for _ in 0..2 {
        while it.next_into(&mut batch).unwrap() {
            kept.push(std::mem::replace(&mut batch, it.new_batch()));
        }
    }
    kept
}

#[test]
fn next_into_and_get_into_give_the_lending_apis_bytes() {
    let d = data();
    let reference = lent(&mut iterator(&d, 0, 1));
    // 23 samples in batches of 4: 6 a epoch, the last of 3.
    assert_eq!(reference.len(), 12);
    assert_eq!(reference[5].indices.len(), 3);
    assert_eq!((reference[6].epoch, reference[6].batch_index), (1, 0));
    for (prefetch, threads) in [(0, 1), (0, 2), (3, 1), (3, 2)] {
        let case = format!("prefetch {prefetch}, threads {threads}");
        assert_eq!(
            lent(&mut iterator(&d, prefetch, threads)),
            reference,
            "{case}"
        );
        let kept: Vec<Snapshot> = owned(&mut iterator(&d, prefetch, threads))
            .iter()
            .map(snapshot)
            .collect();
        assert_eq!(kept, reference, "{case}");
        // Mixed: lent and owned batches interleave on one walk.
        let mut it = iterator(&d, prefetch, threads);
        let mut batch = it.new_batch();
        let mut mixed = Vec::new();
        for k in 0..12 {
            if k % 2 == 0 {
                if !it.next_into(&mut batch).unwrap() {
                    assert!(it.next_into(&mut batch).unwrap());
                }
                mixed.push(snapshot(&batch));
            } else {
                mixed.push(snapshot(it.next_batch().unwrap()));
            }
        }
        assert_eq!(mixed, reference, "{case}");
        // Random access: the current epoch's batches, in any order.
        let mut it = iterator(&d, prefetch, threads);
        let mut batch = it.new_batch();
        for index in [5, 0, 3] {
            it.get_into(index, &mut batch).unwrap();
            assert_eq!(
                snapshot(&batch),
                reference[index],
                "{case}, get_into({index})"
            );
            assert_eq!(
                snapshot(it.get(index).unwrap()),
                reference[index],
                "{case}, get({index})"
            );
        }
        let e = it.get_into(6, &mut batch).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::IndexOutOfRange { index: 6, len: 6 }),
            "{e}"
        );
        assert_eq!(
            snapshot(&batch),
            reference[3],
            "a failed get_into keeps the batch"
        );
    }
}

#[test]
fn a_kept_batch_is_never_written_again() {
    let d = data();
    let reference = lent(&mut iterator(&d, 0, 1));
    for prefetch in [0, 1, 3] {
        let mut it = iterator(&d, prefetch, 2);
        let mut kept = it.new_batch();
        assert!(it.next_into(&mut kept).unwrap());
        let first = snapshot(&kept);
        assert_eq!(first, reference[0]);
        // One buffer handed back over and over circulates through the
        // prefetch pipeline; the kept one must not.
        let mut scratch = it.new_batch();
        let mut delivered = 0;
        while delivered < 50 {
            if it.next_into(&mut scratch).unwrap() {
                delivered += 1;
                if let Some(expected) = reference.get(delivered) {
                    assert_eq!(&snapshot(&scratch), expected, "prefetch {prefetch}");
                }
            }
        }
        assert_eq!(snapshot(&kept), first, "prefetch {prefetch}");
        assert!(it.position().epoch >= 8);
    }
}

#[test]
fn a_batch_of_another_layout_is_an_error() {
    let d = data();
    let others: Vec<(&str, NumpyArrayIterator)> = vec![
        (
            "float64 images",
            NumpyArrayIterator::builder(d.x.clone())
                .y(d.y.clone())
                .sample_weight(d.w.clone())
                .aux(d.aux.clone())
                .batch_size(4)
                .dtype(OutputDtype::F64)
                .build()
                .unwrap(),
        ),
        (
            "a larger batch",
            NumpyArrayIterator::builder(d.x.clone())
                .y(d.y.clone())
                .sample_weight(d.w.clone())
                .aux(d.aux.clone())
                .batch_size(5)
                .build()
                .unwrap(),
        ),
        (
            "no auxiliary array",
            NumpyArrayIterator::builder(d.x.clone())
                .y(d.y.clone())
                .sample_weight(d.w.clone())
                .batch_size(4)
                .build()
                .unwrap(),
        ),
        (
            "no y",
            NumpyArrayIterator::builder(d.x.clone())
                .sample_weight(d.w.clone())
                .aux(d.aux.clone())
                .batch_size(4)
                .build()
                .unwrap(),
        ),
        (
            "y of another dtype",
            NumpyArrayIterator::builder(d.x.clone())
                .y(d.w.clone())
                .sample_weight(d.w.clone())
                .aux(d.aux.clone())
                .batch_size(4)
                .build()
                .unwrap(),
        ),
        (
            "another image size",
            NumpyArrayIterator::builder(images_u8(d.dir.path(), 23, 5, 6, 3))
                .y(d.y.clone())
                .sample_weight(d.w.clone())
                .aux(d.aux.clone())
                .batch_size(4)
                .build()
                .unwrap(),
        ),
    ];
    let mut it = iterator(&d, 2, 2);
    for (what, other) in others {
        let mut wrong = other.new_batch();
        for result in [
            it.next_into(&mut wrong).map(|_| ()),
            it.get_into(0, &mut wrong),
        ] {
            match result.unwrap_err().kind() {
                ErrorKind::InvalidArgument { name, reason, .. } => {
                    assert_eq!(*name, "batch", "{what}");
                    assert!(reason.contains("new_batch"), "{what}: {reason}");
                }
                k => panic!("{what}: {k:?}"),
            }
        }
        assert!(wrong.is_empty(), "{what}: the batch was written");
    }
    // Nothing moved: the iterator starts at its first batch.
    let reference = lent(&mut iterator(&d, 0, 1));
    let mut batch = it.new_batch();
    assert!(it.next_into(&mut batch).unwrap());
    assert_eq!(snapshot(&batch), reference[0]);
    // A batch of another iterator with the same layout is just a buffer.
    let mut borrowed = iterator(&d, 0, 1).new_batch();
    assert!(it.next_into(&mut borrowed).unwrap());
    assert_eq!(snapshot(&borrowed), reference[1]);
}
