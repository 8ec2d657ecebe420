//! Limits are defined behaviour or clear errors: batch larger than the
//! data, empty arrays, zero-sized images, absurd batch sizes, a cache budget
//! smaller than a batch, a ZCA matrix beyond its limit.

use npyflow::npy::ElemType;
use npyflow::{ErrorKind, FitConfig, GeneratorOptions, ImageDataGenerator, NumpyArrayIterator};

use crate::util::{images_u8, write};

#[test]
fn a_batch_larger_than_the_data_is_the_whole_data() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 5, 2, 2, 1);
    let mut it = NumpyArrayIterator::builder(x.clone())
        .batch_size(100)
        .build()
        .unwrap();
    assert_eq!(it.len(), 1);
    assert_eq!(it.next_batch().unwrap().len(), 5);
    // usize::MAX: no allocation proportional to the batch size.
    let mut it = NumpyArrayIterator::builder(x)
        .batch_size(usize::MAX)
        .shuffle(true)
        .build()
        .unwrap();
    assert_eq!(it.len(), 1);
    assert_eq!(it.next_batch().unwrap().len(), 5);
}

#[test]
fn an_empty_array_gives_empty_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let x = write::<u8>(dir.path(), "x.npy", ElemType::U8, &[0, 4, 4, 3], &[]);
    let mut it = NumpyArrayIterator::builder(x.clone())
        .batch_size(8)
        .build()
        .unwrap();
    assert_eq!(it.len(), 0);
    assert!(it.next_batch().unwrap().is_empty());
    assert!(it.next_in_epoch().unwrap().is_none());
    let e = npyflow::fit::fit(
        &GeneratorOptions {
            featurewise_center: true,
            ..Default::default()
        },
        &x,
        &FitConfig::default(),
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains('0') || matches!(e.kind(), ErrorKind::InvalidArgument { .. }),
        "{e}"
    );
}

#[test]
fn zero_sized_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = write::<u8>(dir.path(), "x.npy", ElemType::U8, &[3, 0, 4, 3], &[]);
    let e = NumpyArrayIterator::builder(x).build().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidArgument { name: "x", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("no pixels"));
}

#[test]
fn a_zca_matrix_beyond_the_limit_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 4, 16, 16, 3);
    let mut g = ImageDataGenerator::new(GeneratorOptions {
        zca_whitening: true,
        ..Default::default()
    })
    .unwrap();
    let e = g
        .fit(
            &x,
            &FitConfig {
                zca_memory_limit: 1 << 20,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::MemoryLimit { .. }), "{e}");
}
