//! Keras' affine matrix composition (R·T·S·Z about a pivot): keras-preprocessing
//! 1.1.2's, and the legacy generator of Keras 3 ([`keras3_affine`]).
//!
//! The result is scipy's *pull* mapping: for every output pixel `o = (row, col)`
//! the value is read at input coordinate `a · o + offset`. Keras builds that
//! mapping as 3×3 homogeneous matrices; this module keeps the same factors,
//! the same product order and the same pivot so that the numbers agree with
//! `apply_affine_transform` to the last few ulps (numpy's `dot` may use FMA, so
//! bit-identity is not promised).

use super::params::TransformParams;

/// The 2-D pull mapping of scipy's `affine_transform`:
/// input coordinate = `a · output + offset`, coordinates in (row, col).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine2 {
    /// The linear part: `a[k]` is the row of the matrix giving input axis `k`
    /// (0 = rows, 1 = columns).
    pub a: [[f64; 2]; 2],
    /// The translation, in input pixels along (rows, columns).
    pub offset: [f64; 2],
}

impl Affine2 {
    /// The identity mapping: every output pixel reads the same input pixel.
    pub const IDENTITY: Affine2 = Affine2 {
        a: [[1.0, 0.0], [0.0, 1.0]],
        offset: [0.0, 0.0],
    };

    /// The input coordinate `(row, col)` sampled for output pixel `(row, col)`,
    /// summed in scipy's order (`offset + row·a[k][0] + col·a[k][1]`, left to
    /// right) so that order-0 rounding agrees with scipy bit for bit.
    #[inline]
    pub fn apply(&self, row: f64, col: f64) -> [f64; 2] {
        [
            (self.offset[0] + row * self.a[0][0]) + col * self.a[0][1],
            (self.offset[1] + row * self.a[1][0]) + col * self.a[1][1],
        ]
    }
}

impl Default for Affine2 {
    fn default() -> Affine2 {
        Affine2::IDENTITY
    }
}

type Mat3 = [[f64; 3]; 3];

/// A 3×3 product summed left to right, as a plain (non-FMA) `np.dot` would.
fn mul(p: &Mat3, q: &Mat3) -> Mat3 {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = p[i][0] * q[0][j] + p[i][1] * q[1][j] + p[i][2] * q[2][j];
        }
    }
    r
}

/// A 3×3 product as a chain of fused multiply-adds, `acc = fma(p[i][k],
/// q[k][j], acc)` for k = 0, 1, 2: what OpenBLAS' `dgemm`, behind numpy's
/// `np.dot`, computes on x86-64 with FMA. Used by the Keras 3 matrices only,
/// which no earlier output depends on, so they can match numpy bit for bit
/// there; the 1.1.2 matrices keep [`mul`] because the golden outputs were
/// computed with it.
fn mul_fma(p: &Mat3, q: &Mat3) -> Mat3 {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).fold(0.0, |acc, k| p[i][k].mul_add(q[k][j], acc));
        }
    }
    r
}

/// Keras' `M = R·T·S·Z` with only the non-identity factors (Keras' tests:
/// `theta != 0`, `tx != 0 or ty != 0`, `shear != 0`, `zx != 1 or zy != 1`),
/// chained with `mul`; `None` when every factor is the identity.
fn factors(params: &TransformParams, mul: fn(&Mat3, &Mat3) -> Mat3) -> Option<Mat3> {
    let TransformParams {
        theta,
        tx,
        ty,
        shear,
        zx,
        zy,
        ..
    } = *params;
    let mut m: Option<Mat3> = None;
    let mut push = |f: Mat3| {
        m = Some(match &m {
            None => f,
            Some(prev) => mul(prev, &f),
        });
    };
    if theta != 0.0 {
        // numpy's deg2rad multiplies by pi/180, as `to_radians` does.
        let t = theta.to_radians();
        let (s, c) = (t.sin(), t.cos());
        push([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]);
    }
    if tx != 0.0 || ty != 0.0 {
        push([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]]);
    }
    if shear != 0.0 {
        let s = shear.to_radians();
        push([[1.0, -s.sin(), 0.0], [0.0, s.cos(), 0.0], [0.0, 0.0, 1.0]]);
    }
    if zx != 1.0 || zy != 1.0 {
        push([[zx, 0.0, 0.0], [0.0, zy, 0.0], [0.0, 0.0, 1.0]]);
    }
    m
}

/// `Off(o)·M·Off(-o)` with `o = (ox, oy)`, Keras' `transform_matrix_offset_center`.
fn about(m: &Mat3, ox: f64, oy: f64, mul: fn(&Mat3, &Mat3) -> Mat3) -> Mat3 {
    let offset = [[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]];
    let reset = [[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]];
    mul(&mul(&offset, m), &reset)
}

/// Keras 1.1.2's matrix for the geometry of `params` (theta°, tx, ty,
/// shear°, zx, zy; its flips, channel shift and brightness are other steps)
/// on an image of `height` × `width`; `None` when every factor is the
/// identity (Keras then returns the image untouched, without interpolating).
///
/// `tx` shifts along rows (content moves up for `tx > 0`), `ty` along columns;
/// `zx` scales rows and `zy` columns (values above 1 shrink the content);
/// `theta > 0` turns the content clockwise on screen. Only the factors that
/// differ from the identity enter the product `M = R·T·S·Z`, exactly as Keras
/// tests them (`theta != 0`, `tx != 0 or ty != 0`, `shear != 0`,
/// `zx != 1 or zy != 1`), so a NaN parameter counts as "not identity".
///
/// The pivot is Keras 1.1.2's `(h/2 + 0.5, w/2 + 0.5)`, one pixel below and
/// to the right of the true centre `((h-1)/2, (w-1)/2)`: a faithful port keeps
/// that offset (the reference's tests pin it, see the theta = 45° example in
/// this module's tests).
///
/// # Examples
///
/// ```
/// use npyflow::augment::keras_affine;
/// use npyflow::TransformParams;
///
/// // A shift of two rows: the identity's linear part, the rows offset.
/// let shift = TransformParams { tx: 2.0, ..TransformParams::default() };
/// let m = keras_affine(&shift, 32, 32).unwrap();
/// assert_eq!((m.a, m.offset), ([[1.0, 0.0], [0.0, 1.0]], [2.0, 0.0]));
/// assert_eq!(keras_affine(&TransformParams::default(), 32, 32), None);
/// ```
pub fn keras_affine(params: &TransformParams, height: usize, width: usize) -> Option<Affine2> {
    let m = factors(params, mul)?;
    let ox = height as f64 / 2.0 + 0.5;
    let oy = width as f64 / 2.0 + 0.5;
    let f = about(&m, ox, oy, mul);
    Some(Affine2 {
        a: [[f[0][0], f[0][1]], [f[1][0], f[1][1]]],
        offset: [f[0][2], f[1][2]],
    })
}

/// The matrix of the legacy `ImageDataGenerator` of Keras 3 and `tf.keras`
/// 2.16+ (`keras/src/legacy/preprocessing/image.py`) for the geometry of
/// `params`; `None` when every factor is the identity.
///
/// Keras 3 builds the same 3×3 matrix `F` as 1.1.2 ([`keras_affine`]) but
/// about the pivot `(h/2 - 0.5, w/2 - 0.5)`, then, because its generator
/// always passes `row_axis < col_axis`, swaps the matrix's first two rows
/// and columns before handing it to scipy: the pull map is
/// `[[F11, F10], [F01, F00]]` with offset `[F12, F02]`. So in Keras 3 `tx`
/// (drawn from `height_shift_range`) moves the content **left**, `ty` moves
/// it up, `theta > 0` turns it counter-clockwise, `zx` scales columns and
/// `zy` rows, and the shear matrix differs. The pivot in (row, col) is the
/// transposed `(w/2 - 0.5, h/2 - 0.5)`: the true centre on square images,
/// off-centre on others, as in Keras 3. The swap is a copy of entries, so
/// it adds no rounding; the products are fused multiply-add chains, as
/// numpy's `dot` computes them with OpenBLAS on x86-64.
///
/// # Examples
///
/// ```
/// use npyflow::augment::keras3_affine;
/// use npyflow::TransformParams;
///
/// // Keras 3 on a 4×6 image: zoom 2 about the transposed pivot (2.5, 1.5).
/// let zoom = TransformParams { zx: 2.0, zy: 2.0, ..TransformParams::default() };
/// let m = keras3_affine(&zoom, 4, 6).unwrap();
/// assert_eq!((m.a, m.offset), ([[2.0, 0.0], [0.0, 2.0]], [-2.5, -1.5]));
/// // `tx` shifts columns.
/// let shift = TransformParams { tx: 1.0, ty: 0.25, ..TransformParams::default() };
/// assert_eq!(keras3_affine(&shift, 4, 6).unwrap().offset, [0.25, 1.0]);
/// ```
pub fn keras3_affine(params: &TransformParams, height: usize, width: usize) -> Option<Affine2> {
    let m = factors(params, mul_fma)?;
    let ox = height as f64 / 2.0 - 0.5;
    let oy = width as f64 / 2.0 - 0.5;
    let f = about(&m, ox, oy, mul_fma);
    Some(Affine2 {
        a: [[f[1][1], f[1][0]], [f[0][1], f[0][0]]],
        offset: [f[1][2], f[0][2]],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_parameters_give_none() {
        assert_eq!(keras_affine(&TransformParams::default(), 32, 32), None);
        assert!(keras_affine(
            &TransformParams {
                zy: 1.0 + 1e-12,
                ..TransformParams::default()
            },
            32,
            32
        )
        .is_some());
        assert!(keras_affine(
            &TransformParams {
                theta: f64::NAN,
                ..TransformParams::default()
            },
            32,
            32
        )
        .is_some());
    }

    #[test]
    fn translation_only_is_a_plain_offset() {
        // Off(o)·T·Off(-o) = T: the pivot cancels for a pure shift.
        let m = keras_affine(
            &TransformParams {
                tx: 2.0,
                ty: -3.0,
                ..TransformParams::default()
            },
            5,
            7,
        )
        .unwrap();
        assert_eq!(m.a, [[1.0, 0.0], [0.0, 1.0]]);
        assert_eq!(m.offset, [2.0, -3.0]);
    }

    #[test]
    fn zoom_scales_about_the_keras_pivot() {
        // in = o + z·(out - o) with o = h/2 + 0.5 = 3.0 (h = 5), w/2 + 0.5 = 4.5 (w = 8).
        let m = keras_affine(
            &TransformParams {
                zx: 2.0,
                zy: 0.5,
                ..TransformParams::default()
            },
            5,
            8,
        )
        .unwrap();
        assert_eq!(m.a, [[2.0, 0.0], [0.0, 0.5]]);
        assert_eq!(m.offset, [3.0 - 2.0 * 3.0, 4.5 - 0.5 * 4.5]);
    }

    #[test]
    fn rotation_180_maps_the_documented_pixel() {
        // keras-behaviour §4.2: on 5×9 a 180° rotation maps (2,4) → (4,6).
        let m = keras_affine(
            &TransformParams {
                theta: 180.0,
                ..TransformParams::default()
            },
            5,
            9,
        )
        .unwrap();
        let [r, c] = m.apply(4.0, 6.0);
        assert!(
            (r - 2.0).abs() < 1e-12 && (c - 4.0).abs() < 1e-12,
            "{r} {c}"
        );
    }

    #[test]
    fn factors_compose_as_r_t_s_z() {
        let (th, sh) = (30f64.to_radians(), 10f64.to_radians());
        let m = keras_affine(
            &TransformParams {
                theta: 30.0,
                tx: 1.5,
                ty: -0.5,
                shear: 10.0,
                zx: 1.2,
                zy: 0.8,
                ..TransformParams::default()
            },
            10,
            10,
        )
        .unwrap();
        // Linear part R·S·Z (T contributes only to the offset).
        let rs = [
            [th.cos(), -th.sin() * sh.cos() - th.cos() * sh.sin()],
            [th.sin(), th.cos() * sh.cos() - th.sin() * sh.sin()],
        ];
        let want = [
            [rs[0][0] * 1.2, rs[0][1] * 0.8],
            [rs[1][0] * 1.2, rs[1][1] * 0.8],
        ];
        for (got, want) in m.a.iter().flatten().zip(want.iter().flatten()) {
            assert!((got - want).abs() < 1e-12, "{:?} vs {want}", m.a);
        }
        // The pivot o = (5.5, 5.5) is a fixed point once the shift is removed:
        // in = o + R·(S·Z·(out - o) + t).
        let t = [1.5, -0.5];
        let o = 5.5;
        let [r, c] = m.apply(o, o);
        let want_r = o + th.cos() * t[0] - th.sin() * t[1];
        let want_c = o + th.sin() * t[0] + th.cos() * t[1];
        assert!((r - want_r).abs() < 1e-12 && (c - want_c).abs() < 1e-12);
    }

    #[test]
    fn keras3_matrices_are_the_captured_ones() {
        // Keras 3's `affine_transform` arguments captured for a 4×6 image.
        let p = |f: fn(&mut TransformParams)| {
            let mut t = TransformParams::default();
            f(&mut t);
            keras3_affine(&t, 4, 6).unwrap()
        };
        let close = |m: Affine2, a: [[f64; 2]; 2], o: [f64; 2]| {
            let got = m.a.iter().flatten().chain(&m.offset);
            let want = a.iter().flatten().chain(&o);
            for (g, w) in got.zip(want) {
                assert!((g - w).abs() < 1e-4, "{m:?} vs {a:?} {o:?}");
            }
        };
        close(p(|t| t.zx = 2.0), [[1.0, 0.0], [0.0, 2.0]], [0.0, -1.5]);
        close(p(|t| t.theta = 90.0), [[0.0, 1.0], [-1.0, 0.0]], [1.0, 4.0]);
        close(
            p(|t| t.shear = 30.0),
            [[0.866025, 0.0], [-0.5, 1.0]],
            [0.334936, 1.25],
        );
        assert_eq!(keras3_affine(&TransformParams::default(), 4, 6), None);
    }

    #[test]
    fn keras3_rotates_a_square_image_about_its_true_centre() {
        // On a square image 180° maps (r, c) to (n-1-r, n-1-c): a double flip.
        let m = keras3_affine(
            &TransformParams {
                theta: 180.0,
                ..TransformParams::default()
            },
            5,
            5,
        )
        .unwrap();
        let [r, c] = m.apply(1.0, 3.0);
        assert!(
            (r - 3.0).abs() < 1e-12 && (c - 1.0).abs() < 1e-12,
            "{r} {c}"
        );
    }

    #[test]
    fn fma_products_differ_from_plain_ones_only_in_rounding() {
        let p = [[0.1, 0.7, 1.3], [2.9, -0.3, 0.5], [0.0, 0.0, 1.0]];
        let q = [[1.7, 0.2, -0.9], [0.4, 3.1, 0.6], [0.0, 0.0, 1.0]];
        let (a, b) = (mul(&p, &q), mul_fma(&p, &q));
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(1.0));
        }
        // 0.1·1.7 + 0.7·0.4: the fused chain rounds once per step.
        assert_eq!(b[0][0], 0.7f64.mul_add(0.4, 0.1 * 1.7));
    }
}
