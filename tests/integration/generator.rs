//! `ImageDataGenerator`: options, validation, JSON config, random parameters,
//! and the upstream keras-preprocessing tests that apply to them
//! (keras-behaviour §5.3 items 3, 7, 9, 10 and §5.4 items 4, 7).

use npyflow::{
    Compat, ErrorKind, FillMode, GeneratorOptions, ImageDataGenerator, ImageShape,
    PreprocessingFunction, SampleRng, Scratch, ShiftRange, Stream, TransformParams, ZoomRange,
};

fn invalid_name(r: npyflow::Result<ImageDataGenerator>) -> &'static str {
    match r.map(|_| ()).unwrap_err().into_kind() {
        ErrorKind::InvalidArgument { name, .. } => name,
        k => panic!("expected an invalid argument, got {k:?}"),
    }
}

fn seeded(seed: u64) -> SampleRng {
    SampleRng::new(seed, Stream::Augment, 0, 0)
}

/// A deterministic pseudo-random image (values in 0..255).
fn noise(len: usize) -> Vec<f32> {
    let mut rng = SampleRng::new(99, Stream::Fit, 0, 0);
    (0..len).map(|_| rng.uniform(0.0, 255.0) as f32).collect()
}

/// §5.3-3 `test_image_data_generator_with_split_value_error`.
#[test]
fn validation_split_of_five_is_rejected() {
    let o = GeneratorOptions {
        validation_split: 5.0,
        ..Default::default()
    };
    assert_eq!(invalid_name(ImageDataGenerator::new(o)), "validation_split");
}

/// §5.3-7 `test_valid_args`: `brightness_range=0.1`. The typed option
/// cannot hold it; the Keras call, through the JSON reader, fails with
/// Keras' message.
#[test]
fn brightness_range_must_be_a_pair() {
    let err = ImageDataGenerator::from_json(r#"{"brightness_range": 0.1}"#)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `brightness_range` = 0.1: `brightness_range should be tuple or list of two \
         floats. Received: 0.1"
    );
}

/// §5.4-7 `test_random_brightness_error`: `brightness_range=[0]`.
#[test]
fn brightness_range_of_one_value_is_rejected() {
    assert_eq!(
        invalid_name(ImageDataGenerator::from_json(
            r#"{"brightness_range": [0]}"#
        )),
        "brightness_range"
    );
}

/// §5.4-4 `test_random_zoom_error`: `zoom_range=[0]`.
#[test]
fn zoom_range_of_one_value_is_rejected() {
    let err = ImageDataGenerator::from_json(r#"{"zoom_range": [0]}"#)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `zoom_range` = [0]: `zoom_range` should be a float or a tuple or list of two \
         floats. Received: [0]"
    );
}

/// The typed ranges mean what Keras' lists mean.
#[test]
fn typed_ranges_match_their_json_forms() {
    let typed = ImageDataGenerator::new(GeneratorOptions {
        zoom_range: ZoomRange::Range([0.8, 1.3]),
        brightness_range: Some([0.5, 1.5]),
        fill_mode: FillMode::Wrap,
        ..Default::default()
    })
    .unwrap();
    let json = ImageDataGenerator::from_json(
        r#"{"zoom_range": [0.8, 1.3], "brightness_range": [0.5, 1.5], "fill_mode": "wrap"}"#,
    )
    .unwrap();
    assert_eq!(typed.options(), json.options());
    assert_eq!(typed.zoom_range(), [0.8, 1.3]);
    assert_eq!(typed.fill_mode(), FillMode::Wrap);
    let shape = ImageShape::hwc(4, 4, 1);
    assert_eq!(
        typed.get_random_transform(shape, &mut seeded(7)),
        json.get_random_transform(shape, &mut seeded(7))
    );
    let scalar = ImageDataGenerator::new(GeneratorOptions {
        zoom_range: ZoomRange::Scalar(0.25),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(scalar.zoom_range(), [0.75, 1.25]);
}

/// `compat`: the field reads from JSON, and both values build a generator
/// (tests/integration/keras3.rs checks Keras 3's numerics).
#[test]
fn compat_reads_from_json() {
    let o = GeneratorOptions::from_json(r#"{"compat": "keras3"}"#).unwrap();
    assert_eq!(o.compat, Compat::Keras3);
    let g = ImageDataGenerator::new(o).unwrap();
    assert_eq!(g.options().compat, Compat::Keras3);
    let g = ImageDataGenerator::from_json(r#"{"compat": "keras-preprocessing"}"#).unwrap();
    assert_eq!(g.options().compat, Compat::KerasPreprocessing);
    assert_eq!(
        GeneratorOptions::default().compat,
        Compat::KerasPreprocessing
    );
    assert_eq!(
        invalid_name(ImageDataGenerator::from_json(r#"{"compat": "keras2"}"#)),
        "compat"
    );
}

/// §5.3-9 `test_deterministic_transform` (flips): with a generator that also
/// has a rotation range, explicit flip parameters reverse rows / columns.
#[test]
fn explicit_flips_reverse_rows_and_columns() {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 90.0,
        fill_mode: FillMode::Constant,
        ..Default::default()
    })
    .unwrap();
    let shape = ImageShape::hwc(32, 32, 3);
    let x = noise(shape.len());
    let mut scratch = Scratch::default();
    let mut v = x.clone();
    let flip_v = TransformParams {
        flip_vertical: true,
        ..Default::default()
    };
    generator
        .apply_transform(&mut v, shape, &flip_v, &mut scratch)
        .unwrap();
    let mut h = x.clone();
    let flip_h = TransformParams {
        flip_horizontal: true,
        ..Default::default()
    };
    generator
        .apply_transform(&mut h, shape, &flip_h, &mut scratch)
        .unwrap();
    for r in 0..32 {
        for c in 0..32 {
            for ch in 0..3 {
                let at = shape.index(r, c, ch);
                assert_eq!(v[at], x[shape.index(31 - r, c, ch)]); // x[::-1, :, :]
                assert_eq!(h[at], x[shape.index(r, 31 - c, ch)]); // x[:, ::-1, :]
            }
        }
    }
}

/// §5.3-10 `test_random_transforms`.
#[test]
fn random_transforms_are_non_trivial_and_differ_between_seeds() {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 90.0,
        width_shift_range: ShiftRange::Float(0.1),
        height_shift_range: ShiftRange::Float(0.1),
        shear_range: 0.5,
        zoom_range: ZoomRange::Scalar(0.2),
        channel_shift_range: 0.1,
        brightness_range: Some([1.0, 5.0]),
        horizontal_flip: true,
        vertical_flip: true,
        ..Default::default()
    })
    .unwrap();
    // Keras' img_shape (2, 28, 28) read channels-last: 2 rows, 28 columns.
    let shape = ImageShape::hwc(2, 28, 28);
    let a = generator.get_random_transform(shape, &mut seeded(1));
    let b = generator.get_random_transform(shape, &mut seeded(2));
    let values = |p: &TransformParams| {
        [
            p.theta,
            p.tx,
            p.ty,
            p.shear,
            p.zx,
            p.zy,
            p.channel_shift_intensity.unwrap(),
            p.brightness.unwrap(),
        ]
    };
    for (x, y) in values(&a).into_iter().zip(values(&b)) {
        assert_ne!(x, 0.0);
        assert_ne!(x, y);
    }
    // Same stream, same parameters.
    assert_eq!(a, generator.get_random_transform(shape, &mut seeded(1)));

    let default = ImageDataGenerator::new(GeneratorOptions::default()).unwrap();
    let p = default.get_random_transform(shape, &mut seeded(1));
    assert_eq!(
        (p.theta, p.tx, p.ty, p.shear, p.zx, p.zy),
        (0.0, 0.0, 0.0, 0.0, 1.0, 1.0)
    );
    assert_eq!((p.channel_shift_intensity, p.brightness), (None, None));
    assert!(!p.flip_horizontal && !p.flip_vertical);
}

#[test]
fn shifts_use_height_for_tx_and_width_for_ty() {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        height_shift_range: ShiftRange::Float(0.5),
        width_shift_range: ShiftRange::Pixels(3),
        ..Default::default()
    })
    .unwrap();
    let shape = ImageShape::chw(3, 10, 1000);
    let (mut max_tx, mut max_ty) = (0.0f64, 0.0f64);
    for i in 0..2_000 {
        let p =
            generator.get_random_transform(shape, &mut SampleRng::new(5, Stream::Augment, 0, i));
        max_tx = max_tx.max(p.tx.abs());
        max_ty = max_ty.max(p.ty.abs());
        assert_eq!(p.ty, p.ty.round());
    }
    // tx: a fraction of the 10 rows (< 5); ty: integer pixels, at most k - 1 = 2.
    assert!(max_tx < 5.0 && max_tx > 4.9, "{max_tx}");
    assert_eq!(max_ty, 2.0);
}

#[test]
fn keras_style_json_config_parses() {
    let text = r#"{
        "featurewise_center": false, "samplewise_center": true,
        "featurewise_std_normalization": false, "samplewise_std_normalization": true,
        "zca_whitening": false, "zca_epsilon": 1e-06, "rotation_range": 20,
        "width_shift_range": 0.1, "height_shift_range": [1, 2, 3],
        "brightness_range": [0.8, 1.2], "shear_range": 0.5, "zoom_range": [0.9, 1.1],
        "channel_shift_range": 10.0, "fill_mode": "reflect", "cval": 0.0,
        "horizontal_flip": true, "vertical_flip": false, "rescale": 0.00392156862745098,
        "preprocessing_function": null, "data_format": "channels_last",
        "validation_split": 0.2, "interpolation_order": 3, "dtype": "float32"
    }"#;
    let g = ImageDataGenerator::from_json(text).unwrap();
    let o = g.options();
    assert_eq!(o.rotation_range, 20.0);
    assert_eq!(o.width_shift_range, ShiftRange::Float(0.1));
    assert_eq!(
        o.height_shift_range,
        ShiftRange::Choices(vec![1.0, 2.0, 3.0])
    );
    assert_eq!(o.brightness_range, Some([0.8, 1.2]));
    assert_eq!(g.zoom_range(), [0.9, 1.1]);
    assert_eq!(g.fill_mode(), FillMode::Reflect);
    assert_eq!((o.interpolation_order, o.validation_split), (3, 0.2));
    assert_eq!(o.rescale, Some(1.0 / 255.0));
    assert!(o.samplewise_center && o.horizontal_flip && !o.vertical_flip);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generator.json");
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        ImageDataGenerator::from_json_file(&path).unwrap().options(),
        o
    );
    let missing = ImageDataGenerator::from_json_file(dir.path().join("nope.json"));
    assert!(matches!(missing.unwrap_err().kind(), ErrorKind::Io { .. }));
}

#[test]
fn unknown_json_key_is_an_error_naming_it() {
    let err = ImageDataGenerator::from_json(r#"{"rotation_range": 10, "roation_range": 10}"#)
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("roation_range"), "{message}");
    assert!(matches!(
        err.kind(),
        ErrorKind::InvalidArgument { name: "config", .. }
    ));
}

#[test]
fn json_values_are_validated_like_rust_options() {
    for (text, name) in [
        (r#"{"fill_mode": "edge"}"#, "fill_mode"),
        (r#"{"interpolation_order": 6}"#, "interpolation_order"),
        (r#"{"validation_split": 1}"#, "validation_split"),
        (r#"{"zoom_range": [0.5, 1, 2]}"#, "zoom_range"),
        (r#"{"data_format": "channels"}"#, "data_format"),
        (r#"{"dtype": "int8"}"#, "dtype"),
        (r#"{"rotation_range": "a lot"}"#, "rotation_range"),
    ] {
        assert_eq!(
            invalid_name(ImageDataGenerator::from_json(text)),
            name,
            "{text}"
        );
    }
}

#[test]
fn process_sample_runs_the_preprocessing_function_before_rescale() {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        rescale: Some(2.0),
        ..Default::default()
    })
    .unwrap()
    .with_preprocessing_function(PreprocessingFunction::elementwise(|v| v + 1.0));
    let shape = ImageShape::hwc(1, 2, 1);
    let mut x = [1.0f64, 3.0];
    generator
        .process_sample(&mut x, shape, &mut seeded(0), &mut Scratch::default())
        .unwrap();
    // Keras: (x + 1) * 2, not x * 2 + 1.
    assert_eq!(x, [4.0, 8.0]);
}

#[test]
fn random_transform_is_reproducible_per_stream() {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        horizontal_flip: true,
        vertical_flip: true,
        channel_shift_range: 30.0,
        brightness_range: Some([0.5, 1.5]),
        ..Default::default()
    })
    .unwrap();
    let shape = ImageShape::hwc(6, 5, 3);
    let x = noise(shape.len());
    let mut scratch = Scratch::default();
    let run = |seed: u64, scratch: &mut Scratch<f32>| {
        let mut y = x.clone();
        generator
            .random_transform(&mut y, shape, &mut seeded(seed), scratch)
            .unwrap();
        y
    };
    let a = run(3, &mut scratch);
    assert_eq!(a, run(3, &mut scratch));
    assert_ne!(a, run(4, &mut scratch));
    // Keras brightness: whole numbers in 0..255.
    assert!(a
        .iter()
        .all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v)));
}

#[test]
fn generator_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send_default<T: Send + Default>() {}
    assert_send_sync::<ImageDataGenerator>();
    assert_send_default::<Scratch<f32>>();
    assert_send_default::<Scratch<f64>>();
}

#[test]
fn featurewise_steps_use_the_attached_statistics() {
    let options = GeneratorOptions {
        featurewise_center: true,
        ..Default::default()
    };
    let mut generator = ImageDataGenerator::new(options).unwrap();
    let shape = ImageShape::hwc(1, 2, 2);
    let mut x = [1.0f32, 10.0, 2.0, 20.0];
    let mut scratch = Scratch::default();
    // npyflow refuses where Keras only warns.
    let err = generator
        .process_sample(&mut x, shape, &mut seeded(0), &mut scratch)
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::MissingStatistics { .. }),
        "{err}"
    );

    let stats = npyflow::Statistics::new(npyflow::DataFormat::ChannelsLast)
        .with_mean(vec![1.5, 15.0])
        .unwrap();
    generator.set_statistics(Some(stats.clone()));
    assert_eq!(generator.statistics(), Some(&stats));
    let mut x = [1.0f32, 10.0, 2.0, 20.0];
    generator
        .process_sample(&mut x, shape, &mut seeded(0), &mut scratch)
        .unwrap();
    assert_eq!(x, [-0.5, -5.0, 0.5, 5.0]);
}
