//! Conformance of the affine resampling with scipy 1.17.1 and Keras 1.1.2:
//! replays every case of tests/fixtures/resample/ (regenerate them with
//! `python3 tests/fixtures/gen_resample.py`; the script documents the tables).
//! Run with `--nocapture` to see the maximum error per mode and order.

use std::collections::BTreeMap;
use std::path::Path;

use npyflow::augment::{affine_transform, keras_affine, Affine2, Interpolation, ResampleScratch};
use npyflow::{DataFormat, FillMode, ImageShape, TransformParams};

/// A reference fixture of the resampling generator, widened to f64, with its shape.
fn load(name: &str) -> (Vec<f64>, Vec<usize>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/resample")
        .join(name);
    let (shape, values) = crate::util::read_reference_npy(&path);
    (values, shape)
}

/// Tolerance of the spec: orders 0 and 1 within 1e-4 on 0..255 data, 2..5 within 1e-3.
fn tolerance(order: u8) -> f64 {
    if order <= 1 {
        1e-4
    } else {
        1e-3
    }
}

/// Maximum absolute error per (mode, order), printed as a table.
#[derive(Default)]
struct Errors(BTreeMap<(usize, u8), (f64, usize)>);

impl Errors {
    fn record(&mut self, mode: usize, order: u8, err: f64) {
        let e = self.0.entry((mode, order)).or_insert((0.0, 0));
        e.0 = e.0.max(err);
        e.1 += 1;
    }

    fn report(&self, title: &str) {
        println!(
            "{title}: max |error| per mode (rows) and order 0..5 (columns), cases in brackets"
        );
        for (mi, mode) in FillMode::ALL.iter().enumerate() {
            let cells: Vec<String> = (0..=5u8)
                .map(|o| match self.0.get(&(mi, o)) {
                    Some((e, n)) => format!("{e:9.2e} [{n:2}]"),
                    None => format!("{:>14}", "-"),
                })
                .collect();
            println!("  {:>13} {}", mode.as_str(), cells.join(" "));
        }
        // Every mode × order must be covered, or the fixtures shrank.
        assert_eq!(
            self.0.len(),
            48,
            "{title}: fixtures do not cover every mode and order"
        );
    }
}

/// Largest |a - b|; a NaN on either side counts as an infinite error (a plain
/// `f64::max` fold would skip it).
fn max_abs_diff(a: impl IntoIterator<Item = f64>, b: &[f64]) -> f64 {
    let diff = |(x, y): (f64, &f64)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            d
        }
    };
    a.into_iter().zip(b).map(diff).fold(0.0, f64::max)
}

#[test]
fn scipy_affine_transform_is_reproduced_for_every_mode_and_order() {
    let (inputs, _) = load("scipy_inputs.npy");
    let (outputs, _) = load("scipy_outputs.npy");
    let (cases, dims) = load("scipy_cases.npy");
    assert_eq!(dims[1], 13);
    let mut scratch = ResampleScratch::default();
    let mut errors = Errors::default();
    let mut failures = Vec::new();
    for (k, row) in cases.chunks_exact(13).enumerate() {
        let (in_off, h, w) = (row[0] as usize, row[1] as usize, row[2] as usize);
        let m = Affine2 {
            a: [[row[3], row[4]], [row[5], row[6]]],
            offset: [row[7], row[8]],
        };
        let (mi, order, cval, out_off) =
            (row[9] as usize, row[10] as u8, row[11], row[12] as usize);
        let input = &inputs[in_off..in_off + h * w];
        let want = &outputs[out_off..out_off + h * w];
        let mut got = vec![f64::NAN; h * w];
        let mode = FillMode::ALL[mi];
        affine_transform(
            input,
            &mut got,
            ImageShape::hwc(h, w, 1),
            &m,
            Interpolation { order, mode, cval },
            &mut scratch,
        );
        let err = max_abs_diff(got.iter().copied(), want);
        errors.record(mi, order, err);
        if err > tolerance(order) {
            failures.push(format!(
                "case {k}: {h}x{w} {mode} order {order}: max error {err:e}"
            ));
        }
    }
    errors.report("scipy.ndimage.affine_transform (f64)");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn keras_apply_transform_geometry_is_reproduced() {
    let (inputs, _) = load("keras_inputs.npy");
    let (outputs, _) = load("keras_outputs.npy");
    let (cases, dims) = load("keras_cases.npy");
    assert_eq!(dims[1], 22);
    let mut scratch = ResampleScratch::default();
    let mut errors = Errors::default();
    let mut failures = Vec::new();
    for (k, row) in cases.chunks_exact(22).enumerate() {
        let in_off = row[0] as usize;
        let format = if row[4] == 1.0 {
            DataFormat::ChannelsFirst
        } else {
            DataFormat::ChannelsLast
        };
        let shape = format.image_shape([row[1] as usize, row[2] as usize, row[3] as usize]);
        let [theta, tx, ty, shear, zx, zy] = [row[5], row[6], row[7], row[8], row[9], row[10]];
        let (mi, order, cval, out_off) =
            (row[11] as usize, row[12] as u8, row[13], row[14] as usize);
        let n = shape.len();
        let input: Vec<f32> = inputs[in_off..in_off + n]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let want = &outputs[out_off..out_off + n];
        let mode = FillMode::ALL[mi];
        let what = format!(
            "case {k}: {shape:?} {mode} order {order} params {:?}",
            &row[5..11]
        );
        let Some(m) = keras_affine(
            &TransformParams {
                theta,
                tx,
                ty,
                shear,
                zx,
                zy,
                ..TransformParams::default()
            },
            shape.height,
            shape.width,
        ) else {
            // Keras returns the image itself when every factor is the identity.
            assert_eq!(
                row[15], 1.0,
                "{what}: npyflow found identity parameters, Keras did not"
            );
            assert_eq!(
                max_abs_diff(input.iter().map(|&v| f64::from(v)), want),
                0.0,
                "{what}"
            );
            continue;
        };
        assert_eq!(row[15], 0.0, "{what}: Keras found identity parameters");
        let keras_m = [row[16], row[17], row[18], row[19], row[20], row[21]];
        let ours = [
            m.a[0][0],
            m.a[0][1],
            m.a[1][0],
            m.a[1][1],
            m.offset[0],
            m.offset[1],
        ];
        let merr = max_abs_diff(ours, &keras_m);
        assert!(merr < 1e-12, "{what}: matrix {ours:?} vs Keras {keras_m:?}");
        let mut got = vec![f32::NAN; n];
        affine_transform(
            &input,
            &mut got,
            shape,
            &m,
            Interpolation { order, mode, cval },
            &mut scratch,
        );
        let err = max_abs_diff(got.iter().map(|&v| f64::from(v)), want);
        errors.record(mi, order, err);
        if err > tolerance(order) {
            failures.push(format!("{what}: max error {err:e}"));
        }
    }
    errors.report("Keras 1.1.2 apply_transform (f32, channels-last and channels-first)");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Keras' own regression test (keras-behaviour §5.3 item 9 / §5.4 item 2):
/// on ones(3, 3, 3), theta = 45 with constant fill gives, per channel,
/// `[0,0,1] / [0,1,1] / [0,0,1]` in 1.1.2 (its pivot is one pixel off-centre).
#[test]
fn keras_theta_45_regression_mask() {
    for format in [DataFormat::ChannelsLast, DataFormat::ChannelsFirst] {
        let shape = format.image_shape([3, 3, 3]);
        let input = vec![1f32; 27];
        let mut out = vec![f32::NAN; 27];
        let m = keras_affine(
            &TransformParams {
                theta: 45.0,
                ..TransformParams::default()
            },
            3,
            3,
        )
        .expect("not identity");
        affine_transform(
            &input,
            &mut out,
            shape,
            &m,
            Interpolation {
                order: 1,
                mode: FillMode::Constant,
                cval: 0.0,
            },
            &mut ResampleScratch::default(),
        );
        let want = [[0., 0., 1.], [0., 1., 1.], [0., 0., 1.]];
        for ch in 0..3 {
            for (r, want_row) in want.iter().enumerate() {
                for (c, &v) in want_row.iter().enumerate() {
                    assert_eq!(out[shape.index(r, c, ch)], v, "{format:?} ({r},{c},{ch})");
                }
            }
        }
    }
}
