//! criterion benches of the hot kernels, warm cache (run: `cargo bench --bench kernels`):
//! the gather (u8 rows → f32), the affine resampling per interpolation
//! order, and whole batches through the iterator. Names carry the image
//! size, batch size and thread count; throughput is in images.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use npyflow::augment::{affine_transform, keras_affine, Affine2, Interpolation, ResampleScratch};
use npyflow::cache::warm_file;
use npyflow::{
    FillMode, GeneratorOptions, ImageDataGenerator, ImageShape, NpyArray, NumpyArrayIterator,
    Order, ShiftRange, TransformParams, ZoomRange,
};

const BATCH: usize = 64;
const SIZES: [(usize, usize); 2] = [(32, 32), (224, 224)];

/// A warm array of `n` images of `side`×`side`×3.
fn warm_images(n: usize, h: usize, w: usize) -> NpyArray {
    let path = common::images_u8(n, h, w, 3);
    warm_file(&path).expect("warm bench data");
    NpyArray::open(&path).expect("open bench data")
}

/// Rows scattered over the file, as one shuffled batch would be.
fn scattered_rows(n: usize) -> Vec<usize> {
    (0..BATCH).map(|i| (i * 7919 + 13) % n).collect()
}

fn gather(c: &mut Criterion) {
    let mut g = c.benchmark_group("gather");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (h, w) in SIZES {
        let n = if h <= 32 { 8192 } else { 512 };
        let x = warm_images(n, h, w);
        let rows = scattered_rows(n);
        let mut out = vec![0f32; BATCH * x.row_len()];
        let id = BenchmarkId::new("u8_to_f32", format!("{h}x{w}x3/batch{BATCH}"));
        g.bench_function(id, |b| {
            b.iter(|| {
                for (slot, &r) in out.chunks_exact_mut(x.row_len()).zip(&rows) {
                    x.read_sample_into(r, slot).expect("read row");
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn affine(c: &mut Criterion) {
    let mut g = c.benchmark_group("affine");
    g.throughput(Throughput::Elements(1));
    for (h, w) in SIZES {
        let shape = ImageShape::hwc(h, w, 3);
        let input: Vec<f32> = (0..shape.len()).map(|i| (i * 37 % 251) as f32).collect();
        let mut output = vec![0f32; shape.len()];
        // Rotation + shift + zoom, as one Keras draw would compose them.
        let m = keras_affine(
            &TransformParams {
                theta: 17.0,
                tx: 0.07 * h as f64,
                ty: -0.05 * w as f64,
                zx: 0.93,
                zy: 1.08,
                ..TransformParams::default()
            },
            h,
            w,
        )
        .unwrap_or(Affine2::IDENTITY);
        let mut scratch = ResampleScratch::default();
        for order in [0u8, 1, 3] {
            let id = BenchmarkId::new(format!("order{order}_nearest"), format!("{h}x{w}x3"));
            g.bench_function(id, |b| {
                b.iter(|| {
                    affine_transform(
                        &input,
                        &mut output,
                        shape,
                        &m,
                        Interpolation {
                            order,
                            mode: FillMode::Nearest,
                            cval: 0.0,
                        },
                        &mut scratch,
                    );
                    black_box(&output);
                })
            });
        }
    }
    g.finish();
}

/// The augmentation workload: rotation 20, shifts 0.1, shear 10,
/// zoom 0.1, horizontal flip, rescale 1/255, bilinear, nearest fill.
fn augmenting() -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 20.0,
        width_shift_range: ShiftRange::Float(0.1),
        height_shift_range: ShiftRange::Float(0.1),
        shear_range: 10.0,
        zoom_range: ZoomRange::Scalar(0.1),
        horizontal_flip: true,
        rescale: Some(1.0 / 255.0),
        interpolation_order: 1,
        ..Default::default()
    })
    .expect("valid generator")
}

fn rescaling() -> ImageDataGenerator {
    ImageDataGenerator::new(GeneratorOptions {
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    })
    .expect("valid generator")
}

fn iterator(c: &mut Criterion) {
    let mut g = c.benchmark_group("iterator");
    g.throughput(Throughput::Elements(BATCH as u64));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = vec![1];
    if cores > 1 {
        threads.push(cores);
    }
    for (h, w) in SIZES {
        let n = if h <= 32 { 8192 } else { 512 };
        let x = warm_images(n, h, w);
        for (name, generator) in [("augment", augmenting()), ("rescale", rescaling())] {
            for &t in &threads {
                let mut it = NumpyArrayIterator::builder(x.clone())
                    .batch_size(BATCH)
                    .order(Order::Shuffle)
                    .seed(1)
                    .threads(t)
                    .generator(generator.clone())
                    .build()
                    .expect("build iterator");
                let id = BenchmarkId::new(
                    format!("shuffle_{name}"),
                    format!("{h}x{w}x3/batch{BATCH}/threads{t}"),
                );
                g.bench_function(id, |b| {
                    b.iter(|| black_box(it.next_batch().expect("batch").len()))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, gather, affine, iterator);
criterion_main!(benches);
