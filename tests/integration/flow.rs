//! Whole batches from `flow(shuffle=False)` against keras-preprocessing 1.1.2
//! (fixtures from tests/fixtures/gen_flow.py) for deterministic generators.

use std::path::PathBuf;

use npyflow::{DataFormat, GeneratorOptions, ImageDataGenerator, NpyArray, OutputDtype};

fn fixture(name: &str) -> NpyArray {
    NpyArray::open(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/flow")
            .join(name),
    )
    .unwrap()
}

fn check(name: &str, options: GeneratorOptions, tol: f64) {
    let cf = options.data_format == DataFormat::ChannelsFirst;
    let x = fixture(if cf { "x_cf.npy" } else { "x.npy" });
    let want = fixture(&format!("{name}.npy")).to_vec_f64().unwrap();
    let mut g = ImageDataGenerator::new(options).unwrap();
    if g.options().featurewise_center {
        g.fit(&x, &npyflow::FitConfig::default()).unwrap();
    }
    let mut it = g
        .flow(x)
        .y(fixture("y.npy"))
        .batch_size(4)
        .shuffle(false)
        .build()
        .unwrap();
    assert_eq!(it.len(), 3);
    let got = crate::util::epoch_images_f64(&mut it);
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= tol, "{name}: max error {worst}");
}

#[test]
fn rescale() {
    check(
        "rescale",
        GeneratorOptions {
            rescale: Some(1.0 / 255.0),
            ..Default::default()
        },
        1e-7,
    );
}

#[test]
fn samplewise() {
    let o = GeneratorOptions {
        samplewise_center: true,
        samplewise_std_normalization: true,
        ..Default::default()
    };
    check("samplewise", o, 1e-5);
}

#[test]
fn featurewise_fitted_channels_last_and_first() {
    let o = GeneratorOptions {
        featurewise_center: true,
        featurewise_std_normalization: true,
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    };
    check("featurewise", o, 1e-5);
    let o = GeneratorOptions {
        featurewise_center: true,
        featurewise_std_normalization: true,
        data_format: DataFormat::ChannelsFirst,
        ..Default::default()
    };
    check("featurewise_cf", o, 1e-5);
}

#[test]
fn float64_output() {
    let o = GeneratorOptions {
        rescale: Some(1.0 / 255.0),
        samplewise_center: true,
        dtype: OutputDtype::F64,
        ..Default::default()
    };
    check("float64", o, 1e-12);
}
