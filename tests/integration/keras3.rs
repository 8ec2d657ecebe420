//! `compat = "keras3"` against the legacy `ImageDataGenerator` of Keras 3
//! (fixtures from `tests/fixtures/gen_keras3.py`): `apply_transform` with
//! explicit parameters, `fit` statistics (ZCA included) and `flow` batches
//! of deterministic configurations.

use std::path::{Path, PathBuf};

use npyflow::{Compat, FitConfig, ImageDataGenerator, NpyArray, Real, Scratch, TransformParams};
use serde_json::Value;

use crate::transform::params_from_json;
use crate::util::read_reference_npy as read_npy;

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keras3")
        .join(sub)
}

fn manifest(sub: &str) -> Value {
    let text = std::fs::read_to_string(dir(sub).join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn run<T: Real>(
    generator: &ImageDataGenerator,
    input: &[f64],
    dims: &[usize],
    params: &TransformParams,
) -> Vec<f64> {
    let shape = generator
        .options()
        .data_format
        .image_shape([dims[0], dims[1], dims[2]]);
    let mut image: Vec<T> = input.iter().map(|&v| T::from_f64_lossy(v)).collect();
    generator
        .apply_transform(&mut image, shape, params, &mut Scratch::default())
        .unwrap();
    image.iter().map(|v| v.to_f64_lossless()).collect()
}

/// The largest difference per case of `kind`, with the same options under
/// `compat`; checks each case's tolerance when `compat` is Keras 3.
fn check(kind: &str, compat: Compat) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for c in manifest("transform")["cases"].as_array().unwrap() {
        if c["kind"] != kind {
            continue;
        }
        let name = c["name"].as_str().unwrap();
        // Through the JSON reader, as a user's config would go.
        let mut options = c["options"].clone();
        options["data_format"] = c["data_format"].clone();
        options["compat"] = Value::from(compat.as_str());
        let generator = ImageDataGenerator::from_json(&options.to_string()).unwrap();
        let (dims, input) = read_npy(&dir("transform").join(format!("{name}_in.npy")));
        let (_, want) = read_npy(&dir("transform").join(format!("{name}_out.npy")));
        let params = params_from_json(&c["params"]);
        let got = match c["dtype"].as_str().unwrap() {
            "float32" => run::<f32>(&generator, &input, &dims, &params),
            _ => run::<f64>(&generator, &input, &dims, &params),
        };
        let diffs: Vec<f64> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        let max = diffs.iter().copied().fold(0.0, f64::max);
        if compat == Compat::Keras3 {
            let tol = c["tol"].as_f64().unwrap();
            let allowed = c["max_off_by_one"].as_u64().unwrap() as usize;
            let beyond: Vec<usize> = (0..diffs.len()).filter(|&i| diffs[i] > tol).collect();
            let off_by_one = beyond.iter().all(|&i| diffs[i] <= 1.0);
            assert!(
                beyond.is_empty() || (off_by_one && beyond.len() <= allowed),
                "{name}: {} values beyond {tol:e} (max {max}); first at {}: got {} want {}",
                beyond.len(),
                beyond[0],
                got[beyond[0]],
                want[beyond[0]]
            );
        }
        eprintln!("{name:>28} {compat}: max |diff| {max:.3e}");
        out.push((name.to_string(), max));
    }
    assert!(!out.is_empty(), "no {kind} cases");
    out
}

#[test]
fn affine_transforms_match_keras3() {
    let k3 = check("affine", Compat::Keras3);
    // The same cases in 1.1.2's numerics are far off (the pivot and the
    // axes differ), so the fixtures do tell the two apart.
    let old = check("affine", Compat::KerasPreprocessing);
    for ((name, new), (_, old)) in k3.iter().zip(&old) {
        assert!(*old > 1.0 && *old > 100.0 * new, "{name}: {old} vs {new}");
    }
}

#[test]
fn brightness_matches_keras3_exactly() {
    let k3 = check("brightness", Compat::Keras3);
    assert!(k3.iter().all(|(_, d)| *d == 0.0), "{k3:?}");
    // 1.1.2 stretches every image to 0..255: only integer-valued images
    // spanning exactly 0..255 come out the same.
    let old = check("brightness", Compat::KerasPreprocessing);
    let same: Vec<&str> = old
        .iter()
        .filter(|(_, d)| *d == 0.0)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(same, ["bright_int"]);
}

#[test]
fn full_apply_transform_matches_keras3() {
    check("apply", Compat::Keras3);
}

fn fixture(sub: &str, name: &str) -> Option<Vec<f64>> {
    let path = dir(sub).join(name);
    path.exists().then(|| read_npy(&path).1)
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= tol, "{what}: max error {worst} > {tol}");
}

/// Each fit configuration: its generator, fitted on its data.
fn fitted() -> Vec<(String, ImageDataGenerator, NpyArray)> {
    let configs = manifest("fit")["configs"].as_object().unwrap().clone();
    configs
        .into_iter()
        .map(|(name, options)| {
            let x = NpyArray::open(dir("fit").join(format!("{name}_x.npy"))).unwrap();
            let mut g = ImageDataGenerator::from_json(&options.to_string()).unwrap();
            assert_eq!(g.options().compat, Compat::Keras3);
            g.fit(&x, &FitConfig::default()).unwrap();
            (name, g, x)
        })
        .collect()
}

#[test]
fn fit_statistics_match_keras3() {
    let mut zca_seen = 0;
    for (name, g, _) in fitted() {
        let s = g.statistics().unwrap();
        let mean = fixture("fit", &format!("{name}_mean.npy")).unwrap();
        // Keras sums float32 data in float32: ~1e-5 relative on 0..255.
        close(&format!("{name} mean"), s.mean().unwrap(), &mean, 1e-3);
        if let Some(std) = fixture("fit", &format!("{name}_std.npy")) {
            close(&format!("{name} std"), s.std().unwrap(), &std, 1e-4);
        }
        if let Some(zca) = fixture("fit", &format!("{name}_zca.npy")) {
            zca_seen += 1;
            let got = s.zca().unwrap().as_slice();
            let biggest = zca.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            close(&format!("{name} zca"), got, &zca, 1e-4 * biggest.max(1.0));
            if !name.contains("thin") {
                // Well conditioned, more samples than features: the two
                // formulas agree but for rounding.
                continue;
            }
            // With fewer samples than features 1.1.2's matrix amplifies the
            // null space ~1000×, which Keras 3's thin SVD drops.
            let mut old = ImageDataGenerator::new(npyflow::GeneratorOptions {
                compat: Compat::KerasPreprocessing,
                ..g.options().clone()
            })
            .unwrap();
            let x = NpyArray::open(dir("fit").join(format!("{name}_x.npy"))).unwrap();
            old.fit(&x, &FitConfig::default()).unwrap();
            let other = old.statistics().unwrap().zca().unwrap().as_slice();
            let differs = other
                .iter()
                .zip(&zca)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                differs > 100.0 * biggest,
                "{name}: 1.1.2 differs by {differs}"
            );
        }
    }
    assert_eq!(zca_seen, 3);
}

#[test]
fn flow_batches_match_keras3() {
    for (name, g, x) in fitted() {
        let want = fixture("flow", &format!("{name}.npy")).unwrap();
        let mut it = g.flow(x).batch_size(4).shuffle(false).build().unwrap();
        let got = crate::util::epoch_images_f64(&mut it);
        let biggest = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        close(
            &format!("{name} batches"),
            &got,
            &want,
            1e-4 * biggest.max(1.0),
        );
    }
}
