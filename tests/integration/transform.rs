//! Conformance of `ImageDataGenerator::apply_transform` against
//! keras-preprocessing 1.1.2 (fixtures from `tests/fixtures/gen_transform.py`).

use std::path::{Path, PathBuf};

use crate::util::read_reference_npy;
use npyflow::{
    DataFormat, GeneratorOptions, ImageDataGenerator, ImageShape, Real, Scratch, TransformParams,
};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transform")
}

/// One case of `manifest.json`.
pub(crate) struct Case {
    pub name: String,
    pub kind: String,
    pub generator: ImageDataGenerator,
    pub shape: ImageShape,
    pub dtype: String,
    pub params: TransformParams,
    pub tol: f64,
    pub max_off_by_one: usize,
    pub input: Vec<f64>,
    pub expected: Vec<f64>,
}

/// A fixture's drawn transform (`manifest.json`'s `params`), Keras' names.
pub(crate) fn params_from_json(v: &Value) -> TransformParams {
    let num = |k: &str, default: f64| v.get(k).and_then(Value::as_f64).unwrap_or(default);
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    TransformParams {
        theta: num("theta", 0.0),
        tx: num("tx", 0.0),
        ty: num("ty", 0.0),
        shear: num("shear", 0.0),
        zx: num("zx", 1.0),
        zy: num("zy", 1.0),
        flip_horizontal: flag("flip_horizontal"),
        flip_vertical: flag("flip_vertical"),
        channel_shift_intensity: v.get("channel_shift_intensity").and_then(Value::as_f64),
        brightness: v.get("brightness").and_then(Value::as_f64),
    }
}

pub(crate) fn cases(kind: &str) -> Vec<Case> {
    let dir = fixture_dir();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for c in manifest["cases"].as_array().unwrap() {
        if c["kind"] != kind {
            continue;
        }
        let name = c["name"].as_str().unwrap().to_string();
        // The generator options go through the JSON reader, as a user's config would.
        let mut options = c["options"].clone();
        options["data_format"] = c["data_format"].clone();
        let generator = ImageDataGenerator::from_json(&options.to_string()).unwrap();
        let (dims, input) = read_reference_npy(&dir.join(format!("{name}_in.npy")));
        let (out_dims, expected) = read_reference_npy(&dir.join(format!("{name}_out.npy")));
        assert_eq!(dims, out_dims, "{name}");
        let format = generator.options().data_format;
        let shape = format.image_shape([dims[0], dims[1], dims[2]]);
        out.push(Case {
            name,
            kind: kind.to_string(),
            generator,
            shape,
            dtype: c["dtype"].as_str().unwrap().to_string(),
            params: params_from_json(&c["params"]),
            tol: c["tol"].as_f64().unwrap(),
            max_off_by_one: c["max_off_by_one"].as_u64().unwrap() as usize,
            input,
            expected,
        });
    }
    assert!(!out.is_empty(), "no {kind} cases in the manifest");
    out
}

fn run<T: Real>(case: &Case) -> Vec<f64> {
    let mut image: Vec<T> = case.input.iter().map(|&v| T::from_f64_lossy(v)).collect();
    let mut scratch = Scratch::default();
    case.generator
        .apply_transform(&mut image, case.shape, &case.params, &mut scratch)
        .unwrap();
    image.iter().map(|v| v.to_f64_lossless()).collect()
}

/// Runs every case of `kind`, prints the largest error of each, and checks
/// the case's tolerance; returns the largest error over all cases.
fn check(kind: &str) -> f64 {
    let mut worst = 0.0f64;
    for case in cases(kind) {
        let got = match case.dtype.as_str() {
            "float32" => run::<f32>(&case),
            "float64" => run::<f64>(&case),
            d => panic!("{}: dtype {d}", case.name),
        };
        let diffs: Vec<f64> = got
            .iter()
            .zip(&case.expected)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let max = diffs.iter().copied().fold(0.0, f64::max);
        let beyond: Vec<usize> = (0..diffs.len()).filter(|&i| diffs[i] > case.tol).collect();
        eprintln!(
            "{:>32}: max |diff| {max:.3e}, {} beyond {:e}",
            case.name,
            beyond.len(),
            case.tol
        );
        let off_by_one = beyond.iter().all(|&i| diffs[i] <= 1.0);
        assert!(
            beyond.is_empty() || (off_by_one && beyond.len() <= case.max_off_by_one),
            "{} ({}): {} values beyond {:e} (max {max}); first at {}: got {} want {}",
            case.name,
            case.kind,
            beyond.len(),
            case.tol,
            beyond[0],
            got[beyond[0]],
            case.expected[beyond[0]]
        );
        worst = worst.max(max);
    }
    worst
}

#[test]
fn channel_shift_matches_keras() {
    assert!(check("channel_shift") <= 1e-4);
}

#[test]
fn flips_match_keras_exactly() {
    assert_eq!(check("flip"), 0.0);
}

#[test]
fn keras_brightness_matches_exactly() {
    assert_eq!(check("brightness"), 0.0);
}

#[test]
fn apply_transform_matches_keras() {
    check("apply");
}

#[test]
fn multiplicative_brightness_keeps_units() {
    let generator =
        ImageDataGenerator::from_json(r#"{"brightness_mode": "multiplicative"}"#).unwrap();
    let shape = ImageShape::chw(4, 1, 2);
    let mut x = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    let params = TransformParams {
        brightness: Some(2.0),
        ..TransformParams::default()
    };
    generator
        .apply_transform(&mut x, shape, &params, &mut Scratch::default())
        .unwrap();
    // Colour channels doubled, the alpha plane (channel 3) untouched.
    assert_eq!(x, [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 0.7, 0.8]);
}

#[test]
fn identity_params_leave_the_image_untouched() {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        fill_mode: npyflow::FillMode::Constant,
        data_format: DataFormat::ChannelsFirst,
        ..GeneratorOptions::default()
    })
    .unwrap();
    let shape = ImageShape::chw(2, 3, 4);
    let x: Vec<f64> = (0..24).map(|v| v as f64 * 1.5 - 7.0).collect();
    let mut y = x.clone();
    generator
        .apply_transform(
            &mut y,
            shape,
            &TransformParams::default(),
            &mut Scratch::default(),
        )
        .unwrap();
    assert_eq!(x, y);
}

#[test]
fn wrong_buffer_length_is_an_error() {
    let generator = ImageDataGenerator::default();
    let mut x = vec![0.0f32; 5];
    let params = TransformParams {
        flip_vertical: true,
        ..TransformParams::default()
    };
    let err = generator.apply_transform(
        &mut x,
        ImageShape::hwc(2, 2, 1),
        &params,
        &mut Scratch::default(),
    );
    assert!(matches!(
        err.unwrap_err().kind(),
        npyflow::ErrorKind::ShapeMismatch { .. }
    ));
}
