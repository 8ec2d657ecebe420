//! The single-precision order-1 kernel against scipy's arithmetic, its
//! fused flips, its fallbacks, and its vector path against its scalar one.

use crate::augment::resample::linear::job::Job;
use crate::augment::resample::{Fused, Interpolation, ResampleJob};
use crate::augment::{flip_horizontal, flip_vertical, keras_affine, TransformParams};
use crate::augment::{Affine2, ResampleScratch};
use crate::{FillMode, ImageShape};

/// The job of `ResampleScratch::transform`: scipy's arguments, then the
/// steps folded into the writes.
fn job(
    shape: ImageShape,
    m: Affine2,
    order: u8,
    mode: FillMode,
    cval: f64,
    flips: [bool; 2],
    scale: Option<f64>,
) -> ResampleJob {
    let interp = Interpolation { order, mode, cval };
    ResampleJob {
        shape,
        m,
        interp,
        flips,
        scale,
    }
}

/// What a kernel reports done: the flips, the scale.
fn fused(flips: bool, scale: bool) -> Fused {
    Fused { flips, scale }
}

/// A small deterministic generator (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Whether two images hold the same bits.
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Matrices of every kind: Keras draws (rotation, shear, zoom, shift), and
/// exact ones whose coordinates land on whole and half pixels (pure
/// shifts, quarter turns, zoom by 2), where the border rules switch.
fn matrices(h: usize, w: usize, rng: &mut Lcg) -> Vec<Affine2> {
    let mut out = vec![
        Affine2 {
            offset: [1.0, -2.0],
            ..Affine2::IDENTITY
        },
        Affine2 {
            offset: [0.5, 0.5],
            ..Affine2::IDENTITY
        },
        Affine2 {
            a: [[0.0, 1.0], [-1.0, 0.0]],
            offset: [0.0, (w - 1) as f64],
        },
        Affine2 {
            a: [[2.0, 0.0], [0.0, 0.5]],
            offset: [-1.0, 0.25],
        },
    ];
    for _ in 0..12 {
        let (hf, wf) = (h as f64, w as f64);
        let m = keras_affine(
            &TransformParams {
                theta: rng.range(-45.0, 45.0),
                tx: rng.range(-0.3, 0.3) * hf,
                ty: rng.range(-0.3, 0.3) * wf,
                shear: rng.range(-20.0, 20.0),
                zx: rng.range(0.7, 1.3),
                zy: rng.range(0.7, 1.3),
                ..TransformParams::default()
            },
            h,
            w,
        );
        out.extend(m);
    }
    out
}

/// f32 (the single-precision kernel) against f64 (scipy's arithmetic) on
/// 0..255 data, for every mode, layout and flip: within 1e-4, and the
/// fused flips equal to flipping afterwards.
#[test]
fn single_precision_order_1_stays_within_the_spec_of_scipy() {
    let mut rng = Lcg(7);
    let mut scratch = ResampleScratch::default();
    let mut worst = 0.0f64;
    let shapes = [
        ImageShape::hwc(32, 32, 3),
        ImageShape::hwc(7, 5, 3),
        ImageShape::hwc(2, 2, 3),
        ImageShape::hwc(9, 13, 1),
        ImageShape::hwc(6, 11, 4),
        ImageShape::hwc(5, 6, 2),
        ImageShape::chw(3, 8, 9),
        ImageShape::hwc(1, 7, 3),
        ImageShape::hwc(2, 9, 3),
        ImageShape::hwc(9, 2, 1),
        ImageShape::hwc(3, 130, 4),
        ImageShape::hwc(17, 16, 3),
    ];
    for shape in shapes {
        // Whole numbers (u8 images), fractional values, and the steepest
        // data there is (a 0/255 checkerboard, the last shape).
        let whole = shape.channels != 4;
        let checker = shape.height == 17;
        let data: Vec<f64> = (0..shape.len())
            .map(|i| {
                let v = rng.range(0.0, 255.0);
                let pixel = i / shape.channels;
                if checker {
                    255.0 * ((pixel / shape.width + pixel % shape.width) % 2) as f64
                } else if whole {
                    v.round()
                } else {
                    f64::from(v as f32)
                }
            })
            .collect();
        let single: Vec<f32> = data.iter().map(|&v| v as f32).collect();
        for m in matrices(shape.height, shape.width, &mut rng) {
            for mode in FillMode::ALL {
                for flips in [[false, false], [false, true], [true, false], [true, true]] {
                    let mut want = vec![0.0f64; data.len()];
                    scratch.transform(
                        &job(shape, m, 1, mode, 17.0, [false; 2], None),
                        &data,
                        &mut want,
                    );
                    if flips[1] {
                        flip_horizontal(&mut want, shape).unwrap();
                    }
                    if flips[0] {
                        flip_vertical(&mut want, shape).unwrap();
                    }
                    // Half the runs rescale as they write (compared in
                    // 0..255 units).
                    let scale = (flips[0] == flips[1]).then_some(1.0 / 255.0);
                    let mut got = vec![f32::NAN; data.len()];
                    let done = scratch.transform(
                        &job(shape, m, 1, mode, 17.0, flips, scale),
                        &single,
                        &mut got,
                    );
                    // Scaled only by the single-precision kernel, which
                    // takes 1, 3 or 4 channels from 2×2 up.
                    let fast = shape.height > 1 && shape.channels != 2;
                    assert_eq!(done, fused(true, fast || scale.is_none()), "{shape:?}");
                    let unit = match scale {
                        Some(s) if fast => f64::from(s as f32),
                        _ => 1.0,
                    };
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let err = (f64::from(*g) / unit - (*w as f32) as f64).abs();
                        assert!(
                            err <= 1e-4,
                            "{shape:?} {m:?} {mode} {flips:?} at {i}: {g} vs {w}"
                        );
                        worst = worst.max(err);
                    }
                }
            }
        }
    }
    println!("worst f32 order-1 error against f64: {worst:e}");
}

/// The AVX2 interior writes what the scalar loop writes, to the bit, for
/// every layout the kernel takes, every mode, flip and rescale, and
/// image widths around its 4-pixel groups.
#[test]
fn the_vector_path_equals_the_scalar_one_to_the_bit() {
    if super::runs::Avx2::detect().is_none() {
        println!("skipped: this CPU has no AVX2, so only the scalar path runs");
        return;
    }
    let mut rng = Lcg(5);
    let mut scratch = ResampleScratch::default();
    let shapes = [
        ImageShape::hwc(32, 32, 3),
        ImageShape::hwc(9, 13, 1),
        ImageShape::hwc(6, 11, 4),
        ImageShape::hwc(17, 16, 3),
        ImageShape::hwc(8, 7, 3),
        ImageShape::chw(3, 8, 9),
        ImageShape::hwc(2, 5, 3),
        ImageShape::hwc(40, 3, 4),
        ImageShape::hwc(12, 61, 3),
    ];
    let mut compared = 0;
    for shape in shapes {
        let data: Vec<f32> = (0..shape.len())
            .map(|_| rng.range(0.0, 255.0) as f32)
            .collect();
        for m in matrices(shape.height, shape.width, &mut rng) {
            // `nearest` both through the edge-replicated copy and directly,
            // where the clamped runs take a loop of their own.
            let cases = FillMode::ALL
                .into_iter()
                .flat_map(|mode| [(mode, false), (mode, true)])
                .filter(|&(mode, unpadded)| !unpadded || mode == FillMode::Nearest);
            for (mode, unpadded) in cases {
                for flips in [[false, false], [true, true], [false, true]] {
                    let scale = (flips[0] == flips[1]).then_some(1.0 / 255.0);
                    let run = |scalar: bool, scratch: &mut ResampleScratch| {
                        super::runs::SCALAR_ONLY.set(scalar);
                        super::padded::UNPADDED.set(unpadded);
                        let mut out = vec![f32::NAN; data.len()];
                        scratch.transform(
                            &job(shape, m, 1, mode, 9.0, flips, scale),
                            &data,
                            &mut out,
                        );
                        super::runs::SCALAR_ONLY.set(false);
                        super::padded::UNPADDED.set(false);
                        out
                    };
                    let (scalar, vector) = (run(true, &mut scratch), run(false, &mut scratch));
                    assert!(
                        same_bits(&scalar, &vector),
                        "{shape:?} {m:?} {mode} {flips:?} unpadded {unpadded}"
                    );
                    compared += 1;
                }
            }
        }
    }
    println!("{compared} images equal on both paths");
}

/// In `nearest` mode small images go through an edge-replicated copy
/// (`padded`). It writes what the direct path writes, to the bit, on both
/// the vector and the scalar loop, for every layout, flip and rescale, with
/// margins from none to the largest copy taken, except past the last row or
/// column: there the direct path blends the last two with a fraction of 1
/// and the copy takes the last alone, which can differ by an ulp. So the
/// data here repeats its last row and column (the scipy test above holds
/// the copy's values everywhere).
#[test]
fn the_padded_copy_equals_the_direct_path() {
    let mut rng = Lcg(3);
    let mut scratch = ResampleScratch::default();
    let shapes = [
        ImageShape::hwc(32, 32, 3),
        ImageShape::hwc(9, 13, 1),
        ImageShape::hwc(6, 11, 4),
        ImageShape::hwc(17, 16, 3),
        ImageShape::chw(3, 8, 9),
        ImageShape::hwc(3, 3, 3),
        ImageShape::hwc(5, 40, 3),
        ImageShape::hwc(64, 64, 3),
    ];
    let (mut padded, mut direct) = (0, 0);
    for shape in shapes {
        let (h, w) = (shape.height, shape.width);
        let mut data: Vec<f32> = (0..shape.len())
            .map(|_| rng.range(0.0, 255.0) as f32)
            .collect();
        for r in 0..h {
            for c in 0..w {
                for ch in 0..shape.channels {
                    let from = shape.index(r.min(h - 2), c.min(w - 2), ch);
                    data[shape.index(r, c, ch)] = data[from];
                }
            }
        }
        let mut ms = matrices(shape.height, shape.width, &mut rng);
        // Zoomed in (no margin at all) and shifted by most of the image.
        ms.push(
            keras_affine(
                &TransformParams {
                    theta: 5.0,
                    zx: 0.5,
                    zy: 0.5,
                    ..TransformParams::default()
                },
                shape.height,
                shape.width,
            )
            .unwrap(),
        );
        let far = (shape.height as f64 * 0.9, shape.width as f64 * -0.9);
        ms.push(
            keras_affine(
                &TransformParams {
                    tx: far.0,
                    ty: far.1,
                    ..TransformParams::default()
                },
                shape.height,
                shape.width,
            )
            .unwrap(),
        );
        for m in ms {
            let low = Job {
                input: &data,
                shape,
                m: &m,
                mode: FillMode::Nearest,
                cval: 0.0,
                flips: [false; 2],
            };
            match super::padded::Pad::fit(&low) {
                Some(_) => padded += 1,
                None => direct += 1,
            }
            for flips in [[false, false], [true, true], [false, true]] {
                let scale = (flips[0] == flips[1]).then_some(1.0 / 255.0);
                for scalar in [false, true] {
                    let run = |unpadded: bool, scratch: &mut ResampleScratch| {
                        super::runs::SCALAR_ONLY.set(scalar);
                        super::padded::UNPADDED.set(unpadded);
                        let mut out = vec![f32::NAN; data.len()];
                        let nearest = FillMode::Nearest;
                        scratch.transform(
                            &job(shape, m, 1, nearest, 0.0, flips, scale),
                            &data,
                            &mut out,
                        );
                        super::runs::SCALAR_ONLY.set(false);
                        super::padded::UNPADDED.set(false);
                        out
                    };
                    let (copy, direct) = (run(false, &mut scratch), run(true, &mut scratch));
                    let same = same_bits(&copy, &direct);
                    assert!(same, "{shape:?} {m:?} {flips:?} scalar {scalar}");
                }
            }
        }
    }
    // Most draws take the copy, and the far shifts of the larger shapes
    // do not (the copy would be too large): both paths are compared.
    println!("{padded} images through the copy, {direct} direct");
    assert!(padded > 8 * direct && direct > 0, "{padded} / {direct}");
}

/// Orders 0 and 1 in f64 write flipped outputs equal, to the bit, to the
/// unflipped result flipped afterwards.
#[test]
fn fused_flips_equal_flipping_afterwards() {
    let mut rng = Lcg(11);
    let mut scratch = ResampleScratch::default();
    for shape in [ImageShape::hwc(6, 7, 3), ImageShape::chw(2, 5, 4)] {
        let data: Vec<f64> = (0..shape.len()).map(|_| rng.range(-3.0, 300.0)).collect();
        for m in matrices(shape.height, shape.width, &mut rng) {
            for (order, mode) in [
                (0, FillMode::Reflect),
                (1, FillMode::Wrap),
                (0, FillMode::Nearest),
            ] {
                let mut want = vec![0.0; data.len()];
                scratch.transform(
                    &job(shape, m, order, mode, 2.0, [false; 2], None),
                    &data,
                    &mut want,
                );
                flip_horizontal(&mut want, shape).unwrap();
                flip_vertical(&mut want, shape).unwrap();
                let mut got = vec![0.0; data.len()];
                let done = scratch.transform(
                    &job(shape, m, order, mode, 2.0, [true; 2], None),
                    &data,
                    &mut got,
                );
                assert_eq!(done, fused(true, true));
                assert_eq!(got, want, "{shape:?} {m:?} {mode} order {order}");
            }
        }
    }
    // Orders 2..=5 leave the flips to the caller.
    let shape = ImageShape::hwc(4, 4, 1);
    let data = vec![1.0f32; 16];
    let mut out = vec![0.0f32; 16];
    let m = Affine2::IDENTITY;
    let nearest = FillMode::Nearest;
    let done = scratch.transform(
        &job(shape, m, 3, nearest, 0.0, [true; 2], None),
        &data,
        &mut out,
    );
    assert_eq!(done, fused(false, true));
    let done = scratch.transform(
        &job(shape, m, 3, nearest, 0.0, [false; 2], Some(2.0)),
        &data,
        &mut out,
    );
    assert_eq!(done, fused(true, false));
}

/// Absurd matrices leave the kernel to the exact path (cval, no panic).
#[test]
fn non_finite_matrices_fall_back() {
    let shape = ImageShape::hwc(5, 4, 3);
    let data = vec![3.0f32; shape.len()];
    let mut scratch = ResampleScratch::default();
    for bad in [f64::NAN, f64::INFINITY, 1e300] {
        let m = Affine2 {
            a: [[bad, 0.0], [0.0, 1.0]],
            offset: [0.0, bad],
        };
        for mode in FillMode::ALL {
            let mut out = vec![0.0f32; data.len()];
            scratch.transform(
                &job(shape, m, 1, mode, 2.0, [true; 2], None),
                &data,
                &mut out,
            );
            if !bad.is_finite() {
                assert!(out.iter().all(|&v| v == 2.0), "{bad} {mode}");
            }
        }
    }
}
