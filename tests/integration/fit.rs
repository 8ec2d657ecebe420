//! Streaming `fit`: conformance with keras-preprocessing 1.1.2's statistics,
//! the upstream `test_fit_rescale`, bounded memory, thread-count independence,
//! augmentation rounds and the ZCA memory limit.

use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array4, Axis, Ix4};
use npyflow::fit::{fit, fit_with_plan, plan_fit, SampleSource};
use npyflow::{
    ErrorKind, FitConfig, GeneratorOptions, ImageShape, NpzArchive, OutputDtype, Result, SampleRng,
    Statistics, Stream,
};

use crate::standardize::{fixture_dir, manifest, member, standardize};

/// Largest `|a - b| / max|b|`: errors relative to the size of the whole array.
fn max_rel_to_norm(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max)
        / scale
}

/// Largest entrywise relative error.
fn max_rel(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max)
}

#[test]
fn fit_matches_keras() {
    let data = NpzArchive::open(fixture_dir().join("fit_data.npz")).unwrap();
    let expected = NpzArchive::open(fixture_dir().join("fit_expected.npz")).unwrap();
    let mut report = Vec::new();
    let mut cases = 0;
    for case in manifest()["fit"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let options: GeneratorOptions = serde_json::from_value(case["options"].clone()).unwrap();
        // Channels-last cases read the memory-mapped `.npz` member directly;
        // channels-first ones a transposed (non-contiguous) ndarray view of it.
        let source = data.array(case["data"].as_str().unwrap()).unwrap();
        let stats = if options.data_format == npyflow::DataFormat::ChannelsLast {
            fit(&options, &source, &FitConfig::default(), None).unwrap()
        } else {
            let view = source
                .view::<u8>()
                .unwrap()
                .into_dimensionality::<Ix4>()
                .unwrap();
            fit(
                &options,
                &view.permuted_axes([0, 3, 1, 2]),
                &FitConfig::default(),
                None,
            )
            .unwrap()
        };
        let f32_case = options.dtype == OutputDtype::F32;
        let members = case["members"].as_object().unwrap();
        let mut line = format!("{name}:");
        for (key, m) in members {
            let (shape, want) = member(&expected, m.as_str().unwrap());
            let (got, err, tol) = match key.as_str() {
                "mean" | "std" => {
                    assert_eq!(shape, stats.broadcast_shape().unwrap(), "{name} {key}");
                    let got = if key == "mean" {
                        stats.mean()
                    } else {
                        stats.std()
                    };
                    let got = got.unwrap_or_else(|| panic!("{name}: no {key}")).to_vec();
                    let err = max_rel(&got, &want);
                    (got, err, 1e-5)
                }
                "pc" => {
                    let zca = stats.zca().unwrap_or_else(|| panic!("{name}: no zca"));
                    assert_eq!(shape, [zca.dim(), zca.dim()]);
                    let got = zca.as_slice().to_vec();
                    let err = max_rel_to_norm(&got, &want);
                    // Keras' float32 fit computes the covariance and its SVD in
                    // float32; ours stays in float64.
                    (got, err, if f32_case { 1e-4 } else { 1e-10 })
                }
                other => panic!("unexpected member {other}"),
            };
            let k = got.len().min(3);
            assert!(
                err <= tol,
                "{name} {key}: error {err:.3e} > {tol:e}\n got {:?}\nwant {:?}",
                &got[..k],
                &want[..k]
            );
            line += &format!(" {key} {err:.1e}");
        }
        // Keras leaves exactly the statistics its options ask for.
        assert_eq!(
            stats.mean().is_some(),
            members.contains_key("mean"),
            "{name}"
        );
        assert_eq!(stats.std().is_some(), members.contains_key("std"), "{name}");
        assert_eq!(stats.zca().is_some(), members.contains_key("pc"), "{name}");
        report.push(line);
        cases += 1;
    }
    assert_eq!(cases, 31);
    eprintln!(
        "fit vs Keras (mean/std: max relative error; pc: max error / max |entry|):\n  {}",
        report.join("\n  ")
    );
}

/// Keras' `all_test_images` fixture, regenerated: 8 images of 20×20, each
/// pixel with its own random bias (0..64) and spread (0..191) shared by its
/// channels, truncated to 0..255 as `astype('uint8')` does.
fn test_images(channels: usize, seed: u64) -> Array4<f64> {
    let mut out = Array4::zeros((8, 20, 20, channels));
    for (i, mut img) in out.axis_iter_mut(Axis(0)).enumerate() {
        let mut rng = SampleRng::new(seed, Stream::Augment, channels as u64, i as u64);
        for mut px in img.lanes_mut(Axis(2)) {
            let bias = rng.random() * 64.0;
            let spread = rng.random() * (255.0 - 64.0);
            px.iter_mut()
                .for_each(|v| *v = (rng.random() * spread + bias).floor());
        }
    }
    out
}

/// Upstream `test_fit_rescale` (keras-behaviour §5.3 item 11): float64,
/// `rescale = 1/255`, one batch of the 8 fitted images after `standardize`.
#[test]
fn fit_rescale_port() {
    for channels in [3, 4, 1] {
        let images = test_images(channels, 11);
        let shape = ImageShape::hwc(20, 20, channels);
        let base = GeneratorOptions {
            rescale: Some(1.0 / 255.0),
            dtype: OutputDtype::F64,
            ..Default::default()
        };
        let batch = |options: &GeneratorOptions| -> Vec<Vec<f64>> {
            let stats = fit(options, &images, &FitConfig::default(), None).unwrap();
            images
                .axis_iter(Axis(0))
                .map(|img| {
                    let mut x = img.iter().copied().collect::<Vec<f64>>();
                    standardize(options, Some(&stats), &mut x, shape).unwrap();
                    x
                })
                .collect()
        };
        let moments = |b: &[Vec<f64>]| {
            let all: Vec<f64> = b.iter().flatten().copied().collect();
            let mean = all.iter().sum::<f64>() / all.len() as f64;
            let var = all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / all.len() as f64;
            (mean, var.sqrt())
        };

        let (mean, _) = moments(&batch(&GeneratorOptions {
            featurewise_center: true,
            ..base.clone()
        }));
        assert!(mean.abs() < 1e-6, "C={channels}: center: mean {mean:e}");

        let (mean, std) = moments(&batch(&GeneratorOptions {
            featurewise_center: true,
            featurewise_std_normalization: true,
            ..base.clone()
        }));
        assert!(mean.abs() < 1e-6, "C={channels}: std: mean {mean:e}");
        assert!((1.0 - std).abs() < 1e-5, "C={channels}: std {std}");

        let b = batch(&GeneratorOptions {
            featurewise_center: true,
            zca_whitening: true,
            ..base.clone()
        });
        let mut worst = 0.0f64;
        for i in 0..8 {
            for j in 0..8 {
                let dot = b[i].iter().zip(&b[j]).map(|(x, y)| x * y).sum::<f64>() / 8.0;
                let e = dot.abs() - if i == j { 1.0 } else { 0.0 };
                worst = worst.max(e);
            }
        }
        // Upstream's check is one-sided: every entry of |B·Bᵀ/8| - I below 1e-6.
        assert!(worst < 1e-6, "C={channels}: zca: {worst:e}");
        eprintln!("fit_rescale C={channels}: max(|B·Bᵀ/8| - I) = {worst:.1e}");
    }
}

/// Samples generated on the fly from their index: nothing is stored.
struct Synthetic {
    n: usize,
    shape: [usize; 4],
    reads: AtomicU64,
}

impl Synthetic {
    fn new(n: usize, h: usize, w: usize, c: usize) -> Synthetic {
        Synthetic {
            n,
            shape: [n, h, w, c],
            reads: AtomicU64::new(0),
        }
    }

    fn value(index: usize, k: usize) -> f64 {
        ((index * 7919 + k * 104_729) % 251) as f64 + (index % 3) as f64 * 0.25
    }
}

impl SampleSource for Synthetic {
    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn read_sample_into(&self, index: usize, out: &mut [f64]) -> Result<()> {
        assert!(index < self.n);
        self.reads.fetch_add(1, Ordering::Relaxed);
        out.iter_mut()
            .enumerate()
            .for_each(|(k, v)| *v = Self::value(index, k));
        Ok(())
    }
}

#[test]
fn fit_memory_does_not_depend_on_n() {
    let options = GeneratorOptions {
        featurewise_std_normalization: true,
        zca_whitening: false,
        ..Default::default()
    };
    let config = FitConfig {
        chunk_bytes: 64 << 10,
        ..FitConfig::default()
    };
    let small = plan_fit(&options, &[1_000, 4, 2, 2], &config).unwrap();
    let large = plan_fit(&options, &[100_000, 4, 2, 2], &config).unwrap();
    assert_eq!(small.chunk_rows, 64 * 1024 / (16 * 8));
    assert_eq!(
        (small.chunk_rows, small.chunk_bytes),
        (large.chunk_rows, large.chunk_bytes)
    );
    assert!(large.chunk_bytes <= 64 << 10);
    let zca = GeneratorOptions {
        zca_whitening: true,
        ..Default::default()
    };
    assert_eq!(
        plan_fit(&zca, &[1_000, 4, 2, 2], &config)
            .unwrap()
            .zca_bytes,
        plan_fit(&zca, &[100_000, 4, 2, 2], &config)
            .unwrap()
            .zca_bytes
    );

    // The 100k-row fit really runs with that buffer, and visits every row once.
    let source = Synthetic::new(100_000, 4, 2, 2);
    let (stats, plan) = fit_with_plan(&options, &source, &config, None).unwrap();
    assert_eq!(plan, large);
    assert_eq!(source.reads.load(Ordering::Relaxed), 100_000);
    // Reference: per-channel moments by brute force (channels-last, C = 2).
    for ch in 0..2 {
        let values: Vec<f64> = (0..100_000)
            .flat_map(|i| (ch..16).step_by(2).map(move |k| Synthetic::value(i, k)))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>()
            / values.len() as f64)
            .sqrt();
        assert!(
            (stats.mean().unwrap()[ch] - mean).abs() <= 1e-12 * mean.abs(),
            "{ch}"
        );
        assert!(
            (stats.std().unwrap()[ch] - std).abs() <= 1e-12 * std,
            "{ch}"
        );
    }
}

#[test]
fn fit_is_bit_identical_for_any_thread_count() {
    // D = 300 (several covariance tiles), several chunks, augmentation rounds.
    let source = Synthetic::new(400, 10, 10, 3);
    let options = GeneratorOptions {
        zca_whitening: true,
        rescale: Some(0.01),
        ..Default::default()
    };
    let config = FitConfig {
        augment: true,
        rounds: 2,
        seed: 5,
        chunk_bytes: 37 * 300 * 8,
        ..FitConfig::default()
    };
    let shift = |x: &mut [f64], _: ImageShape, rng: &mut SampleRng| -> Result<()> {
        let k = rng.uniform(-0.5, 0.5);
        x.iter_mut().for_each(|v| *v += k);
        Ok(())
    };
    let run = |threads: usize| -> Statistics {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| fit(&options, &source, &config, Some(&shift)).unwrap())
    };
    let one = run(1);
    let two = run(2);
    let three = run(3);
    assert_eq!(one.mean().unwrap(), two.mean().unwrap());
    assert_eq!(one.zca().unwrap().as_slice(), two.zca().unwrap().as_slice());
    assert_eq!(one, two);
    assert_eq!(one, three);
}

#[test]
fn augment_rounds_use_the_per_sample_fit_stream() {
    let x = Array4::from_shape_fn((5, 3, 2, 1), |(n, r, c, _)| (n * 10 + r * 2 + c) as f64);
    let shape = ImageShape::hwc(3, 2, 1);
    let add = |v: &mut [f64], s: ImageShape, rng: &mut SampleRng| -> Result<()> {
        assert_eq!(s, shape);
        let k = rng.uniform(0.0, 100.0);
        v.iter_mut().for_each(|e| *e += k);
        Ok(())
    };
    let options = GeneratorOptions {
        featurewise_std_normalization: true,
        dtype: OutputDtype::F64,
        ..Default::default()
    };
    let config = FitConfig {
        augment: true,
        rounds: 3,
        seed: 42,
        ..FitConfig::default()
    };
    let stats = fit(&options, &x, &config, Some(&add)).unwrap();
    let mut all = Vec::new();
    for round in 0..3u64 {
        for i in 0..5 {
            let k = SampleRng::new(42, Stream::Fit, round, i as u64).uniform(0.0, 100.0);
            all.extend(x.index_axis(Axis(0), i).iter().map(|v| v + k));
        }
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let std = (all.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / all.len() as f64).sqrt();
    assert!((stats.mean().unwrap()[0] - mean).abs() < 1e-12 * mean);
    assert!((stats.std().unwrap()[0] - std).abs() < 1e-12 * std);

    // Without `augment` the function is not called and `rounds` is ignored.
    let plain = FitConfig {
        augment: false,
        rounds: 3,
        ..config
    };
    let panic_fn =
        |_: &mut [f64], _: ImageShape, _: &mut SampleRng| -> Result<()> { panic!("called") };
    let stats = fit(&options, &x, &plain, Some(&panic_fn)).unwrap();
    assert!((stats.mean().unwrap()[0] - 22.5).abs() < 1e-12);
}

/// Refuses to read: proves the limit is checked before any work.
struct Unreadable([usize; 4]);

impl SampleSource for Unreadable {
    fn shape(&self) -> &[usize] {
        &self.0
    }
    fn read_sample_into(&self, _: usize, _: &mut [f64]) -> Result<()> {
        panic!("read before the memory check")
    }
}

#[test]
fn zca_memory_limit_is_checked_up_front() {
    let options = GeneratorOptions {
        zca_whitening: true,
        ..Default::default()
    };
    // 64×64×3: D = 12288, two D×D f64 matrices alone are 2.4 GB > 2 GiB.
    let e = fit(
        &options,
        &Unreadable([10, 64, 64, 3]),
        &FitConfig::default(),
        None,
    )
    .unwrap_err();
    match e.kind() {
        ErrorKind::MemoryLimit { needed, limit, .. } => {
            assert_eq!(*limit, 2 << 30);
            assert!(*needed >= 2 * 12288u64 * 12288 * 8, "{needed}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("ZCA"), "{e}");
    // A tight limit refuses even a small matrix; the plan reports the same figure.
    let config = FitConfig {
        zca_memory_limit: 100_000,
        ..FitConfig::default()
    };
    let needed = plan_fit(&options, &[10, 6, 5, 3], &config)
        .unwrap()
        .zca_bytes;
    assert!(needed > 100_000);
    let e = fit(&options, &Unreadable([10, 6, 5, 3]), &config, None).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::MemoryLimit { needed: n, limit: 100_000, .. } if *n == needed),
        "{e}"
    );
    // Without ZCA the same shape is fine and needs no matrix.
    let plain = GeneratorOptions {
        featurewise_center: true,
        ..Default::default()
    };
    assert_eq!(
        plan_fit(&plain, &[10, 64, 64, 3], &config)
            .unwrap()
            .zca_bytes,
        0
    );
}

#[test]
fn fit_rejects_bad_input() {
    let options = GeneratorOptions {
        featurewise_center: true,
        ..Default::default()
    };
    let rank3 = ndarray::Array3::<f64>::zeros((4, 4, 3));
    let e = plan_fit(&options, rank3.shape(), &FitConfig::default()).unwrap_err();
    assert!(e.to_string().contains("rank 4"), "{e}");
    let nan = Array4::from_elem((2, 2, 2, 1), f64::NAN);
    assert!(matches!(
        fit(&options, &nan, &FitConfig::default(), None)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument { .. }
    ));
    // Nothing to fit: no statistics, and the data is not read.
    let stats = fit(
        &GeneratorOptions::default(),
        &Unreadable([3, 2, 2, 3]),
        &FitConfig::default(),
        None,
    )
    .unwrap();
    assert!(stats.is_empty());
    assert_eq!(stats.image_shape(), Some(ImageShape::hwc(2, 2, 3)));
}

#[test]
fn fitted_statistics_survive_save_and_load() {
    let images = test_images(3, 3);
    let options = GeneratorOptions {
        zca_whitening: true,
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    };
    let small = images.slice(ndarray::s![.., ..4, ..3, ..]).to_owned();
    let stats = fit(&options, &small, &FitConfig::default(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fitted.npz");
    stats.save(&path).unwrap();
    let back = Statistics::load(&path).unwrap();
    assert_eq!(back, stats);
    let shape = ImageShape::hwc(4, 3, 3);
    let mut a: Vec<f32> = small
        .index_axis(Axis(0), 0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let mut b = a.clone();
    standardize(&options, Some(&stats), &mut a, shape).unwrap();
    standardize(&options, Some(&back), &mut b, shape).unwrap();
    assert_eq!(a, b);
}

/// Counts how often each row was asked for ahead.
struct Prefetched {
    shape: [usize; 4],
    asked: std::sync::Mutex<Vec<u32>>,
}

impl SampleSource for Prefetched {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn read_sample_into(&self, index: usize, out: &mut [f64]) -> Result<()> {
        out.iter_mut().for_each(|v| *v = (index % 7) as f64);
        Ok(())
    }
    fn prefetch(&self, rows: std::ops::Range<usize>) -> Result<()> {
        assert!(
            rows.start < rows.end && rows.end <= self.shape[0],
            "{rows:?}"
        );
        self.asked.lock().unwrap()[rows]
            .iter_mut()
            .for_each(|a| *a += 1);
        Ok(())
    }
}

#[test]
fn fit_asks_for_every_row_once_per_round() {
    // Several chunks (4 KiB buffers of 2×2×1 f64 samples = 128 rows each)
    // and two augmentation rounds, so the requests wrap around the array.
    let n = 1000;
    let source = Prefetched {
        shape: [n, 2, 2, 1],
        asked: std::sync::Mutex::new(vec![0; n]),
    };
    let options = GeneratorOptions {
        featurewise_center: true,
        ..Default::default()
    };
    let config = FitConfig {
        chunk_bytes: 4096,
        augment: true,
        rounds: 2,
        ..FitConfig::default()
    };
    let identity = |_: &mut [f64], _: ImageShape, _: &mut SampleRng| -> Result<()> { Ok(()) };
    fit(&options, &source, &config, Some(&identity)).unwrap();
    // `fit` returns after its hint thread has served every request.
    assert!(source.asked.lock().unwrap().iter().all(|&a| a == 2));
}

#[test]
fn bulk_reads_of_an_array_match_sample_reads() {
    use npyflow::npy::{write_npy, ElemType};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    let (n, h, w, c) = (9, 3, 2, 3);
    let bytes: Vec<u8> = (0..n * h * w * c * 2)
        .map(|i| (i * 37 % 256) as u8)
        .collect();
    write_npy(&path, ElemType::I16, &[n, h, w, c], &bytes).unwrap();
    let x = npyflow::NpyArray::open(&path).unwrap();
    let d = h * w * c;
    for (first, count) in [(0, 9), (2, 5), (8, 1), (4, 0)] {
        let mut bulk = vec![f64::NAN; count * d];
        SampleSource::read_samples_into(&x, first, &mut bulk).unwrap();
        let mut one = vec![f64::NAN; d];
        for k in 0..count {
            SampleSource::read_sample_into(&x, first + k, &mut one).unwrap();
            assert_eq!(&bulk[k * d..(k + 1) * d], &one[..], "rows {first}+{k}");
        }
    }
    // The bulk path reads with pread: a file that shrank is an error.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(200)
        .unwrap();
    let mut bulk = vec![0.0; 9 * d];
    assert!(SampleSource::read_samples_into(&x, 0, &mut bulk).is_err());
}

/// A u8 array on disk is fitted from its bytes with integer sums; the same
/// values in memory go through the f64 passes. The statistics agree to
/// 1e-12 for 1, 3 and 4 channels, over several chunks and blocks.
#[test]
fn u8_files_fitted_from_their_bytes_match_the_f64_passes() {
    use npyflow::npy::{write_npy, ElemType};
    let dir = tempfile::tempdir().unwrap();
    for c in [1, 3, 4] {
        let (n, h, w) = (300, 9, 7);
        let bytes: Vec<u8> = (0..n * h * w * c)
            .map(|i| ((i * 7919 + i / 13) % 256) as u8)
            .collect();
        let path = dir.path().join(format!("x{c}.npy"));
        write_npy(&path, ElemType::U8, &[n, h, w, c], &bytes).unwrap();
        let on_disk = npyflow::NpyArray::open(&path).unwrap();
        let in_memory =
            Array4::from_shape_vec((n, h, w, c), bytes.iter().map(|&b| f64::from(b)).collect())
                .unwrap();
        let options = GeneratorOptions {
            featurewise_center: true,
            featurewise_std_normalization: true,
            ..Default::default()
        };
        // Small chunks: many chunks and blocks to merge.
        let config = FitConfig {
            chunk_bytes: 40 * h * w * c * 8,
            ..FitConfig::default()
        };
        let a = fit(&options, &on_disk, &config, None).unwrap();
        let b = fit(&options, &in_memory, &config, None).unwrap();
        let (am, bm) = (a.mean().unwrap(), b.mean().unwrap());
        let (as_, bs) = (a.std().unwrap(), b.std().unwrap());
        assert!(max_rel(am, bm) < 1e-12, "{c}: {am:?} {bm:?}");
        assert!(max_rel(as_, bs) < 1e-12, "{c}: {as_:?} {bs:?}");
    }
}
