//! Half-precision output: a float16 / bfloat16 batch is the float32 batch
//! of the same run rounded once, to nearest even. The reference rounding is
//! `half`'s software conversion (`from_f32_const`), not the store's path
//! (F16C instructions for f16, a branch-free rewrite for bf16).

use half::{bf16, f16};
use npyflow::{
    ErrorKind, FitConfig, GeneratorOptions, ImageDataGenerator, NpyArray, NumpyArrayIterator,
    Order, OutputDtype, ShiftRange, ZoomRange,
};

use crate::util::images_u8;

/// Every batch of two epochs: sample indices and images widened to f32
/// (exactly: both half types widen losslessly) plus their raw bits.
struct Run {
    indices: Vec<Vec<usize>>,
    values: Vec<Vec<f32>>,
    bits: Vec<Vec<u16>>,
}

fn run(
    x: &NpyArray,
    generator: ImageDataGenerator,
    dtype: Option<OutputDtype>,
    order: Order,
    threads: usize,
) -> Run {
    let mut b = NumpyArrayIterator::builder(x.clone())
        .generator(generator)
        .batch_size(5)
        .order(order)
        .seed(7)
        .threads(threads);
    if let Some(d) = dtype {
        b = b.dtype(d);
    }
    let mut it = b.build().unwrap();
    let mut out = Run {
        indices: Vec::new(),
        values: Vec::new(),
        bits: Vec::new(),
    };
    for _ in 0..2 {
        while let Some(batch) = it.next_in_epoch().unwrap() {
            out.indices.push(batch.indices().to_vec());
            let (values, bits): (Vec<f32>, Vec<u16>) = match batch.dtype() {
                OutputDtype::F32 => {
                    let v = batch.images::<f32>().unwrap();
                    (v.iter().copied().collect(), Vec::new())
                }
                OutputDtype::F16 => {
                    let v = batch.images::<f16>().unwrap();
                    v.iter().map(|h| (h.to_f32(), h.to_bits())).unzip()
                }
                OutputDtype::BF16 => {
                    let v = batch.images::<bf16>().unwrap();
                    v.iter().map(|h| (h.to_f32(), h.to_bits())).unzip()
                }
                OutputDtype::F64 => unreachable!("not produced here"),
            };
            out.values.push(values);
            out.bits.push(bits);
        }
    }
    out
}

fn generator(options: &GeneratorOptions, dtype: OutputDtype) -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        dtype,
        ..options.clone()
    })
    .unwrap()
}

/// Asserts that `half` is `reference` (a float32 run) rounded with
/// `round`, value by value, and that the rounding did something (the test
/// would pass vacuously on values every type holds exactly).
fn assert_rounded_once(what: &str, reference: &Run, half: &Run, round: fn(f32) -> u16) {
    assert_eq!(reference.indices, half.indices, "{what}: sample order");
    let mut inexact = 0usize;
    for (b, (r, h)) in reference.values.iter().zip(&half.bits).enumerate() {
        assert_eq!(r.len(), h.len(), "{what}: batch {b} length");
        for (k, (&v, &bits)) in r.iter().zip(h).enumerate() {
            assert_eq!(
                bits,
                round(v),
                "{what}: batch {b} value {k}: f32 {v:e} ({:#010x})",
                v.to_bits()
            );
        }
        inexact += r
            .iter()
            .zip(&half.values[b])
            .filter(|(a, b)| a != b)
            .count();
    }
    assert!(
        inexact > 0,
        "{what}: every value was exact in the half type"
    );
}

fn f16_bits(v: f32) -> u16 {
    f16::from_f32_const(v).to_bits()
}

fn bf16_bits(v: f32) -> u16 {
    bf16::from_f32_const(v).to_bits()
}

fn cases() -> Vec<(&'static str, GeneratorOptions)> {
    vec![
        (
            "rescale",
            GeneratorOptions {
                rescale: Some(1.0 / 255.0),
                ..Default::default()
            },
        ),
        (
            "augment",
            GeneratorOptions {
                rotation_range: 25.0,
                width_shift_range: ShiftRange::Float(0.2),
                height_shift_range: ShiftRange::Float(0.1),
                shear_range: 10.0,
                zoom_range: ZoomRange::Scalar(0.2),
                channel_shift_range: 20.0,
                brightness_range: Some([0.7, 1.3]),
                horizontal_flip: true,
                vertical_flip: true,
                rescale: Some(1.0 / 255.0),
                ..Default::default()
            },
        ),
        (
            "samplewise",
            GeneratorOptions {
                samplewise_center: true,
                samplewise_std_normalization: true,
                horizontal_flip: true,
                ..Default::default()
            },
        ),
    ]
}

fn orders() -> [Order; 3] {
    [
        Order::Sequential,
        Order::Shuffle,
        Order::Blocks {
            block_rows: 3,
            window: 2,
        },
    ]
}

#[test]
fn half_batches_are_the_f32_batches_rounded_once() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 23, 9, 7, 3);
    for (name, options) in cases() {
        for order in orders() {
            for threads in [1, 2] {
                let what = format!("{name} {order:?} threads {threads}");
                let reference = run(
                    &x,
                    generator(&options, OutputDtype::F32),
                    None,
                    order,
                    threads,
                );
                // The dtype from the generator's options, and from the builder.
                let h = run(
                    &x,
                    generator(&options, OutputDtype::F16),
                    None,
                    order,
                    threads,
                );
                assert_rounded_once(&format!("{what} float16"), &reference, &h, f16_bits);
                let g = generator(&options, OutputDtype::F32);
                let h = run(&x, g, Some(OutputDtype::BF16), order, threads);
                assert_rounded_once(&format!("{what} bfloat16"), &reference, &h, bf16_bits);
            }
        }
    }
}

/// `fit` computes a half-precision generator's statistics as float32's,
/// and `standardize` rounds its result once, into the half batch.
#[test]
fn fit_and_featurewise_standardize_into_half_batches() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 30, 6, 5, 3);
    let options = GeneratorOptions {
        featurewise_center: true,
        featurewise_std_normalization: true,
        rescale: Some(1.0 / 255.0),
        rotation_range: 15.0,
        ..Default::default()
    };
    let fitted = |dtype| {
        let mut g = generator(&options, dtype);
        g.fit(&x, &FitConfig::default()).unwrap();
        g
    };
    let g32 = fitted(OutputDtype::F32);
    let s32 = g32.statistics().unwrap();
    for (dtype, round) in [
        (OutputDtype::F16, f16_bits as fn(f32) -> u16),
        (OutputDtype::BF16, bf16_bits),
    ] {
        let g = fitted(dtype);
        let s = g.statistics().unwrap();
        assert_eq!(s.mean(), s32.mean(), "{dtype:?}: mean");
        assert_eq!(s.std(), s32.std(), "{dtype:?}: std");
        for order in orders() {
            let reference = run(&x, fitted(OutputDtype::F32), None, order, 2);
            let h = run(&x, g.clone(), None, order, 2);
            assert_rounded_once(&format!("{dtype:?} {order:?}"), &reference, &h, round);
        }
    }
}

#[test]
fn half_batches_are_typed_and_swap_with_batches_of_their_own_type() {
    let dir = tempfile::tempdir().unwrap();
    let x = images_u8(dir.path(), 5, 4, 3, 2);
    let build = |dtype| {
        NumpyArrayIterator::builder(x.clone())
            .batch_size(2)
            .dtype(dtype)
            .build()
            .unwrap()
    };
    let mut it = build(OutputDtype::F16);
    let b = it.next_batch().unwrap();
    assert_eq!(b.dtype(), OutputDtype::F16);
    // Pixel values 0..=255 are exact in float16.
    let src = x.view::<u8>().unwrap();
    let got: Vec<f32> = b
        .images::<f16>()
        .unwrap()
        .iter()
        .map(|v| v.to_f32())
        .collect();
    let want: Vec<f32> = src.iter().take(got.len()).map(|&v| v as f32).collect();
    assert_eq!(got, want);
    let e = b.images::<f32>().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidArgument { .. }), "{e}");
    assert!(e.to_string().contains("F16"), "{e}");
    assert!(b.images::<bf16>().is_err());

    let mut own = it.new_batch();
    assert!(it.next_into(&mut own).unwrap());
    assert_eq!(own.images_mut::<f16>().unwrap().len(), 2 * 4 * 3 * 2);
    let mut other = build(OutputDtype::BF16).new_batch();
    let e = it.next_into(&mut other).unwrap_err();
    assert!(e.to_string().contains("BF16"), "{e}");
}

#[test]
fn half_dtypes_parse_by_numpy_name() {
    for (name, dtype) in [
        ("float16", OutputDtype::F16),
        ("f16", OutputDtype::F16),
        ("bfloat16", OutputDtype::BF16),
        ("bf16", OutputDtype::BF16),
    ] {
        assert_eq!(name.parse::<OutputDtype>().unwrap(), dtype);
        let json: OutputDtype = serde_json::from_str(&format!("{name:?}")).unwrap();
        assert_eq!(json, dtype);
    }
    assert_eq!(OutputDtype::F16.size(), 2);
    assert_eq!(OutputDtype::BF16.size(), 2);
    assert_eq!(OutputDtype::BF16.name(), "bfloat16");
    assert_eq!(
        serde_json::to_string(&OutputDtype::F16).unwrap(),
        "\"float16\""
    );
    let e = "half".parse::<OutputDtype>().unwrap_err();
    assert!(e.to_string().contains("\"bfloat16\""), "{e}");
}
