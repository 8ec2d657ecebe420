//! Conformance of `standardize` with keras-preprocessing 1.1.2 (fixtures from
//! `tests/fixtures/gen_standardize.py`), and `Statistics` persistence.

use std::path::{Path, PathBuf};

use npyflow::{
    DataFormat, ErrorKind, GeneratorOptions, ImageDataGenerator, ImageShape, NpzArchive, Real,
    Statistics, ZcaMatrix,
};
use serde_json::Value;

/// Keras' `standardize` of one image by a generator with `options` and `stats`.
pub(crate) fn standardize<T: Real>(
    options: &GeneratorOptions,
    stats: Option<&Statistics>,
    image: &mut [T],
    shape: ImageShape,
) -> npyflow::Result<()> {
    let mut generator = ImageDataGenerator::new(options.clone())?;
    generator.set_statistics(stats.cloned());
    generator.standardize(image, shape)
}

pub(crate) fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/standardize")
}

pub(crate) fn manifest() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A member of a fixture archive as `(shape, f64 values)`.
pub(crate) fn member(archive: &NpzArchive, name: &str) -> (Vec<usize>, Vec<f64>) {
    let a = archive
        .array(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (a.shape().to_vec(), a.to_vec_f64().unwrap())
}

/// Largest `|a - b| / max(1, |b|)`: absolute for values of order one,
/// relative for large ones.
pub(crate) fn max_scaled_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn image_shape(case: &Value) -> ImageShape {
    let dims: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
    match case["format"].as_str().unwrap() {
        "cl" => ImageShape::hwc(dims[0], dims[1], dims[2]),
        _ => ImageShape::chw(dims[0], dims[1], dims[2]),
    }
}

/// Runs `standardize` in `T` on `x` (already rounded to `T`).
fn run<T: Real>(
    options: &GeneratorOptions,
    stats: &Statistics,
    x: &[f64],
    shape: ImageShape,
) -> Vec<f64> {
    let mut image: Vec<T> = x.iter().map(|&v| T::from_f64_lossy(v)).collect();
    standardize(options, Some(stats), &mut image, shape).unwrap();
    image.iter().map(|v| v.to_f64_lossless()).collect()
}

#[test]
fn standardize_matches_keras() {
    let archive = NpzArchive::open(fixture_dir().join("standardize.npz")).unwrap();
    let mut worst = 0.0f64;
    let mut report = Vec::new();
    for case in manifest()["standardize"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let options: GeneratorOptions = serde_json::from_value(case["options"].clone()).unwrap();
        let f32_case = case["dtype"] == "float32";
        // Keras holds the statistics in the generator dtype.
        let round = |v: Vec<f64>| -> Vec<f64> {
            if f32_case {
                v.into_iter().map(|x| x as f32 as f64).collect()
            } else {
                v
            }
        };
        let fmt = case["format"].as_str().unwrap();
        let shape = image_shape(case);
        let x = round(member(&archive, &format!("x_{fmt}")).1);
        let (pc_shape, pc) = member(&archive, &format!("pc_{fmt}"));
        let stats = Statistics::for_image(shape)
            .with_mean(round(member(&archive, &format!("mean_{fmt}")).1))
            .unwrap()
            .with_std(round(member(&archive, &format!("std_{fmt}")).1))
            .unwrap()
            .with_zca(ZcaMatrix::from_row_major(pc_shape[0], round(pc)).unwrap())
            .unwrap();
        let want = member(&archive, &format!("out_{name}")).1;
        let got = if f32_case {
            run::<f32>(&options, &stats, &x, shape)
        } else {
            run::<f64>(&options, &stats, &x, shape)
        };
        let err = max_scaled_error(&got, &want);
        report.push(format!("{name}: {err:.2e}"));
        assert!(err <= 1e-4, "{name}: max scaled error {err:.3e}");
        worst = worst.max(err);
    }
    assert_eq!(report.len(), 32);
    eprintln!(
        "standardize vs Keras, max |a-b|/max(1,|b|): worst {worst:.2e}\n  {}",
        report.join("\n  ")
    );
}

#[test]
fn zca_follows_its_definition_and_errors_leave_the_input() {
    let shape = ImageShape::hwc(2, 2, 1);
    let stats = Statistics::for_image(shape)
        .with_mean(vec![1.0])
        .unwrap()
        .with_zca(ZcaMatrix::from_row_major(4, (0..16).map(|i| (i % 5) as f64).collect()).unwrap())
        .unwrap();
    let options = GeneratorOptions {
        zca_whitening: true,
        rescale: Some(0.5),
        ..Default::default()
    };
    let mut a = [1.0f64, 2.0, 3.0, 4.0];
    standardize(&options, Some(&stats), &mut a, shape).unwrap();
    // x = [1, 2, 3, 4] * 0.5 - 1 = [-0.5, 0, 0.5, 1], times M[i][j] = (4i + j) % 5
    // from the right (Keras' np.dot(flatx, principal_components)).
    assert_eq!(a, [3.5, 4.5, 3.0, -1.0]);
    // One generator, two images: each gets its own result.
    let generator = ImageDataGenerator::new(options.clone())
        .unwrap()
        .with_statistics(stats.clone());
    let mut b = [1.0f64, 2.0, 3.0, 4.0];
    generator.standardize(&mut b, shape).unwrap();
    let mut c = [2.0f64, 2.0, 2.0, 2.0];
    generator.standardize(&mut c, shape).unwrap();
    assert_eq!((b, c), (a, [0.0; 4]));

    let mut c = [1.0f32, 2.0, 3.0, 4.0];
    let e = standardize(&options, None, &mut c, shape).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::MissingStatistics { .. }),
        "{e}"
    );
    assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
    let e = standardize(&options, Some(&stats), &mut c[..3], shape).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::ShapeMismatch { .. }), "{e}");
}

#[test]
fn statistics_load_keras_saved_archive() {
    // `np.savez(mean=gen.mean, std=gen.std)` after a float32 channels-first fit.
    let stats = Statistics::load(fixture_dir().join("keras_saved.npz")).unwrap();
    assert_eq!(stats.data_format(), DataFormat::ChannelsFirst);
    assert_eq!(stats.broadcast_shape(), Some([3, 1, 1]));
    assert!(stats.zca().is_none() && stats.image_shape().is_none());
    let expected = NpzArchive::open(fixture_dir().join("fit_expected.npz")).unwrap();
    assert_eq!(
        stats.mean().unwrap(),
        member(&expected, "mean_std_x3_cf_raw_float32").1.as_slice()
    );
    assert_eq!(
        stats.std().unwrap(),
        member(&expected, "std_std_x3_cf_raw_float32").1.as_slice()
    );
}

#[test]
fn statistics_save_is_readable_with_keras_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.npz");
    let stats = Statistics::for_image(ImageShape::hwc(1, 2, 1))
        .with_mean(vec![0.25])
        .unwrap()
        .with_zca(ZcaMatrix::from_row_major(2, vec![1.0, 0.5, 0.5, 2.0]).unwrap())
        .unwrap();
    stats.save(&path).unwrap();
    let archive = NpzArchive::open(&path).unwrap();
    assert_eq!(member(&archive, "mean"), (vec![1, 1, 1], vec![0.25]));
    assert_eq!(
        member(&archive, "principal_components"),
        (vec![2, 2], vec![1.0, 0.5, 0.5, 2.0])
    );
    assert!(archive.array("std").is_err());
    assert_eq!(Statistics::load(&path).unwrap(), stats);
    // No partial file is left behind, whatever the writer's temporary name.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
